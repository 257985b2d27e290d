"""Moving blobs between a registry and the store: pulls (``docker://`` bases, cache entries) and pushes.

A reference (tag or digest) resolves to a manifest; an image index (or Docker manifest list) resolves
to the target platform's manifest. Config and layers are downloaded in parallel, each through
:meth:`Store.blob_writer` with its expected digest, so a blob is visible in the store only once
complete and verified. Manifests (and the index) are stored last: a store never holds a manifest
whose blobs an interrupted pull left out. A push makes each blob present the cheapest way: skip when
the repository has it, mount it from a repository of the same registry that holds it, else upload.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

from envgraph.errors import HashMismatchError, RegistryError, StoreError
from envgraph.identity import INDEX_MEDIA_TYPES, MANIFEST_ACCEPT, MANIFEST_MEDIA_TYPES, MEDIA_TYPE_MANIFEST
from envgraph.oci._known_blobs import KnownBlobs
from envgraph.oci._model import Descriptor, ImageConfig, Index, Manifest, Platform, from_json
from envgraph.oci._store import BlobWriter, Store
from envgraph.registry._client import PushOutcome, RegistryClient
from envgraph.registry._reference import Reference, is_local_host

__all__ = ["open_client", "fetch_blob", "push_blob", "pull_image", "select_platform"]

MAX_INDEX_DEPTH = 4


def open_client(host: str, *, insecure: bool = False) -> RegistryClient:
    """A client for ``host``. Plain HTTP with ``insecure``; for a loopback host (which Docker also treats as
    insecure) HTTPS is tried first and plain HTTP used when HTTPS does not answer."""
    if insecure:
        return RegistryClient(host, insecure=True)
    if is_local_host(host):
        probe = RegistryClient(host, insecure=False, retries=1, timeout=(3.0, 10.0))
        try:
            probe.ping()
        except RegistryError as err:
            if "not reachable" not in str(err):
                raise  # it answers HTTPS: the error is real (auth, ...)
            return RegistryClient(host, insecure=True)
        finally:
            probe.close()
    return RegistryClient(host, insecure=False)


class _WriterIO:
    """What :meth:`RegistryClient.get_blob` writes into: a store blob writer (not seekable)."""

    def __init__(self, writer: BlobWriter) -> None:
        self._writer = writer

    def write(self, data: bytes) -> int:
        return self._writer.write(data)

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return 0


def fetch_blob(client: RegistryClient, repo: str, desc: Descriptor, store: Store) -> bool:
    """Download ``desc`` into the store unless it is there; verified against its digest and size.

    Returns True when it was downloaded. Nothing is left in the store when verification fails."""
    if store.verified(desc.digest, size=desc.size if desc.size >= 0 else None):
        return False
    try:
        with store.blob_writer(desc.digest) as writer:
            size = client.get_blob(repo, desc.digest, _WriterIO(writer))  # type: ignore[arg-type]
            if desc.size >= 0 and size != desc.size:
                raise RegistryError(
                    f"blob {desc.digest} from {client.host}/{repo} has {size} bytes, its descriptor says {desc.size}"
                )
    except (StoreError, HashMismatchError) as err:
        raise RegistryError(f"storing blob {desc.digest} from {client.host}/{repo}: {err}") from None
    return True


def select_platform(index: Index, platform: Platform, source: str) -> Descriptor:
    """The index entry for ``platform`` (variant checked only when the target names one)."""
    candidates = [
        d
        for d in index.manifests
        if d.platform is not None
        and (d.platform.os, d.platform.architecture) == (platform.os, platform.architecture)
        and (platform.variant is None or d.platform.variant == platform.variant)
    ]
    if not candidates:
        offered = sorted(
            {
                f"{d.platform.os}/{d.platform.architecture}"
                for d in index.manifests
                if d.platform is not None and d.platform.os != "unknown"
            }
        )
        raise RegistryError(
            f"{source} has no image for {platform.os}/{platform.architecture}"
            + (f" (it has {', '.join(offered)})" if offered else "")
        )
    return candidates[0]


def _media_type(body: bytes, header_type: str) -> str:
    try:
        declared = json.loads(body).get("mediaType")
    except (ValueError, AttributeError):
        declared = None
    return str(declared or header_type or MEDIA_TYPE_MANIFEST)


def pull_image(
    store: Store,
    ref: str,
    platform: Platform,
    *,
    insecure: bool = False,
    client: RegistryClient | None = None,
    jobs: int = 4,
) -> Descriptor:
    """Pull ``ref`` (``host/repo:tag`` or ``host/repo@sha256:...``) into ``store``.

    Returns the platform manifest's descriptor (with its platform). Every blob is verified."""
    reference = Reference.parse(ref)
    own = client is None
    cl = client or open_client(reference.host, insecure=insecure)
    try:
        return _pull(cl, reference, store, platform, jobs)
    finally:
        if own:
            cl.close()


