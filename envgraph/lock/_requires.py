"""Which locked package requires which: ``Requires-Dist`` of the pinned wheels, markers evaluated for the target.

Pure: the closure's packages with their wheels' metadata and the target's marker environment in, edges out.
Extras count where something in the closure (or a top-level requirement) asks for them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from attrs import frozen
from packaging.markers import Marker
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from envgraph.lock._metadata import WheelMetadata

__all__ = ["Edge", "marker_environment", "parse_roots", "requirement_graph"]

_MACHINE = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le", "s390x": "s390x"}


@frozen
class Edge:
    name: str  # canonical name of the required package
    requirement: str  # as the wheel (or the declaration) writes it


def marker_environment(python: str, platform: str) -> dict[str, str]:
    """PEP 508 marker values of the target: ``python`` is major.minor[.micro], ``platform`` like linux/amd64."""
    parts = python.split(".")
    full = python if len(parts) >= 3 else f"{parts[0]}.{parts[1] if len(parts) > 1 else 0}.0"
    os_, _, arch = platform.partition("/")
    return {
        "implementation_name": "cpython",
        "implementation_version": full,
        "os_name": "posix",
        "platform_machine": _MACHINE.get(arch, arch),
        "platform_python_implementation": "CPython",
        "platform_release": "",
        "platform_system": os_.capitalize(),
        "platform_version": "",
        "python_full_version": full,
        "python_version": ".".join(full.split(".")[:2]),
        "sys_platform": os_,
    }


def parse_roots(requirements: Iterable[str]) -> list[Requirement]:
    """The declared requirements that name a package (paths, URLs without a name and options are left out)."""
    out = []
    for line in requirements:
        try:
            out.append(Requirement(line))
        except InvalidRequirement:
            continue
    return out


def _applies(req: Requirement, env: Mapping[str, str], extras: Iterable[str]) -> bool:
    if req.marker is None:
        return True
    marker: Marker = req.marker
    return any(marker.evaluate({**env, "extra": e}) for e in ("", *sorted(extras)))


def requirement_graph(
    metadata: Mapping[str, WheelMetadata | None],
    roots: Sequence[Requirement],
    env: Mapping[str, str],
) -> dict[str, tuple[Edge, ...]]:
    """Canonical name -> what it requires among the closure's packages (``metadata`` keys; a package without
    metadata, built from source, has no known edges), sorted by name."""
    names: dict[str, WheelMetadata | None] = {canonicalize_name(n): m for n, m in metadata.items()}
    extras: dict[str, set[str]] = {n: set() for n in names}
    for r in roots:
        if canonicalize_name(r.name) in extras and _applies(r, env, ()):
            extras[canonicalize_name(r.name)].update(r.extras)
    while True:  # extras switch on further requirements, which may ask for further extras
        graph = _edges(names, extras, env)
        changed = False
        for reqs in graph.values():
            for req in reqs:
                target = canonicalize_name(req.name)
                if not req.extras <= extras[target]:
                    extras[target] |= req.extras
                    changed = True
        if not changed:
            break
    return {
        n: tuple(
            sorted(
                {Edge(canonicalize_name(r.name), str(r)) for r in reqs}, key=lambda e: (e.name, e.requirement)
            )
        )
        for n, reqs in graph.items()
    }


def _edges(
    names: Mapping[str, WheelMetadata | None], extras: Mapping[str, set[str]], env: Mapping[str, str]
) -> dict[str, list[Requirement]]:
    out: dict[str, list[Requirement]] = {}
    for n, m in names.items():
        reqs: list[Requirement] = []
        for line in m.requires_dist if m is not None else ():
            try:
                req = Requirement(line)
            except InvalidRequirement:
                continue
            if canonicalize_name(req.name) in names and _applies(req, env, extras[n]):
                reqs.append(req)
        out[n] = reqs
    return out
