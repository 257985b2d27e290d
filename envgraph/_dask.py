"""Layer builds on a Dask cluster: ``envgraph build --executor dask://HOST:PORT`` (issue 15, part 1).

The plan is the local one; only where a layer task runs changes (the scheduler's ``LayerRunner`` seam).
The client looks every missing layer up in the registry cache first (a HEAD and a small manifest, no layer
bytes); a miss becomes one Dask task, :func:`build_layer`, which a worker runs against its own store and
wheel cache (``$ENVGRAPH_WORKER_STORE``, else ``<envgraph cache>/worker-store``; the wheel cache follows
``$ENVGRAPH_CACHE``). The worker publishes the finished layer to the cache (blobs first, each uploaded
and committed by digest, the entry manifest last: a worker killed half-way leaves no entry) and returns the
layer's record, its small path list and its address. The client then writes configs and manifests from
those records; layer blobs never pass through it (``envgraph push`` mounts them from the cache repository).

Failures: a user error (``EnvgraphError``: hash mismatch, no wheel...) is returned as a value, so Dask does
not retry it and the client fails that layer with the same one-line message as a local build. Anything
else (a worker killed, a lost connection, a bug) is Dask's to retry, up to :data:`RETRIES` times.
"""

from __future__ import annotations

import os
import re
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen

from envgraph._fs import cache_dir
from envgraph.builder._scheduler import LayerResult, LayerStatus, Scheduler
from envgraph.errors import BuildError, EnvgraphError, redact
from envgraph.oci._store import LayerRecord, Store
from envgraph.plan import LayerTask, Plan

if TYPE_CHECKING:  # the HTTP client only where a Dask build runs: parse_executor is on every build's path
    from envgraph.registry._cache import RegistryCache

# distributed is an optional extra without type hints: its clients and futures are Any here.
Client = Any
Future = Any

__all__ = ["DaskRunner", "WorkerJob", "WorkerOutcome", "build_layer", "parse_executor", "ENV_WORKER_STORE"]

ENV_WORKER_STORE = "ENVGRAPH_WORKER_STORE"
RETRIES = 3  # Dask retries of a task that raised (not of user errors, which are returned)
_HOSTPORT = re.compile(r"^(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:]+\]):[0-9]{1,5}$")


def parse_executor(text: str | None) -> str | None:
    """None for the local pool (``local`` or nothing); for ``dask://HOST:PORT`` the scheduler's address."""
    if text is None or text in ("", "local"):
        return None
    if not text.startswith("dask://") or not _HOSTPORT.match(text[len("dask://") :]):
        raise BuildError(f"executor {text!r}: expected local or dask://HOST:PORT (a Dask scheduler)")
    return "tcp://" + text[len("dask://") :]


@frozen
class WorkerJob:
    """What every task of one build needs besides its layer task and the plan."""

    project_root: str
    platform: str
    cache: str  # HOST[:PORT]/REPO
    insecure: bool


@frozen
class WorkerOutcome:
    status: LayerStatus  # built, reused (the worker's store had it) or failed (a user error)
    record: LayerRecord | None
    paths: (
        bytes | None
    )  # the layer's path list (small JSON), so the client checks conflicts without the layer
    worker: str
    seconds: float
    error: str | None = None


# -- the worker side ------------------------------------------------------------------------------

_worker_lock = threading.Lock()
_worker_stores: dict[str, Store] = {}
_worker_caches: dict[tuple[str, bool], RegistryCache] = {}


def worker_store_path() -> Path:
    return Path(os.environ.get(ENV_WORKER_STORE) or cache_dir() / "worker-store").resolve()


def _worker_state(job: WorkerJob) -> tuple[Store, RegistryCache]:
    """This worker process's store and cache client (opened once, shared by its threads)."""
    path = worker_store_path()
    with _worker_lock:
        store = _worker_stores.get(str(path))
        if store is None:
            store = _worker_stores[str(path)] = Store.open(path)
            with store.in_use():
                store.clean_tmp()  # what a killed worker left behind
        cache = _worker_caches.get((job.cache, job.insecure))
        if cache is None:
            from envgraph.registry._cache import RegistryCache

            cache = RegistryCache.from_reference(job.cache, mode="readwrite", insecure=job.insecure)
            _worker_caches[(job.cache, job.insecure)] = cache
    return store, cache


def build_layer(task: LayerTask, plan: Plan, job: WorkerJob) -> WorkerOutcome:
    """Run on a Dask worker: build one layer task (or reuse it from the worker's store), publish it to the
    cache and return its record. Idempotent: the key names the layer's content, so running it twice (a
    retry, a second worker) publishes the same blobs and the same entry."""
    from distributed import get_worker

    address = get_worker().address
    t0 = time.monotonic()
    try:
        store, cache = _worker_state(job)
        scheduler = Scheduler(store, Path(job.project_root), platform=job.platform, jobs=1, cache=cache)
        status, record = scheduler.build_here(task, plan)
        paths = store.read_blob(record.paths_digest) if record.paths_digest is not None else None
    except EnvgraphError as err:
        return WorkerOutcome("failed", None, None, address, time.monotonic() - t0, redact(str(err)))
    return WorkerOutcome(status, record, paths, address, time.monotonic() - t0)


