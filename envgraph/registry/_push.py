"""``envgraph push``: built images from the store to a registry, uploading only what it lacks.

For every selected env the image tagged ``<env>:<id12>`` in the store is pushed as
``HOST/REPO:<env>-<id12>`` and ``HOST/REPO:<env>``. Each blob is checked with HEAD first (so a second
push, or the rest of an interrupted one, uploads nothing that arrived), mounted from another repository
of the same registry when we know one that holds it, and uploaded otherwise; blobs go up in parallel and
manifests last, once every blob they name is there.

Where blobs were seen is remembered in the store (:class:`envgraph.oci._known_blobs.KnownBlobs`), so that
pushing to a new repository mounts the layers a cache repository of the same registry already holds.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Literal

import attrs

from envgraph.errors import EnvgraphError, RegistryError
from envgraph.identity import MANIFEST_MEDIA_TYPES, image_tag, registry_tag
from envgraph.oci._image import platform_manifests, read_image
from envgraph.oci._known_blobs import KnownBlobs
from envgraph.oci._model import Descriptor
from envgraph.oci._store import Store
from envgraph.registry._client import RegistryClient
from envgraph.registry._reference import Reference
from envgraph.registry._transfer import open_client, push_blob

__all__ = ["PushedImage", "BlobEvent", "BlobOutcome", "parse_repository", "push_images"]

BlobOutcome = Literal["planned", "skipped", "mounted", "uploaded"]


@attrs.frozen
class PushedImage:
    env: str
    reference: str  # HOST/REPO:<env>-<id12>
    digest: str
    bytes_uploaded: int
    blobs_uploaded: int
    blobs_skipped: int
    blobs_mounted: int
    registry: str = ""  # HOST[:PORT]
    repository: str = ""
    tag: str = ""  # <env>-<id12>
    drv: str = ""
    sbom: str | None = None  # the digest of the SBOM artifact attached to it (an OCI referrer)


@attrs.frozen
class BlobEvent:
    """One blob made present in the target repository (for progress displays)."""

    digest: str
    size: int
    outcome: BlobOutcome  # "planned": once, before any upload (done 0)
    done: int
    total: int


def parse_repository(text: str, what: str = "--registry") -> Reference:
    """``HOST[:PORT]/REPO`` (no tag, no digest) as a :class:`Reference`."""
    ref = Reference.parse(text)
    if ref.tag or ref.digest:
        raise RegistryError(f"{what} takes HOST[:PORT]/REPO without a tag or digest, got {text!r}")
    return ref


def _image_blobs(
    store: Store, env: str, desc: Descriptor, known: KnownBlobs, host: str
) -> tuple[list[Descriptor], list[Descriptor]]:
    """The blobs an image (or every image of an image index) names, and the platform manifests of an index
    (which go up after the blobs and before the index)."""
    blobs: list[Descriptor] = []
    children: list[Descriptor] = []
    try:
        manifests = platform_manifests(store, desc)
        if desc.media_type not in MANIFEST_MEDIA_TYPES:
            children = manifests
        for m in manifests:
            # Layers built on a Dask cluster stay in the cache repository: they are mounted, not uploaded.
            manifest = read_image(store, m, elsewhere=lambda digest: known.where(host, digest) is not None)
            blobs += [manifest.config, *manifest.layers]
    except EnvgraphError as err:
        raise EnvgraphError(f"env {env}: {err}") from None
    return blobs, children


def push_images(
    store: Store,
    images: Sequence[tuple[str, str]],
    registry_ref: str,
    *,
    insecure: bool = False,
    jobs: int = 4,
    progress: Callable[[BlobEvent], None] | None = None,
    client: RegistryClient | None = None,
    mount_from: Iterable[str] = (),
) -> list[PushedImage]:
    """Push the built images of ``images`` ((env, image id) pairs; the image id is the drv unless the env has files) to ``registry_ref`` (``HOST[:PORT]/REPO``),
    tagged ``<env>-<id12>`` and ``<env>``."""
    target = parse_repository(registry_ref)
    repo = target.repository
    tags = store.tags()
    known = store.known_blobs()
    todo: list[tuple[str, str, Descriptor, list[Descriptor]]] = []
    drvs = dict(images)
    children: dict[str, list[Descriptor]] = {}
    for env, drv in images:
        desc = tags.get(image_tag(env, drv))
        if desc is None:
            raise EnvgraphError(f"env {env} is not built: run `envgraph build`")
        blobs, children[env] = _image_blobs(store, env, desc, known, target.host)
        todo.append((env, registry_tag(env, drv), desc, blobs))

    own = client is None
    cl = client or open_client(target.host, insecure=insecure)
    try:
        cl.ping()
        owner: dict[str, str] = {}  # digest -> first env that needs it (counted there)
        unique: dict[str, Descriptor] = {}
        for env, _, _, blobs in todo:
            for b in blobs:
                owner.setdefault(b.digest, env)
                unique.setdefault(b.digest, b)
        outcomes: dict[str, BlobOutcome] = {}
        lock = threading.Lock()
        total = len(unique)

        def one(desc: Descriptor) -> None:
            outcome = push_blob(cl, repo, desc, store, known, mount_from)
            with lock:
                outcomes[desc.digest] = outcome
                done = len(outcomes)
            if progress is not None:
                progress(BlobEvent(desc.digest, desc.size, outcome, done, total))

        if progress is not None:
            progress(BlobEvent("", 0, "planned", 0, total))
        try:
            # Biggest first: the longest uploads start early.
            ordered = sorted(unique.values(), key=lambda d: (-d.size, d.digest))
            with ThreadPoolExecutor(max_workers=max(1, jobs), thread_name_prefix="push") as pool:
                futures = [pool.submit(one, d) for d in ordered]
                errors = [f.exception() for f in futures]
            for err in errors:
                if err is not None:
                    raise err
        finally:
            known.save()

        results: list[PushedImage] = []
        for env, pushed_tag, desc, blobs in todo:
            # An image index goes up after its platforms' manifests (a registry refuses an index naming
            # manifests it lacks), each by digest.
            for child in children[env]:
                cl.put_manifest(repo, child.digest, store.read_blob(child.digest), child.media_type)
            body = store.read_blob(desc.digest)
            for tag in (pushed_tag, env):
                cl.put_manifest(repo, tag, body, desc.media_type)
            counts = {"uploaded": 0, "mounted": 0, "skipped": 0}
            uploaded_bytes = 0
            for b in {b.digest: b for b in blobs}.values():
                outcome = outcomes[b.digest] if owner[b.digest] == env else "skipped"
                counts[outcome] += 1
                if outcome == "uploaded":
                    uploaded_bytes += b.size
            results.append(
                PushedImage(
                    env=env,
                    reference=f"{target.host}/{repo}:{pushed_tag}",
                    digest=desc.digest,
                    bytes_uploaded=uploaded_bytes,
                    blobs_uploaded=counts["uploaded"],
                    blobs_skipped=counts["skipped"],
                    blobs_mounted=counts["mounted"],
                    registry=target.host,
                    repository=repo,
                    tag=pushed_tag,
                    drv=drvs[env],
                )
            )
        return results
    finally:
        if own:
            cl.close()