def _pull(
    client: RegistryClient, reference: Reference, store: Store, platform: Platform, jobs: int
) -> Descriptor:
    repo = reference.repository
    source = str(reference)
    pending_manifests: list[tuple[bytes, str]] = []  # (bytes, digest): stored once the blobs are in
    body, header_type, digest = client.get_manifest(repo, reference.ref, MANIFEST_ACCEPT)
    media_type = _media_type(body, header_type)
    via_index = False
    for _ in range(MAX_INDEX_DEPTH):
        if media_type not in INDEX_MEDIA_TYPES:
            break
        via_index = True
        pending_manifests.append((body, digest))
        try:
            index = from_json(body, Index)
        except StoreError as err:
            raise RegistryError(f"{source}: {err}") from None
        chosen = select_platform(index, platform, source)
        body, header_type, digest = client.get_manifest(repo, chosen.digest, MANIFEST_ACCEPT)
        media_type = _media_type(body, header_type)
    if media_type not in MANIFEST_MEDIA_TYPES:
        raise RegistryError(f"{source}: {digest} is a {media_type!r}, not an image manifest")
    try:
        manifest = from_json(body, Manifest)
    except StoreError as err:
        raise RegistryError(f"{source}: {err}") from None
    pending_manifests.append((body, digest))

    fetch_blob(client, repo, manifest.config, store)
    try:
        config = from_json(store.read_blob(manifest.config.digest), ImageConfig)
    except StoreError as err:
        raise RegistryError(
            f"{source}: its image config {manifest.config.digest} is unreadable: {err}"
        ) from None
    if len(config.rootfs.diff_ids) != len(manifest.layers):
        raise RegistryError(
            f"{source}: its config lists {len(config.rootfs.diff_ids)} layers, its manifest {len(manifest.layers)}"
        )
    if not via_index and (config.os, config.architecture) != (platform.os, platform.architecture):
        raise RegistryError(
            f"{source} is an image for {config.os}/{config.architecture}, "
            f"the target is {platform.os}/{platform.architecture}"
        )
    _fetch_all(client, repo, manifest.layers, store, jobs)
    for data, d in pending_manifests[::-1]:  # the platform manifest first, then the indexes above it
        store.add_bytes(data, expected_digest=d)
    return Descriptor(
        media_type, digest, len(body), platform=Platform(config.architecture, config.os, config.variant)
    )


def _fetch_all(
    client: RegistryClient, repo: str, blobs: Iterable[Descriptor], store: Store, jobs: int
) -> None:
    unique = {d.digest: d for d in blobs}
    with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="pull") as pool:
        futures = [pool.submit(fetch_blob, client, repo, d, store) for d in unique.values()]
        errors = [f.exception() for f in futures]
    for err in errors:
        if err is not None:
            raise err


def push_blob(
    client: RegistryClient,
    repo: str,
    desc: Descriptor,
    store: Store,
    known: KnownBlobs | None,
    mount_candidates: Iterable[str] = (),
) -> PushOutcome:
    """Make ``desc`` present in ``repo``: skip, mount (from where we saw it) or upload. Returns the outcome."""
    sources: list[str] = []
    seen_in = known.where(client.host, desc.digest) if known else None
    if seen_in and seen_in != repo:
        sources.append(seen_in)
    sources += [r for r in mount_candidates if r != repo and r not in sources]
    outcome: PushOutcome | None = None
    if sources:
        if client.blob_exists(repo, desc.digest):
            client.stats.add(blobs_skipped=1)
            outcome = "skipped"
        else:
            for source in sources[:3]:
                with contextlib.suppress(RegistryError):  # no access to the source: upload instead
                    if client.mount_blob(repo, desc.digest, source):
                        outcome = "mounted"
                        break
    if outcome is None:
        outcome = client.push_blob(repo, desc.digest, desc.size, lambda: store.open_blob(desc.digest))
    if known is not None:
        known.saw(client.host, desc.digest, repo)
    return outcome
