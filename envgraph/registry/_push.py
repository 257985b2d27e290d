"""``envgraph push``: built images from the store to a registry, uploading only what it lacks.

For every selected env the image tagged ``<env>:<drv12>`` in the store is pushed as
``HOST/REPO:<env>-<drv12>`` and ``HOST/REPO:<env>``. Each blob is checked with HEAD first (so a second
push, or the rest of an interrupted one, uploads nothing that arrived), mounted from another repository
of the same registry when we know one that holds it, and uploaded otherwise; blobs go up in parallel and
manifests last, once every blob they name is there.

Where blobs were seen is remembered in ``<store>/registry-blobs.json`` (host -> digest -> repository),
written by pushes and by the registry cache (:mod:`envgraph.registry._cache`), so that pushing to a new repository
mounts the layers a cache repository of the same registry already holds instead of uploading them.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

import attrs
import click

from envgraph.errors import EnvgraphError, RegistryError
from envgraph.oci._image import Descriptor, Manifest, from_json
from envgraph.oci._store import Store
from envgraph.registry._client import Reference, RegistryClient
from envgraph.registry._pull import open_client

if TYPE_CHECKING:
    from envgraph.workspace import Workspace

__all__ = [
    "KnownBlobs",
    "PushedImage",
    "BlobEvent",
    "parse_repository",
    "push_images",
    "human",
    "PlainPushProgress",
    "RichPushProgress",
    "push_progress",
]

KNOWN_BLOBS_FILE = "registry-blobs.json"
MAX_KNOWN_PER_HOST = 200_000


@attrs.frozen
class PushedImage:
    env: str
    reference: str  # HOST/REPO:<env>-<drv12>
    digest: str
    bytes_uploaded: int
    blobs_uploaded: int
    blobs_skipped: int
    blobs_mounted: int


@attrs.frozen
class BlobEvent:
    """One blob made present in the target repository (for progress displays)."""

    digest: str
    size: int
    outcome: str  # "planned" (once, before any upload: done 0), "skipped", "mounted", "uploaded"
    done: int
    total: int


def parse_repository(text: str, what: str = "--registry") -> Reference:
    """``HOST[:PORT]/REPO`` (no tag, no digest) as a :class:`Reference`."""
    ref = Reference.parse(text)
    if ref.tag or ref.digest:
        raise RegistryError(f"{what} takes HOST[:PORT]/REPO without a tag or digest, got {text!r}")
    return ref


class KnownBlobs:
    """``<store>/registry-blobs.json``: for each registry host, which repository holds which blob.

    Only a hint for cross-repository mounts: a wrong entry costs one mount attempt that falls back to an
    upload. Updates merge with what other processes wrote (read-modify-write under a file lock)."""

    def __init__(self, store: Store) -> None:
        self.path = store.root / KNOWN_BLOBS_FILE
        self._lock_path = store.root / "tmp" / (KNOWN_BLOBS_FILE + ".lock")
        self._tmp_dir = store.tmp_dir
        self._mutex = threading.Lock()
        self._data: dict[str, dict[str, str]] = self._read()
        self._new: dict[str, dict[str, str]] = {}

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError, OSError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(h): {str(d): str(r) for d, r in m.items()} for h, m in data.items() if isinstance(m, dict)
        }

    def where(self, host: str, digest: str) -> str | None:
        with self._mutex:
            return self._data.get(host, {}).get(digest)

    def saw(self, host: str, digest: str, repo: str) -> None:
        with self._mutex:
            if self._data.get(host, {}).get(digest) == repo:
                return
            self._data.setdefault(host, {})[digest] = repo
            self._new.setdefault(host, {})[digest] = repo

    def save(self) -> None:
        """Merge what this process learnt into the file (atomically); errors here never fail a push."""
        with self._mutex:
            new, self._new = self._new, {}
        if not new:
            return
        import fcntl

        with contextlib.suppress(OSError):
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                merged = self._read()
                for host, blobs in new.items():
                    entry = merged.setdefault(host, {})
                    entry.update(blobs)
                    if len(entry) > MAX_KNOWN_PER_HOST:  # oldest first in insertion order
                        for digest in list(entry)[: len(entry) - MAX_KNOWN_PER_HOST]:
                            del entry[digest]
                tmp_fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir, prefix=KNOWN_BLOBS_FILE, suffix=".tmp")
                with os.fdopen(tmp_fd, "w", encoding="utf-8") as f:
                    json.dump(merged, f, sort_keys=True, separators=(",", ":"))
                os.replace(tmp_name, self.path)
                with self._mutex:
                    for host, blobs in merged.items():
                        self._data.setdefault(host, {}).update(blobs)
            finally:
                os.close(fd)


def push_blob(
    client: RegistryClient,
    repo: str,
    desc: Descriptor,
    store: Store,
    known: KnownBlobs | None,
    mount_candidates: Iterable[str] = (),
) -> str:
    """Make ``desc`` present in ``repo``: skip, mount (from where we saw it) or upload. Returns the outcome."""
    sources: list[str] = []
    seen_in = known.where(client.host, desc.digest) if known else None
    if seen_in and seen_in != repo:
        sources.append(seen_in)
    sources += [r for r in mount_candidates if r != repo and r not in sources]
    outcome: str | None = None
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


def _image_blobs(store: Store, env: str, desc: Descriptor) -> list[Descriptor]:
    try:
        manifest = from_json(store.read_blob(desc.digest), Manifest)
    except EnvgraphError as err:
        raise EnvgraphError(f"env {env}: its image in the store is unreadable: {err}") from None
    blobs = [manifest.config, *manifest.layers]
    for b in blobs:
        if not store.has_blob(b.digest):
            raise EnvgraphError(
                f"env {env}: blob {b.digest} of its image is missing from the store: run `envgraph build`"
            )
    return blobs


def push_images(
    ws: Workspace,
    envs: Iterable[str],
    pipelines: Iterable[str],
    registry_ref: str,
    *,
    insecure: bool = False,
    jobs: int = 4,
    progress: Callable[[BlobEvent], None] | None = None,
    client: RegistryClient | None = None,
    mount_from: Iterable[str] = (),
) -> list[PushedImage]:
    """Push the selected envs' built images to ``registry_ref`` (``HOST[:PORT]/REPO``)."""
    target = parse_repository(registry_ref)
    repo = target.repository
    envs, pipelines = list(envs), list(pipelines)
    plan = ws.plan(envs, pipelines)  # fails on unknown names, missing or stale lockfiles
    wanted = set(envs)  # the plan adds ancestors; push only what was asked for (all when nothing was)
    for p in pipelines:
        wanted.update(ws.spec.pipeline[p].steps.values())
    store = ws.open_store()
    tags = store.tags()
    images: list[tuple[str, str, Descriptor, list[Descriptor]]] = []
    for img in plan.images:
        if wanted and img.env not in wanted:
            continue
        desc = tags.get(img.tag)
        if desc is None:
            raise EnvgraphError(f"env {img.env} is not built: run `envgraph build`")
        drv12 = img.drv.removeprefix("sha256:")[:12]
        images.append((img.env, drv12, desc, _image_blobs(store, img.env, desc)))

    own = client is None
    cl = client or open_client(target.host, insecure=insecure)
    known = KnownBlobs(store)
    try:
        cl.ping()
        owner: dict[str, str] = {}  # digest -> first env that needs it (counted there)
        unique: dict[str, Descriptor] = {}
        for env, _, _, blobs in images:
            for b in blobs:
                owner.setdefault(b.digest, env)
                unique.setdefault(b.digest, b)
        outcomes: dict[str, str] = {}
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
        for env, drv12, desc, blobs in images:
            body = store.read_blob(desc.digest)
            for tag in (f"{env}-{drv12}", env):
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
                    reference=f"{target.host}/{repo}:{env}-{drv12}",
                    digest=desc.digest,
                    bytes_uploaded=uploaded_bytes,
                    blobs_uploaded=counts["uploaded"],
                    blobs_skipped=counts["skipped"],
                    blobs_mounted=counts["mounted"],
                )
            )
        return results
    finally:
        if own:
            cl.close()


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


