"""The loaded project: declarations, graph, lockfiles and store, with every operation the CLI offers."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from envgraph.builder._scheduler import BuildResult, RemoteCache, Reporter, Scheduler
from envgraph.graph import EnvGraph, build_graph
from envgraph.lock._locker import Locker, LockResult
from envgraph.lock._lockfile import LOCKDIR
from envgraph.oci._store import Store
from envgraph.plan._planner import Plan, make_plan
from envgraph.spec import Spec, find_declaration, read_spec

__all__ = ["Workspace", "load"]


class Workspace:
    """An ``envgraph.toml`` with its lockfiles and store."""

    def __init__(self, spec: Spec, path: Path, *, store: Path | None = None) -> None:
        self.spec = spec
        self.path = path
        self.root = spec.root
        self.graph: EnvGraph = build_graph(spec)
        self.lockdir = self.root / LOCKDIR
        self.store_path = Path(store or os.environ.get("ENVGRAPH_STORE") or self.root / ".envgraph").resolve()

    def locker(self, *, jobs: int | None = None, log: Callable[[str], None] = lambda _m: None) -> Locker:
        from envgraph.builder._bases import BasePinner

        pinner = BasePinner(self)
        return Locker(self.spec, self.graph, self.lockdir, pin_base=pinner, jobs=jobs or 4, log=log)

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
    ) -> LockResult:
        """Lock (or with ``check=True`` only verify) the selected envs and their ancestors."""
        return self.locker(jobs=jobs, log=log).lock(
            envs, pipelines, upgrade=upgrade, upgrade_packages=upgrade_packages, check=check
        )

    def open_store(self) -> Store:
        return Store.open(self.store_path)

    def plan(self, envs: Iterable[str] = (), pipelines: Iterable[str] = ()) -> Plan:
        """Every layer and image the request needs, from the lockfiles (which must be fresh)."""
        return make_plan(self, envs, pipelines)

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
        scheduler = Scheduler(
            self.open_store(),
            self.root,
            platform=self.spec.project.platform,
            jobs=jobs,
            reporter=reporter,
            cache=cache,
        )
        return scheduler.run(plan)


def load(path: str | os.PathLike[str] | None = None, *, store: Path | None = None) -> Workspace:
    """Load and validate a declaration file (default: ``envgraph.toml`` found upward from the working directory)."""
    p = Path(path) if path is not None else find_declaration()
    if p.is_dir():
        p = find_declaration(p)
    return Workspace(read_spec(p), p, store=store)
