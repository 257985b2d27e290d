"""Running a plan: every missing layer built exactly once, in parallel, then images assembled in topological order.

Package layers depend only on their wheels, so all of them are independent: downloads run on an
I/O pool and each layer's build starts as soon as its wheels are there. An image is written once
its layers are; a failing layer fails the images that need it (and their descendants) while
independent work goes on and is kept.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Literal, Protocol

from attrs import field, frozen

from envgraph.errors import BuildError, EnvgraphError
from envgraph.identity import LABEL_DRV, LABEL_ENV, LABEL_IMAGE
from envgraph.lock import ImagePin, Wheel
from envgraph.lock._wheelcache import WheelCache
from envgraph.oci._image import (
    ImageConfigSpec,
    ImageLayer,
    image_documents,
    read_config,
    read_manifest,
    store_image,
)
from envgraph.oci._model import Descriptor, ImageConfig, Platform
from envgraph.oci._store import LayerRecord, Store
from envgraph.plan import (
    BaseLayer,
    BuildTask,
    DebLayer,
    FilesLayer,
    ImagePlan,
    LayerTask,
    MergedLayer,
    PackageLayer,
    Plan,
    VenvLayer,
    WheelBuild,
)
from envgraph.spec import OCI_LABEL_PREFIX

LayerStatus = Literal["built", "reused", "pulled", "failed"]
ImageStatus = Literal["built", "reused", "failed"]

__all__ = [
    "LayerStatus",
    "ImageStatus",
    "SilentReporter",
    "LayerResult",
    "ImageResult",
    "BuildResult",
    "Reporter",
    "RemoteCache",
    "ImageBases",
    "LayerRunner",
    "Scheduler",
]


@frozen
class LayerResult:
    key: str
    label: str
    status: LayerStatus
    record: LayerRecord | None
    seconds: float
    error: str | None = None
    worker: str | None = None  # the remote worker that built it (a Dask executor); None when built here


@frozen
class ImageResult:
    env: str
    drv: str
    status: ImageStatus
    descriptor: Descriptor | None
    layers: tuple[str, ...]  # keys in order (base image layers excluded)
    base_layers: tuple[Descriptor, ...]
    seconds: float
    error: str | None = None
    # Set for the images of a multi-platform project (one per platform and env).
    platform: str | None = None


@frozen
class BuildResult:
    layers: dict[str, LayerResult]
    images: tuple[ImageResult, ...]
    seconds: float
    bytes_written: int
    failures: tuple[str, ...] = field(factory=tuple)
    warnings: tuple[str, ...] = field(factory=tuple)

    @property
    def ok(self) -> bool:
        return not self.failures


class Reporter(Protocol):
    def plan(self, total_layers: int, to_build: int, total_bytes: int) -> None: ...
    def started(self, task: LayerTask) -> None: ...
    def finished(self, result: LayerResult, task: LayerTask) -> None: ...
    def image(self, result: ImageResult) -> None: ...
    def close(self) -> None: ...


class RemoteCache(Protocol):
    """A second place to look before building (a registry), and where new layers are published."""

    def fetch(self, key: str, store: Store) -> LayerRecord | None: ...
    def publish(self, record: LayerRecord, store: Store) -> None: ...


class LayerRunner(Protocol):
    """Builds layers somewhere else (a Dask cluster): the seam between the plan and where its work runs.

    ``submit`` returns at once; ``finish`` is called exactly once per task, from any thread, with the
    result (its record names a layer the runner's cache holds, not necessarily this store). ``close``
    waits for outstanding work, or drops it with ``cancel``."""

    def submit(self, task: LayerTask, plan: Plan, finish: Callable[[LayerResult], None]) -> None: ...
    def close(self, *, cancel: bool) -> None: ...


class ImageBases(Protocol):
    """Provides a pinned image base in the store (imported or pulled when missing): its manifest descriptor."""

    def __call__(self, pin: ImagePin) -> Descriptor: ...


def _fetch_deb(deb: DebLayer) -> Path:
    """The verified .deb of a Debian package layer (cached by sha256; fetched from the base's mirror)."""
    from envgraph.debian import DebPin, fetch_deb

    pin = DebPin(
        deb.pin.name, deb.pin.version, deb.pin.architecture, deb.pin.sha256, deb.pin.size, deb.pin.filename
    )
    return fetch_deb(pin, mirror=deb.mirror)


def _no_image_bases(pin: ImagePin) -> Descriptor:
    raise BuildError(f"cannot provide the image base {pin.reference}: no image base source configured")


class SilentReporter:
    """Reports nothing; the base of the other reporters."""

    def plan(self, total_layers: int, to_build: int, total_bytes: int) -> None:
        pass

    def started(self, task: LayerTask) -> None:
        pass

    def finished(self, result: LayerResult, task: LayerTask) -> None:
        pass

    def image(self, result: ImageResult) -> None:
        pass

    def close(self) -> None:
        pass


OCI_CREATED = OCI_LABEL_PREFIX + "created"


class Scheduler:
    def __init__(
        self,
        store: Store,
        project_root: Path,
        *,
        platform: str,
        jobs: int | None = None,
        reporter: Reporter | None = None,
        cache: RemoteCache | None = None,
        wheels: WheelCache | None = None,
        image_bases: ImageBases | None = None,
        runner: LayerRunner | None = None,
    ) -> None:
        self.store = store
        self.root = project_root
        self.platform = platform
        self.jobs = max(1, jobs or os.cpu_count() or 1)
        self.reporter: Reporter = reporter or SilentReporter()
        self.cache = cache
        self.wheels = wheels or WheelCache(project_root)
        self.image_bases: ImageBases = image_bases or _no_image_bases
        # With a runner, layers are built and kept elsewhere: images are written from their descriptors alone.
        self.runner = runner
        self._written = 0
        self._lock = threading.Lock()
        self._ensured: set[str] = (
            set()
        )  # keys built on demand for another task (their own task reports "built")
        self.warnings: list[str] = []

    # -- run ---------------------------------------------------------------------------------
    def run(self, plan: Plan, *, stop: threading.Event | None = None) -> BuildResult:
        with self.store.in_use():
            self.store.clean_tmp()  # what builds killed before us left behind
            # The index is read once; every tag change of the run goes into one atomic update at the end,
            # also when the run fails or is interrupted (what completed stays tagged).
            self._tags = self.store.tags()
            self._tag_changes: dict[str, Descriptor] = {}
            self._bases: dict[str, tuple[ImageConfig, list[ImageLayer]]] = {}
            try:
                return self._run(plan, stop)
            finally:
                if self._tag_changes:
                    self.store.update_tags(self._tag_changes)

    def _run(self, plan: Plan, stop: threading.Event | None) -> BuildResult:
        start = time.monotonic()
        stop = stop or threading.Event()
        results: dict[str, LayerResult] = {}
        base_descs: dict[str, Descriptor] = {}
        base_errors: dict[str, str] = {}
        for name, blk in sorted(plan.bases.items()):
            if blk.image is not None and blk.image.digest is not None:
                try:
                    base_descs[name] = self.image_bases(blk.image)
                except EnvgraphError as e:
                    base_errors[name] = str(e)

        todo: list[LayerTask] = []
        for task in plan.layers.values():
            record = self.store.get_key(task.key)
            if record is not None:
                results[task.key] = LayerResult(task.key, task.label, "reused", record, 0.0)
            else:
                todo.append(task)
        self.reporter.plan(len(plan.layers), len(todo), sum(t.size_hint for t in todo))
        for task in plan.layers.values():
            if task.key in results:
                self.reporter.finished(results[task.key], task)

        done: queue.Queue[LayerResult] = queue.Queue()
        # Biggest first: the longest builds start early, so the pool drains evenly.
        todo.sort(key=lambda t: (-t.size_hint, t.label))
        downloads = ThreadPoolExecutor(max_workers=min(8, 2 * self.jobs), thread_name_prefix="download")
        builds = ThreadPoolExecutor(max_workers=self.jobs, thread_name_prefix="build")
        try:
            for task in todo:
                if self.runner is not None:
                    self.reporter.started(task)
                    self.runner.submit(task, plan, done.put)
                else:
                    self._submit(task, plan, downloads, builds, done, stop)
            if self.cache is not None and self.runner is None:
                # Layers the store already had may be missing from the cache (built before it was used): share them too.
                for key, r in results.items():
                    if r.record is not None:
                        downloads.submit(self._publish, r.record, plan.layers[key].label)
                # So may wheels built from source and their build roots' layers (another machine reuses them
                # when it has to build a layer that installs one).
                for key, build in plan.builds.items():
                    if key not in plan.layers:
                        downloads.submit(self._publish_stored, key, build.label)
            images = self._assemble(plan, results, done, len(todo), base_descs, base_errors, stop)
        except BaseException:
            stop.set()
            if self.runner is not None:
                self.runner.close(cancel=True)
            downloads.shutdown(wait=True, cancel_futures=True)
            builds.shutdown(wait=True, cancel_futures=True)
            self.reporter.close()
            raise
        if self.runner is not None:
            self.runner.close(cancel=False)
        downloads.shutdown(wait=True)
        builds.shutdown(wait=True)
        self.reporter.close()
        failures = [f"layer {r.label}: {r.error}" for r in results.values() if r.status == "failed"]
        failures += [
            f"env {i.env}: {i.error}"
            for i in images
            if i.status == "failed" and i.error and "layer " not in i.error
        ]
        return BuildResult(
            results,
            tuple(images),
            time.monotonic() - start,
            self._written,
            tuple(failures),
            tuple(self.warnings),
        )

    def _submit(
        self,
        task: LayerTask,
        plan: Plan,
        downloads: ThreadPoolExecutor,
        builds: ThreadPoolExecutor,
        done: queue.Queue[LayerResult],
        stop: threading.Event,
    ) -> None:
        def finish(
            status: LayerStatus, record: LayerRecord | None, t0: float, error: str | None = None
        ) -> None:
            done.put(LayerResult(task.key, task.label, status, record, time.monotonic() - t0, error))

        def build(paths: list[Path]) -> None:
            t0 = time.monotonic()
            if stop.is_set():
                finish("failed", None, t0, "interrupted")
                return
            self.reporter.started(task)
            try:
                status, record = self._build_one(task, plan, paths)
                finish(status, record, t0)
            except EnvgraphError as e:
                finish("failed", None, t0, str(e))
            except Exception as e:  # a bug, but one layer's bug must not hide the others' results
                finish("failed", None, t0, f"{type(e).__name__}: {e}")

        def start() -> None:
            fetches = self._fetches(task)
            if not fetches:
                builds.submit(build, [])
                return
            pending: list[Future[Path]] = [downloads.submit(f) for f in fetches]
            remaining = [len(pending)]
            lock = threading.Lock()

            def on_download(_: Future[Path]) -> None:
                with lock:
                    remaining[0] -= 1
                    if remaining[0]:
                        return
                errors = [f.exception() for f in pending if f.cancelled() or f.exception() is not None]
                if errors:
                    err = errors[0]
                    finish("failed", None, time.monotonic(), str(err) if err else "cancelled")
                    return
                try:
                    builds.submit(build, [f.result() for f in pending])
                except RuntimeError:  # pool shut down (interrupted)
                    finish("failed", None, time.monotonic(), "interrupted")

            for f in pending:
                f.add_done_callback(on_download)

        if self.cache is None:
            start()
            return

        def try_cache() -> None:
            # Ask the remote cache first: a hit needs neither the wheels nor a build.
            t0 = time.monotonic()
            try:
                record = None if self.store.get_key(task.key) else self.cache.fetch(task.key, self.store)  # type: ignore[union-attr]
            except EnvgraphError as e:
                finish("failed", None, t0, str(e))
                return
            if record is not None:
                finish("pulled", record, t0)
                return
            start()

        downloads.submit(try_cache)

    def build_here(self, task: LayerTask, plan: Plan) -> tuple[LayerStatus, LayerRecord]:
        """One layer task in this thread, for a remote executor's worker: from this store, or fetched and built
        now; then published to the cache, where failing is an error (the client reaches the layer only there)."""
        with self.store.in_use():
            with self.store.building(task.key):
                record = self.store.get_key(task.key)
                status: LayerStatus = "reused"
                if record is None:
                    record = self._make(task, plan, [fetch() for fetch in self._fetches(task)])
                    status = "built"
            if self.cache is not None:
                self.cache.publish(record, self.store)
        with self._lock:
            self._written += record.size if status == "built" else 0
        return status, record

    def _fetches(self, task: LayerTask | BuildTask) -> list[Callable[[], Path]]:
        """What must be downloaded (and verified) before the task can be built, in the order ``_make`` takes it."""
        out: list[Callable[[], Path]] = [functools.partial(self.wheels.fetch, w) for _, w in task.wheels]
        debs: tuple[DebLayer, ...] = ()
        if isinstance(task, DebLayer):
            debs = (task,)
        elif isinstance(task, MergedLayer):
            debs = task.debs
        out += [functools.partial(_fetch_deb, d) for d in debs]
        return out

    def _build_one(self, task: LayerTask, plan: Plan, paths: list[Path]) -> tuple[LayerStatus, LayerRecord]:
        # Another process on this store may be building the same key: wait for it, then reuse its work.
        with self.store.building(task.key):
            record = self.store.get_key(task.key)
            if record is not None:
                return ("built" if task.key in self._ensured else "reused"), record
            record = self._make(task, plan, paths)
        with self._lock:
            self._written += record.size
        self._publish(record, task.label)
        return "built", record

    def _ensure(self, task: BuildTask, plan: Plan) -> LayerRecord:
        """A layer or built wheel that another build needs, in this thread: from the store, the remote cache, or
        built now (another thread or process building it makes us wait for its result instead)."""
        with self.store.building(task.key):
            record = self.store.get_key(task.key)
            if record is not None:
                return record
            if self.cache is not None:
                record = self.cache.fetch(task.key, self.store)
                if record is not None:
                    return record
            paths = [fetch() for fetch in self._fetches(task)]
            record = self._make(task, plan, paths)
        with self._lock:
            self._written += record.size
            self._ensured.add(task.key)
        self._publish(record, task.label)
        return record

    def _built_wheels(
        self, task: PackageLayer | MergedLayer, plan: Plan, tmp: Path
    ) -> list[tuple[str, str, Path]]:
        """(name, file name, path) of every wheel built from source the layer installs."""
        from envgraph.builder._sdist import wheel_of_record

        out = []
        for build in task.builds:
            record = self._ensure(build, plan)
            wheel = wheel_of_record(self.store, record, tmp)
            out.append((build.name, wheel.name, wheel))
        return out

    def _make(self, task: LayerTask | BuildTask, plan: Plan, paths: list[Path]) -> LayerRecord:
        # The layer writers (and their compressors) load only when something is built: not on a no-op.
        from envgraph.builder._debian_base import ensure_debian_layer
        from envgraph.builder._layers import (
            build_deb_layer,
            build_files_layer,
            build_package_layer,
            build_venv_layer,
        )

        match task:
            case BaseLayer():
                return ensure_debian_layer(self.store, task.key, plan.bases[task.base], task.compression)
            case VenvLayer():
                return build_venv_layer(self.store, task.target)
            case DebLayer():
                return build_deb_layer(self.store, task, paths[0])
            case PackageLayer() | MergedLayer():
                n = len(task.wheels)
                pairs = [(name, w.filename, p) for (name, w), p in zip(task.wheels, paths[:n], strict=True)]
                debs = list(zip(task.debs, paths[n:], strict=True)) if isinstance(task, MergedLayer) else []
                with self.store.temp_dir("built-wheels-") as tmp:
                    pairs += self._built_wheels(task, plan, tmp)
                    return build_package_layer(self.store, task.target, task.key, pairs, debs)
            case WheelBuild():
                return self._build_wheel(task, plan, paths)
            case FilesLayer():
                return build_files_layer(
                    self.store, task.compression, self.root / task.src, task.dest, task.content, task.exclude
                )

    def _build_wheel(self, task: WheelBuild, plan: Plan, paths: list[Path]) -> LayerRecord:
        from envgraph.builder._sdist import build_wheel

        environment = [self._ensure(plan.builds[k], plan) for k in task.environment]
        source = self._source(task)
        requirements = [(w.filename, p) for (_, w), p in zip(task.wheels, paths, strict=True)]
        return build_wheel(self.store, task, environment, source, requirements)

    def _source(self, task: WheelBuild) -> Path:
        """The verified source: the sdist (by hash), or a source tree whose content hash is the locked one."""
        from envgraph.lock._sources import git_checkout, source_hash

        s = task.source
        what = f"{task.name} {task.version}"
        if s.kind == "sdist":
            if s.filename is None or s.size is None:
                raise BuildError(
                    f"{what}: the lockfile's sdist has no file name or size: run `envgraph lock`"
                )
            return self.wheels.fetch(Wheel(s.filename, s.sha256, s.size, s.url))
        if s.kind == "directory":
            tree = self.root / s.url
            if not tree.is_dir():
                raise BuildError(
                    f"{what}: the directory {s.url} does not exist (relative to the declaration file)"
                )
        elif s.kind == "git" and s.commit is not None:
            try:
                tree = git_checkout(s.url, s.commit, f"{what}: {s.url}@{s.commit[:12]}")
            except EnvgraphError as e:
                raise BuildError(str(e)) from None
        else:
            raise BuildError(f"{what}: unknown source kind {s.kind!r} in the lockfile: run `envgraph lock`")
        if source_hash(tree) != s.sha256:
            raise BuildError(
                f"{what}: the source in {s.url} changed since the lockfile was written: run `envgraph lock`"
            )
        return tree

    def _publish_stored(self, key: str, label: str) -> None:
        record = self.store.get_key(key)
        if record is not None:
            self._publish(record, label)

    def _publish(self, record: LayerRecord, label: str) -> None:
        if self.cache is None:
            return
        try:
            self.cache.publish(record, self.store)
        except EnvgraphError as e:
            # The layer is built and stored; only sharing it failed. Say so, but keep the build going.
            self.warnings.append(f"layer {label}: not published to the cache: {e}")

    # -- images ------------------------------------------------------------------------------
    def _assemble(
        self,
        plan: Plan,
        results: dict[str, LayerResult],
        done: queue.Queue[LayerResult],
        outstanding: int,
        base_descs: dict[str, Descriptor],
        base_errors: dict[str, str],
        stop: threading.Event,
    ) -> list[ImageResult]:
        images: dict[str, ImageResult] = {}
        pending = list(plan.images)
        tasks = plan.layers

        def ready(img: ImagePlan) -> bool:
            return all(k in results for k in img.layers) and (img.parent is None or img.parent in images or
                                                               img.parent not in {i.env for i in plan.images})  # fmt: skip

        while True:
            progressed = True
            while progressed:
                progressed = False
                for img in list(pending):
                    if ready(img):
                        pending.remove(img)
                        images[img.env] = self._image(img, tasks, results, images, base_descs, base_errors)
                        self.reporter.image(images[img.env])
                        progressed = True
            if outstanding == 0:
                break
            try:
                r = done.get(timeout=0.2)
            except queue.Empty:
                continue
            outstanding -= 1
            results[r.key] = r
            self.reporter.finished(r, tasks[r.key])
        assert not pending, pending
        return [images[i.env] for i in plan.images]

    def _image(
        self,
        img: ImagePlan,
        tasks: Mapping[str, LayerTask],
        results: dict[str, LayerResult],
        images: dict[str, ImageResult],
        base_descs: dict[str, Descriptor],
        base_errors: dict[str, str],
    ) -> ImageResult:
        t0 = time.monotonic()

        def failed(why: str) -> ImageResult:
            return ImageResult(img.env, img.drv, "failed", None, img.layers, (), time.monotonic() - t0, why)

        if img.parent is not None and img.parent in images and images[img.parent].status == "failed":
            return failed(f"parent env {img.parent} failed")
        bad = [results[k] for k in img.layers if results[k].status == "failed"]
        if bad:
            return failed(f"layer {bad[0].label} failed: {bad[0].error}")
        if img.base in base_errors:
            return failed(base_errors[img.base])
        records = [results[k].record for k in img.layers]
        try:
            base_cfg, base_layers = self._base(img.base, base_descs) if img.base in base_descs else (None, [])
            # Our layers' records were checked (get_key) or written in this run: their blobs are known good.
            layers = base_layers + [
                ImageLayer(r.diff_id, r.descriptor(), f"envgraph: {label}")
                for r, label in zip(records, img.labels, strict=True)
                if r is not None
            ]
            existing = self._tags.get(img.tag)
            config = ImageConfigSpec(
                env=img.environment,
                working_dir=img.workdir,
                entrypoint=img.entrypoint,
                cmd=img.cmd,
                labels={**img.image_labels, LABEL_ENV: img.env, LABEL_DRV: img.drv, **_ident_label(img)},
                user=img.user,
                exposed_ports=img.ports,
                # No creation time unless declared (then it is a label, and in the drv): digests stay reproducible.
                created=img.image_labels.get(OCI_CREATED),
            )
            docs = image_documents(layers, config, Platform.parse(self.platform), base=base_cfg)
            desc = docs.descriptor
            same = existing is not None and existing.digest == desc.digest
            if not (
                same
                and self._stored(docs.config_digest, len(docs.config))
                and self._stored(desc.digest, desc.size)
            ):
                # An image tagged with exactly these layers passed this check when it was written.
                if existing is None or self._layer_digests(existing) != [
                    layer.descriptor.digest for layer in layers
                ]:
                    self._check_conflicts(img, tasks, records)
                store_image(self.store, docs)
        except EnvgraphError as e:
            return failed(str(e))
        status: ImageStatus = "reused" if same else "built"
        for ref in (img.tag, f"{img.env}:latest"):
            if self._tags.get(ref) != desc:
                self._tag_changes[ref] = desc
        return ImageResult(img.env, img.drv, status, desc, img.layers, tuple(layer.descriptor for layer in base_layers),
                           time.monotonic() - t0)  # fmt: skip

    def _stored(self, digest: str, size: int) -> bool:
        return self.store.verified(digest, size=size)

    def _base(self, name: str, base_descs: Mapping[str, Descriptor]) -> tuple[ImageConfig, list[ImageLayer]]:
        """A base image's config and layers, read and checked once per run."""
        if name not in self._bases:
            manifest = read_manifest(self.store, base_descs[name].digest)
            cfg = read_config(self.store, manifest.config.digest)
            layers = [
                ImageLayer(diff_id, d, None)
                for diff_id, d in zip(cfg.rootfs.diff_ids, manifest.layers, strict=True)
            ]
            for layer in layers:
                if not self.store.verified(layer.descriptor.digest, size=layer.descriptor.size):
                    raise BuildError(f"layer {layer.descriptor.digest} of base {name} is not in the store")
            self._bases[name] = (cfg, layers)
        return self._bases[name]

    def _layer_digests(self, desc: Descriptor) -> list[str] | None:
        try:
            return [d.digest for d in read_manifest(self.store, desc.digest).layers]
        except EnvgraphError:
            return None

    def _check_conflicts(
        self, img: ImagePlan, tasks: Mapping[str, LayerTask], records: Iterable[LayerRecord | None]
    ) -> None:
        """Two packages writing the same path is an error, never a silent overwrite."""
        owner: dict[str, str] = {}
        for key, label, record in zip(img.layers, img.labels, records, strict=True):
            if not tasks[key].installs_packages or record is None or record.paths_digest is None:
                continue
            for path in self.store.read_paths(record):
                other = owner.get(path)
                if other is not None:
                    raise BuildError(
                        f"packages {other.split(' ')[0]} and {label.split(' ')[0]} both write /{path}"
                    )
                owner[path] = label


def _ident_label(img: ImagePlan) -> dict[str, str]:
    """The image id as a label where it is not the drv (an env with files): images without files keep their
    config, hence their digests."""
    return {LABEL_IMAGE: img.ident} if img.ident != img.drv else {}
