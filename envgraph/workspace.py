"""The loaded project: declarations, graph, lockfiles and store, with every operation the CLI offers."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from attrs import evolve, frozen
from packaging.utils import canonicalize_name

from envgraph._convert import quote
from envgraph._fs import os_error_text, path_problem
from envgraph.errors import BuildError, EnvgraphError, SpecError, StaleLockError, StoreError
from envgraph.graph import EnvGraph, build_graph, unknown_name
from envgraph.identity import (
    ANNOTATION_REF_NAME,
    DEFAULT_COMPRESSION,
    LABEL_ENV,
    image_tag,
    index_derivation,
)
from envgraph.lock import (
    LOCKDIR,
    BaseLock,
    FilesRef,
    ImagePin,
    Locker,
    Lockfile,
    LockResult,
    chain_ident,
    chain_idents,
    hash_files,
    read_base_lock,
    read_lock,
)
from envgraph.lock._model import for_platform
from envgraph.spec import Spec, find_declaration, read_spec

# Only what every command needs is imported here: each operation imports its own machinery, so a no-op
# build never loads the layer writers, compressors, HTTP clients or the Docker SDK.
if TYPE_CHECKING:
    from envgraph._docker import RunOptions
    from envgraph.builder._scheduler import BuildResult, LayerRunner, RemoteCache, Reporter
    from envgraph.history import RunRecord
    from envgraph.history._records import EnvRecord, RunKind
    from envgraph.images import ArchiveFormat, ImageRow, LoadResult, LoadVia
    from envgraph.lock import PackageDiff
    from envgraph.lock._why import Why
    from envgraph.oci._artifact import Artifact
    from envgraph.oci._diff import ImageDiff
    from envgraph.oci._gc import GcResult
    from envgraph.oci._model import Descriptor
    from envgraph.oci._store import Store
    from envgraph.oci._verify import VerifyReport
    from envgraph.plan import Plan
    from envgraph.registry._client import RegistryClient
    from envgraph.registry._push import BlobEvent, PushedImage
    from envgraph.registry._records import PushRecord
    from envgraph.registry._settings import SettingsFormat
    from envgraph.sbom import SbomFormat, SbomInput
    from envgraph.server import BackgroundServer
    from envgraph.spec import Base

__all__ = ["DiffSide", "EnvDiff", "Workspace", "load", "serve_store"]


@frozen
class DiffSide:
    spec: str  # as given: ENV or ENV@REV
    env: str
    drv: str
    python: dict[str, str]  # canonical name -> version, the whole closure
    debian: dict[str, str]  # the base's and the envs' Debian packages
    image: Descriptor | None  # the image of this drv, when the store has it


@frozen
class EnvDiff:
    old: DiffSide
    new: DiffSide
    python: PackageDiff
    debian: PackageDiff
    images: ImageDiff | None


class Workspace:
    """An ``envgraph.toml`` with its lockfiles and store."""

    def __init__(self, spec: Spec, path: Path, *, store: Path | None = None, db: str | None = None) -> None:
        self.spec = spec
        self.path = path
        self.root = spec.root
        self.graph: EnvGraph = build_graph(spec)
        self.lockdir = self.root / LOCKDIR
        raw_store = store or os.environ.get("ENVGRAPH_STORE") or self.root / ".envgraph"
        problem = path_problem(raw_store)
        if problem:
            raise StoreError(f"store {quote(os.fspath(raw_store))}: the path {problem}")
        self.store_path = Path(raw_store).resolve()
        self._stores: dict[bool, Store] = {}
        self._last_report: tuple[BuildResult, dict[str, Any]] | None = None
        self.db = db or os.environ.get("ENVGRAPH_DB") or None
        # False: commands run without writing history (like --db off), e.g. for a library caller's own loops.
        self.record_history = True

    def _recording(self) -> bool:
        return self.record_history and (self.db or "").lower() != "off"

    @property
    def history_url(self) -> str:
        """The build-history database: --db / ENVGRAPH_DB, else [project] db, else SQLite in the store."""
        from envgraph.history._url import database_url

        return database_url(self.db, self.spec.project.db, self.store_path)

    # -- history ---------------------------------------------------------------------------------------

    def _record(
        self,
        kind: RunKind,
        started: tuple[datetime, float],
        selection: Sequence[str],
        *,
        ok: bool,
        envs: Sequence[EnvRecord] = (),
        pushes: Sequence[PushRecord] = (),
        report: dict[str, Any] | None = None,
        error: str | None = None,
    ) -> int | None:
        """Add a run to the history after the work; never raises (a broken database is a warning)."""
        if not self._recording():
            return None
        from envgraph.history import RunRecord
        from envgraph.history._recorder import record_run
        from envgraph.history._records import whoami

        user, host = whoami()
        totals = (report or {}).get("totals", {})
        run: RunRecord = RunRecord(
            kind=kind,
            project=self.spec.project.name,
            started=started[0],
            seconds=round(time.monotonic() - started[1], 4),
            ok=ok,
            user=user,
            host=host,
            selection=tuple(selection),
            layers_built=int(totals.get("layers_built", 0)),
            layers_reused=int(totals.get("layers_reused", 0)),
            layers_pulled=int(totals.get("layers_pulled", 0)),
            bytes_written=int(totals.get("bytes_written", 0)),
            report=report or {},
            envs=tuple(envs),
            pushes=tuple(pushes),
            error=error,
        )
        try:
            url = self.history_url
        except EnvgraphError as err:
            import logging

            logging.getLogger("envgraph.history").warning("build history not recorded: %s", err)
            return None
        return record_run(url, run, store=self.store_path)

    def locker(
        self,
        *,
        jobs: int | None = None,
        log: Callable[[str], None] = lambda _m: None,
        allow_old: Sequence[str] = (),
    ) -> Locker:
        from envgraph.lock import Locker

        def pin_base(name: str, base: Base, existing: BaseLock | None) -> BaseLock:
            from envgraph._bases import BasePinner  # image and Debian machinery: only when a base is pinned

            return BasePinner(self.store_path, self.root, self.spec.project.platform)(name, base, existing)

        def pin_base_for(platform: str) -> Callable[[str, Base, BaseLock | None], BaseLock]:
            from envgraph._bases import BasePinner

            return BasePinner(self.store_path, self.root, platform)

        return Locker(
            self.spec,
            self.graph,
            self.lockdir,
            pin_base=pin_base,
            pin_base_for=pin_base_for,
            jobs=jobs or os.cpu_count() or 1,
            log=log,
            allow_old=allow_old,
        )

    def lock(
        self,
        envs: Iterable[str] = (),
        pipelines: Iterable[str] = (),
        *,
        upgrade: bool = False,
        upgrade_packages: Sequence[str] = (),
        check: bool = False,
        jobs: int | None = None,
        log: Callable[[str], None] = lambda _m: None,
        allow_old: Sequence[str] = (),
    ) -> LockResult:
        """Lock (or with ``check=True`` only verify) the selected envs and their ancestors.

        A lock that writes (not ``check``) is recorded in the history with each env's lockfile and packages."""
        envs, pipelines = list(envs), list(pipelines)
        started = _now()
        try:
            result = self.locker(jobs=jobs, log=log, allow_old=allow_old).lock(
                envs, pipelines, upgrade=upgrade, upgrade_packages=upgrade_packages, check=check
            )
        except EnvgraphError as err:
            if not check:
                self._record("lock", started, [*envs, *pipelines], ok=False, error=str(err))
            raise
        if not check and self._recording():
            from envgraph.history._collect import lock_envs, read_lock_facts

            statuses = {o.name: o.status for o in result.outcomes if o.kind == "env"}
            facts = read_lock_facts(self.graph, self.lockdir, statuses)
            outcomes = [
                {"kind": o.kind, "name": o.name, "status": o.status, "reason": o.reason}
                for o in result.outcomes
            ]
            self._record(
                "lock",
                started,
                [*envs, *pipelines],
                ok=True,
                envs=lock_envs(statuses, facts),
                report={"outcomes": outcomes},
            )
        return result

    def open_store(self, *, readonly: bool = False) -> Store:
        """The store, opened once per workspace and mode (so its index is read once per command)."""
        if readonly in self._stores:
            return self._stores[readonly]
        from envgraph.oci._store import Store

        try:
            store = Store.open(self.store_path, readonly=readonly)
        except OSError as e:
            raise StoreError(f"cannot open the store: {os_error_text(e)}") from None
        self._stores[readonly] = store
        return store

    @property
    def platforms(self) -> tuple[str, ...]:
        """Every platform the project builds, the primary one first."""
        return self.spec.project.targets

    def plan(
        self, envs: Iterable[str] = (), pipelines: Iterable[str] = (), *, platform: str | None = None
    ) -> Plan:
        """Every layer and image the request needs for one platform (default: the primary one), from the
        lockfiles (which must be fresh)."""
        return self.plans(envs, pipelines, platforms=[platform or self.spec.project.platform])[0]

    def plans(
        self, envs: Iterable[str] = (), pipelines: Iterable[str] = (), *, platforms: Sequence[str] = ()
    ) -> list[Plan]:
        """One plan per platform (default: every platform of the project), from one freshness check."""
        platforms = list(platforms or self.platforms)
        for plat in platforms:
            if plat not in self.platforms:
                raise BuildError(f"platform {plat} is not one of the project's ({', '.join(self.platforms)})")
        from envgraph.builder._bytecode import bytecode_interpreter
        from envgraph.plan import PlanTarget, make_plan
        from envgraph.platforms import parse_platform

        selected = self.graph.select(envs, pipelines)
        # Build only from lockfiles that match the declarations (what `envgraph lock --check` checks); the
        # check reads every lockfile once, and the plan uses what it read.
        checked = self.lock(selected, check=True)
        stale = checked.stale
        missing = [o.name for o in stale if o.kind == "env" and o.reason == "no lockfile"]
        missing += [e for e in selected if e not in checked.locks and not stale]
        if missing:
            raise StaleLockError(f"env {missing[0]} has no lockfile: run `envgraph lock`")
        if stale:
            names = ", ".join(f"{o.kind} {o.name} ({o.reason})" for o in stale)
            raise StaleLockError(f"stale lockfiles: {names}: run `envgraph lock`")
        locks = dict(checked.locks)
        checked_bases = dict(checked.bases)
        p = self.spec.project
        # The layer key says whether .pyc files are in the layer: only when they can really be compiled here.
        bytecode = p.bytecode and bytecode_interpreter(p.python) is not None
        # Code is not a dependency: the files' content is hashed now (once), and names files layers and images.
        contents = hash_files(self.root, (f for lock in locks.values() for f in lock.files))
        out: list[Plan] = []
        for plat in platforms:
            slug = None if plat == p.platform else parse_platform(plat).slug
            bases: dict[str, BaseLock] = {}
            for name in {self.graph.root_base(e) for e in selected}:
                # The primary platform's base locks are those the freshness check read.
                blk = checked_bases.get(name) if slug is None else read_base_lock(self.lockdir, name, slug)
                if blk is not None:
                    bases[name] = blk
            views = {e: for_platform(lock, plat) for e, lock in locks.items()}
            target = PlanTarget(p.python, bytecode, DEFAULT_COMPRESSION)
            out.append(make_plan(self.graph, views, bases, target, selected, files=contents))
        return out

    def build(
        self,
        envs: Iterable[str] = (),
        pipelines: Iterable[str] = (),
        *,
        jobs: int | None = None,
        reporter: Reporter | None = None,
        cache: RemoteCache | None = None,
        executor: str | None = None,
    ) -> BuildResult:
        """Build the selected envs (default: all) into the store, for every platform of the project; returns what
        was built, reused and failed. A multi-platform env's tag (``<env>:<id12>`` of its index drv, and
        ``<env>:latest``) points at an OCI image index over its platforms' images.

        ``executor`` (default ``[project] executor``, else local): ``dask://HOST:PORT`` builds the layers on a
        Dask cluster, which needs ``cache`` (a :class:`RegistryCache` the workers publish to); the store then
        gets the images' configs and manifests, not their layers.

        The build is recorded in the history (its report, lockfile digests and package sets) afterwards."""
        envs, pipelines = list(envs), list(pipelines)
        started = _now()
        try:
            result = self._build(
                envs, pipelines, jobs=jobs, reporter=reporter, cache=cache, executor=executor
            )
        except EnvgraphError as err:
            self._record("build", started, [*envs, *pipelines], ok=False, error=str(err))
            raise
        if self._recording():
            from envgraph.history._collect import build_envs, read_lock_facts

            report = self.build_report(result)
            facts = read_lock_facts(self.graph, self.lockdir, [e["env"] for e in report["envs"]])
            self._record(
                "build",
                started,
                [*envs, *pipelines],
                ok=result.ok,
                envs=build_envs(report, facts),
                report=report,
                error="; ".join(result.failures) or None,
            )
        return result

    def build_report(self, result: BuildResult) -> dict[str, Any]:
        """The report of a build (``--report``): made once for the history and the caller alike (a thousand
        envs' layers are tens of thousands of entries). Read-only: both share the one dict."""
        if self._last_report is None or self._last_report[0] is not result:
            from envgraph.builder._report import build_report

            self._last_report = (result, build_report(result, self.open_store()))
        return self._last_report[1]

    def _build(
        self,
        envs: Iterable[str],
        pipelines: Iterable[str],
        *,
        jobs: int | None,
        reporter: Reporter | None,
        cache: RemoteCache | None,
        executor: str | None,
    ) -> BuildResult:
        from envgraph._dask import parse_executor
        from envgraph.builder._scheduler import Scheduler

        address = parse_executor(executor or self.spec.project.executor)
        plans = self.plans(envs, pipelines)
        store = self.open_store()
        results: list[BuildResult] = []
        for plat, plan in zip(self.platforms, plans, strict=True):

            def image_bases(pin: ImagePin, plat: str = plat) -> Descriptor:
                from envgraph._image_bases import ensure_image_base

                return ensure_image_base(store, pin, self.root, plat)

            runner = None if address is None else self._dask_runner(address, cache, store, plat)
            scheduler = Scheduler(
                store,
                self.root,
                platform=plat,
                jobs=jobs,
                reporter=reporter,
                cache=cache,
                image_bases=image_bases,
                runner=runner,
            )
            try:
                results.append(scheduler.run(plan))
            finally:
                if runner is not None:
                    runner.close(cancel=True)  # a no-op after a run that got to the end
        result = results[0] if len(results) == 1 else self._index_images(store, plans, results)
        everything = set(self.graph.envs()) == {i.env for i in plans[0].images}
        self._record_roots(store, plans, complete=everything)
        return result

    def _index_images(
        self, store: Store, plans: Sequence[Plan], results: Sequence[BuildResult]
    ) -> BuildResult:
        """Tag each env's image index (over its platforms' images); one result for all platforms."""
        from envgraph.builder._scheduler import BuildResult, ImageResult, LayerResult
        from envgraph.oci._image import write_index

        images: list[ImageResult] = []
        failures: list[str] = []
        layers: dict[str, LayerResult] = {}
        for plat, result in zip(self.platforms, results, strict=True):
            images += [evolve(img, platform=plat) for img in result.images]
            failures += [f"{plat}: {f}" for f in result.failures]
            for key, r in result.layers.items():
                if key not in layers or layers[key].status == "reused":
                    layers[key] = r
        for env in dict.fromkeys(img.env for img in plans[0].images):
            lock = read_lock(self.lockdir, env)
            per = [i for i in images if i.env == env]
            if lock is None or any(i.descriptor is None for i in per):
                continue
            manifests = [i.descriptor for i in per if i.descriptor is not None]
            index = write_index(store, manifests, {ANNOTATION_REF_NAME: env})
            store.tag(_index_tags(self.platforms, plans)[env], index, f"{env}:latest")
        return BuildResult(
            layers=layers,
            images=tuple(images),
            seconds=sum(r.seconds for r in results),
            bytes_written=sum(r.bytes_written for r in results),
            failures=tuple(failures),
            warnings=tuple(dict.fromkeys(w for r in results for w in r.warnings)),
        )

    def _dask_runner(
        self, address: str, cache: RemoteCache | None, store: Store, platform: str
    ) -> LayerRunner:
        from envgraph._dask import DaskRunner, WorkerJob
        from envgraph.registry._cache import RegistryCache

        if not isinstance(cache, RegistryCache):
            raise BuildError(
                "a Dask build needs a registry cache (--cache HOST[:PORT]/REPO or [project] cache): "
                "its workers publish the layers they build there"
            )
        job = WorkerJob(str(self.root), platform, cache.reference, cache.client.insecure)
        return DaskRunner(address, cache, store, job)

    def _record_roots(self, store: Store, plans: Sequence[Plan], *, complete: bool) -> None:
        """Tell a shared store what this project's current lockfiles need, so another project's gc keeps it."""
        from envgraph.oci._gc import read_roots, record_roots

        tags = {img.tag for plan in plans for img in plan.images}
        if len(plans) > 1:
            tags |= set(_index_tags(self.platforms, plans).values())
        keys = {k for plan in plans for k in (*plan.layers, *plan.builds)}
        if not complete:
            for _, roots in read_roots(store):
                if roots is not None and Path(roots.declaration) == self.path.absolute():
                    tags.update(roots.tags)
                    keys.update(roots.keys)
        record_roots(store, self.path, tags, keys)

    # -- what an env is made of ---------------------------------------------------------------------------

    def chain_locks(self, env: str) -> dict[str, Lockfile]:
        """The lockfiles of the env and its ancestors (as they are: describing them needs no fresh lock)."""
        if env not in self.spec.env:
            raise EnvgraphError(f"unknown env {env!r}")
        locks: dict[str, Lockfile] = {}
        for e in self.graph.chain(env):
            lock = read_lock(self.lockdir, e)
            if lock is None:
                raise StaleLockError(f"env {e} has no lockfile: run `envgraph lock`")
            locks[e] = lock
        return locks

    def image_ident(self, env: str, known: dict[FilesRef, str] | None = None) -> str:
        """The id naming the env's current image (:func:`envgraph.identity.image_id`): from its lockfiles, and
        the content of its chain's files, hashed now (``known``: those hashed already)."""
        return chain_ident(self.root, list(self.chain_locks(env).values()), known)

    def built_digest(self, env: str) -> str | None:
        """The manifest digest of the env's current image when the store has it."""
        if not self.has_store():
            return None
        desc = self.open_store(readonly=True).tags().get(image_tag(env, self.image_ident(env)))
        return None if desc is None else desc.digest

    def sbom_input(self, env: str) -> SbomInput:
        """What the env's SBOM lists: every package of its closure (wheels read from the verified wheel
        cache, fetched by hash when missing), the base's and the envs' Debian packages, the built image."""
        from envgraph.lock._wheelcache import WheelCache
        from envgraph.sbom import collect, wheel_metadata

        locks = self.chain_locks(env)
        base = read_base_lock(self.lockdir, self.graph.root_base(env))
        metadata = wheel_metadata(locks, self.graph, env, WheelCache(self.root).fetch)
        return collect(locks, self.graph, env, base, self.built_digest(env), metadata, self.markers(base))

    def markers(self, base: BaseLock | None) -> dict[str, str]:
        """PEP 508 marker values of the images' interpreter and platform."""
        from envgraph.lock._requires import marker_environment

        python = (base.python_version if base is not None else None) or self.spec.project.python
        return marker_environment(python, self.spec.project.platform)

    def sbom(self, env: str, fmt: SbomFormat = "cyclonedx", *, validate: bool = False) -> str:
        """The env's SBOM as JSON text: CycloneDX 1.6 or SPDX 2.3. ``validate`` checks a CycloneDX document
        against its JSON schema (the library's strict validator: seconds, so not by default)."""
        from envgraph.sbom import to_cyclonedx, to_spdx, validate_cyclonedx

        data = self.sbom_input(env)
        if fmt == "spdx":
            return to_spdx(data)
        text = to_cyclonedx(data)
        if validate:
            validate_cyclonedx(text)
        return text

    def why(self, package: str, env: str | None = None, *, all_paths: bool = False) -> list[Why]:
        """Why ``package`` is in ``env`` (default: every env that has it): chains of requirements from what the
        env or an ancestor declares, from the pinned wheels' Requires-Dist for the target."""
        from packaging.utils import canonicalize_name

        from envgraph.lock._requires import parse_roots, requirement_graph
        from envgraph.lock._wheelcache import WheelCache
        from envgraph.lock._why import why
        from envgraph.sbom import wheel_metadata

        envs = [env] if env is not None else sorted(self.spec.env)
        target = canonicalize_name(package)
        out = []
        for e in envs:
            locks = self.chain_locks(e)
            chain = self.graph.chain(e)
            pinned: dict[str, dict[str, str]] = {
                x: {canonicalize_name(p.name): p.version for p in locks[x].packages} for x in chain
            }
            if not any(target in pinned[x] for x in chain):
                continue
            base = read_base_lock(self.lockdir, self.graph.root_base(e))
            markers = self.markers(base)
            metadata = wheel_metadata(locks, self.graph, e, WheelCache(self.root).fetch)
            closure = {p.name: metadata.get(p.name) for x in chain for p in locks[x].packages}
            declared = {
                x: [
                    r
                    for r in parse_roots(locks[x].requirements)
                    if r.marker is None or r.marker.evaluate(markers)
                ]
                for x in chain
            }
            graph = requirement_graph(closure, [r for x in chain for r in declared[x]], markers)
            found = why(e, chain, declared, pinned, graph, package, all_paths=all_paths)
            if found is not None:
                out.append(found)
        if not out:
            where = f"env {env}" if env is not None else "any env"
            raise EnvgraphError(f"{package} is not in {where}")
        return out

    def versions(self, env: str) -> dict[str, str]:
        """Canonical name -> version of every Python package of the env's closure."""
        from packaging.utils import canonicalize_name

        locks = self.chain_locks(env)
        return {
            canonicalize_name(p.name): p.version for e in self.graph.chain(env) for p in locks[e].packages
        }

    def side(self, spec: str) -> DiffSide:
        """``ENV`` (its current lockfiles) or ``ENV@REV`` (its lockfiles at git revision REV)."""
        from envgraph.lock._history import locks_at_revision, view_of

        env, sep, rev = spec.partition("@")
        if sep:
            views, debian = locks_at_revision(self.root, env, rev)
        else:
            locks = self.chain_locks(env)
            views = [view_of(locks[e]) for e in self.graph.chain(env)]
            base = read_base_lock(self.lockdir, self.graph.root_base(env))
            debian = dict(base.debian.versions) if base is not None and base.debian is not None else {}
        python: dict[str, str] = {canonicalize_name(n): v for view in views for n, v in view.packages.items()}
        for view in views:
            debian.update(view.debian)
        drv = views[-1].drv
        image = None
        ident: str | None = drv
        if not sep:
            ident = self.image_ident(env)
        elif any(view.files for view in views):
            ident = None  # an older revision's files content is not known: nor is its image
        if self.has_store() and ident is not None:
            image = self.open_store(readonly=True).tags().get(image_tag(env, ident))
        return DiffSide(spec, env, drv, python, debian, image)

    def diff(self, old: str, new: str) -> EnvDiff:
        """Packages (Python and Debian) added, removed and changed from ``old`` to ``new`` (each ``ENV`` or
        ``ENV@REV``), and when both images are in the store, their layers shared and different."""
        from envgraph.lock import diff_packages
        from envgraph.oci._diff import diff_images

        a, b = self.side(old), self.side(new)
        images = None
        if a.image is not None and b.image is not None:
            images = diff_images(self.open_store(readonly=True), a.image, b.image)
        return EnvDiff(a, b, diff_packages(a.python, b.python), diff_packages(a.debian, b.debian), images)

    def export_lock(self, env: str, output: Path) -> None:
        """Write the env's closure as a PEP 751 ``pylock.toml`` at ``output``."""
        from envgraph._fs import atomic_write
        from envgraph.lock._pylock import pylock_toml

        locks = self.chain_locks(env)
        closure = [p for e in self.graph.chain(env) for p in locks[e].packages]
        base = read_base_lock(self.lockdir, self.graph.root_base(env))
        text = pylock_toml(
            closure,
            marker_env=self.markers(base),
            project_root=self.root,
            output_dir=output.absolute().parent,
            tool={"env": env, "drv": locks[env].drv},
        )
        atomic_write(output, text)

    # -- using images ----------------------------------------------------------------------------------

    def image(self, env: str) -> tuple[str, Descriptor]:
        """The image of the env's current lockfile: its store tag and descriptor; an error when not built."""
        if env not in self.spec.env:
            raise BuildError(unknown_name("env", env, self.spec.env))
        lock = read_lock(self.lockdir, env)
        if lock is None:
            raise BuildError(f"env {env} has no lockfile: run `envgraph lock` and `envgraph build`")
        tag = image_tag(env, self.image_ident(env))
        desc = self.open_store(readonly=True).tags().get(tag) if self.has_store() else None
        if desc is None:
            raise BuildError(f"env {env} is not built (no {tag} in the store): run `envgraph build {env}`")
        return tag, desc

    def export(self, env: str, output: Path, fmt: ArchiveFormat, *, sbom: bool = False) -> str:
        """Write the env's image as an archive; with ``sbom``, its CycloneDX SBOM as a referrer beside it
        (listed in the OCI layout's index.json)."""
        from envgraph.images import export_image

        tag, desc = self.image(env)
        artifacts = []
        if sbom:
            art = self.sbom_artifact(env, desc)
            artifacts.append((art.descriptor, art.all_blobs()))
        export_image(self.open_store(readonly=True), env, tag, desc, output, fmt, artifacts)
        return tag

    def sbom_artifact(self, env: str, subject: Descriptor) -> Artifact:
        """The env's CycloneDX SBOM as an OCI artifact referring to its image."""
        from envgraph.identity import MEDIA_TYPE_CYCLONEDX
        from envgraph.oci._artifact import make_artifact

        return make_artifact(
            self.sbom(env).encode(),
            MEDIA_TYPE_CYCLONEDX,
            subject,
            title=f"{env}.cdx.json",
            annotations={LABEL_ENV: env},
        )

    def has_store(self) -> bool:
        return (self.store_path / "oci-layout").is_file()

    def images(self) -> list[ImageRow]:
        """What the store holds (nothing when there is no store yet); works on a read-only store."""
        from envgraph.images import list_images

        return list_images(self.open_store(readonly=True)) if self.has_store() else []

    def images_json(self) -> dict[str, Any]:
        """What ``envgraph images --json`` prints: every image of the store with the pipeline steps its env runs,
        whether it is the env's current image, its Docker names and where it was pushed (by digest)."""
        from envgraph.images import docker_names

        current = {}
        known: dict[FilesRef, str] = {}
        for env in self.spec.env:
            with contextlib.suppress(EnvgraphError):  # no lockfile, or its files are gone: nothing current
                current[env] = self.image_ident(env, known)
        steps: dict[str, list[dict[str, str]]] = {}
        for pname, pipeline in sorted(self.spec.pipeline.items()):
            for step, env in sorted(pipeline.steps.items()):
                steps.setdefault(env, []).append({"pipeline": pname, "step": step})
        pushed: dict[str, list[str]] = {}
        for rec in self.push_records():
            pushed.setdefault(rec.digest, []).append(rec.pinned)
        rows = []
        for r in self.images():
            rows.append(
                {
                    "env": r.env,
                    "drv": r.drv,
                    "digest": r.digest,
                    "size": r.size,
                    "layers": r.layers,
                    "tags": list(r.tags),
                    "current": current.get(r.env) == r.ident,
                    "steps": steps.get(r.env, []),
                    "docker": docker_names(r.env, image_tag(r.env, r.ident))
                    if r.ident.startswith("sha256:")
                    else [],
                    "pushed": sorted(set(pushed.get(r.digest, []))),
                }
            )
        return {"project": self.spec.project.name, "store": str(self.store_path), "images": rows}

    def load_into_docker(self, env: str, *, via: LoadVia = "auto") -> LoadResult:
        """Load the env's image into the Docker daemon (see :func:`envgraph.images.load_image` for ``via``)."""
        from envgraph.images import host_image, load_image

        tag, desc = self.image(env)
        store = self.open_store()
        # A multi-platform env runs here as the host's platform (as `docker pull` picks from an index).
        return load_image(store, env, tag, host_image(store, desc), via=via)

    def run(
        self,
        env: str,
        command: list[str],
        *,
        network: str | None = None,
        via: LoadVia = "auto",
        options: RunOptions | None = None,
        stdin: BinaryIO | None = None,
    ) -> int:
        """Load the env's image (an image the daemon has is only tagged), then run ``command`` in it
        (``options``: docker run's ``-e -v -p --user --gpus -t``; ``stdin`` copied to the container's)."""
        from envgraph.images import run_image

        result = self.load_into_docker(env, via=via)
        return run_image(result.tags[0], command, network=network, options=options, stdin=stdin)

    def push(
        self,
        envs: Iterable[str],
        pipelines: Iterable[str],
        registry_ref: str,
        *,
        insecure: bool = False,
        jobs: int = 4,
        progress: Callable[[BlobEvent], None] | None = None,
        client: RegistryClient | None = None,
        mount_from: Iterable[str] = (),
        sbom: bool = True,
    ) -> list[PushedImage]:
        """Push the selected envs' built images (only those asked for, not their ancestors; all by default),
        each with its SBOM attached as an OCI referrer unless ``sbom`` is false."""
        from envgraph.registry._push import push_images
        from envgraph.registry._records import PushRecord, record_pushes

        envs, pipelines = list(envs), list(pipelines)
        plan = self.plan(envs, pipelines)  # fails on unknown names, missing or stale lockfiles
        wanted = set(envs)
        for p in pipelines:
            wanted.update(self.spec.pipeline[p].steps.values())
        images = [(img.env, img.ident) for img in plan.images if not wanted or img.env in wanted]
        if self.spec.project.multi_platform:  # the image index over every platform's image
            known: dict[FilesRef, str] = {}
            images = [(env, self.image_ident(env, known)) for env, _ in images]
        started = _now()
        try:
            pushed = push_images(
                self.open_store(),
                images,
                registry_ref,
                insecure=insecure,
                jobs=jobs,
                progress=progress,
                client=client,
                mount_from=mount_from,
            )
        except EnvgraphError as err:
            self._record("push", started, [*envs, *pipelines], ok=False, error=str(err))
            raise
        if sbom:
            pushed = self._attach_sboms(pushed, registry_ref, insecure=insecure, client=client)
        steps: dict[str, list[tuple[str, str]]] = {}
        for pname, pipeline in self.spec.pipeline.items():
            for step, env in pipeline.steps.items():
                steps.setdefault(env, []).append((pname, step))
        records = [
            PushRecord(
                registry=p.registry,
                repository=p.repository,
                env=p.env,
                drv=p.drv,
                tag=p.tag,
                digest=p.digest,
                project=self.spec.project.name,
                declaration=str(self.path.absolute()),
                steps=tuple(sorted(steps.get(p.env, []))),
                bytes_uploaded=p.bytes_uploaded,
            )
            for p in pushed
        ]
        record_pushes(self.open_store().root, self.open_store().tmp_dir, records)
        if not self._recording():
            return pushed
        from envgraph.errors import redact
        from envgraph.history._collect import build_envs, read_lock_facts

        facts = read_lock_facts(self.graph, self.lockdir, [p.env for p in pushed])
        drvs = dict(images)
        report: dict[str, Any] = {
            "registry": redact(registry_ref),
            # bytes_written: what the push uploaded (the history's bytes column for every kind of run)
            "totals": {"bytes_written": sum(p.bytes_uploaded for p in pushed)},
            "images": [
                {"env": p.env, "reference": p.reference, "digest": p.digest, "bytes_uploaded": p.bytes_uploaded,
                 "blobs_uploaded": p.blobs_uploaded, "blobs_mounted": p.blobs_mounted,
                 "blobs_skipped": p.blobs_skipped}
                for p in pushed
            ],
            "envs": [{"env": p.env, "drv": drvs.get(p.env, ""), "digest": p.digest, "status": "pushed"} for p in pushed],
        }  # fmt: skip
        self._record(
            "push",
            started,
            [*envs, *pipelines],
            ok=True,
            envs=build_envs(report, facts),
            pushes=records,
            report={k: v for k, v in report.items() if k != "envs"},
        )
        return pushed

    def _attach_sboms(
        self, pushed: list[PushedImage], registry_ref: str, *, insecure: bool, client: RegistryClient | None
    ) -> list[PushedImage]:
        """Attach each pushed image's CycloneDX SBOM to it as an OCI referrer."""
        import attrs

        from envgraph.registry._push import parse_repository
        from envgraph.registry._referrers import attach
        from envgraph.registry._transfer import open_client

        target = parse_repository(registry_ref)
        cl = client or open_client(target.host, insecure=insecure)
        try:
            out = []
            for p in pushed:
                attached = attach(cl, target.repository, self.sbom_artifact(p.env, self.image(p.env)[1]))
                out.append(attrs.evolve(p, sbom=attached.digest))
            return out
        finally:
            if client is None:
                cl.close()

    def push_records(self) -> list[PushRecord]:
        """What pushes from any project using this store recorded (nothing when there is no store)."""
        from envgraph.registry._records import push_records

        return push_records(self.store_path) if self.has_store() else []

    def export_settings(
        self, registry_ref: str, fmt: SettingsFormat = "json", pipelines: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Per pipeline and step, the image of the step env's current lockfile as pushed to ``registry_ref``.

        ``json``: one document for all selected pipelines; ``zenml``: pipeline -> its ZenML run configuration."""
        from envgraph.registry._push import parse_repository
        from envgraph.registry._settings import settings_json, step_images, zenml_config

        target = parse_repository(registry_ref)
        names = list(pipelines) or list(self.spec.pipeline)
        for n in names:
            if n not in self.spec.pipeline:
                raise SpecError(f"unknown pipeline {n!r}")
        chosen = {n: dict(self.spec.pipeline[n].steps) for n in names}
        idents: dict[str, str] = {}
        known: dict[FilesRef, str] = {}
        for env in sorted({e for steps in chosen.values() for e in steps.values()}):
            idents[env] = self.image_ident(env, known)
        images = step_images(target, chosen, idents, self.push_records())
        if fmt == "zenml":
            return {p: zenml_config(steps) for p, steps in images.items()}
        return settings_json(target, images)

    def gc(self, *, keep_last: int = 1, dry_run: bool = False) -> GcResult:
        """Drop old image tags beyond ``keep_last`` per env, then blobs nothing kept refers to.

        Kept: images of the current lockfiles (and ``latest``), the ``keep_last`` newest other images per env,
        the layers of the current lockfiles' keys, and the roots of every other project using this store."""
        from envgraph.oci._gc import collect_garbage

        current: set[str] = set()
        known: dict[FilesRef, str] = {}
        for env in self.spec.env:
            try:
                ids = chain_idents(self.root, list(self.chain_locks(env).values()), known)
            except EnvgraphError:  # no lockfile, or its files are gone: no current image to name
                continue
            current.update(image_tag(env, i) for i in ids)
        try:
            current_keys = {k for plan in self.plans() for k in (*plan.layers, *plan.builds)}
        except EnvgraphError:  # stale or missing lockfiles: keep what the tags reach
            current_keys = set()
        return collect_garbage(
            self.open_store(),
            declaration=self.path,
            current_tags=current,
            current_keys=current_keys,
            keep_last=keep_last,
            dry_run=dry_run,
        )

    def verify(self, *, repair: bool = False) -> VerifyReport:
        """Rehash everything the store refers to; with ``repair``, move damaged parts aside and drop what
        depended on them (the next build restores them)."""
        from envgraph.oci._verify import verify_store

        return verify_store(self.open_store(readonly=not repair), repair=repair)


def _index_tags(platforms: Sequence[str], plans: Sequence[Plan]) -> dict[str, str]:
    """The store tag of each env's image index: over the image id each platform's plan gives it."""
    per: dict[str, dict[str, str]] = {}
    for plat, plan in zip(platforms, plans, strict=True):
        for img in plan.images:
            per.setdefault(img.env, {})[plat] = img.ident
    return {env: image_tag(env, index_derivation(ids)) for env, ids in per.items()}


def _now() -> tuple[datetime, float]:
    """When a run started: the wall clock for the record, the monotonic clock for its duration."""
    return datetime.now(UTC), time.monotonic()


def serve_store(
    root: Path,
    host: str,
    port: int,
    ready: Callable[[BackgroundServer, Store], None],
    *,
    workspace: Workspace | None = None,
    db: str | None = None,
) -> None:
    """Serve the store at ``root`` read-only as an OCI registry, with the dashboard (``/ui``) and its JSON API
    (``/api``) beside it, until Ctrl-C or SIGTERM; ``ready`` is called once it listens. Needs no declaration
    file: a copied or mounted store (even a read-only one) serves too, its dashboard then showing the history."""
    from envgraph.history._url import database_url
    from envgraph.oci._store import Store
    from envgraph.server import create_app, serve_until_stopped
    from envgraph.server._dashboard import Dashboard, dashboard_routes

    store = Store.open(root, readonly=True)
    if workspace is not None:
        dash = Dashboard(
            workspace.graph, workspace.lockdir, store, workspace.history_url, lock_diff=workspace.diff
        )
    else:
        dash = Dashboard(None, None, store, database_url(db, None, Path(root).resolve()))
    app = create_app(store, routes=dashboard_routes(dash))
    serve_until_stopped(app, host, port, lambda server: ready(server, store))


def load(
    path: str | os.PathLike[str] | None = None, *, store: Path | None = None, db: str | None = None
) -> Workspace:
    """Load and validate a declaration file (default: ``envgraph.toml`` found upward from the working directory)."""
    if path is not None and path_problem(path):
        raise SpecError(f"{quote(os.fspath(path))}: the path {path_problem(path)}")
    p = Path(path) if path is not None else find_declaration()
    try:
        is_dir = p.is_dir()
    except OSError as e:
        raise SpecError(f"cannot read the declaration: {os_error_text(e)}") from None
    if is_dir:
        p = find_declaration(p)
    return Workspace(read_spec(p), p, store=store, db=db)
