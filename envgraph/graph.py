"""The graph of bases, envs and pipelines and its validation.

Nodes are ``("base", name)``, ``("env", name)`` and ``("pipeline", name)``; an edge points
from what is needed to what needs it (base -> env, parent env -> child env, env -> pipeline).

The DAG is a small adjacency structure of our own, not networkx: every command builds it, and a
no-op build must not pay networkx's import (about a third of its wall time). Each query is linear.
"""

from __future__ import annotations

import difflib
import heapq
import json
from collections.abc import Iterable
from typing import Any

from envgraph._convert import quote
from envgraph.errors import GraphError
from envgraph.spec import Spec

__all__ = ["Dag", "Node", "EnvGraph", "build_graph", "unknown_name"]

Node = tuple[str, str]


class Dag:
    """Nodes, edges (with their pipeline steps) and adjacency in both directions."""

    def __init__(self) -> None:
        self.succ: dict[Node, dict[Node, list[str]]] = {}
        self.pred: dict[Node, dict[Node, list[str]]] = {}

    def add_node(self, n: Node) -> None:
        self.succ.setdefault(n, {})
        self.pred.setdefault(n, {})

    def add_edge(self, a: Node, b: Node, steps: Iterable[str] = ()) -> None:
        self.add_node(a)
        self.add_node(b)
        self.succ[a].setdefault(b, []).extend(steps)
        self.pred[b][a] = self.succ[a][b]

    @property
    def nodes(self) -> list[Node]:
        return list(self.succ)

    @property
    def edges(self) -> list[tuple[Node, Node]]:
        return [(a, b) for a, out in self.succ.items() for b in out]

    def steps(self, a: Node, b: Node) -> list[str]:
        return self.succ[a][b]

    def successors(self, n: Node) -> list[Node]:
        return list(self.succ[n])

    def predecessors(self, n: Node) -> list[Node]:
        return list(self.pred[n])

    def subgraph(self, keep: set[Node]) -> Dag:
        sub = Dag()
        for n in self.succ:
            if n in keep:
                sub.add_node(n)
        for a, b in self.edges:
            if a in keep and b in keep:
                sub.add_edge(a, b, self.succ[a][b])
        return sub

    def topological_order(self) -> list[Node]:
        """Kahn's algorithm, the smallest ready node first (lexicographic): stable across runs. Raises
        GraphError naming a cycle when there is one."""
        indegree = {n: len(p) for n, p in self.pred.items()}
        ready = [n for n, d in indegree.items() if d == 0]
        heapq.heapify(ready)
        order: list[Node] = []
        while ready:
            n = heapq.heappop(ready)
            order.append(n)
            for m in self.succ[n]:
                indegree[m] -= 1
                if indegree[m] == 0:
                    heapq.heappush(ready, m)
        if len(order) != len(self.succ):
            raise GraphError("cycle in env parents: " + " -> ".join(n for _, n in self._cycle(set(order))))
        return order

    def generations(self) -> list[list[Node]]:
        """Nodes in layers: each one's predecessors are all in earlier layers."""
        indegree = {n: len(p) for n, p in self.pred.items()}
        layer = sorted(n for n, d in indegree.items() if d == 0)
        out: list[list[Node]] = []
        while layer:
            out.append(layer)
            nxt = []
            for n in layer:
                for m in self.succ[n]:
                    indegree[m] -= 1
                    if indegree[m] == 0:
                        nxt.append(m)
            layer = sorted(nxt)
        return out

    def descendants(self, n: Node) -> set[Node]:
        seen: set[Node] = set()
        stack = list(self.succ[n])
        while stack:
            m = stack.pop()
            if m not in seen:
                seen.add(m)
                stack.extend(self.succ[m])
        return seen

    def _cycle(self, done: set[Node]) -> list[Node]:
        """One cycle among the nodes a topological sort could not order, closed (first node repeated)."""
        n = min(m for m in self.succ if m not in done)
        path: list[Node] = []
        index: dict[Node, int] = {}
        while n not in index:
            index[n] = len(path)
            path.append(n)
            n = min(m for m in self.succ[n] if m not in done)
        return [*path[index[n] :], n]


def _label(node: Node) -> str:
    return f"{node[0]} {node[1]}"


