"""Using built images: listing what the store holds, exporting archives, loading into Docker, running."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Literal

import attrs
from attrs import frozen

from envgraph._fs import cache_dir, locked_temp_dir
from envgraph.errors import DockerError, EnvgraphError, StoreError
from envgraph.identity import INDEX_MEDIA_TYPES, LABEL_DRV, LABEL_ENV, LABEL_IMAGE
from envgraph.oci._archive import export_docker_archive, export_oci_archive
from envgraph.oci._image import pick_platform, platform_manifests, read_config, read_image, read_manifest
from envgraph.oci._model import Descriptor, Manifest, Platform
from envgraph.oci._store import Store
from envgraph.platforms import host_platform

if TYPE_CHECKING:
    import docker

    from envgraph._docker import RunOptions

__all__ = [
    "ArchiveFormat",
    "ImageRow",
    "LoadResult",
    "LoadVia",
    "LOAD_VIA",
    "list_images",
    "export_image",
    "load_image",
    "run_image",
    "docker_names",
]

log = logging.getLogger("envgraph.images")

ArchiveFormat = Literal["oci-archive", "docker-archive"]
LoadVia = Literal["auto", "serve", "archive"]
LOAD_VIA: tuple[LoadVia, ...] = ("auto", "serve", "archive")


@frozen
class ImageRow:
    env: str
    drv: str
    digest: str
    size: int
    layers: int
    tags: tuple[str, ...]
    platform: str = "linux/amd64"  # os/architecture of the image's config
    # What names the image (identity.image_id): the drv unless the env has files.
    ident: str = attrs.field(default=attrs.Factory(lambda self: self.drv, takes_self=True))


def list_images(store: Store) -> list[ImageRow]:
    """One row per image manifest (each platform of an image index is a row, with the index's tags too)."""
    by_digest: dict[str, list[str]] = {}
    descs: dict[str, Descriptor] = {}
    for ref, desc in store.tags().items():
        for m in platform_manifests(store, desc):
            by_digest.setdefault(m.digest, []).append(ref)
            descs[m.digest] = m
    rows = []
    for digest, refs in by_digest.items():
        manifest = read_manifest(store, digest)
        cfg = read_config(store, manifest.config.digest)
        config = cfg.config
        labels = (config.Labels if config is not None else None) or {}
        size = descs[digest].size + manifest.config.size + sum(layer.size for layer in manifest.layers)
        drv = labels.get(LABEL_DRV, "?")
        rows.append(ImageRow(labels.get(LABEL_ENV, "?"), drv, digest, size, len(manifest.layers),
                             tuple(sorted(refs)), f"{cfg.os}/{cfg.architecture}", labels.get(LABEL_IMAGE, drv)))  # fmt: skip
    return sorted(rows, key=lambda r: (r.env, r.platform, r.tags))


def docker_names(env: str, tag: str) -> list[str]:
    """What an env's image is called in a Docker daemon: ``envgraph/<env>:<id12>`` and ``envgraph/<env>:latest``."""
    return [f"envgraph/{tag}", f"envgraph/{env}:latest"]


def export_image(
    store: Store,
    env: str,
    tag: str,
    desc: Descriptor,
    output: Path,
    fmt: ArchiveFormat,
    artifacts: Sequence[tuple[Descriptor, Mapping[str, bytes]]] = (),
) -> None:
    """Write the image as an archive. An OCI archive holds the tag as it is (an image index over every platform
    for a multi-platform env) and ``artifacts`` (referrers such as its SBOM); a docker-archive holds one image: the
    host's platform of an index (``docker load`` takes one platform)."""
    for m in platform_manifests(store, desc):
        read_image(store, m)  # never export what does not check out
    if artifacts and fmt != "oci-archive":
        raise EnvgraphError("a docker-archive has no place for an SBOM: use --format oci-archive")
    if fmt == "oci-archive":
        export_oci_archive(store, {tag: desc}, output, artifacts)
    else:
        export_docker_archive(store, host_image(store, desc), docker_names(env, tag), output)


def host_image(store: Store, desc: Descriptor) -> Descriptor:
    """The image a tag means on this machine: itself, or the host's platform of an image index."""
    host = host_platform()
    if host is None:
        if desc.media_type in INDEX_MEDIA_TYPES:
            raise StoreError(
                "this machine's architecture is neither amd64 nor arm64: no image of the index runs here"
            )
        return desc
    return pick_platform(store, desc, Platform(host.architecture, host.os))


@frozen
class LoadResult:
    """What a load did: the daemon's names for the image, the path taken, and what moved."""

    env: str
    tags: tuple[str, ...]
    # "serve": the daemon pulled from the store's endpoint; "archive": a docker-archive was sent;
    # "present": the daemon had the image (same config digest) and it was only tagged.
    via: str
    layers: int
    layers_sent: int  # layer blobs that crossed to the daemon (all of them for an archive)
    bytes_sent: int  # blob bytes served, or the archive's size
    blobs_sent: tuple[str, ...] = ()  # serve: digests of the blobs the daemon fetched (config, layers)

    def describe(self) -> str:
        mb = f"{self.bytes_sent / 1e6:.1f} MB"
        if self.via == "serve":
            return f"{self.env}: {self.layers_sent} of {self.layers} layers pulled from the store ({mb})"
        if self.via == "present":
            return f"{self.env}: already in the daemon, tagged (nothing sent)"
        return f"{self.env}: {self.layers} layers sent as an archive ({mb})"


class _Unreachable(Exception):
    """The daemon never reached the endpoint (another network namespace, a proxy): use an archive."""


def load_image(store: Store, env: str, tag: str, desc: Descriptor, *, via: LoadVia = "auto") -> LoadResult:
    """Load the image ``desc`` (store tag ``tag``) into the Docker daemon as envgraph/<env>:<id12> and :latest.

    ``via="serve"``: an image the daemon has (same config digest) is only tagged; otherwise the daemon
    pulls from a read-only registry endpoint over the store, started on 127.0.0.1 for the length of the
    load, and fetches only the layers it lacks (by ChainID: the unchanged prefix of the layer list).
    ``via="archive"``: the whole image is sent as a docker-archive, every time. ``auto``: as ``serve``,
    but an archive when the daemon is not on this host or cannot reach the endpoint.
    """
    from envgraph._docker import connect, daemon_is_local, docker_host, has_image

    if via not in LOAD_VIA:
        raise DockerError(f"unknown load method {via!r}: one of {', '.join(LOAD_VIA)}")
    client = connect()
    names = tuple(docker_names(env, tag))
    manifest = read_image(store, desc)  # checked against its tag, its blobs known good, on either path
    if via != "archive":
        from envgraph.server._names import is_repository

        if has_image(client, manifest.config.digest):
            log.debug("load %s: the daemon has image %s already: tagging it", env, manifest.config.digest)
            _tag_all(client, manifest.config.digest, names)
            return LoadResult(env, names, "present", len(manifest.layers), 0, 0)
        if not daemon_is_local():
            why = f"the Docker daemon at {docker_host()} is not on this host"
        elif not is_repository(env):
            why = f"{env!r} is not a valid registry repository name (lowercase letters, digits, . _ -)"
        else:
            try:
                return _load_via_serve(store, manifest, client, tag, desc, names)
            except _Unreachable as err:
                why = str(err)
        if via == "serve":
            raise DockerError(f"cannot load {env} through the store's registry endpoint: {why}")
        log.debug("load %s: %s: sending an archive instead", env, why)
    from envgraph._docker import load_archive

    log.debug("load %s: exporting a docker-archive of %s", env, desc.digest)
    with locked_temp_dir(cache_dir() / "tmp", "load-") as tmp:  # not in the store: it may be read-only
        archive = Path(tmp) / "image.tar"
        export_docker_archive(store, desc, list(names), archive)
        size = archive.stat().st_size
        load_archive(client, archive)
    return LoadResult(env, names, "archive", len(manifest.layers), len(manifest.layers), size)


def _tag_all(client: docker.DockerClient, image_id: str, names: tuple[str, ...]) -> None:
    from envgraph._docker import tag as docker_tag

    for name in names:
        repo, _, name_tag = name.rpartition(":")
        docker_tag(client, image_id, repo, name_tag)


def _load_via_serve(
    store: Store,
    manifest: Manifest,
    client: docker.DockerClient,
    tag: str,
    desc: Descriptor,
    names: tuple[str, ...],
) -> LoadResult:
    from envgraph._docker import pull, remove_reference
    from envgraph.server import BackgroundServer, ServeStats, create_app

    env, _, drv12 = tag.partition(":")
    stats = ServeStats()
    with BackgroundServer(create_app(store, stats=stats)) as server:
        repository = f"{server.address}/{env}"
        log.debug("load %s: the daemon pulls %s:%s from the store", env, repository, drv12)
        try:
            image_id = pull(client, repository, drv12)
        except DockerError as err:
            served = stats.snapshot()
            if served.requests == 0:
                raise _Unreachable(f"the Docker daemon did not reach {server.url} ({err})") from err
            if served.damaged:
                damaged = served.damaged[0]
                store.verified(damaged)  # rehashed: on a writable store the damaged blob is moved aside
                raise StoreError(
                    f"blob {damaged} is damaged in the store {store.root}: run `envgraph build` to rebuild it"
                ) from err
            raise
    try:
        if image_id != manifest.config.digest:
            raise DockerError(
                f"docker pull of {env} gave image {image_id}, "
                f"but the store's image has config {manifest.config.digest}"
            )
        _tag_all(client, image_id, names)
    finally:
        # The port-specific names mean nothing once the endpoint is gone.
        remove_reference(client, f"{repository}:{drv12}")
        remove_reference(client, f"{repository}@{desc.digest}")
    served = stats.snapshot()
    layer_digests = {d.digest for d in manifest.layers}
    sent = sum(1 for d in served.blob_bytes if d in layer_digests)
    return LoadResult(
        env, names, "serve", len(manifest.layers), sent, served.bytes_sent, tuple(sorted(served.blob_bytes))
    )


def run_image(
    name: str,
    command: list[str],
    *,
    network: str | None = None,
    options: RunOptions | None = None,
    stdin: BinaryIO | None = None,
) -> int:
    """Run a command in a loaded image, streaming its output; returns its exit code.

    A given command replaces the image's entrypoint (like `docker run --entrypoint`); none runs the image's own.
    ``network`` is a Docker network name (``none`` for no network); default: the daemon's default network.
    ``options``: docker run's ``-e -v -p --user --gpus -t``; ``stdin`` is copied into the container's stdin.
    """
    from envgraph._docker import RunOptions, connect, run

    opts = options or RunOptions()
    if network is not None:
        opts = attrs.evolve(opts, network=network)
    if command:
        return run(connect(), name, command[1:], entrypoint=command[:1], options=opts, stdin=stdin)
    return run(connect(), name, [], options=opts, stdin=stdin)
