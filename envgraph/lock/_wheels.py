"""Choosing the one wheel file of a release that fits the target interpreter, platform and C library."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attrs import frozen
from packaging import tags
from packaging.utils import InvalidWheelFilename, parse_wheel_filename

from envgraph.platforms import parse_platform

__all__ = ["Target", "target_tags", "built_wheel_tags", "best_wheel"]


@frozen
class Target:
    python: str  # "3.11"
    platform: str  # "linux/amd64"
    libc: str  # "glibc-2.36" or "musl-1.2"

    @property
    def arch(self) -> str:
        return parse_platform(self.platform).machine


def _platforms(target: Target) -> list[str]:
    return parse_platform(target.platform).wheel_platforms(target.libc)


def target_tags(target: Target) -> list[tags.Tag]:
    """Tags the target accepts, most preferred first (like ``packaging.tags.sys_tags`` for a foreign target)."""
    major, minor = (int(x) for x in target.python.split("."))
    pyver = (major, minor)
    platforms = _platforms(target)
    return [
        *tags.cpython_tags(pyver, platforms=platforms),
        *tags.compatible_tags(pyver, interpreter=f"cp{major}{minor}", platforms=platforms),
    ]


def built_wheel_tags(target: Target) -> list[tags.Tag]:
    """Tags a wheel built in the target's own base may carry: the target's, and the plain ``linux_<arch>`` that
    a local build gets (it was built against exactly this base's libc, so it fits)."""
    major, minor = (int(x) for x in target.python.split("."))
    local = [f"linux_{target.arch}"]
    return [
        *target_tags(target),
        *tags.cpython_tags((major, minor), platforms=local),
        *tags.compatible_tags((major, minor), interpreter=f"cp{major}{minor}", platforms=local),
    ]


def best_wheel(filenames: Iterable[str], supported: Sequence[tags.Tag]) -> str | None:
    """The filename whose best tag ranks highest among ``supported``; ``None`` when no wheel fits.

    Ties (same best tag, e.g. two builds) go to the lexicographically smallest filename so the choice is stable.
    """
    rank = {t: i for i, t in enumerate(supported)}
    best: tuple[int, str] | None = None
    for fn in filenames:
        if not fn.endswith(".whl"):
            continue
        try:
            _, _, _, wheel_tags = parse_wheel_filename(fn)
        except InvalidWheelFilename:
            continue
        ranks = [rank[t] for t in wheel_tags if t in rank]
        if not ranks:
            continue
        candidate = (min(ranks), fn)
        if best is None or candidate < best:
            best = candidate
    return best[1] if best else None
