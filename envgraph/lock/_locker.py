"""Locking a whole graph: bases first, then envs in topological order, children constrained by their parents.

Incremental like pip-compile in a repository: an env is re-resolved only when its resolution
inputs changed (or ``--upgrade``); its drv is recomputed every time, which is cheap.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import attrs
from attrs import evolve, field, frozen
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name, parse_wheel_filename

from envgraph import identity
from envgraph._convert import unstructure
from envgraph._fs import os_error_text
from envgraph.errors import LockError, ResolutionError, StaleLockError, redact
from envgraph.graph import EnvGraph
from envgraph.identity import LOCK_VERSION, MULTI_PLATFORM_LOCK_VERSION
from envgraph.lock._lockfile import (
    base_identity,
    index_options,
    lock_path,
    read_base_lock,
    read_base_lock_any_version,
    read_lock,
    write_base_lock,
    write_lock,
)
from envgraph.lock._model import (
    AptLock,
    BaseLock,
    BaseRef,
    DebPin,
    FilePin,
    LockedPackage,
    Lockfile,
    ParentRef,
    PlatformPin,
    Source,
    Wheel,
    for_platform,
)
from envgraph.lock._requirements import Declared, GitRef, LocalDir, classify, read_requirements_file
from envgraph.lock._resolve import (
    Pin,
    ResolveRequest,
    ResolverFailed,
    ResolverTimeout,
    pip_compile,
    pip_report,
    resolver_versions,
    uv_compile,
)
from envgraph.lock._schedule import run_dag
from envgraph.lock._wheels import Target
from envgraph.platforms import parse_platform
from envgraph.spec import Base, Env, Spec, label_name, libc_of

if TYPE_CHECKING:
    from envgraph.lock._apt import AptResolver
    from envgraph.lock._built import SourceLocker
    from envgraph.lock._diagnose import Blocker
    from envgraph.lock._index import PackageIndex

__all__ = [
    "LockOutcome",
    "LockResult",
    "Locker",
    "base_inputs",
    "fixed_layers",
    "closure",
    "deb_closure",
    "layer_units",
]

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
    # The selected envs' lockfiles and their bases as checked or written: the plan reuses them (read once).
    locks: Mapping[str, Lockfile] = field(factory=dict, eq=False, repr=False)
    bases: Mapping[str, BaseLock] = field(factory=dict, eq=False, repr=False)

    @property
    def stale(self) -> list[LockOutcome]:
        return [o for o in self.outcomes if o.status == "stale"]


def base_inputs(base: Base, platform: str) -> str:
    debian = None if base.debian is None else (base.debian.suite, base.debian.packages, base.debian.mirror)
    return identity.base_inputs(
        debian=debian, image=base.image, python=base.python, libc=libc_of(base), platform=platform
    )


def lock_drv(lock: Lockfile) -> str:
    """The drv a lockfile's own content gives: what its ``drv`` says when nobody edited it."""
    if lock.parent is not None:
        source = lock.parent.drv
    elif lock.base is not None:
        source = lock.base.identity
    else:
        return ""
    return identity.derivation(
        env=lock.env,
        source=source,
        packages=[
            (q.name, q.version, q.wheel.filename, q.wheel.sha256, q.wheel.size, q.wheel.url)
            for q in lock.packages
            if q.wheel is not None
        ],
        debian=_deb_tuples(lock.apt),
        built=[unstructure(q) for q in lock.packages if q.wheel is None],
        build_debian=_deb_tuples(lock.build_apt),
        user=lock.user,
        ports=lock.ports,
        labels=lock.labels,
        merged=lock.merged,
        environment=lock.environment,
        files=[(f.dest, f.src, f.exclude) for f in lock.files],
        workdir=lock.workdir,
        entrypoint=lock.entrypoint,
        cmd=lock.cmd,
        python=lock.python,
        platform=lock.platform,
        bytecode=lock.bytecode,
    )


def lock_edited(lock: Lockfile) -> bool:
    """Whether any drv of the lock (the primary platform's, each further platform's) is not what its content
    gives."""
    if lock_drv(lock) != lock.drv:
        return True
    for plat, pin in lock.platforms.items():
        try:
            view = for_platform(lock, plat)
        except StaleLockError:
            return True
        if lock_drv(view) != pin.drv:
            return True
    return False


def _deb_tuples(apt: AptLock | None) -> list[tuple[str, str, str, str, int, str]]:
    if apt is None:
        return []
    return [(d.name, d.version, d.architecture, d.sha256, d.size, d.filename) for d in apt.packages]


def deb_closure(locks: Mapping[str, Lockfile], graph: EnvGraph, env: str) -> list[DebPin]:
    """Every Debian package the env's layers add (its own and its ancestors'), root ancestor first."""
    out: list[DebPin] = []
    for e in graph.chain(env):
        apt = locks[e].apt
        if apt is not None:
            out.extend(apt.packages)
    return out


