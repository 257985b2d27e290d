"""Which Debian packages an env needs on top of its base: the closure of Depends and Pre-Depends.

Pure (no I/O): the requested relations, a :class:`PackageIndex` and the base's installed set
(name -> version, as a base lockfile records it) in; the packages to add, sorted by name, out.

Rules (dpkg's and apt's, restricted to one architecture plus ``all``):

- A dependency already met by the base or by the packages chosen so far is not followed further;
  a package of the base is never added again, not even in another version (a base package that does
  not meet a versioned dependency is an error naming it).
- Versions compare as dpkg does (``<<``, ``<=``, ``=``, ``>=``, ``>>``; the obsolete ``<``/``>`` mean
  ``<=``/``>=``). Among the versions of a name the newest that fits is taken.
- Alternatives ``a | b``: an alternative the base or the selection already has wins; otherwise the first
  alternative that can be met, in the order written. Dependencies without alternatives are followed
  first, so that what they bring in can meet an ``a | b`` instead of adding ``a`` as well.
- Virtual packages: a real package of the name comes first; then its providers, those already there
  first, else by Priority (required, important, standard, optional, extra) then name. A versioned
  dependency is met only by a versioned Provides (``Provides: foo (= 1.2)``), as dpkg says. A request
  for a virtual package with several providers and none in the base is an error, as in apt.
- Architecture qualifiers: unqualified and ``:native`` are met by the architecture's and ``all``
  packages; ``:any`` only by ``Multi-Arch: allowed`` packages (dpkg's ``deparchsatisfied``).
- Pre-Depends count as Depends (nothing is configured, so there is no ordering to keep).
  Recommends, Suggests and Enhances are not followed (like ``apt-get --no-install-recommends``).
- Conflicts and Breaks between the chosen packages and the base (either way) are errors: nothing
  can be removed from a base.
- Greedy, like apt, without backtracking; a Debian suite has one version per package, so choices
  rarely matter. Requests are taken in sorted order, so the result never depends on their order.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Mapping, Sequence

import attrs

from envgraph.debian._packages import (
    DebPackage,
    PackageIndex,
    Relation,
    check_filename,
    check_package_name,
    parse_relations,
)
from envgraph.debian._version import parse_version, satisfies
from envgraph.errors import DebianError

__all__ = ["DebPin", "resolve"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_PRIORITY = {"required": 0, "important": 1, "standard": 2, "optional": 3, "extra": 4}


@attrs.frozen
class DebPin:
    """One Debian package to add: everything a lockfile needs to fetch and verify it."""

    name: str
    version: str
    architecture: str
    sha256: str
    size: int
    filename: str  # pool path relative to the mirror, e.g. pool/main/j/jq/jq_1.6-2.1_amd64.deb

    def __attrs_post_init__(self) -> None:
        # Pins come back from lockfiles, which are input like any other: check every field.
        check_package_name(self.name)
        check_filename(self.filename)
        try:
            parse_version(self.version)
        except ValueError as err:
            raise DebianError(f"Debian package {self.name}: {err}") from None
        if not _SHA256_RE.match(self.sha256) or not _ARCH_RE.match(self.architecture) or self.size < 0:
            raise DebianError(f"Debian package {self.name}: malformed sha256, size or architecture")

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    @classmethod
    def of(cls, pkg: DebPackage) -> DebPin:
        return cls(pkg.name, pkg.version, pkg.architecture, pkg.sha256, pkg.size, pkg.filename)


@attrs.frozen
class _Have:
    """A package in the base or in the selection."""

    name: str
    version: str
    pkg: DebPackage | None  # None: a base package the index does not list in that version
    where: str  # "base" or "selection"

    def multi_arch(self) -> str | None:
        return self.pkg.multi_arch if self.pkg else None


def _arch_ok(multi_arch: str | None, rel: Relation, target: str) -> bool:
    """dpkg's ``deparchsatisfied`` when every package is of ``target`` or ``all``."""
    if rel.arch is None or rel.arch == "native" or rel.arch == target:
        return True
    if rel.arch == "any":
        return multi_arch in (None, "allowed")  # None: unknown base package, give it the benefit
    return False


