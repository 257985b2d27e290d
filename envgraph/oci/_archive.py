"""Image archives: exporting OCI layouts and docker-archives, importing them (for base images).

Exports go through the one tar writer (:func:`envgraph.oci._tar.write_tar`), so the same images give the
same archive bytes; blobs are streamed from the store, never read whole. The output file is written
next to its final name and renamed into place, so a half-written archive never has the final name.

Imports stream the tar once, copying blobs into the store (each verified against its digest when its
name says it); they return the manifest descriptor of the image.
"""

from __future__ import annotations

import json
import posixpath
import tarfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, Any

from envgraph._fs import atomic_output
from envgraph._hashing import CHUNK, canonical_json
from envgraph.errors import HashMismatchError, StoreError
from envgraph.identity import (
    ANNOTATION_REF_NAME,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_MANIFEST,
    Compression,
)
from envgraph.oci._compress import sniff_compression
from envgraph.oci._image import read_config, read_index, read_manifest
from envgraph.oci._model import DEFAULT_PLATFORM, Descriptor, Index, Manifest, Platform, from_json, to_json
from envgraph.oci._store import Store
from envgraph.oci._tar import LayerEntry, write_tar

__all__ = [
    "export_docker_archive",
    "export_oci_archive",
    "import_docker_archive",
    "import_oci_archive",
    "import_oci_layout",
]

_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_CONTAINERD_NAME = "io.containerd.image.name"


def _blob_entries(store: Store, digests: set[str]) -> list[LayerEntry]:
    entries = []
    for digest in sorted(digests):
        if not store.verified(digest):
            raise StoreError(
                f"blob {digest} is missing or damaged in the store {store.root}: run `envgraph build`"
            )
        entries.append(LayerEntry.from_file(_blob_name(digest), store.blob_path(digest), executable=False))
    return entries


def _blob_name(digest: str) -> str:
    return "blobs/sha256/" + digest.removeprefix("sha256:")


def export_oci_archive(
    store: Store,
    refs: dict[str, Descriptor],
    out_path: Path,
    artifacts: Sequence[tuple[Descriptor, Mapping[str, bytes]]] = (),
) -> None:
    """A tar of an OCI image layout holding the images ``refs`` (tag -> manifest descriptor) and only
    the blobs they need; ``artifacts`` (a referrer's manifest descriptor and its blobs by digest, manifest
    included) are listed in ``index.json`` beside them, as the image-layout spec allows for referrers."""
    manifests = []
    for ref, desc in sorted(refs.items()):
        ann = {**(desc.annotations or {}), ANNOTATION_REF_NAME: ref}
        manifests.append(desc.evolve(annotations=dict(sorted(ann.items()))))
    manifests += [desc for desc, _ in artifacts]
    digests = set(store.reachable([d for d in refs.values()]))
    extra = {d: data for _, blobs in artifacts for d, data in blobs.items() if d not in digests}
    entries = [
        LayerEntry.from_bytes("oci-layout", _LAYOUT),
        LayerEntry.from_bytes("index.json", to_json(Index(manifests=tuple(manifests)))),
        *_blob_entries(store, digests),
        *(LayerEntry.from_bytes(_blob_name(d), b) for d, b in extra.items()),  # write_tar sorts entries
    ]
    with atomic_output(out_path) as out:
        write_tar(entries, out)


def export_docker_archive(
    store: Store, manifest_desc: Descriptor, repo_tags: list[str], out_path: Path
) -> None:
    """A docker-archive (``docker load`` input): ``manifest.json`` plus the config and layer blobs
    under ``blobs/sha256/`` (layers keep their compression; ``docker load`` detects it)."""
    manifest = read_manifest(store, manifest_desc.digest)
    docker_manifest = [
        {
            "Config": _blob_name(manifest.config.digest),
            "RepoTags": list(repo_tags),
            "Layers": [_blob_name(layer.digest) for layer in manifest.layers],
        }
    ]
    digests = {manifest.config.digest, *(layer.digest for layer in manifest.layers)}
    entries = [
        LayerEntry.from_bytes("manifest.json", canonical_json(docker_manifest)),
        *_blob_entries(store, digests),
    ]
    with atomic_output(out_path) as out:
        write_tar(entries, out)


# --- importing ---------------------------------------------------------------------------------------


