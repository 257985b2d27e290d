"""Locking a whole graph: bases first, then envs in topological order, children constrained by their parents.

Incremental like pip-compile in a repository: an env is re-resolved only when its resolution
inputs changed (or ``--upgrade``); its drv is recomputed every time, which is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Literal

import networkx as nx
from attrs import evolve, frozen
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envgraph import identity
from envgraph._convert import unstructure
from envgraph._fs import os_error_text, read_regular
from envgraph._hashing import tree_sha256
from envgraph.errors import LockError, ResolutionError, StaleLockError
from envgraph.graph import EnvGraph
from envgraph.identity import LOCK_VERSION
from envgraph.lock._diagnose import Blocker, direct_conflicts, find_blockers, is_far_older
from envgraph.lock._index import PackageIndex
from envgraph.lock._lockfile import (
    base_identity,
    read_base_lock,
    read_lock,
    write_base_lock,
    write_lock,
)
from envgraph.lock._model import BaseLock, FilePin, LockedPackage, Lockfile, ParentRef, Wheel
from envgraph.lock._resolve import ResolverFailed, ResolverTimeout, pip_compile, resolver_versions
from envgraph.lock._wheels import Target, best_wheel, target_tags
from envgraph.spec import Base, Env, Spec, libc_of

__all__ = ["LockOutcome", "LockResult", "Locker", "base_inputs", "fixed_layers", "closure"]

BasePinner = Callable[[str, Base, "BaseLock | None"], BaseLock]


@frozen
class LockOutcome:
    name: str
    kind: Literal["env", "base"]
    status: Literal["resolved", "unchanged", "updated", "stale"]  # updated: only the drv changed
    reason: str = ""


@frozen
class LockResult:
    outcomes: tuple[LockOutcome, ...]

    @property
    def stale(self) -> list[LockOutcome]:
        return [o for o in self.outcomes if o.status == "stale"]


def base_inputs(base: Base) -> str:
    debian = None if base.debian is None else (base.debian.suite, base.debian.packages, base.debian.mirror)
    return identity.base_inputs(debian=debian, image=base.image, python=base.python, libc=libc_of(base))


def closure(locks: Mapping[str, Lockfile], graph: EnvGraph, env: str) -> list[LockedPackage]:
    """Every package of the env and its ancestors."""
    out: list[LockedPackage] = []
    for e in graph.chain(env):
        out.extend(locks[e].packages)
    return out


def fixed_layers(graph: EnvGraph, env: str, base_layers: int) -> int:
    """Layers of an env image that are not package layers: the base's, the venv, one per files layer in the chain."""
    return base_layers + 1 + sum(1 for e in graph.chain(env) if graph.spec.env[e].files)


