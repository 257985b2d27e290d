"""The loaded project: declarations, graph, lockfiles and store, with every operation the CLI offers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from envgraph.builder._layers import bytecode_interpreter
from envgraph.builder._scheduler import BuildResult, RemoteCache, Reporter, Scheduler
from envgraph.errors import BuildError, EnvgraphError, StaleLockError
from envgraph.graph import EnvGraph, build_graph
from envgraph.identity import DEFAULT_COMPRESSION, image_tag
from envgraph.images import (
    ArchiveFormat,
    ImageRow,
    LoadResult,
    LoadVia,
    export_image,
    list_images,
    load_image,
    run_image,
)
from envgraph.lock import LOCKDIR, BaseLock, ImagePin, Locker, Lockfile, LockResult, read_base_lock, read_lock
from envgraph.oci._gc import GcResult, collect_garbage, read_roots, record_roots
from envgraph.oci._model import Descriptor
from envgraph.oci._store import Store
from envgraph.oci._verify import VerifyReport, verify_store
from envgraph.plan import Plan, PlanTarget, make_plan
from envgraph.registry._client import RegistryClient
from envgraph.registry._push import BlobEvent, PushedImage, push_images
from envgraph.spec import Spec, find_declaration, read_spec

if TYPE_CHECKING:
    from envgraph.server import BackgroundServer

__all__ = ["Workspace", "load", "serve_store"]


class Workspace:
    """An ``envgraph.toml`` with its lockfiles and store."""

    def __init__(self, spec: Spec, path: Path, *, store: Path | None = None) -> None:
        self.spec = spec
        self.path = path
        self.root = spec.root
        self.graph: EnvGraph = build_graph(spec)
        self.lockdir = self.root / LOCKDIR
        self.store_path = Path(store or os.environ.get("ENVGRAPH_STORE") or self.root / ".envgraph").resolve()

    def locker(
        self,
        *,
        jobs: int | None = None,
        log: Callable[[str], None] = lambda _m: None,
        allow_old: Sequence[str] = (),
    ) -> Locker:
        from envgraph._bases import BasePinner

        pinner = BasePinner(self.store_path, self.root, self.spec.project.platform)
        return Locker(
            self.spec,
            self.graph,
            self.lockdir,
            pin_base=pinner,
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
        """Lock (or with ``check=True`` only verify) the selected envs and their ancestors."""
        return self.locker(jobs=jobs, log=log, allow_old=allow_old).lock(
            envs, pipelines, upgrade=upgrade, upgrade_packages=upgrade_packages, check=check
        )

    def open_store(self, *, readonly: bool = False) -> Store:
        return Store.open(self.store_path, readonly=readonly)

    def plan(self, envs: Iterable[str] = (), pipelines: Iterable[str] = ()) -> Plan:
        """Every layer and image the request needs, from the lockfiles (which must be fresh)."""
        selected = self.graph.select(envs, pipelines)
        locks: dict[str, Lockfile] = {}
        for e in selected:
            lock = read_lock(self.lockdir, e)
            if lock is None:
                raise StaleLockError(f"env {e} has no lockfile: run `envgraph lock`")
            locks[e] = lock
        # Build only from lockfiles that match the declarations (what `envgraph lock --check` checks).
        stale = self.lock(selected, check=True).stale
        if stale:
            names = ", ".join(f"{o.kind} {o.name} ({o.reason})" for o in stale)
            raise StaleLockError(f"stale lockfiles: {names}: run `envgraph lock`")
        bases: dict[str, BaseLock] = {}
        for name in {self.graph.root_base(e) for e in selected}:
            blk = read_base_lock(self.lockdir, name)
            if blk is not None:
                bases[name] = blk
        p = self.spec.project
        # The layer key says whether .pyc files are in the layer: only when they can really be compiled here.
        bytecode = p.bytecode and bytecode_interpreter(p.python) is not None
        return make_plan(
            self.graph, locks, bases, PlanTarget(p.python, bytecode, DEFAULT_COMPRESSION), selected
        )

    def build(
        self,
        envs: Iterable[str] = (),
        pipelines: Iterable[str] = (),
        *,
        jobs: int | None = None,
        reporter: Reporter | None = None,
        cache: RemoteCache | None = None,
    ) -> BuildResult:
        """Build the selected envs (default: all) into the store; returns what was built, reused and failed."""
        plan = self.plan(envs, pipelines)
        store = self.open_store()
        platform = self.spec.project.platform

        def image_bases(pin: ImagePin) -> Descriptor:
            from envgraph._image_bases import ensure_image_base

            return ensure_image_base(store, pin, self.root, platform)

        scheduler = Scheduler(
            store,
            self.root,
            platform=platform,
            jobs=jobs,
            reporter=reporter,
            cache=cache,
            image_bases=image_bases,
        )
        result = scheduler.run(plan)
        self._record_roots(store, plan, complete=set(self.graph.envs()) == {i.env for i in plan.images})
        return result

    def _record_roots(self, store: Store, plan: Plan, *, complete: bool) -> None:
        """Tell a shared store what this project's current lockfiles need, so another project's gc keeps it."""
        tags = {img.tag for img in plan.images}
        keys = set(plan.layers) | set(plan.builds)
        if not complete:
            for _, roots in read_roots(store):
                if roots is not None and Path(roots.declaration) == self.path.absolute():
                    tags.update(roots.tags)
                    keys.update(roots.keys)
        record_roots(store, self.path, tags, keys)

    # -- using images ----------------------------------------------------------------------------------

    def image(self, env: str) -> tuple[str, Descriptor]:
        """The image of the env's current lockfile: its store tag and descriptor; an error when not built."""
        if env not in self.spec.env:
            raise BuildError(f"unknown env {env!r}")
        lock = read_lock(self.lockdir, env)
        if lock is None:
            raise BuildError(f"env {env} has no lockfile: run `envgraph lock` and `envgraph build`")
        tag = image_tag(env, lock.drv)
        desc = self.open_store(readonly=True).tags().get(tag) if self.has_store() else None
        if desc is None:
            raise BuildError(f"env {env} is not built (no {tag} in the store): run `envgraph build {env}`")
        return tag, desc

    def export(self, env: str, output: Path, fmt: ArchiveFormat) -> str:
        tag, desc = self.image(env)
        export_image(self.open_store(readonly=True), env, tag, desc, output, fmt)
        return tag

    def has_store(self) -> bool:
        return (self.store_path / "oci-layout").is_file()

    def images(self) -> list[ImageRow]:
        """What the store holds (nothing when there is no store yet); works on a read-only store."""
        return list_images(self.open_store(readonly=True)) if self.has_store() else []

    def load_into_docker(self, env: str, *, via: LoadVia = "auto") -> LoadResult:
        """Load the env's image into the Docker daemon (see :func:`envgraph.images.load_image` for ``via``)."""
        tag, desc = self.image(env)
        return load_image(self.open_store(), env, tag, desc, via=via)

    def run(self, env: str, command: list[str], *, network: str | None = None, via: LoadVia = "auto") -> int:
        """Load the env's image (an image the daemon has is only tagged), then run ``command`` in it."""
        result = self.load_into_docker(env, via=via)
        return run_image(result.tags[0], command, network=network)

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
    ) -> list[PushedImage]:
        """Push the selected envs' built images (only those asked for, not their ancestors; all by default)."""
        envs, pipelines = list(envs), list(pipelines)
        plan = self.plan(envs, pipelines)  # fails on unknown names, missing or stale lockfiles
        wanted = set(envs)
        for p in pipelines:
            wanted.update(self.spec.pipeline[p].steps.values())
        images = [(img.env, img.drv) for img in plan.images if not wanted or img.env in wanted]
        return push_images(
            self.open_store(),
            images,
            registry_ref,
            insecure=insecure,
            jobs=jobs,
            progress=progress,
            client=client,
            mount_from=mount_from,
        )

    def gc(self, *, keep_last: int = 1, dry_run: bool = False) -> GcResult:
        """Drop old image tags beyond ``keep_last`` per env, then blobs nothing kept refers to.

        Kept: images of the current lockfiles (and ``latest``), the ``keep_last`` newest other images per env,
        the layers of the current lockfiles' keys, and the roots of every other project using this store."""
        current = set()
        for env in self.spec.env:
            lock = read_lock(self.lockdir, env)
            if lock is not None:
                current.add(image_tag(env, lock.drv))
        try:
            plan = self.plan()
            current_keys = set(plan.layers) | set(plan.builds)
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
        return verify_store(self.open_store(readonly=not repair), repair=repair)


def serve_store(root: Path, host: str, port: int, ready: Callable[[BackgroundServer, Store], None]) -> None:
    """Serve the store at ``root`` read-only as an OCI registry until Ctrl-C or SIGTERM; ``ready`` is called
    once it listens. Needs no declaration file: a copied or mounted store (even a read-only one) serves too."""
    from envgraph.server import create_app, serve_until_stopped

    store = Store.open(root, readonly=True)
    serve_until_stopped(create_app(store), host, port, lambda server: ready(server, store))


def load(path: str | os.PathLike[str] | None = None, *, store: Path | None = None) -> Workspace:
    """Load and validate a declaration file (default: ``envgraph.toml`` found upward from the working directory)."""
    p = Path(path) if path is not None else find_declaration()
    if p.is_dir():
        p = find_declaration(p)
    return Workspace(read_spec(p), p, store=store)
