"""Using built images: listing what the store holds, exporting archives, loading into Docker, running."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from attrs import frozen

from envgraph._fs import cache_dir, locked_temp_dir
from envgraph.identity import LABEL_DRV, LABEL_ENV
from envgraph.oci._archive import export_docker_archive, export_oci_archive
from envgraph.oci._image import read_config, read_image, read_manifest
from envgraph.oci._model import Descriptor
from envgraph.oci._store import Store

__all__ = [
    "ArchiveFormat",
    "ImageRow",
    "list_images",
    "export_image",
    "load_image",
    "run_image",
    "docker_names",
]

ArchiveFormat = Literal["oci-archive", "docker-archive"]


@frozen
class ImageRow:
    env: str
    drv: str
    digest: str
    size: int
    layers: int
    tags: tuple[str, ...]


def list_images(store: Store) -> list[ImageRow]:
    by_digest: dict[str, list[str]] = {}
    descs: dict[str, Descriptor] = {}
    for ref, desc in store.tags().items():
        by_digest.setdefault(desc.digest, []).append(ref)
        descs[desc.digest] = desc
    rows = []
    for digest, refs in by_digest.items():
        manifest = read_manifest(store, digest)
        config = read_config(store, manifest.config.digest).config
        labels = (config.Labels if config is not None else None) or {}
        size = descs[digest].size + manifest.config.size + sum(layer.size for layer in manifest.layers)
        rows.append(ImageRow(labels.get(LABEL_ENV, "?"), labels.get(LABEL_DRV, "?"), digest, size,
                             len(manifest.layers), tuple(sorted(refs))))  # fmt: skip
    return sorted(rows, key=lambda r: (r.env, r.tags))


def docker_names(env: str, tag: str) -> list[str]:
    """What an env's image is called in a Docker daemon: ``envgraph/<env>:<drv12>`` and ``envgraph/<env>:latest``."""
    return [f"envgraph/{tag}", f"envgraph/{env}:latest"]


def export_image(
    store: Store, env: str, tag: str, desc: Descriptor, output: Path, fmt: ArchiveFormat
) -> None:
    read_image(store, desc)  # never export what does not check out
    if fmt == "oci-archive":
        export_oci_archive(store, {tag: desc}, output)
    else:
        export_docker_archive(store, desc, docker_names(env, tag), output)


def load_image(store: Store, env: str, tag: str, desc: Descriptor) -> list[str]:
    """Load into the local Docker daemon, tagged envgraph/<env>:<drv12> and :latest."""
    from envgraph._docker import connect, load_archive

    client = connect()
    read_image(store, desc)
    names = docker_names(env, tag)
    with locked_temp_dir(cache_dir() / "tmp", "load-") as tmp:  # not in the store: it may be read-only
        archive = Path(tmp) / "image.tar"
        export_docker_archive(store, desc, names, archive)
        load_archive(client, archive)
    return names


def run_image(name: str, command: list[str], *, network: str | None = None) -> int:
    """Run a command in a loaded image, streaming its output; returns its exit code.

    A given command replaces the image's entrypoint (like `docker run --entrypoint`); none runs the image's own.
    ``network`` is a Docker network name (``none`` for no network); default: the daemon's default network.
    """
    from envgraph._docker import connect, run

    if command:
        return run(connect(), name, command[1:], entrypoint=command[:1], network=network)
    return run(connect(), name, [], network=network)