class Locker:
    def __init__(
        self,
        spec: Spec,
        graph: EnvGraph,
        lockdir: Path,
        *,
        pin_base: BasePinner,
        jobs: int = 4,
        log: Callable[[str], None] = lambda _msg: None,
    ) -> None:
        self.spec = spec
        self.graph = graph
        self.lockdir = lockdir
        self.pin_base = pin_base
        self.jobs = jobs
        self.log = log
        p = spec.project
        self.find_links = [spec.root / fl for fl in p.find_links]
        # An empty index-url means no index at all: only find-links (offline, like pip's --no-index).
        indexes = [u for u in (p.index_url, *p.extra_index_urls) if u]
        self.index = PackageIndex(indexes, self.find_links, root=spec.root)

    # -- public -------------------------------------------------------------------
    def lock(
        self,
        envs: Iterable[str] = (),
        pipelines: Iterable[str] = (),
        *,
        upgrade: bool = False,
        upgrade_packages: Sequence[str] = (),
        check: bool = False,
    ) -> LockResult:
        selected = self.graph.select(envs, pipelines)
        outcomes: list[LockOutcome] = []
        bases: dict[str, BaseLock] = {}
        for b in sorted({self.graph.root_base(e) for e in selected}):
            base_lock, base_outcome = self._lock_base(b, check)
            outcomes.append(base_outcome)
            if base_lock is not None:
                bases[b] = base_lock

        # All existing env locks: unselected envs still count for layer popularity and as parents.
        locks: dict[str, Lockfile] = {}
        for e in self.graph.envs():
            existing = self._existing_lock(e, check)
            if existing is not None:
                locks[e] = existing

        upgrade_names: set[str] = {str(canonicalize_name(n)) for n in upgrade_packages}
        resolved: dict[str, Lockfile] = {}
        env_outcomes: dict[str, LockOutcome] = {}
        sub = self.graph.dag.subgraph([("env", e) for e in selected])
        for generation in nx.topological_generations(sub):
            names = sorted(n for _, n in generation)
            if check:
                results = [
                    self._resolve_env(e, locks, bases, check=True, upgrade=False, upgrade_names=set())
                    for e in names
                ]
            else:
                with ThreadPoolExecutor(max_workers=max(1, min(self.jobs, len(names)))) as pool:
                    results = list(
                        pool.map(
                            lambda e: self._resolve_env(
                                e, locks, bases, check=False, upgrade=upgrade, upgrade_names=upgrade_names
                            ),
                            names,
                        )
                    )
            for e, (env_lock, env_outcome) in zip(names, results, strict=True):
                env_outcomes[e] = env_outcome
                if env_lock is not None:
                    locks[e] = env_lock
                    resolved[e] = env_lock

        # Second pass: layer budget (needs every env's packages) and drvs, parents first.
        for e in selected:
            outcome = env_outcomes[e]
            if e not in resolved or outcome.status == "stale":
                outcomes.append(outcome)
                continue
            final = self._finalise(e, locks, bases)
            locks[e] = final
            previous = self._existing_lock(e, check, quiet=True)
            if check:
                if previous is None or previous != final:
                    why = "drv changed: " + self._what_changed(previous, final) if previous else "no lockfile"
                    outcomes.append(LockOutcome(e, "env", "stale", why))
                else:
                    outcomes.append(outcome)
                continue
            wrote = write_lock(self.lockdir, final, closure(locks, self.graph, e))
            if outcome.status == "unchanged" and wrote:
                outcome = LockOutcome(e, "env", "updated", self._what_changed(previous, final))
            outcomes.append(outcome)
        return LockResult(tuple(outcomes))

    def _existing_lock(self, env: str, check: bool, *, quiet: bool = False) -> Lockfile | None:
        """The env's lockfile. One that cannot be read is an error for ``--check``; when locking, it is
        replaced like a missing one (so the advice "run envgraph lock" works)."""
        try:
            return read_lock(self.lockdir, env)
        except StaleLockError as e:
            if check:
                raise
            if not quiet:
                self.log(f"env {env}: replacing an unreadable lockfile ({e})")
            return None

    # -- bases --------------------------------------------------------------------
    def _lock_base(self, name: str, check: bool) -> tuple[BaseLock | None, LockOutcome]:
        base = self.spec.bases[name]
        inputs = base_inputs(base)
        try:
            existing = read_base_lock(self.lockdir, name)
        except StaleLockError as e:
            if check:
                raise
            self.log(f"base {name}: replacing an unreadable lockfile ({e})")
            existing = None
        if (
            existing is not None
            and existing.inputs == inputs
            and existing.identity == base_identity(existing)
        ):
            return existing, LockOutcome(name, "base", "unchanged")
        if check:
            why = "no lockfile" if existing is None else "declaration changed"
            return existing, LockOutcome(name, "base", "stale", why)
        self.log(f"pinning base {name}")
        pinned = self.pin_base(name, base, existing)
        pinned = evolve(pinned, inputs=inputs)
        pinned = evolve(pinned, identity=base_identity(pinned))
        write_base_lock(self.lockdir, pinned)
        return pinned, LockOutcome(name, "base", "resolved")

    # -- envs ---------------------------------------------------------------------
    def target(self, env: str) -> Target:
        p = self.spec.project
        return Target(p.python, p.platform, libc_of(self.spec.bases[self.graph.root_base(env)]))

    def requirements(self, env: str) -> list[str]:
        reqs = self._declared_requirements(env)
        for r in reqs:
            try:
                Requirement(r)
            except InvalidRequirement as e:
                reason = str(e).splitlines()[0]
                raise ResolutionError(f"env {env}: invalid requirement {r!r}: {reason}") from None
        return reqs

    def _declared_requirements(self, env: str) -> list[str]:
        decl = self.spec.env[env]
        if decl.requirements_file is None:
            return list(decl.requirements)
        shown = decl.requirements_file
        try:
            raw = read_regular(self.spec.root / decl.requirements_file)
        except OSError as e:
            raise LockError(f"env {env}: cannot read requirements-file {shown}: {e.strerror or e}") from None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise LockError(
                f"env {env}: requirements-file {shown} is not UTF-8 text "
                f"(byte {raw[e.start]:#04x} at offset {e.start})"
            ) from None
        if "\x00" in text:
            line = text.count("\n", 0, text.index("\x00")) + 1
            raise LockError(f"env {env}: requirements-file {shown} line {line}: contains a NUL byte")
        reqs = []
        for ln in text.splitlines():
            ln = ln.split(" #", 1)[0].strip()
            if ln and not ln.startswith("#"):
                if ln.startswith("-"):
                    raise LockError(f"env {env}: {shown}: options like {ln.split()[0]!r} are not supported")
                reqs.append(ln)
        return reqs

    def parent_pins(self, env: str, locks: Mapping[str, Lockfile]) -> dict[str, str]:
        pins: dict[str, str] = {}
        for a in self.graph.ancestors(env):
            if a not in locks:
                raise StaleLockError(f"env {env}: parent env {a} has no lockfile: lock it first")
            pins.update({p.name: p.version for p in locks[a].packages})
        return pins

    def _inputs(self, env: str, locks: Mapping[str, Lockfile]) -> str:
        p = self.spec.project
        try:
            fl = {
                Path(rel).as_posix(): sorted(x.name for x in (self.spec.root / rel).glob("*.whl"))
                for rel in p.find_links
            }
        except OSError as e:
            raise LockError(f"find-links: cannot list {os_error_text(e)}") from None
        return identity.resolution_inputs(
            env=env,
            requirements=self.requirements(env),
            python=p.python,
            platform=p.platform,
            libc=self.target(env).libc,
            indexes=[p.index_url, *p.extra_index_urls],
            find_links=fl,
            parent_pins=self.parent_pins(env, locks),
            resolver=unstructure(resolver_versions()),
        )

    def _resolve_env(
        self,
        env: str,
        locks: Mapping[str, Lockfile],
        bases: Mapping[str, BaseLock],
        *,
        check: bool,
        upgrade: bool,
        upgrade_names: set[str],
    ) -> tuple[Lockfile | None, LockOutcome]:
        existing = self._existing_lock(env, check, quiet=True)
        try:
            inputs = self._inputs(env, locks)
        except StaleLockError as e:
            if check:
                return None, LockOutcome(env, "env", "stale", str(e))
            raise
        if self.graph.root_base(env) not in bases:
            return None, LockOutcome(env, "env", "stale", f"base {self.graph.root_base(env)} is not locked")
        own_names = {p.name for p in existing.packages} if existing else set()
        forced = upgrade or bool(upgrade_names & own_names)
        if existing is not None and existing.inputs == inputs and not forced:
            return existing, LockOutcome(env, "env", "unchanged")
        if check:
            return None, LockOutcome(
                env, "env", "stale", "no lockfile" if existing is None else "inputs changed"
            )
        self.log(f"resolving env {env}")
        packages = self._resolve(env, locks, existing, upgrade=upgrade, upgrade_names=upgrade_names)
        draft = Lockfile(
            version=LOCK_VERSION,
            env=env,
            python=self.spec.project.python,
            platform=self.spec.project.platform,
            base=self.spec.env[env].base,
            parent=None,
            requirements=tuple(self.requirements(env)),
            packages=tuple(packages),
            environment={},
            files=(),
            workdir=None,
            entrypoint=None,
            cmd=None,
            merged=(),
            resolver=resolver_versions(),
            inputs=inputs,
            drv="",
        )
        return draft, LockOutcome(env, "env", "resolved")

    def _resolve(
        self,
        env: str,
        locks: Mapping[str, Lockfile],
        existing: Lockfile | None,
        *,
        upgrade: bool,
        upgrade_names: set[str],
    ) -> list[LockedPackage]:
        p = self.spec.project
        reqs = self.requirements(env)
        pins = self.parent_pins(env, locks)
        parent = self.graph.parent(env)
        target = self.target(env)
        conflicts = direct_conflicts(reqs, pins)
        if conflicts:
            req = next(
                r
                for r in reqs
                if canonicalize_name(Requirement(r).name) == canonicalize_name(conflicts[0].split("==")[0])
            )
            raise ResolutionError(
                f"env {env}: requirement '{req}' conflicts with parent env {parent}'s pin {conflicts[0]}"
            )
        previous = None
        if existing is not None:
            previous = "".join(
                f"{q.name}=={q.version}\n" for q in closure({**locks, env: existing}, self.graph, env)
            )
        try:
            result = pip_compile(
                p.python,
                reqs,
                constraints=pins,
                index_url=p.index_url,
                extra_index_urls=p.extra_index_urls,
                find_links=self.find_links,
                previous=previous,
                upgrade=upgrade,
                upgrade_packages=sorted(upgrade_names),
                timeout=p.resolve_timeout,
            )
        except ResolverTimeout as e:
            blockers = find_blockers(self.index, reqs, pins, target) if pins else []
            cause = (
                self._blocker_text(blockers, parent)
                or "no parent pin explains it; narrow the requirements or raise project.resolve-timeout"
            )
            raise ResolutionError(
                f"env {env}: resolution did not finish within {e.seconds:g} s: {cause}"
            ) from None
        except ResolverFailed as e:
            blockers = find_blockers(self.index, reqs, pins, target) if pins else []
            cause = self._blocker_text(blockers, parent) or _pip_conflict(e.output)
            raise ResolutionError(f"env {env}: cannot resolve: {cause}") from None
        # A direct requirement resolved far behind its newest release usually means a parent pin holds it back.
        if pins:
            resolved = {q.name: q.version for q in result.pins}
            for r in reqs:
                name = canonicalize_name(Requirement(r).name)
                if name not in resolved or name in pins:
                    continue
                newer = is_far_older(self.index, r, resolved[name], target)
                if newer is None:
                    continue
                blockers = find_blockers(self.index, [r], pins, target)
                if blockers:
                    raise ResolutionError(
                        f"env {env}: '{r}' resolved to {resolved[name]}, far older than {newer[0]}: "
                        + self._blocker_text(blockers, parent)
                    )
        own = [q for q in result.pins if q.name not in pins]
        return [self._choose_wheel(env, q.name, q.version, q.hashes, target) for q in own]

    @staticmethod
    def _blocker_text(blockers: list[Blocker], parent: str | None) -> str:
        return "; ".join(b.describe(parent or "?") for b in blockers[:3])

    def _choose_wheel(
        self, env: str, name: str, version: str, hashes: frozenset[str], target: Target
    ) -> LockedPackage:
        files = self.index.release_files(name, version)
        chosen = best_wheel([f.filename for f in files], target_tags(target))
        if chosen is None:
            raise ResolutionError(
                f"env {env}: {name}=={version} has no wheel for cp{target.python.replace('.', '')} "
                f"{target.libc} {target.arch} (sdists are not supported)"
            )
        f = next(f for f in files if f.filename == chosen)
        if f.sha256 is None:
            raise ResolutionError(f"env {env}: the index gives no sha256 for {f.filename}")
        if hashes and f.sha256 not in hashes:
            raise ResolutionError(
                f"env {env}: {f.filename} sha256 {f.sha256} is not among the hashes pip-compile pinned"
            )
        size = f.size if f.size is not None else self.index.size_of(f.url)
        return LockedPackage(name=name, version=version, wheel=Wheel(f.filename, f.sha256, size, f.url))

    def _finalise(self, env: str, locks: Mapping[str, Lockfile], bases: Mapping[str, BaseLock]) -> Lockfile:
        decl: Env = self.spec.env[env]
        draft = locks[env]
        parent = self.graph.parent(env)
        files = tuple(self._pin_files(env))
        source = locks[parent].drv if parent else bases[self.graph.root_base(env)].identity
        merged = tuple(self._merged(env, locks, bases))
        lock = evolve(
            draft,
            base=decl.base,
            parent=ParentRef(parent, locks[parent].drv) if parent else None,
            requirements=tuple(self.requirements(env)),
            environment=dict(sorted(decl.environment.items())),
            files=files,
            workdir=decl.workdir,
            entrypoint=decl.entrypoint,
            cmd=decl.cmd,
            merged=merged,
            packages=tuple(sorted(draft.packages, key=lambda q: q.name)),
        )
        drv = identity.derivation(
            env=env,
            source=source,
            packages=[(q.name, q.version, q.wheel.sha256) for q in lock.packages],
            merged=merged,
            environment=lock.environment,
            files=[(f.dest, f.sha256) for f in files],
            workdir=lock.workdir,
            entrypoint=lock.entrypoint,
            cmd=lock.cmd,
            python=lock.python,
            platform=lock.platform,
            bytecode=self.spec.project.bytecode,
        )
        return evolve(lock, drv=drv)

    def _pin_files(self, env: str) -> list[FilePin]:
        out = []
        for f in self.spec.env[env].files:
            src = self.spec.root / f.src
            try:
                if not src.exists():
                    raise LockError(f"env {env}: files src {f.src!r} does not exist")
                out.append(FilePin(f.src, f.dest, tree_sha256(src)))
            except OSError as e:
                raise LockError(f"env {env}: files src {f.src!r}: cannot read {os_error_text(e)}") from None
        return out

    def _merged(self, env: str, locks: Mapping[str, Lockfile], bases: Mapping[str, BaseLock]) -> list[str]:
        """Packages beyond the layer budget, merged into one layer: the least shared across the graph (ties by name)."""
        base = bases[self.graph.root_base(env)]
        base_layers = base.image.layers if base.image else (1 if base.debian else 0)
        packages = closure(locks, self.graph, env)
        budget = self.spec.project.max_layers - fixed_layers(self.graph, env, base_layers)
        if len(packages) <= budget:
            return []
        own_layers = budget - 1
        if own_layers < 1:
            raise LockError(
                f"env {env}: project.max-layers = {self.spec.project.max_layers} leaves no room for package layers"
            )
        popularity = package_popularity(self.graph, locks)
        ranked = sorted(packages, key=lambda q: (-popularity.get((q.name, q.wheel.sha256), 0), q.name))
        return sorted(q.name for q in ranked[own_layers:])

    @staticmethod
    def _what_changed(old: Lockfile | None, new: Lockfile) -> str:
        if old is None:
            return "new lockfile"
        fields = [f for f in ("packages", "environment", "files", "workdir", "entrypoint", "cmd", "merged", "parent", "base")
                  if getattr(old, f) != getattr(new, f)]  # fmt: skip
        return ", ".join(fields) or "drv"


def package_popularity(graph: EnvGraph, locks: Mapping[str, Lockfile]) -> dict[tuple[str, str], int]:
    """How many env images of the whole graph contain each (package, wheel)."""
    counts: dict[tuple[str, str], int] = {}
    for e in graph.envs():
        if not all(a in locks for a in graph.chain(e)):
            continue
        for q in closure(locks, graph, e):
            key = (q.name, q.wheel.sha256)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _pip_conflict(output: str) -> str:
    """pip's own explanation, on one line."""
    lines = [ln.strip() for ln in output.splitlines() if ln.strip()]
    try:
        i = next(i for i, ln in enumerate(lines) if ln.startswith("The conflict is caused by"))
        caused = []
        for ln in lines[i + 1 :]:
            if not re.match(r"^(The user requested|\S+ \S+ depends on)", ln):
                break
            caused.append(ln)
        if caused:
            return "; ".join(caused)
    except StopIteration:
        pass
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors[-1] if errors else lines[-1] if lines else "pip-compile failed").removeprefix("ERROR: ")
