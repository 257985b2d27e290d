"""The graph of bases, envs and pipelines (a networkx DiGraph) and its validation.

Nodes are ``("base", name)``, ``("env", name)`` and ``("pipeline", name)``; an edge points
from what is needed to what needs it (base -> env, parent env -> child env, env -> pipeline).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

import networkx as nx

from envgraph.errors import GraphError
from envgraph.spec import Spec

__all__ = ["Node", "EnvGraph", "build_graph"]

Node = tuple[str, str]


def _label(node: Node) -> str:
    return f"{node[0]} {node[1]}"


class EnvGraph:
    """A validated DAG over a :class:`~envgraph.spec.Spec`."""

    def __init__(self, spec: Spec, dag: nx.DiGraph) -> None:
        self.spec = spec
        self.dag = dag

    # -- queries -----------------------------------------------------------------
    def envs(self) -> list[str]:
        """Every env, parents before children, ties broken by name (stable across runs)."""
        order = nx.lexicographical_topological_sort(self.dag)
        return [name for kind, name in order if kind == "env"]

    def parent(self, env: str) -> str | None:
        return self.spec.env[env].parent

    def ancestors(self, env: str) -> list[str]:
        """The env's ancestors, root first."""
        chain: list[str] = []
        p = self.parent(env)
        while p is not None:
            chain.append(p)
            p = self.parent(p)
        return chain[::-1]

    def chain(self, env: str) -> list[str]:
        """Root ancestor first, the env itself last."""
        return [*self.ancestors(env), env]

    def root_base(self, env: str) -> str:
        base = self.spec.env[self.chain(env)[0]].base
        assert base is not None
        return base

    def descendants(self, env: str) -> set[str]:
        return {n for k, n in nx.descendants(self.dag, ("env", env)) if k == "env"}

    def children(self, env: str) -> list[str]:
        return sorted(n for k, n in self.dag.successors(("env", env)) if k == "env")

    def select(self, envs: Iterable[str] = (), pipelines: Iterable[str] = ()) -> list[str]:
        """The envs needed for the given envs and pipelines, with their ancestors, in topological order.

        Nothing asked for means everything.
        """
        envs, pipelines = list(envs), list(pipelines)
        for e in envs:
            if e not in self.spec.env:
                hint = f"; {e!r} is a pipeline: use --pipeline {e}" if e in self.spec.pipeline else ""
                raise GraphError(
                    f"unknown env {e!r} (known: {', '.join(sorted(self.spec.env)) or 'none'}){hint}"
                )
        for p in pipelines:
            if p not in self.spec.pipeline:
                known = ", ".join(sorted(self.spec.pipeline)) or "none"
                hint = f"; {p!r} is an env: name it without --pipeline" if p in self.spec.env else ""
                raise GraphError(f"unknown pipeline {p!r} (known: {known}){hint}")
        if not envs and not pipelines:
            return self.envs()
        wanted: set[str] = set(envs)
        for p in pipelines:
            wanted.update(self.spec.pipeline[p].steps.values())
        closure = set(wanted)
        for e in wanted:
            closure.update(self.ancestors(e))
        return [e for e in self.envs() if e in closure]

    def subgraph(self, envs: Iterable[str], pipelines: Iterable[str] = ()) -> nx.DiGraph:
        keep: set[Node] = set()
        for e in envs:
            keep.add(("env", e))
            keep.add(("base", self.root_base(e)))
        for p in pipelines:
            keep.add(("pipeline", p))
        if not list(pipelines):
            for p, pipe in self.spec.pipeline.items():
                if all(("env", e) in keep for e in pipe.steps.values()):
                    keep.add(("pipeline", p))
        return self.dag.subgraph(keep).copy()

    # -- rendering ----------------------------------------------------------------
    def _json(self, dag: nx.DiGraph) -> dict[str, Any]:
        """Nodes (an env's base/parent and the steps it runs; a pipeline's steps) and edges (env -> pipeline
        edges name the steps)."""
        edges = []
        for a, b in sorted(dag.edges):
            edge: dict[str, Any] = {"from": _label(a), "to": _label(b)}
            if a[0] == "env" and b[0] == "pipeline":
                edge["steps"] = sorted(s for s, e in self.spec.pipeline[b[1]].steps.items() if e == a[1])
            edges.append(edge)
        return {"nodes": [_node_json(self.spec, k, n) for k, n in sorted(dag.nodes)], "edges": edges}

    def render(self, fmt: str = "tree", pipeline: str | None = None) -> str:
        dag = self.dag
        if pipeline is not None:
            dag = self.subgraph(self.select(pipelines=[pipeline]), [pipeline])
        if fmt == "tree":
            return _tree(dag)
        if fmt == "dot":
            lines = ["digraph envgraph {", "  rankdir=LR;"]
            for n in sorted(dag.nodes):
                shape = {"base": "box", "env": "ellipse", "pipeline": "hexagon"}[n[0]]
                lines.append(f'  "{_label(n)}" [shape={shape}];')
            for a, b in sorted(dag.edges):
                lines.append(f'  "{_label(a)}" -> "{_label(b)}";')
            lines.append("}")
            return "\n".join(lines)
        if fmt == "mermaid":
            ids = {n: f"{n[0]}_{i}" for i, n in enumerate(sorted(dag.nodes))}
            lines = ["graph LR"]
            for n in sorted(dag.nodes):
                lines.append(f'  {ids[n]}["{_label(n)}"]')
            for a, b in sorted(dag.edges):
                lines.append(f"  {ids[a]} --> {ids[b]}")
            return "\n".join(lines)
        if fmt == "json":
            return json.dumps(self._json(dag), indent=2, sort_keys=True)
        raise GraphError(f"unknown graph format {fmt!r} (use tree, dot, mermaid or json)")


