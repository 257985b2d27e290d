"""Two images' layers compared: shared, only in one, with their sizes (what a pull of the other would move)."""

from __future__ import annotations

from attrs import frozen

from envgraph.oci._image import read_config, read_image
from envgraph.oci._model import Descriptor
from envgraph.oci._store import Store

__all__ = ["ImageDiff", "LayerInfo", "diff_images"]


@frozen
class LayerInfo:
    digest: str
    size: int
    what: str  # the layer's history comment (which package, venv, base), or "" when it has none


@frozen
class ImageDiff:
    old: str  # manifest digests
    new: str
    shared: tuple[LayerInfo, ...]
    removed: tuple[LayerInfo, ...]  # only in old
    added: tuple[LayerInfo, ...]  # only in new

    @staticmethod
    def size(layers: tuple[LayerInfo, ...]) -> int:
        return sum(layer.size for layer in layers)


def _layers(store: Store, desc: Descriptor) -> list[LayerInfo]:
    manifest = read_image(store, desc)
    config = read_config(store, manifest.config.digest)
    comments = [h.comment or h.created_by or "" for h in config.history or () if not h.empty_layer]
    if len(comments) != len(manifest.layers):
        comments = [""] * len(manifest.layers)
    return [LayerInfo(d.digest, d.size, c) for d, c in zip(manifest.layers, comments, strict=True)]


def diff_images(store: Store, old: Descriptor, new: Descriptor) -> ImageDiff:
    a, b = _layers(store, old), _layers(store, new)
    in_a, in_b = {x.digest for x in a}, {x.digest for x in b}
    return ImageDiff(
        old=old.digest,
        new=new.digest,
        shared=tuple(x for x in b if x.digest in in_a),
        removed=tuple(x for x in a if x.digest not in in_b),
        added=tuple(x for x in b if x.digest not in in_a),
    )