def layer_units(locks: Mapping[str, Lockfile], graph: EnvGraph, env: str) -> list[tuple[str, str]]:
    """What gets its own layer (unless merged) in the env's image: (merge name, content id) for each Debian
    package ("deb:NAME", its .deb's sha256) and each Python package (its name, its wheel's or source's sha256)."""
    units = [(f"deb:{d.name}", d.sha256) for d in deb_closure(locks, graph, env)]
    for q in closure(locks, graph, env):
        content = q.wheel.sha256 if q.wheel is not None else (q.source.sha256 if q.source else "")
        units.append((q.name, content))
    return units


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
        pin_base_for: Callable[[str], BasePinner] | None = None,
        jobs: int = 4,
        log: Callable[[str], None] = lambda _msg: None,
        allow_old: Sequence[str] = (),
    ) -> None:
        self.spec = spec
        self.graph = graph
        self.lockdir = lockdir
        self.pin_base = pin_base
        # Multi-platform projects: a pinner for each further platform (the primary one is `pin_base`).
        self.pin_base_for = pin_base_for
        self.more_platforms = spec.project.targets[1:]
        self._platform_bases: dict[str, dict[str, BaseLock]] = {}
        self.jobs = jobs
        self.log = log
        self.allow_old = tuple(allow_old)
        p = spec.project
        self.find_links = [spec.root / fl for fl in p.find_links]
        # An empty index-url means no index at all: only find-links (offline, like pip's --no-index).
        self._declared: dict[str, Declared] = {}
        self._inputs_of: dict[str, str] = {}
        self._timing: dict[str, tuple[float, float]] = {}  # env -> (resolver, release checks) seconds

    # The index client, the Debian resolver and the source locker are made (and their modules imported)
    # only when something is resolved: `lock --check` and the plan's freshness check need none of them.
    @functools.cached_property
    def index(self) -> PackageIndex:
        from envgraph.lock._index import PackageIndex

        p = self.spec.project
        # An empty index-url means no index at all: only find-links (offline, like pip's --no-index).
        indexes = [u for u in (p.index_url, *p.extra_index_urls) if u]
        return PackageIndex(indexes, self.find_links, root=self.spec.root)

    @functools.cached_property
    def apt(self) -> AptResolver:
        from envgraph.lock._apt import AptResolver

        return AptResolver(self.spec.project.platform)

    @functools.cached_property
    def sources(self) -> SourceLocker:
        from envgraph.lock._built import SourceLocker

        p = self.spec.project
        return SourceLocker(
            self.index, self.spec.root, python=p.python, index_url=p.index_url,
            extra_index_urls=p.extra_index_urls, find_links=self.find_links, timeout=p.resolve_timeout,
        )  # fmt: skip

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
        self._declared = {}
        # An env's inputs, computed once per lock: the first pass resolves parents first, and the second pass
        # (drvs) does not change any env's packages, so the parent pins they depend on stay the same.
        self._inputs_of = {}
        outcomes: list[LockOutcome] = []
        bases: dict[str, BaseLock] = {}
        for b in sorted({self.graph.root_base(e) for e in selected}):
            base_lock, base_outcome = self._lock_base(b, check)
            outcomes.append(base_outcome)
            if base_lock is not None:
                bases[b] = base_lock
        self._platform_bases = {}
        for plat in self.more_platforms:
            self._platform_bases[plat] = {}
            for b in sorted({self.graph.root_base(e) for e in selected}):
                base_lock, base_outcome = self._lock_base(b, check, plat)
                outcomes.append(base_outcome)
                if base_lock is not None:
                    self._platform_bases[plat][b] = base_lock

        # All existing env locks, read once: unselected envs still count for layer popularity and as parents.
        locks: dict[str, Lockfile] = {}
        self._on_disk: dict[str, Lockfile | None] = {}
        self._unreadable: dict[str, str] = {}
        for e in self.graph.envs():
            try:
                existing = read_lock(self.lockdir, e)
            except (
                StaleLockError
            ) as err:  # an old format or a damaged file: stale for --check, re-resolved by lock
                existing = None
                self._unreadable[e] = str(err)
                if not check:
                    self.log(f"env {e}: replacing an unreadable lockfile ({err})")
            self._on_disk[e] = existing
            if existing is not None:
                locks[e] = existing

        upgrade_names: set[str] = {str(canonicalize_name(n)) for n in upgrade_packages}
        resolved: dict[str, Lockfile] = {}
        env_outcomes: dict[str, LockOutcome] = {}
        order = [e for generation in self.graph.generations(selected) for e in generation]
        parents = {e: [p for p in [self.graph.parent(e)] if p is not None] for e in order}

        def work(e: str) -> tuple[Lockfile | None, LockOutcome]:
            if check:
                return self._resolve_env(e, locks, bases, check=True, upgrade=False, upgrade_names=set())
            return self._resolve_env(
                e, locks, bases, check=False, upgrade=upgrade, upgrade_names=upgrade_names
            )

        def finished(e: str, result: tuple[Lockfile | None, LockOutcome]) -> None:
            # Runs in this thread before any child of e starts: the child reads its parent's new pins.
            env_lock, env_outcome = result
            env_outcomes[e] = env_outcome
            if env_lock is not None:
                locks[e] = env_lock
                resolved[e] = env_lock

        # Each env starts as soon as its parent is locked (not when the parent's whole generation is).
        run_dag(order, parents, work, jobs=1 if check else self.jobs, done=finished)

        # Second pass: layer budget (needs every env's packages) and drvs, parents first.
        for e in selected:
            outcome = env_outcomes[e]
            if e not in resolved or outcome.status == "stale":
                outcomes.append(outcome)
                continue
            final = self._finalise(e, locks, bases)
            locks[e] = final
            previous = self._on_disk[e]
            if check:
                if previous is None or previous != final:
                    why = "drv changed: " + self._what_changed(previous, final) if previous else "no lockfile"
                    outcomes.append(LockOutcome(e, "env", "stale", why))
                else:
                    outcomes.append(outcome)
                continue
            wrote = write_lock(self.lockdir, final, closure(locks, self.graph, e), self._index_options())
            if outcome.status == "unchanged" and wrote:
                outcome = LockOutcome(e, "env", "updated", self._what_changed(previous, final))
            outcomes.append(outcome)
        return LockResult(tuple(outcomes), {e: locks[e] for e in selected if e in locks}, bases)

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

    @property
    def _resolver_name(self) -> str:
        return "uv" if self.spec.project.resolver == "uv" else "pip-compile"

    def _index_options(self) -> list[str]:
        p = self.spec.project
        rel = [Path(os.path.relpath(fl, self.lockdir)).as_posix() for fl in self.find_links]
        return index_options(p.index_url, p.extra_index_urls, rel)

    # -- bases --------------------------------------------------------------------
    def _lock_base(
        self, name: str, check: bool, platform: str | None = None
    ) -> tuple[BaseLock | None, LockOutcome]:
        """Pin a base for the primary platform, or (``platform``) for a further one, in its own lockfile."""
        base = self.spec.bases[name]
        slug = parse_platform(platform).slug if platform else None
        shown = f"{name} ({platform})" if platform else name
        inputs = base_inputs(base, platform or self.spec.project.platform)
        previous: BaseLock | None = None
        try:
            existing = read_base_lock(self.lockdir, name, slug)
        except StaleLockError as err:
            if check:
                return None, LockOutcome(shown, "base", "stale", str(err))
            existing = None
            self.log(f"base {name}: replacing an unreadable lockfile ({err})")
            # A lock in an older format: its pins are kept (a Debian base is rebuilt from its pinned versions).
            previous = read_base_lock_any_version(self.lockdir, name, slug)
        edited = existing is not None and (
            existing.identity != base_identity(existing) or existing.name != name
        )
        if existing is not None and existing.inputs == inputs and not edited:
            self._check_base_fits(name, existing, platform)
            return existing, LockOutcome(shown, "base", "unchanged")
        if check:
            why = "no lockfile" if existing is None else "declaration changed"
            if edited:
                why = "its content does not match its identity (edited?)"
            return existing, LockOutcome(shown, "base", "stale", why)
        self.log(f"pinning base {shown}")
        started = time.monotonic()
        if platform is None:
            pinned = self.pin_base(name, base, existing or previous)
        else:
            if self.pin_base_for is None:
                raise LockError(f"base {name}: no way to pin it for {platform} (a locker for one platform)")
            pinned = self.pin_base_for(platform)(name, base, existing or previous)
        self.log(f"base {shown}: pinned in {time.monotonic() - started:.1f} s")
        pinned = evolve(pinned, inputs=inputs)
        pinned = evolve(pinned, identity=base_identity(pinned))
        self._check_base_fits(name, pinned, platform)
        write_base_lock(self.lockdir, pinned, slug)
        return pinned, LockOutcome(shown, "base", "resolved")

    def _check_base_fits(self, name: str, lock: BaseLock, platform: str | None = None) -> None:
        """An image that cannot run is never built: the base's interpreter must be of the target's architecture
        and Python version."""
        p = self.spec.project
        target = platform or p.platform
        arch = target.partition("/")[2]
        if lock.architecture is not None and lock.architecture != arch:
            which = "project.platform" if not p.multi_platform else "one of project.platforms"
            raise LockError(
                f"base {name}: its interpreter {lock.python} is built for {lock.architecture}, "
                f"but {which} is {target}: the images could not run"
            )
        if lock.python_version is not None and lock.python_version != p.python:
            raise LockError(
                f"base {name}: its interpreter {lock.python} is Python {lock.python_version}, "
                f"but project.python is {p.python}: wheels for Python {p.python} would not import"
            )

    # -- envs ---------------------------------------------------------------------
    def target(self, env: str, platform: str | None = None) -> Target:
        p = self.spec.project
        return Target(p.python, platform or p.platform, libc_of(self.spec.bases[self.graph.root_base(env)]))

    def requirements(self, env: str) -> list[str]:
        """The env's own requirement lines, as declared (a requirements-file's includes expanded)."""
        return list(self.declared(env).requirements)

    def declared(self, env: str) -> Declared:
        """The env's requirements and constraints, each checked (paths, git URLs, PEP 508)."""
        if env in self._declared:
            return self._declared[env]
        decl = self.spec.env[env]
        if decl.requirements_file is None:
            lines, where = list(decl.requirements), f"env {env}"
            constraints: list[str] = []
        else:
            lines, constraints = read_requirements_file(
                self.spec.root / decl.requirements_file, self.spec.root, env
            )
            where = f"env {env}: {decl.requirements_file}"
        local: list[LocalDir] = []
        git: list[GitRef] = []
        for line in lines:
            item = classify(line, self.spec.root, where)
            if isinstance(item, LocalDir):
                local.append(item)
            elif isinstance(item, GitRef):
                git.append(item)
        for c in constraints:
            if not isinstance(classify(c, self.spec.root, where), Requirement):
                raise LockError(f"{where}: constraint {c!r} must be a name with a version specifier")
        result = Declared(tuple(lines), tuple(constraints), tuple(local), tuple(git))
        self._declared[env] = result
        return result

    def allowed_old(self, env: str) -> set[str]:
        """Packages whose resolution to a far older release is deliberate: the env's allow-old and the command's."""
        return {str(canonicalize_name(n)) for n in (*self.spec.env[env].allow_old, *self.allow_old)}

    def parent_pins(self, env: str, locks: Mapping[str, Lockfile]) -> dict[str, str]:
        pins: dict[str, str] = {}
        for a in self.graph.ancestors(env):
            if a not in locks:
                raise StaleLockError(f"env {env}: parent env {a} has no lockfile: lock it first")
            pins.update({p.name: p.version for p in locks[a].packages})
        return pins

    def _parent_packages(self, env: str, locks: Mapping[str, Lockfile]) -> dict[str, LockedPackage]:
        out: dict[str, LockedPackage] = {}
        for a in self.graph.ancestors(env):
            out.update({p.name: p for p in locks[a].packages})
        return out

    def _parent_debs(self, env: str, locks: Mapping[str, Lockfile]) -> dict[str, DebPin]:
        out: dict[str, DebPin] = {}
        for a in self.graph.ancestors(env):
            apt = locks[a].apt if a in locks else None
            if apt is not None:
                out.update({d.name: d for d in apt.packages})
        return out

    def apt_requested(self, env: str) -> list[str]:
        """The env's own Debian package requests (a root env also gets its base's)."""
        decl = self.spec.env[env]
        requested = list(decl.apt)
        if decl.base is not None:
            requested = list(self.spec.bases[decl.base].apt) + requested
        return sorted(set(requested))

    def build_apt_requested(self, env: str) -> list[str]:
        """The Debian packages of the env's build environment: the toolchain, build-apt and apt of the chain."""
        requested = set(self.spec.project.build_apt)
        for e in self.graph.chain(env):
            requested.update(self.spec.env[e].build_apt)
            requested.update(self.apt_requested(e))
        return sorted(requested)

    @functools.cached_property
    def _find_links_listing(self) -> dict[str, list[str]]:
        """The find-links directories' distributions, listed once per command (not once per env)."""
        if not self.spec.project.find_links:
            return {}
        # The index client (HTML and e-mail parsers) only when there is a directory to list.
        from envgraph.lock._index import local_distributions

        try:
            return {
                Path(rel).as_posix(): sorted(x.name for x in local_distributions(self.spec.root / rel))
                for rel in self.spec.project.find_links
            }
        except OSError as e:
            raise LockError(f"find-links: cannot list {os_error_text(e)}") from None

    def _inputs(self, env: str, locks: Mapping[str, Lockfile]) -> str:
        p = self.spec.project
        fl = self._find_links_listing
        declared = self.declared(env)
        return identity.resolution_inputs(
            env=env,
            requirements=declared.requirements,
            constraints=declared.constraints,
            sources=declared.sources(),
            python=p.python,
            # One platform: its name, as before; several: all of them (adding one relocks).
            platform=" ".join(p.targets),
            libc=self.target(env).libc,
            indexes=[p.index_url, *p.extra_index_urls],
            find_links=fl,
            parent_pins=self.parent_pins(env, locks),
            resolver=unstructure(resolver_versions(p.resolver)),
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
        existing = self._on_disk[env]
        if env in self._unreadable and check:
            return None, LockOutcome(env, "env", "stale", self._unreadable[env])
        try:
            inputs = self._inputs_of[env] = self._inputs(env, locks)
        except StaleLockError as e:
            if check:
                return None, LockOutcome(env, "env", "stale", str(e))
            raise
        if self.graph.root_base(env) not in bases:
            return None, LockOutcome(env, "env", "stale", f"base {self.graph.root_base(env)} is not locked")
        for plat, pbases in self._platform_bases.items():
            if self.graph.root_base(env) not in pbases:
                why = f"base {self.graph.root_base(env)} is not locked for {plat}"
                return None, LockOutcome(env, "env", "stale", why)
        # A lockfile whose content does not give its own drv was edited: its pins are not trusted (lock never
        # writes a lock around a hash it did not obtain from the index itself).
        edited = existing is not None and lock_edited(existing)
        if edited:
            existing = None
            if check:
                return None, LockOutcome(env, "env", "stale", "its content does not match its drv (edited?)")
        own_names = {p.name for p in existing.packages} if existing else set()
        forced = upgrade or bool(upgrade_names & own_names)
        base = bases[self.graph.root_base(env)]
        python_fresh = existing is not None and existing.inputs == inputs and not forced
        requested = self.apt_requested(env)
        parent_debs = self._parent_debs(env, locks)
        apt_inputs = self.apt.inputs(requested, base, parent_debs) if requested else None
        apt_fresh = (existing.apt.inputs if existing and existing.apt else None) == apt_inputs
        if python_fresh and existing is not None:
            build_fresh = self._build_apt_inputs(env, existing.packages, base) == (
                existing.build_apt.inputs if existing.build_apt else None
            )
            if apt_fresh and build_fresh:
                return existing, LockOutcome(env, "env", "unchanged")
        if check:
            why = "no lockfile" if existing is None else "inputs changed"
            if existing is not None and python_fresh:
                why = "apt inputs changed" if not apt_fresh else "build environment inputs changed"
            return None, LockOutcome(env, "env", "stale", why)
        if python_fresh and existing is not None:
            packages = list(existing.packages)
        else:
            self.log(
                f"resolving env {env}" + (" (its lockfile was edited: resolving afresh)" if edited else "")
            )
            started = time.monotonic()
            packages = self._resolve(env, locks, existing, upgrade=upgrade, upgrade_names=upgrade_names)
            resolver_s, check_s = self._timing.get(env, (0.0, 0.0))
            self.log(
                f"env {env}: {len(packages)} packages resolved in {time.monotonic() - started:.1f} s "
                f"({self._resolver_name} {resolver_s:.1f} s, checking releases {check_s:.1f} s)"
            )
        apt: AptLock | None = None
        if requested:
            if apt_fresh and existing is not None:
                apt = existing.apt
            else:
                self.log(f"resolving Debian packages of env {env}")
                apt = self.apt.resolve(f"env {env}", requested, base, parent_debs)
        build_apt: AptLock | None = None
        build_inputs = self._build_apt_inputs(env, packages, base)
        if build_inputs is not None:
            if (
                existing is not None
                and existing.build_apt is not None
                and existing.build_apt.inputs == build_inputs
            ):
                build_apt = existing.build_apt
            else:
                self.log(f"resolving the build environment of env {env}")
                build_apt = self.apt.resolve(
                    f"env {env} (building {', '.join(q.name for q in packages if q.built)})",
                    self.build_apt_requested(env), base, {},
                )  # fmt: skip
        draft = Lockfile(
            version=LOCK_VERSION,
            env=env,
            python=self.spec.project.python,
            platform=self.spec.project.platform,
            bytecode=self.spec.project.bytecode,
            base=None,
            parent=None,
            requirements=tuple(self.requirements(env)),
            packages=tuple(packages),
            environment={},
            files=(),
            workdir=None,
            entrypoint=None,
            cmd=None,
            merged=(),
            resolver=resolver_versions(self.spec.project.resolver),
            inputs=inputs,
            drv="",
            constraints=self.declared(env).constraints,
            apt=apt,
            build_apt=build_apt,
        )
        return draft, LockOutcome(env, "env", "resolved")

    def _build_apt_inputs(self, env: str, packages: Sequence[LockedPackage], base: BaseLock) -> str | None:
        """The build environment's inputs when the env builds packages from source, else None."""
        built = [q.name for q in packages if q.built]
        if not built:
            return None
        if base.debian is None:
            decl = self.spec.env[env]
            raise LockError(
                f"env {env}: {', '.join(built)} must be built from source (no wheel for the target), which needs "
                f"a Debian base to build in, and base {self.graph.root_base(env)} is an image"
                + ("" if decl.base is None else "; or pin a release that has a wheel")
            )
        return self.apt.inputs(self.build_apt_requested(env), base, {})

    def _resolve(
        self,
        env: str,
        locks: Mapping[str, Lockfile],
        existing: Lockfile | None,
        *,
        upgrade: bool,
        upgrade_names: set[str],
    ) -> list[LockedPackage]:
        from envgraph.lock._diagnose import direct_conflicts, find_blockers, is_far_older

        p = self.spec.project
        declared = self.declared(env)
        reqs = list(declared.requirements)
        pins = self.parent_pins(env, locks)
        parent = self.graph.parent(env)
        target = self.target(env)
        # Requirements by name (the others are directories and git URLs): what the diagnostics can reason about.
        local_lines = {d.line for d in declared.local} | {g.line for g in declared.git}
        named = [r for r in reqs if r not in local_lines]
        conflicts = direct_conflicts(named, pins)
        if conflicts:
            req = next(
                r
                for r in named
                if canonicalize_name(Requirement(r).name) == canonicalize_name(conflicts[0].split("==")[0])
            )
            raise ResolutionError(
                f"env {env}: requirement '{req}' conflicts with parent env {parent}'s pin {conflicts[0]}"
            )
        # A parent's packages built from a directory or a git commit are not on any index, so they are asked for
        # again by their source (and then not kept as own).
        again = {
            q.name: q.source
            for q in self._parent_packages(env, locks).values()
            if q.source is not None and q.source.kind != "sdist"
        }
        dirs = [d.path for d in declared.local]
        dirs += [self._source_dir(s) for s in again.values() if s.kind == "directory"]
        # The resolver sees private copies of directories, never the user's tree: see private_copies (imported
        # here: _sources loads tarfile and zipfile, which lock --check never needs).
        from envgraph.lock._sources import private_copies

        with private_copies(dirs) as copies:
            # Directories are given to the resolvers by name: uv writes a nameless requirement back as a bare path.
            direct = self._direct_references(env, declared.local, copies)
            dir_names = {m.path: name for name, (_, m) in direct.items() if isinstance(m, LocalDir)}
            pip_lines = [
                f"{dir_names[d.path]} @ {copies[d.path].as_uri()}"
                if isinstance(d := _local_of(declared, r), LocalDir)
                else r
                for r in reqs
            ]
            for name, source in again.items():
                pip_lines.append(self._pip_line(name, source, copies))
                pins.pop(name, None)
            previous = None
            if existing is not None:
                previous = "".join(
                    f"{q.name}=={q.version}\n"
                    for q in closure({**locks, env: existing}, self.graph, env)
                    if q.source is None or q.source.kind == "sdist"
                )
            elif env in self._unreadable:
                # Pins of a lockfile in an older format are kept as a preference (hashes come from the index again).
                previous = previous_pins(lock_path(self.lockdir, env)) or None
            try:
                request = ResolveRequest(
                    requirements=tuple(pip_lines),
                    index_url=p.index_url,
                    extra_index_urls=tuple(p.extra_index_urls),
                    find_links=tuple(self.find_links),
                    timeout=p.resolve_timeout,
                    constraints=pins,
                    constraint_lines=tuple(declared.constraints),
                    previous=previous,
                    upgrade=upgrade,
                    upgrade_packages=tuple(sorted(upgrade_names)),
                )
                if p.resolver == "uv":
                    result = uv_compile(p.python, request, platform=p.platform)
                else:
                    result = pip_compile(p.python, request)
            except ResolverTimeout as e:
                blockers = find_blockers(self.index, named, pins, target) if pins else []
                cause = (
                    self._blocker_text(blockers, parent)
                    or "no parent pin explains it; narrow the requirements or raise project.resolve-timeout"
                )
                raise ResolutionError(
                    f"env {env}: resolution did not finish within {e.seconds:g} s: {cause}"
                ) from None
            except ResolverFailed as e:
                blockers = find_blockers(self.index, named, pins, target) if pins else []
                cause = self._blocker_text(blockers, parent) or _pip_conflict(e.output, pins, parent)
                raise ResolutionError(f"env {env}: cannot resolve: {cause}") from None
            checking = time.monotonic()
            # A direct requirement resolved far behind its newest release usually means a parent pin holds it back;
            # whatever the cause, it is never written silently (unless the env or the command line allows it).
            if pins:
                resolved = {q.name: q.version for q in result.pins}
                allowed = self.allowed_old(env)
                # A pin kept from the existing lockfile (no --upgrade) was accepted when it was resolved.
                kept = {} if upgrade or existing is None else {q.name: q.version for q in existing.packages}
                for r in named:
                    name = canonicalize_name(Requirement(r).name)
                    if name not in resolved or name in pins or name in allowed:
                        continue
                    if kept.get(name) == resolved[name] and name not in upgrade_names:
                        continue
                    newer = is_far_older(self.index, r, resolved[name], target)
                    if newer is None:
                        continue
                    blockers = find_blockers(self.index, [r], pins, target)
                    cause = self._blocker_text(blockers, parent) or "no parent pin explains it"
                    raise ResolutionError(
                        f"env {env}: '{r}' resolved to {resolved[name]}, far older than {newer[0]}: {cause} "
                        f'(to keep {resolved[name]} on purpose: allow-old = ["{name}"] in env.{env}, '
                        f"or --allow-old {name})"
                    )
            self._timing[env] = (result.seconds, time.monotonic() - checking)
            parent_names = set(self.parent_pins(env, locks))
            own = [q for q in result.pins if q.name not in parent_names]
        by_url = {q.name for q in own if q.url is not None}
        git = [g for g in declared.git if canonicalize_name(g.name) in by_url]
        direct.update(self._direct_references(env, git, copies))
        sources: dict[str, tuple[str, Source]] = {}
        for q in own:
            if q.url is None:
                continue
            if q.name not in direct:
                raise ResolutionError(
                    f"env {env}: {q.name} resolved to {q.url}, which no requirement of the env names: "
                    "name it directly (or publish it to an index)"
                )
            version, m = direct[q.name]
            if isinstance(m, LocalDir):
                sources[q.name] = (version, self.sources.directory(m.rel))
            else:
                sources[q.name] = (version, self.sources.git(env, m.url, m.commit, m.subdirectory))
        return [self._locked_package(env, q, target, sources) for q in own]

    @staticmethod
    def _blocker_text(blockers: list[Blocker], parent: str | None) -> str:
        return "; ".join(b.describe(parent or "?") for b in blockers[:3])

    def _source_dir(self, source: Source) -> Path:
        """The project directory a ``directory`` source names (absolute, resolved, as :class:`LocalDir` paths)."""
        return (self.spec.root / source.url).resolve()

    def _pip_line(self, name: str, source: Source, copies: Mapping[Path, Path]) -> str:
        """How the resolver is given a package built from a directory (its copy) or a git commit."""
        if source.kind == "git":
            frag = f"#subdirectory={source.subdirectory}" if source.subdirectory else ""
            return f"{name} @ git+{source.url}@{source.commit}{frag}"
        return f"{name} @ {copies[self._source_dir(source)].as_uri()}"

    def _direct_references(
        self, env: str, items: Sequence[LocalDir | GitRef], copies: Mapping[Path, Path]
    ) -> dict[str, tuple[str, LocalDir | GitRef]]:
        """name -> (version, requirement) of directories and git URLs the env names itself, from their metadata
        (pip's report; a directory is read from its copy)."""
        if not items:
            return {}
        p = self.spec.project
        try:
            report = pip_report(
                p.python, [str(copies[m.path]) if isinstance(m, LocalDir) else m.line for m in items],
                index_url=p.index_url, extra_index_urls=p.extra_index_urls, find_links=self.find_links,
                timeout=p.resolve_timeout,
            )  # fmt: skip
        except (ResolverFailed, ResolverTimeout) as e:
            output = e.output if isinstance(e, ResolverFailed) else "timed out"
            raise ResolutionError(
                f"env {env}: cannot read the metadata of {', '.join(m.line for m in items)}: "
                f"{_pip_conflict(output)}"
            ) from None
        by_copy = {copies[m.path]: m for m in items if isinstance(m, LocalDir)}
        by_name = {str(canonicalize_name(m.name)): m for m in items if isinstance(m, GitRef)}
        out: dict[str, tuple[str, LocalDir | GitRef]] = {}
        for info in report:
            name, url = str(info["name"]), str(info["url"])
            item: LocalDir | GitRef | None = by_name.get(name)
            if item is None and url.startswith("file:"):  # pip writes file:///p or file:/p
                item = by_copy.get(Path("/" + url.removeprefix("file:").lstrip("/")).resolve())
            if item is not None and info.get("version"):
                out[name] = (str(info["version"]), item)
        found = {m for _, m in out.values()}
        for m in items:
            if m not in found:
                raise ResolutionError(f"env {env}: pip reports no name and version for {m.line}")
        return out

    def _locked_package(
        self, env: str, q: Pin, target: Target, direct: Mapping[str, tuple[str, Source]]
    ) -> LockedPackage:
        """The wheel for the target, or (none fits, or the requirement names a directory or a git commit) how to
        build one."""
        from envgraph.lock._built import wheel_for

        if q.url is not None:
            version, source = direct[q.name]
        else:
            f = wheel_for(self.index, q.name, q.version, target)
            if f is not None:
                if f.sha256 is None:
                    raise ResolutionError(f"env {env}: the index gives no sha256 for {f.filename}")
                if q.hashes and f.sha256 not in q.hashes:
                    raise ResolutionError(
                        f"env {env}: {f.filename} sha256 {f.sha256} is not among the hashes pip-compile pinned"
                    )
                size = f.size if f.size is not None else self.index.size_of(f.url)
                wheel = Wheel(f.filename, f.sha256, size, f.url)
                return LockedPackage(
                    q.name, q.version, wheel=wheel, platforms=self._more_wheels(env, q, wheel)
                )
            if self.more_platforms:
                raise ResolutionError(
                    f"env {env}: {q.name} {q.version} has no wheel for {target.platform}: building from source "
                    "is for one-platform projects only (pin a release with wheels for every platform)"
                )
            version = q.version
            source = self.sources.sdist(env, q.name, q.version, q.hashes, target)
        self.log(
            f"env {env}: {q.name} {version} will be built from {source.kind} {source.filename or source.url}"
        )
        build = self.sources.build_pin(env, q.name, source, target)
        return LockedPackage(q.name, version, source=source, build=build)

    def _more_wheels(self, env: str, q: Pin, wheel: Wheel) -> dict[str, Wheel]:
        """The wheel of each further platform, where it is another file than the primary platform's (a pure-Python
        wheel fits all and is shared). The resolution is the primary platform's: pip-compile runs once, on this
        machine; the other platforms get the same versions, and each its best file of that release."""
        from envgraph.lock._built import wheel_for

        out: dict[str, Wheel] = {}
        for plat in self.more_platforms:
            target = self.target(env, plat)
            f = wheel_for(self.index, q.name, q.version, target)
            if f is None:
                names = sorted(x.filename for x in self.index.release_files(q.name, q.version))
                raise ResolutionError(
                    f"env {env}: {q.name} {q.version} has no wheel for {plat} ({target.libc}, Python "
                    f"{target.python}); its files: {', '.join(names) or 'none'}"
                )
            if f.filename == wheel.filename:
                continue
            if f.sha256 is None:
                raise ResolutionError(f"env {env}: the index gives no sha256 for {f.filename}")
            if q.hashes and f.sha256 not in q.hashes:
                raise ResolutionError(
                    f"env {env}: {f.filename} sha256 {f.sha256} is not among the hashes pip-compile pinned"
                )
            size = f.size if f.size is not None else self.index.size_of(f.url)
            out[plat] = Wheel(f.filename, f.sha256, size, f.url)
        return out

    def _finalise(self, env: str, locks: Mapping[str, Lockfile], bases: Mapping[str, BaseLock]) -> Lockfile:
        """The whole lockfile from the declaration, the code's versions and the resolved packages: every field but
        the packages is derived afresh, so ``lock --check`` notices an edit of any of them."""
        decl: Env = self.spec.env[env]
        p = self.spec.project
        draft = locks[env]
        parent = self.graph.parent(env)
        lock = Lockfile(
            version=LOCK_VERSION,
            env=env,
            python=p.python,
            platform=p.platform,
            bytecode=p.bytecode,
            base=BaseRef(decl.base, bases[decl.base].identity) if decl.base else None,
            parent=ParentRef(parent, locks[parent].drv) if parent else None,
            requirements=tuple(self.requirements(env)),
            packages=tuple(sorted(draft.packages, key=lambda q: q.name)),
            environment=dict(sorted(decl.environment.items())),
            files=tuple(self._pin_files(env)),
            workdir=decl.workdir,
            entrypoint=decl.entrypoint,
            cmd=decl.cmd,
            merged=tuple(self._merged(env, locks, bases)),
            resolver=resolver_versions(self.spec.project.resolver),
            inputs=self._inputs_of.get(env) or self._inputs(env, locks),
            drv="",
            constraints=self.declared(env).constraints,
            apt=self._final_apt(
                draft.apt, self.apt_requested(env), bases, env, self._parent_debs(env, locks)
            ),
            build_apt=self._final_apt(draft.build_apt, self.build_apt_requested(env), bases, env, {}),
            user=decl.user,
            ports=tuple(sorted(set(decl.ports))),
            labels=self._labels(env, draft),
        )
        lock = evolve(lock, drv=lock_drv(lock))
        if not self.more_platforms:
            return lock
        if lock.apt is not None or lock.build_apt is not None:
            raise LockError(
                f"env {env}: Debian packages (apt) are for one-platform projects only, for now: "
                "remove apt from this env or declare one platform"
            )
        pins: dict[str, PlatformPin] = {}
        for plat in self.more_platforms:
            pbases = self._platform_bases[plat]
            pbase = BaseRef(decl.base, pbases[decl.base].identity) if decl.base else None
            pparent = None
            if parent:
                ppin = locks[parent].platforms.get(plat)
                if ppin is None:
                    raise StaleLockError(f"env {env}: parent env {parent} is not locked for {plat}")
                pparent = ParentRef(parent, ppin.drv)
            pins[plat] = PlatformPin(drv="", base=pbase, parent=pparent)
        lock = evolve(lock, version=MULTI_PLATFORM_LOCK_VERSION, platforms=pins)
        for plat, pin in pins.items():
            pins[plat] = evolve(pin, drv=lock_drv(for_platform(lock, plat)))
        return evolve(lock, platforms=dict(pins))

    def _labels(self, env: str, draft: Lockfile) -> dict[str, str]:
        """The env's own labels by full key (a root env's include the project's). ``revision = "git"`` is the
        commit the declaration's repository had when the env was first locked with it: kept afterwards, so a
        new commit neither makes the lock stale nor changes the image."""
        declared = dict(self.spec.project.labels) if self.graph.parent(env) is None else {}
        declared.update(self.spec.env[env].labels)
        out = {label_name(k): v for k, v in declared.items()}
        revision = label_name("revision")
        if out.get(revision) == "git":
            from envgraph.lock._sources import git_revision  # tarfile and zipfile: only for this label

            out[revision] = draft.labels.get(revision) or git_revision(self.spec.root)
        return dict(sorted(out.items()))

    def _final_apt(
        self,
        apt: AptLock | None,
        requested: Sequence[str],
        bases: Mapping[str, BaseLock],
        env: str,
        have: Mapping[str, DebPin],
    ) -> AptLock | None:
        """The pins as resolved, with what they were resolved for derived afresh from the declaration."""
        if apt is None:
            return None
        base = bases[self.graph.root_base(env)]
        return evolve(apt, requested=tuple(sorted(requested)), inputs=self.apt.inputs(requested, base, have))

    def _pin_files(self, env: str) -> list[FilePin]:
        """What the env's files are; their content is hashed at build time (code is not a dependency)."""
        out = []
        for f in self.spec.env[env].files:
            src = self.spec.root / f.src
            try:
                exists, usable = src.exists(), src.is_dir() or src.is_file()
            except OSError as e:
                raise LockError(f"env {env}: files src {f.src!r}: cannot read {os_error_text(e)}") from None
            if not exists:
                raise LockError(f"env {env}: files src {f.src!r} does not exist")
            if not usable:  # a FIFO would block the build's read forever
                raise LockError(f"env {env}: files src {f.src!r} is not a regular file or directory")
            out.append(FilePin(f.src, f.dest, tuple(f.exclude)))
        return out

    def _merged(self, env: str, locks: Mapping[str, Lockfile], bases: Mapping[str, BaseLock]) -> list[str]:
        """Packages beyond the layer budget, merged into one layer: the least shared across the graph (ties by name)."""
        base = bases[self.graph.root_base(env)]
        base_layers = base.image.layers if base.image else (1 if base.debian else 0)
        units = layer_units(locks, self.graph, env)
        budget = self.spec.project.max_layers - fixed_layers(self.graph, env, base_layers)
        if len(units) <= budget:
            return []
        own_layers = budget - 1
        if own_layers < 1:
            raise LockError(
                f"env {env}: project.max-layers = {self.spec.project.max_layers} leaves no room for package layers"
            )
        # Debian and Python packages compete alike: the most shared keep their own layers, the rest share one.
        popularity = package_popularity(self.graph, locks)
        ranked = sorted(units, key=lambda u: (-popularity.get(u, 0), u[0]))
        return sorted(name for name, _ in ranked[own_layers:])

    @staticmethod
    def _what_changed(old: Lockfile | None, new: Lockfile) -> str:
        if old is None:
            return "new lockfile"
        fields = [
            a.name
            for a in attrs.fields(Lockfile)
            if a.name != "drv" and getattr(old, a.name) != getattr(new, a.name)
        ]
        if fields:
            return ", ".join(fields)
        return "drv" if old.drv != new.drv else "requirements.txt"


def package_popularity(graph: EnvGraph, locks: Mapping[str, Lockfile]) -> dict[tuple[str, str], int]:
    """How many env images of the whole graph contain each layer unit (package or Debian package, content)."""
    counts: dict[tuple[str, str], int] = {}
    for e in graph.envs():
        if not all(a in locks for a in graph.chain(e)):
            continue
        for key in layer_units(locks, graph, e):
            counts[key] = counts.get(key, 0) + 1
    return counts


def _local_of(declared: Declared, line: str) -> LocalDir | None:
    return next((d for d in declared.local if d.line == line), None)


def previous_pins(path: Path) -> str:
    """``name==version`` lines of whatever lockfile is at ``path``, read leniently (any format version): only a
    preference for the resolver, never trusted for hashes."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        packages = doc["packages"]
        lines = [f"{p['name']}=={p['version']}\n" for p in packages]
    except (OSError, ValueError, KeyError, TypeError):
        return ""
    return "".join(line for line in lines if PIN_LINE.match(line))


PIN_LINE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*==[A-Za-z0-9][A-Za-z0-9.+!_-]*\n$")


def _pip_conflict(output: str, pins: Mapping[str, str] | None = None, parent: str | None = None) -> str:
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
    # uv explains itself: "No solution found when resolving dependencies: Because ... we can conclude ...".
    if any("No solution found" in ln for ln in lines):
        i = next(i for i, ln in enumerate(lines) if "No solution found" in ln)
        because = " ".join(ln.lstrip("×╰─▶│ ").strip() for ln in lines[i + 1 :] if not ln.startswith("hint:"))
        because = re.sub(r"^(caused by|cause):\s*", "", because, flags=re.IGNORECASE)
        if because:
            return because
    # pip-compile hides pip's "The conflict is caused by" block, but its traceback keeps the resolver's causes.
    causes = _backtrack_causes(output, pins or {}, parent)
    if causes:
        return "conflicting dependencies: " + "; ".join(causes)
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return (errors[-1] if errors else lines[-1] if lines else "pip-compile failed").removeprefix("ERROR: ")


_CAUSE = re.compile(
    r"RequirementInformation\(requirement=\w+\('(?P<req>[^']*)'\), parent=(?:None|\w+\('(?P<parent>[^']*)'\))\)"
)


def _backtrack_causes(output: str, pins: Mapping[str, str], parent: str | None) -> list[str]:
    """``needy 1.0 requires 'alpha>=2'`` for each cause in resolvelib's ResolutionImpossible, as pip-compile's
    traceback shows it (the parent is a wheel URL or ``None``, a requirement of the env itself)."""
    out: list[str] = []
    for m in _CAUSE.finditer(output):
        parent = m.group("parent")
        who = "the env"
        if parent:
            name = parent.rsplit("/", 1)[-1].split("#", 1)[0]
            try:
                dist, version, *_ = parse_wheel_filename(name)
                who = f"{dist} {version}"
            except ValueError:
                who = redact(parent)
        text = f"{who} requires '{m.group('req')}'"
        try:
            name = str(canonicalize_name(Requirement(m.group("req")).name))
        except ValueError:
            name = ""
        if name in pins:
            text += f", but parent env {parent} pins {name}=={pins[name]}"
        if text not in out:
            out.append(text)
    return out