def _node_json(spec: Spec, kind: str, name: str) -> dict[str, Any]:
    out: dict[str, Any] = {"kind": kind, "name": name}
    if kind == "env":
        env = spec.env[name]
        out.update(base=env.base, parent=env.parent)
        out["steps"] = [
            {"pipeline": p, "step": s}
            for p, pipe in sorted(spec.pipeline.items())
            for s, e in sorted(pipe.steps.items())
            if e == name
        ]
    elif kind == "pipeline":
        out["steps"] = dict(sorted(spec.pipeline[name].steps.items()))
    return out


def _tree(dag: nx.DiGraph) -> str:
    lines: list[str] = []

    def walk(node: Node, depth: int) -> None:
        extra = ""
        if node[0] == "pipeline":
            return
        users = sorted(s for s in dag.successors(node) if s[0] == "pipeline")
        if users:
            extra = "  (used by " + ", ".join(f"pipeline {p}" for _, p in users) + ")"
        lines.append("  " * depth + _label(node) + extra)
        for child in sorted(s for s in dag.successors(node) if s[0] != "pipeline"):
            walk(child, depth + 1)

    for root in sorted(n for n in dag.nodes if n[0] == "base"):
        walk(root, 0)
    pipelines = sorted(n for n in dag.nodes if n[0] == "pipeline")
    for kind, name in pipelines:
        steps = ", ".join(f"{s}=env {e}" for (_, e), s in _steps(dag, (kind, name)))
        lines.append(f"pipeline {name}: {steps}")
    return "\n".join(lines)


def _steps(dag: nx.DiGraph, node: Node) -> list[tuple[Node, str]]:
    out = []
    for pred in dag.predecessors(node):
        for step in dag.edges[pred, node]["steps"]:
            out.append((pred, step))
    return sorted(out, key=lambda t: t[1])


def build_graph(spec: Spec) -> EnvGraph:
    """Validate references and acyclicity; one clear error per problem, no traceback."""
    dag = nx.DiGraph()
    for name in spec.bases:
        dag.add_node(("base", name))
    for name in spec.env:
        dag.add_node(("env", name))
    for name in spec.pipeline:
        dag.add_node(("pipeline", name))

    for name, env in sorted(spec.env.items()):
        if env.base is not None:
            if env.base not in spec.bases:
                raise GraphError(f"env.{name}: unknown base {env.base!r} (known: {_known(spec.bases)})")
            dag.add_edge(("base", env.base), ("env", name))
        if env.parent is not None:
            if env.parent not in spec.env:
                raise GraphError(f"env.{name}: unknown parent env {env.parent!r} (known: {_known(spec.env)})")
            dag.add_edge(("env", env.parent), ("env", name))

    for name, pipe in sorted(spec.pipeline.items()):
        if not pipe.steps:
            raise GraphError(f"pipeline.{name}: no steps")
        for step, env_name in sorted(pipe.steps.items()):
            if env_name not in spec.env:
                raise GraphError(
                    f"pipeline.{name}: step {step!r} uses unknown env {env_name!r} (known: {_known(spec.env)})"
                )
            edge = dag.get_edge_data(("env", env_name), ("pipeline", name))
            steps = (edge["steps"] if edge else []) + [step]
            dag.add_edge(("env", env_name), ("pipeline", name), steps=steps)

    try:
        cycle = nx.find_cycle(dag)
    except nx.NetworkXNoCycle:
        cycle = None
    if cycle:
        path = [cycle[0][0]] + [b for _, b in cycle]
        raise GraphError("cycle in env parents: " + " -> ".join(n for _, n in path))
    return EnvGraph(spec, dag)


def _known(names: Iterable[str]) -> str:
    return ", ".join(sorted(names)) or "none"
