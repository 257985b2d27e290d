"""Using built images: listing, exporting, loading into Docker, running, and store housekeeping."""

from __future__ import annotations

import tempfile
from pathlib import Path

from attrs import frozen

from envgraph.errors import BuildError, EnvgraphError
from envgraph.lock._lockfile import read_lock
from envgraph.oci._archive import export_docker_archive, export_oci_archive
from envgraph.oci._image import Descriptor, read_config, read_manifest
from envgraph.oci._store import Store
from envgraph.plan._planner import LABEL_DRV, LABEL_ENV
from envgraph.workspace import Workspace

__all__ = ["ImageRow", "list_images", "image_of", "export_env", "load_env", "run_env", "collect_garbage"]


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
        labels = (read_config(store, manifest.config.digest).config or _Empty()).Labels or {}
        size = descs[digest].size + manifest.config.size + sum(layer.size for layer in manifest.layers)
        rows.append(ImageRow(labels.get(LABEL_ENV, "?"), labels.get(LABEL_DRV, "?"), digest, size,
                             len(manifest.layers), tuple(sorted(refs))))  # fmt: skip
    return sorted(rows, key=lambda r: (r.env, r.tags))


class _Empty:
    Labels: dict[str, str] | None = None


def image_of(ws: Workspace, env: str) -> tuple[str, Descriptor]:
    """The image of the env's current lockfile: its tag and descriptor; an error when it is not built."""
    if env not in ws.spec.env:
        raise BuildError(f"unknown env {env!r}")
    lock = read_lock(ws.lockdir, env)
    if lock is None:
        raise BuildError(f"env {env} has no lockfile: run `envgraph lock` and `envgraph build`")
    tag = f"{env}:{lock.drv.removeprefix('sha256:')[:12]}"
    desc = ws.open_store().tags().get(tag)
    if desc is None:
        raise BuildError(f"env {env} is not built (no {tag} in the store): run `envgraph build {env}`")
    return tag, desc


def export_env(ws: Workspace, env: str, output: Path, fmt: str) -> str:
    tag, desc = image_of(ws, env)
    store = ws.open_store()
    if fmt == "oci-archive":
        export_oci_archive(store, {tag: desc}, output)
    else:
        export_docker_archive(store, desc, [f"envgraph/{tag}", f"envgraph/{env}:latest"], output)
    return tag


def load_env(ws: Workspace, env: str) -> list[str]:
    """Load into the local Docker daemon, tagged envgraph/<env>:<drv12> and :latest."""
    from envgraph._docker import connect, load_archive

    client = connect()
    tag, desc = image_of(ws, env)
    store = ws.open_store()
    with tempfile.TemporaryDirectory(prefix="envgraph-load-", dir=store.tmp_dir) as tmp:
        archive = Path(tmp) / "image.tar"
        export_docker_archive(store, desc, [f"envgraph/{tag}", f"envgraph/{env}:latest"], archive)
        load_archive(client, archive)
    return [f"envgraph/{tag}", f"envgraph/{env}:latest"]


def run_env(ws: Workspace, env: str, command: list[str], *, network: str | None = None) -> int:
    """Run a command in the env's image, streaming its output; returns its exit code.

    ``network`` is a Docker network name (``none`` for no network); default: the daemon's default network.
    """
    from envgraph._docker import connect, run

    tags = load_env(ws, env)
    # A given command replaces the image's entrypoint (like `docker run --entrypoint`); none runs the image's own.
    if command:
        return run(connect(), tags[0], command[1:], entrypoint=command[:1], network=network)
    return run(connect(), tags[0], [], network=network)


def collect_garbage(ws: Workspace, *, keep_last: int = 1, dry_run: bool = False) -> tuple[int, list[str]]:
    """Drop old image tags beyond ``keep_last`` per env, then blobs nothing kept refers to.

    Kept: images of the current lockfiles (and ``latest``), the ``keep_last`` newest other images per env,
    and the layers of the current lockfiles' keys. Refused while a build uses the store.
    """
    store = ws.open_store()
    with store.in_use(exclusive=True):
        current = set()
        for env in ws.spec.env:
            lock = read_lock(ws.lockdir, env)
            if lock is not None:
                current.add(f"{env}:{lock.drv.removeprefix('sha256:')[:12]}")
        tags = store.tags()
        by_env: dict[str, list[tuple[float, str]]] = {}
        for ref, desc in tags.items():
            env, _, name = ref.partition(":")
            if name == "latest" or ref in current:
                continue
            by_env.setdefault(env, []).append((store.blob_path(desc.digest).stat().st_mtime, ref))
        drop = []
        for items in by_env.values():
            items.sort(reverse=True)
            drop += [ref for _, ref in items[keep_last:]]
        keep = set(store.reachable([d for ref, d in tags.items() if ref not in drop]))
        try:
            current_keys = set(ws.plan().layers)
        except EnvgraphError:  # stale or missing lockfiles: keep what the tags reach
            current_keys = set()
        for record in store.records():
            if record.key in current_keys:
                keep.add(record.digest)
                if record.paths_digest:
                    keep.add(record.paths_digest)
        if dry_run:
            blobs = store.root.joinpath("blobs", "sha256").iterdir()
            return sum(p.stat().st_size for p in blobs if "sha256:" + p.name not in keep), drop
        for ref in drop:
            store.untag(ref)
        return store.gc(keep), drop
