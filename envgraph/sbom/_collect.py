"""Gather an env's SBOM input from its lockfiles (the env and its ancestors), its base lock and the wheels."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from importlib.metadata import version as dist_version
from pathlib import Path

from envgraph.graph import EnvGraph
from envgraph.lock._metadata import WheelMetadata, read_wheel_metadata
from envgraph.lock._model import BaseLock, Lockfile, Wheel
from envgraph.lock._requires import parse_roots, requirement_graph
from envgraph.sbom._model import DebEntry, PythonEntry, SbomInput

__all__ = ["collect", "wheel_metadata"]


def wheel_metadata(
    locks: Mapping[str, Lockfile], graph: EnvGraph, env: str, fetch: Callable[[Wheel], Path]
) -> dict[str, WheelMetadata]:
    """Package name -> METADATA of its pinned wheel, for every package of the env's closure that has one.

    ``fetch`` gives the verified wheel file (the wheel cache: fetched by hash when missing, so the answer does
    not depend on what this machine happened to have cached)."""
    wheels = [(p.name, p.wheel) for e in graph.chain(env) for p in locks[e].packages if p.wheel is not None]

    def one(item: tuple[str, Wheel]) -> tuple[str, WheelMetadata]:
        name, wheel = item
        return name, read_wheel_metadata(fetch(wheel), wheel.filename)

    with ThreadPoolExecutor(max_workers=4, thread_name_prefix="metadata") as pool:
        return dict(pool.map(one, wheels))


def collect(
    locks: Mapping[str, Lockfile],
    graph: EnvGraph,
    env: str,
    base: BaseLock | None,
    image_digest: str | None,
    metadata: Mapping[str, WheelMetadata],
    markers: Mapping[str, str],
) -> SbomInput:
    python = tuple(
        PythonEntry(p, e, metadata.get(p.name) if p.wheel is not None else None)
        for e in graph.chain(env)
        for p in locks[e].packages
    )
    debian: list[DebEntry] = []
    suite = None
    if base is not None and base.debian is not None:
        suite = base.debian.suite
        debian += [DebEntry(n, v, None, None, None) for n, v in sorted(base.debian.versions.items())]
    for e in graph.chain(env):
        apt = locks[e].apt
        if apt is not None:
            debian += [DebEntry(d.name, d.version, d.architecture, d.sha256, e) for d in apt.packages]
    from packaging.utils import canonicalize_name

    closure = {p.package.name: p.metadata for p in python}
    roots = parse_roots(r for e in graph.chain(env) for r in locks[e].requirements)
    graph_edges = requirement_graph(closure, roots, markers)
    return SbomInput(
        env=env,
        drv=locks[env].drv,
        image_digest=image_digest,
        python=python,
        debian=tuple(debian),
        base=base,
        suite=suite,
        tool_version=dist_version("envgraph"),
        requires={n: tuple(e.name for e in edges) for n, edges in graph_edges.items()},
        roots=tuple(sorted({canonicalize_name(r.name) for r in roots} & graph_edges.keys())),
    )