def _select(index: Index, tag: str | None, source: str) -> Descriptor:
    if tag is None:
        if len(index.manifests) != 1:
            raise StoreError(f"{source} holds {len(index.manifests)} images; name the tag to import")
        return index.manifests[0]
    by_name: dict[str, Descriptor] = {}
    for d in index.manifests:
        ann = d.annotations or {}
        for key in (ANNOTATION_REF_NAME, _CONTAINERD_NAME):
            if key in ann:
                by_name.setdefault(ann[key], d)
    return by_name[_match_tag(list(by_name), tag, source)]


def _match_tag(names: list[str], tag: str, source: str) -> str:
    """``tag`` itself, else the one name whose tag part (after the last ``:``) is ``tag``."""
    if tag in names:
        return tag
    suffix = [n for n in names if ":" in n and n.rsplit(":", 1)[1] == tag]
    if len(suffix) == 1:
        return suffix[0]
    if suffix:
        raise StoreError(f"{source}: tag {tag!r} is ambiguous ({', '.join(sorted(suffix))})")
    raise StoreError(f"{source} has no image tagged {tag!r}")


def _resolve(store: Store, desc: Descriptor, platform: Platform, source: str) -> Descriptor:
    """Follow an image index to the manifest for ``platform``."""
    seen = 0
    while desc.media_type in INDEX_MEDIA_TYPES:
        seen += 1
        if seen > 8:
            raise StoreError(f"{source}: image indexes nested too deep")
        candidates = [
            d
            for d in read_index(store, desc.digest).manifests
            if d.platform is not None
            and (d.platform.os, d.platform.architecture) == (platform.os, platform.architecture)
            and (platform.variant is None or d.platform.variant == platform.variant)
        ]
        if not candidates:
            raise StoreError(f"{source} has no image for {platform.os}/{platform.architecture}")
        desc = candidates[0]
    if desc.media_type not in MANIFEST_MEDIA_TYPES:
        raise StoreError(f"{source}: {desc.digest} is a {desc.media_type!r}, not an image")
    if desc.platform is None:
        cfg = read_config(store, read_manifest(store, desc.digest).config.digest)
        desc = desc.evolve(platform=Platform(cfg.architecture, cfg.os, cfg.variant))
    return desc.evolve(annotations=None)


def _check_complete(store: Store, desc: Descriptor, source: str) -> None:
    for digest in store.reachable([desc]):
        if not store.verified(digest):
            raise StoreError(f"{source} lacks blob {digest} needed by the image")


def import_oci_layout(
    layout_dir: Path, store: Store, tag: str | None = None, platform: Platform = DEFAULT_PLATFORM
) -> Descriptor:
    """Copy the image ``tag`` (or the only image) of an OCI layout directory into ``store``."""
    layout_dir = Path(layout_dir)
    try:
        index = from_json((layout_dir / "index.json").read_bytes(), Index)
    except FileNotFoundError:
        raise StoreError(f"{layout_dir} is not an OCI layout (no index.json)") from None
    desc = _select(index, tag, str(layout_dir))
    stack = [desc]
    while stack:
        d = stack.pop()
        if not store.verified(d.digest):
            src = layout_dir / _blob_name(d.digest)
            if not src.is_file():
                if d.media_type in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
                    raise StoreError(f"{layout_dir} lacks blob {d.digest}")
                continue  # a layer of another platform, or missing: _check_complete decides
            with open(src, "rb") as f:
                store.add_stream(f, expected_digest=d.digest)
        if d.media_type in MANIFEST_MEDIA_TYPES:
            m = read_manifest(store, d.digest)
            stack += [m.config, *m.layers]
        elif d.media_type in INDEX_MEDIA_TYPES:
            stack += list(read_index(store, d.digest).manifests)
    result = _resolve(store, desc, platform, str(layout_dir))
    _check_complete(store, result, str(layout_dir))
    return result


def _member_name(member: tarfile.TarInfo) -> str:
    return posixpath.normpath(member.name.lstrip("/")).removeprefix("./")


def _open_archive(file: Path | IO[bytes]) -> tarfile.TarFile:
    try:
        if isinstance(file, str | Path):
            return tarfile.open(file, mode="r|*")
        return tarfile.open(fileobj=file, mode="r|*")
    except (OSError, tarfile.TarError) as err:
        raise StoreError(f"cannot read archive {file}: {err}") from err


