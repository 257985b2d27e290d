"""Explaining resolutions that fail, hang or surprise: which parent pin blocks which requirement.

A child env is resolved with its parent's pins as constraints. When those pins exclude what
every recent release of a child requirement needs, pip-compile backtracks for minutes (or a
resolver silently picks a decade-old release). envgraph instead reads the newest eligible
release's metadata, checks it against the parent's pins, and names the blocking pin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from attrs import frozen
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from envgraph.lock._index import IndexFile, PackageIndex
from envgraph.lock._wheels import Target, best_wheel, target_tags

__all__ = [
    "Blocker",
    "find_blockers",
    "newest_release",
    "is_far_older",
    "direct_conflicts",
    "OLD_RELEASE_DAYS",
]

# A direct requirement resolved to a release this much older than its newest eligible release is suspicious.
OLD_RELEASE_DAYS = 365


@frozen
class Blocker:
    requirement: str  # the child's direct requirement
    release: str  # "name version" of the newest eligible release (of the last link of ``via``, if any)
    needs: str  # its Requires-Dist entry that the parent's pin violates
    pin: str  # "name==version" pinned by the parent
    # The dependencies in between, outermost first: ("beta 2.0 requires 'gamma>=3'", ...).
    via: tuple[str, ...] = ()

    def describe(self, parent: str) -> str:
        if not self.via:
            return (
                f"{self.release} (newest release allowed by '{self.requirement}') requires '{self.needs}', "
                f"but parent env {parent} pins {self.pin}"
            )
        first, *rest = self.via
        chain = "; ".join([f"{first} (newest release allowed by '{self.requirement}')", *rest])
        return (
            f"{chain}; and {self.release}, the newest release that allows, requires '{self.needs}', "
            f"but parent env {parent} pins {self.pin}"
        )


# How deep dependencies of dependencies are followed, and how many releases of each are read.
MAX_DEPTH = 3
RELEASES_PER_DEP = 3


def target_environment(target: Target) -> dict[str, str]:
    env: dict[str, str] = {k: str(v) for k, v in default_environment().items()}
    major, minor = target.python.split(".")
    env.update(
        python_version=target.python,
        python_full_version=f"{target.python}.0",
        implementation_name="cpython",
        platform_python_implementation="CPython",
        sys_platform="linux",
        os_name="posix",
        platform_system="Linux",
        platform_machine=target.arch,
    )
    return env


def direct_conflicts(requirements: Sequence[str], pins: Mapping[str, str]) -> list[str]:
    """Child requirements that directly contradict a parent pin, e.g. ``numpy>=2`` vs ``numpy==1.26.4``."""
    out = []
    for r in requirements:
        req = Requirement(r)
        pinned = pins.get(canonicalize_name(req.name))
        if pinned is not None and not req.specifier.contains(pinned, prereleases=True):
            out.append(f"{req.name}=={pinned}")
    return out


def _eligible(index: PackageIndex, req: Requirement, target: Target) -> list[tuple[Version, IndexFile]]:
    """Releases allowed by ``req`` that have a wheel for the target, newest first, with that wheel."""
    supported = target_tags(target)
    by_version: dict[Version, list[IndexFile]] = {}
    for f in index.files(req.name):
        v = f.version
        if v is None or f.yanked or v.is_prerelease or not req.specifier.contains(v):
            continue
        by_version.setdefault(v, []).append(f)
    out = []
    for v in sorted(by_version, reverse=True):
        files = by_version[v]
        chosen = best_wheel([f.filename for f in files], supported)
        if chosen:
            out.append((v, next(f for f in files if f.filename == chosen)))
    return out


def newest_release(index: PackageIndex, requirement: str, target: Target) -> tuple[Version, IndexFile] | None:
    eligible = _eligible(index, Requirement(requirement), target)
    return eligible[0] if eligible else None


def is_far_older(
    index: PackageIndex, requirement: str, resolved: str, target: Target
) -> tuple[Version, IndexFile] | None:
    """The newest eligible release when ``resolved`` is far behind it (a major version, or a year of uploads)."""
    eligible = _eligible(index, Requirement(requirement), target)
    if not eligible:
        return None
    newest, newest_file = eligible[0]
    current = Version(resolved)
    if newest <= current:
        return None
    if newest.major > current.major:
        return newest, newest_file
    cur_file = next((f for v, f in eligible if v == current), None)
    if cur_file and cur_file.upload_time and newest_file.upload_time:
        gap = _when(newest_file.upload_time) - _when(cur_file.upload_time)
        if gap.days > OLD_RELEASE_DAYS:
            return newest, newest_file
    return None


def _when(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def find_blockers(
    index: PackageIndex,
    requirements: Sequence[str],
    parent_pins: Mapping[str, str],
    target: Target,
    *,
    only: Sequence[str] | None = None,
) -> list[Blocker]:
    """For each direct requirement, check its newest eligible release's dependencies against the parent's pins;
    when none is pinned against it, follow the dependencies that the parent does not pin (their newest releases,
    up to :data:`MAX_DEPTH` deep): a dependency blocks when each of its newest releases is blocked."""
    env = target_environment(target)
    out: list[Blocker] = []
    for r in requirements:
        req = Requirement(r)
        if only is not None and canonicalize_name(req.name) not in only:
            continue
        found = newest_release(index, r, target)
        if found is None:
            continue
        version, file = found
        seen = {str(canonicalize_name(req.name))}
        out.extend(_why(index, r, req, f"{req.name} {version}", file, parent_pins, target, env, (), seen))
    return out


def _why(
    index: PackageIndex,
    top: str,
    req: Requirement,
    release: str,
    file: IndexFile,
    pins: Mapping[str, str],
    target: Target,
    env: Mapping[str, str],
    via: tuple[str, ...],
    seen: set[str],
) -> list[Blocker]:
    """Why ``release`` (the wheel ``file``) cannot be installed under ``pins``: its blockers, or none."""
    deps = _dependencies(index, file, req.extras, env)
    direct = []
    for dep, d in deps:
        pinned = pins.get(canonicalize_name(d.name))
        if pinned is not None and not d.specifier.contains(pinned, prereleases=True):
            direct.append(Blocker(top, release, dep, f"{d.name}=={pinned}", via))
    if direct or len(via) >= MAX_DEPTH:
        return direct
    for dep, d in deps:
        name = str(canonicalize_name(d.name))
        if name in pins or name in seen:
            continue
        candidates = _eligible(index, Requirement(f"{d.name}{d.specifier}"), target)[:RELEASES_PER_DEP]
        if not candidates:
            continue
        link = f"{release} requires '{dep}'"
        found: list[list[Blocker]] = []
        for v, f in candidates:
            why = _why(index, top, d, f"{d.name} {v}", f, pins, target, env, (*via, link), seen | {name})
            if not why:
                break  # a release of the dependency fits: it does not block
            found.append(why)
        else:
            return found[0]
    return []


def _dependencies(
    index: PackageIndex, file: IndexFile, extras: set[str], env: Mapping[str, str]
) -> list[tuple[str, Requirement]]:
    """The release's requirements that apply on the target (with the requested extras)."""
    out = []
    for dep in index.requires_dist(file):
        d = Requirement(dep)
        if d.marker is not None and not any(
            d.marker.evaluate({**env, "extra": x}) for x in ("", *sorted(extras))
        ):
            continue
        out.append((dep.split(";")[0].strip(), d))
    return out