class EnvGraph:
    """A validated DAG over a :class:`~envgraph.spec.Spec`."""

    def __init__(self, spec: Spec, dag: Dag) -> None:
        self.spec = spec
        self.dag = dag
        self._envs = [name for kind, name in dag.topological_order() if kind == "env"]

    # -- queries -----------------------------------------------------------------
    def envs(self) -> list[str]:
        """Every env, parents before children, ties broken by name (stable across runs)."""
        return list(self._envs)

    def generations(self, envs: Iterable[str]) -> list[list[str]]:
        """The given envs in generations: an env comes after its parent when both are given."""
        sub = self.dag.subgraph({("env", e) for e in envs})
        return [[n for _, n in layer] for layer in sub.generations()]

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
        return {n for k, n in self.dag.descendants(("env", env)) if k == "env"}

    def children(self, env: str) -> list[str]:
        return sorted(n for k, n in self.dag.successors(("env", env)) if k == "env")

    def select(self, envs: Iterable[str] = (), pipelines: Iterable[str] = ()) -> list[str]:
        """The envs needed for the given envs and pipelines, with their ancestors, in topological order.

        Nothing asked for means everything.
        """
        envs, pipelines = list(envs), list(pipelines)
        for e in envs:
            if e not in self.spec.env:
                hint = f"; {quote(e)} is a pipeline: use --pipeline {e}" if e in self.spec.pipeline else ""
                raise GraphError(unknown_name("env", e, self.spec.env) + hint)
        for p in pipelines:
            if p not in self.spec.pipeline:
                hint = f"; {quote(p)} is an env: name it without --pipeline" if p in self.spec.env else ""
                raise GraphError(unknown_name("pipeline", p, self.spec.pipeline) + hint)
        if not envs and not pipelines:
            return self.envs()
        wanted: set[str] = set(envs)
        for p in pipelines:
            wanted.update(self.spec.pipeline[p].steps.values())
        closure = set(wanted)
        for e in wanted:
            closure.update(self.ancestors(e))
        return [e for e in self._envs if e in closure]

    def subgraph(self, envs: Iterable[str], pipelines: Iterable[str] = ()) -> Dag:
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
        return self.dag.subgraph(keep)

    # -- rendering ----------------------------------------------------------------
    def _json(self, dag: Dag) -> dict[str, Any]:
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


def _tree(dag: Dag) -> str:
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


def _steps(dag: Dag, node: Node) -> list[tuple[Node, str]]:
    out = []
    for pred in dag.predecessors(node):
        for step in dag.steps(pred, node):
            out.append((pred, step))
    return sorted(out, key=lambda t: t[1])


def build_graph(spec: Spec) -> EnvGraph:
    """Validate references and acyclicity; one clear error per problem, no traceback."""
    dag = Dag()
    for name in spec.bases:
        dag.add_node(("base", name))
    for name in spec.env:
        dag.add_node(("env", name))
    for name in spec.pipeline:
        dag.add_node(("pipeline", name))

    for name, env in sorted(spec.env.items()):
        if env.base is not None:
            if env.base not in spec.bases:
                raise GraphError(
                    f"env.{name}: unknown base {quote(env.base)} ({_known(spec.bases, env.base)})"
                )
            dag.add_edge(("base", env.base), ("env", name))
        if env.parent is not None:
            if env.parent not in spec.env:
                raise GraphError(
                    f"env.{name}: unknown parent env {quote(env.parent)} ({_known(spec.env, env.parent)})"
                )
            dag.add_edge(("env", env.parent), ("env", name))

    for name, pipe in sorted(spec.pipeline.items()):
        if not pipe.steps:
            raise GraphError(f"pipeline.{name}: no steps")
        for step, env_name in sorted(pipe.steps.items()):
            if env_name not in spec.env:
                raise GraphError(
                    f"pipeline.{name}: step {quote(step)} uses unknown env {quote(env_name)} ({_known(spec.env, env_name)})"
                )
            dag.add_edge(("env", env_name), ("pipeline", name), [step])
    return EnvGraph(spec, dag)  # its topological sort names a cycle when there is one


def _known(names: Iterable[str], wanted: str) -> str:
    """What to say after an unknown name: the closest known names (difflib), and every known name while
    there are few; at platform scale (hundreds of envs) only the suggestions and how many there are."""
    names = sorted(names)
    close = difflib.get_close_matches(wanted, names, n=3, cutoff=0.6)
    hint = f"did you mean {' or '.join(close)}? " if close else ""
    if len(names) <= 12:
        return f"{hint}known: {', '.join(names) or 'none'}"
    return f"{hint}{len(names)} known; `envgraph graph` lists them"


def unknown_name(kind: str, wanted: str, names: Iterable[str]) -> str:
    """``unknown env 'trian' (did you mean train? known: core, serve, train)``: one line for any command."""
    return f"unknown {kind} {wanted!r} ({_known(names, wanted)})"