def import_oci_archive(
    file: Path | IO[bytes], store: Store, tag: str | None = None, platform: Platform = DEFAULT_PLATFORM
) -> Descriptor:
    """Copy the blobs of an OCI layout tar into ``store`` (one streaming pass; each blob verified
    against its name) and return the descriptor of the image ``tag`` (or the only image)."""
    index_data: bytes | None = None
    with _open_archive(file) as tf:
        for member in tf:
            name = _member_name(member)
            if not member.isreg():
                continue
            f = tf.extractfile(member)
            assert f is not None
            if name == "index.json":
                index_data = f.read()
            elif name.startswith("blobs/sha256/") and name.count("/") == 2:
                digest = "sha256:" + name.rsplit("/", 1)[1]
                if not store.verified(digest):
                    store.add_stream(f, expected_digest=digest)
    if index_data is None:
        raise StoreError(f"{file} is not an OCI archive (no index.json)")
    desc = _select(from_json(index_data, Index), tag, str(file))
    if not store.verified(desc.digest):
        raise StoreError(f"{file} lacks blob {desc.digest}")
    result = _resolve(store, desc, platform, str(file))
    _check_complete(store, result, str(file))
    return result


def _store_sniffed(store: Store, stream: IO[bytes], expected: str | None) -> tuple[str, int, Compression]:
    with store.blob_writer(expected) as w:
        head = stream.read(CHUNK)
        compression = sniff_compression(head)
        w.write(head)
        while chunk := stream.read(CHUNK):
            w.write(chunk)
    assert w.digest is not None and w.size is not None
    return w.digest, w.size, compression


def import_docker_archive(file: Path | IO[bytes], store: Store, tag: str | None = None) -> Descriptor:
    """Import a docker-archive (``docker save`` output, legacy or Engine 25+): blobs are copied as they
    are (nothing recompressed), and an OCI manifest is built from ``manifest.json``."""
    files: dict[str, tuple[str, int, Compression]] = {}
    links: dict[str, str] = {}
    docker_manifest: Any = None
    skip = {"repositories", "index.json", "oci-layout"}
    with _open_archive(file) as tf:
        for member in tf:
            name = _member_name(member)
            if member.issym():
                links[name] = posixpath.normpath(posixpath.join(posixpath.dirname(name), member.linkname))
                continue
            if member.islnk():
                links[name] = _member_name(tarfile.TarInfo(member.linkname))
                continue
            if not member.isreg() or name in skip or name.endswith(("/json", "/VERSION")):
                continue
            f = tf.extractfile(member)
            assert f is not None
            if name == "manifest.json":
                docker_manifest = json.loads(f.read())
                continue
            expected = None
            if name.startswith("blobs/sha256/") and name.count("/") == 2:
                expected = "sha256:" + name.rsplit("/", 1)[1]
            files[name] = _store_sniffed(store, f, expected)

    def lookup(path: str) -> tuple[str, int, Compression]:
        path = posixpath.normpath(path)
        for _ in range(16):
            if path in files:
                return files[path]
            if path not in links:
                break
            path = links[path]
        raise StoreError(f"{file}: manifest.json names {path!r}, which the archive lacks")

    if not isinstance(docker_manifest, list) or not docker_manifest:
        raise StoreError(f"{file} is not a docker-archive (no manifest.json)")
    if tag is None:
        if len(docker_manifest) != 1:
            raise StoreError(f"{file} holds {len(docker_manifest)} images; name the tag to import")
        entry = docker_manifest[0]
    else:
        by_tag: dict[str, Any] = {}
        for e in docker_manifest:
            for t in e.get("RepoTags") or []:
                by_tag.setdefault(t, e)
        entry = by_tag[_match_tag(list(by_tag), tag, str(file))]

    cfg_digest, cfg_size, _ = lookup(entry["Config"])
    config = read_config(store, cfg_digest)
    diff_ids = config.rootfs.diff_ids
    if len(entry["Layers"]) != len(diff_ids):
        raise StoreError(
            f"{file}: {len(entry['Layers'])} layers but the config lists {len(diff_ids)} diff_ids"
        )
    layers = []
    for path, diff_id in zip(entry["Layers"], diff_ids, strict=True):
        digest, size, compression = lookup(path)
        if compression is Compression.NONE and digest != diff_id:
            raise HashMismatchError(f"{file}: layer {path} is {digest} but the config says {diff_id}")
        layers.append(Descriptor(compression.media_type, digest, size))
    manifest = Manifest(config=Descriptor(MEDIA_TYPE_CONFIG, cfg_digest, cfg_size), layers=tuple(layers))
    digest, size = store.add_bytes(to_json(manifest))
    return Descriptor(
        MEDIA_TYPE_MANIFEST, digest, size, platform=Platform(config.architecture, config.os, config.variant)
    )