def _version_ok(version: str, rel: Relation) -> bool:
    return rel.op is None or satisfies(version, rel.op, rel.version or "")


def _provides_ok(provided: Relation, rel: Relation) -> bool:
    """Whether a Provides entry meets ``rel`` (versioned dependencies need a versioned Provides)."""
    if rel.op is None:
        return True
    return provided.op == "=" and provided.version is not None and _version_ok(provided.version, rel)


def _group_text(group: Sequence[Relation]) -> str:
    return " | ".join(str(r) for r in group)


class _Resolver:
    def __init__(self, index: PackageIndex, base: Mapping[str, str]) -> None:
        self.index = index
        self.target = index.architecture
        self.have: dict[str, _Have] = {}
        self.virtual: dict[str, list[tuple[_Have, Relation]]] = {}
        self.chains: dict[str, tuple[str, ...]] = {}
        for name, version in sorted(base.items()):
            self._add(_Have(name, version, index.find(name, version), "base"))

    def _add(self, have: _Have) -> None:
        self.have[have.name] = have
        if have.pkg is not None and have.pkg.provides:
            for provided in have.pkg.provided():
                self.virtual.setdefault(provided.name, []).append((have, provided))

    # --- is it already there? ------------------------------------------------------------------------

    def _met_by(self, rel: Relation) -> _Have | None:
        have = self.have.get(rel.name)
        if (
            have is not None
            and _version_ok(have.version, rel)
            and _arch_ok(have.multi_arch(), rel, self.target)
        ):
            return have
        for have, provided in self.virtual.get(rel.name, ()):
            if _provides_ok(provided, rel) and _arch_ok(have.multi_arch(), rel, self.target):
                return have
        return None

    # --- what could meet it? -------------------------------------------------------------------------

    def _candidates(self, rel: Relation) -> list[DebPackage]:
        real = [
            p
            for p in self.index.versions(rel.name)
            if p.name not in self.have
            and _version_ok(p.version, rel)
            and _arch_ok(p.multi_arch, rel, self.target)
        ]
        if real:
            return real[:1]
        providers = [
            p
            for p, provided in self.index.providers(rel.name)
            if p.name not in self.have
            and _provides_ok(provided, rel)
            and _arch_ok(p.multi_arch, rel, self.target)
        ]
        # One version per provider (the newest that fits: index.providers keeps newest first per name).
        firsts: dict[str, DebPackage] = {}
        for p in providers:
            firsts.setdefault(p.name, p)
        return sorted(firsts.values(), key=lambda p: (_PRIORITY.get(p.priority, 5), p.name))

    # --- explaining a failure ----------------------------------------------------------------------------

    def _why_not(self, group: Sequence[Relation]) -> str:
        notes = []
        for rel in group:
            have = self.have.get(rel.name)
            if have is not None:
                notes.append(
                    f"the {'base' if have.where == 'base' else 'selection'} has {have.name} {have.version}"
                )
            elif versions := self.index.versions(rel.name):
                notes.append(f"{self.index.label} has {rel.name} {', '.join(p.version for p in versions)}")
        return f" ({'; '.join(notes)})" if notes else ""

    # --- the closure ---------------------------------------------------------------------------------------

    def run(self, requests: Sequence[str]) -> list[DebPin]:
        # Dependencies without alternatives go first: what they bring in may then meet an "a | b".
        plain: deque[tuple[tuple[Relation, ...], tuple[str, ...]]] = deque()
        choices: deque[tuple[tuple[Relation, ...], tuple[str, ...]]] = deque()
        for request in sorted(set(requests)):
            for group in _parse_request(request):
                (plain if len(group) == 1 else choices).append((group, ()))
        while plain or choices:
            group, chain = plain.popleft() if plain else choices.popleft()
            if any(self._met_by(rel) for rel in group):
                continue
            chosen = self._choose(group, chain)
            path = (*chain, chosen.name)
            self.chains[chosen.name] = path
            self._add(_Have(chosen.name, chosen.version, chosen, "selection"))
            for field in ("pre_depends", "depends"):
                for dep in chosen.relations(field):
                    (plain if len(dep) == 1 else choices).append((dep, path))
        selected = sorted(
            (h.pkg for h in self.have.values() if h.where == "selection" and h.pkg), key=lambda p: p.name
        )
        self._check_conflicts(selected)
        return [DebPin.of(p) for p in selected]

    def _choose(self, group: tuple[Relation, ...], chain: tuple[str, ...]) -> DebPackage:
        for rel in group:
            candidates = self._candidates(rel)
            if not chain and len(candidates) > 1 and not self.index.versions(rel.name):
                names = ", ".join(p.name for p in candidates)
                raise DebianError(
                    f"Debian package {rel.name} is virtual and provided by {names}: request one of them"
                )
            if candidates:
                return candidates[0]
        why = self._why_not(group)
        if not chain:
            raise DebianError(f"Debian package {_group_text(group)} is not in {self.index.label}{why}")
        via = f" (via {' -> '.join(chain)})" if len(chain) > 1 else ""
        raise DebianError(
            f"Debian package {chain[0]} needs {_group_text(group)}{via}, "
            f"which {self.index.label} does not provide{why}"
        )

    def _clashes(self, pkg: DebPackage, against: Sequence[_Have]) -> tuple[str, Relation, _Have] | None:
        for field in ("conflicts", "breaks"):
            for group in pkg.relations(field):
                for rel in group:
                    for have in against:
                        if have.name == pkg.name:
                            continue  # a package never conflicts with itself (e.g. Provides + Conflicts)
                        if have.name == rel.name and _version_ok(have.version, rel):
                            return field, rel, have
                        if have.pkg is not None and any(
                            p.name == rel.name and _provides_ok(p, rel) for p in have.pkg.provided()
                        ):
                            return field, rel, have
        return None

    def _check_conflicts(self, selected: Sequence[DebPackage]) -> None:
        everything = list(self.have.values())
        chosen = [h for h in everything if h.where == "selection"]
        pairs: list[tuple[DebPackage, Sequence[_Have]]] = [(p, everything) for p in selected]
        pairs += [(h.pkg, chosen) for h in everything if h.where == "base" and h.pkg is not None]
        for pkg, against in pairs:
            clash = self._clashes(pkg, against)
            if clash is None:
                continue
            field, rel, other = clash
            verb = "breaks" if field == "breaks" else "conflicts with"
            where = "in the base" if other.where == "base" else f"also needed{self._via(other.name)}"
            raise DebianError(
                f"Debian package {pkg}{self._via(pkg.name)} {verb} {rel}, "
                f"and {other.name} {other.version} is {where}"
            )

    def _via(self, name: str) -> str:
        chain = self.chains.get(name, ())
        return f" (via {' -> '.join(chain)})" if len(chain) > 1 else ""


def _parse_request(request: str) -> tuple[tuple[Relation, ...], ...]:
    """A request is a relation as in Depends (``jq``, ``libfoo (>= 2)``, ``a | b``) or apt's ``name=version``."""
    text = request.strip()
    if "=" in text and "(" not in text:
        name, _, version = text.partition("=")
        text = f"{name.strip()} (= {version.strip()})"
    try:
        groups = parse_relations(text)
    except ValueError as err:
        raise DebianError(f"invalid Debian package request {request!r}: {err}") from None
    if not groups:
        raise DebianError(f"invalid Debian package request {request!r}: empty")
    return groups


def resolve(requests: Sequence[str], index: PackageIndex, base: Mapping[str, str]) -> list[DebPin]:
    """The packages to add for ``requests`` on a base with the installed set ``base``, sorted by name."""
    return _Resolver(index, base).run(requests)
