"""What changed between two package sets: the one comparison behind `envgraph diff` and the dashboard's diffs.

Pure: callers collect `{canonical name: version}` maps (from a lockfile closure, a lockfile at a git revision, a
build record) and render the result themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from attrs import frozen


@frozen
class VersionChange:
    name: str
    old: str
    new: str


@frozen
class PackageDiff:
    added: tuple[tuple[str, str], ...]
    removed: tuple[tuple[str, str], ...]
    changed: tuple[VersionChange, ...]

    @property
    def empty(self) -> bool:
        return not (self.added or self.removed or self.changed)


def diff_packages(old: Mapping[str, str], new: Mapping[str, str]) -> PackageDiff:
    """Packages added, removed and changed from `old` to `new`, each sorted by name."""
    return PackageDiff(
        added=tuple((name, new[name]) for name in sorted(new.keys() - old.keys())),
        removed=tuple((name, old[name]) for name in sorted(old.keys() - new.keys())),
        changed=tuple(
            VersionChange(name, old[name], new[name])
            for name in sorted(old.keys() & new.keys())
            if old[name] != new[name]
        ),
    )