class PlainPushProgress:
    """One line per blob uploaded or mounted (blobs already there are only counted in the summary)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()

    def __call__(self, ev: BlobEvent) -> None:
        if ev.outcome in ("skipped", "planned"):
            return
        with self.lock:
            click.echo(
                f"[{ev.done}/{ev.total}] {ev.outcome} {ev.digest[:19]} {human(ev.size)}", file=self.out
            )

    def close(self) -> None:
        pass


class RichPushProgress:
    """A bar of blobs present in the target (done/total) with the bytes uploaded so far, on a terminal."""

    def __init__(self, out: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("blobs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[uploaded]}"),
            TimeElapsedColumn(), console=Console(file=out), transient=True,
        )  # fmt: skip
        self.task: Any = None
        self.uploaded = 0
        self.lock = threading.Lock()

    def __call__(self, ev: BlobEvent) -> None:
        with self.lock:
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task("push", total=ev.total, uploaded="")
            if ev.outcome == "uploaded":
                self.uploaded += ev.size
            self.progress.update(self.task, completed=ev.done, uploaded=f"{human(self.uploaded)} uploaded")

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


def push_progress(out: Any) -> PlainPushProgress | RichPushProgress:
    return RichPushProgress(out) if out.isatty() else PlainPushProgress(out)
