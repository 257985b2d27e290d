"""Why a package is in an env: the chains of requirements from what the env (or an ancestor) declares down to
it, like ``nix why-depends``. Pure: the requirement graph (:mod:`envgraph.lock._requires`) in, chains out."""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping, Sequence

from attrs import frozen
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from envgraph.lock._requires import Edge

__all__ = ["Chain", "Why", "why"]

MAX_PATHS = 100  # per declared requirement, with all_paths: graphs of big envs have very many


@frozen
class Chain:
    declared_in: str  # the env whose requirements start the chain
    requirement: str  # as declared
    packages: tuple[str, ...]  # canonical names, from the declared package to the one asked about


@frozen
class Why:
    env: str
    package: str  # canonical name
    version: str
    pinned_by: str  # the env of the chain whose lock has the package (the env itself, or an ancestor)
    chains: tuple[Chain, ...]


def _shortest(graph: Mapping[str, Sequence[Edge]], start: str, target: str) -> list[tuple[str, ...]]:
    prev: dict[str, str | None] = {start: None}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        if node == target:
            path = [node]
            while (p := prev[path[-1]]) is not None:
                path.append(p)
            return [tuple(reversed(path))]
        for e in graph.get(node, ()):
            if e.name not in prev:
                prev[e.name] = node
                queue.append(e.name)
    return []


def _all(graph: Mapping[str, Sequence[Edge]], start: str, target: str) -> list[tuple[str, ...]]:
    out: list[tuple[str, ...]] = []

    def walk(path: tuple[str, ...]) -> None:
        if len(out) >= MAX_PATHS:
            return
        if path[-1] == target:
            out.append(path)
            return
        for e in graph.get(path[-1], ()):
            if e.name not in path:
                walk((*path, e.name))

    walk((start,))
    return sorted(out, key=lambda p: (len(p), p))


def why(
    env: str,
    chain: Sequence[str],
    declared: Mapping[str, Sequence[Requirement]],
    pinned: Mapping[str, Mapping[str, str]],
    graph: Mapping[str, Sequence[Edge]],
    package: str,
    *,
    all_paths: bool = False,
) -> Why | None:
    """``chain``: the env's ancestors and itself, root first; ``declared``: each one's parsed requirements (those
    applying to the target); ``pinned``: each one's locked canonical name -> version. None when the env does not
    have ``package``."""
    target = canonicalize_name(package)
    owner = next((e for e in chain if target in pinned[e]), None)
    if owner is None:
        return None
    find = _all if all_paths else _shortest
    chains = []
    for e in chain:
        for req in declared[e]:
            start = canonicalize_name(req.name)
            for path in find(graph, start, target) if start in graph or start == target else []:
                chains.append(Chain(e, str(req), path))
    return Why(env, target, pinned[owner][target], owner, tuple(chains))