# -- the client side ------------------------------------------------------------------------------


class DaskRunner:
    """The scheduler's ``LayerRunner`` over a Dask cluster; the registry cache is where layers meet."""

    def __init__(
        self,
        address: str,
        cache: RegistryCache,
        store: Store,
        job: WorkerJob,
        *,
        retries: int = RETRIES,
        client: Client | None = None,
    ) -> None:
        if cache.mode != "readwrite":
            raise BuildError(
                "a Dask build needs --cache-mode readwrite: its workers publish layers to the cache"
            )
        self.cache = cache
        self.store = store
        self.job = job
        self.retries = retries
        self.client = client or _connect(address)
        self._own_client = client is None
        self._lookups = ThreadPoolExecutor(max_workers=8, thread_name_prefix="cache-lookup")
        self._lock = threading.Lock()
        self._plan: tuple[Plan, Plan] | None = None
        self._futures: dict[str, Future] = {}
        self._run = uuid.uuid4().hex[:8]
        self._closed = False

    def submit(self, task: LayerTask, plan: Plan, finish: Callable[[LayerResult], None]) -> None:
        self._lookups.submit(self._lookup_or_submit, task, plan, finish)

    def _task_plan(self, plan: Plan) -> Plan:
        """What a worker needs of the plan: its bases and the builds a layer may need (wheels built from source),
        not every layer and image. Sent with each task, so losing a worker loses no input of another task."""
        with self._lock:
            if self._plan is None or self._plan[0] is not plan:
                self._plan = (plan, Plan(layers={}, images=(), bases=plan.bases, builds=plan.builds))
            return self._plan[1]

    def _lookup_or_submit(self, task: LayerTask, plan: Plan, finish: Callable[[LayerResult], None]) -> None:
        t0 = time.monotonic()
        try:
            record = self.cache.lookup(task.key, self.store)
            if record is not None:
                finish(LayerResult(task.key, task.label, "reused", record, time.monotonic() - t0))
                return
            future = self.client.submit(
                build_layer,
                task,
                self._task_plan(plan),
                self.job,
                key=f"envgraph-layer-{task.key.removeprefix('sha256:')[:16]}-{self._run}",
                retries=self.retries,
                pure=False,
            )
        except EnvgraphError as err:
            finish(LayerResult(task.key, task.label, "failed", None, time.monotonic() - t0, str(err)))
            return
        except Exception as err:  # the cluster went away
            finish(LayerResult(task.key, task.label, "failed", None, time.monotonic() - t0, _dask_error(err)))
            return
        with self._lock:
            self._futures[task.key] = future
        future.add_done_callback(lambda f: self._collect(task, f, finish, t0))

    def _collect(
        self, task: LayerTask, future: Future, finish: Callable[[LayerResult], None], t0: float
    ) -> None:
        def failed(why: str, worker: str | None = None) -> None:
            finish(LayerResult(task.key, task.label, "failed", None, time.monotonic() - t0, why, worker))

        try:
            if future.cancelled():
                failed("cancelled")
                return
            err = future.exception()
            if err is not None:
                failed(_dask_error(err))
                return
            out: WorkerOutcome = future.result()
            if out.status == "failed" or out.record is None:
                failed(out.error or "failed", out.worker)
                return
            self._receive(out.record, out.paths)
        except EnvgraphError as e:
            failed(str(e))
            return
        except Exception as e:  # a bug, but one layer's bug must not hide the others' results
            failed(f"{type(e).__name__}: {e}")
            return
        finish(LayerResult(task.key, task.label, out.status, out.record, out.seconds, None, out.worker))

    def _receive(self, record: LayerRecord, paths: bytes | None) -> None:
        """What the client keeps of a layer a worker built: its path list (checked against the record's
        digest), and that the cache repository holds its blob (so a push mounts it)."""
        if record.paths_digest is not None:
            if paths is None:
                raise BuildError(f"layer {record.key}: the worker returned no path list")
            self.store.add_bytes(paths, record.paths_digest)
        self.cache.saw(record.digest, self.store)

    def close(self, *, cancel: bool) -> None:
        """Idempotent: the scheduler closes it, and the workspace again when the build stopped before that."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._lookups.shutdown(wait=True, cancel_futures=cancel)
        with self._lock:
            futures = list(self._futures.values())
        if cancel and futures:
            self.client.cancel(futures)
        if self._own_client:
            self.client.close()


def _connect(address: str) -> Client:
    try:
        import distributed
    except ImportError:
        raise BuildError("a Dask build needs the distributed package: pip install 'envgraph[dask]'") from None
    try:
        return distributed.Client(address, timeout=15, set_as_default=False)  # type: ignore[no-untyped-call]
    except (OSError, TimeoutError) as err:
        raise BuildError(f"cannot reach the Dask scheduler at {address}: {err}") from None


def _dask_error(err: BaseException) -> str:
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return redact(f"on the Dask cluster: {type(err).__name__}{': ' + text if text else ''}")
