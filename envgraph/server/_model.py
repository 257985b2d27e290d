"""The dashboard's data as JSON-ready dicts: pure functions of :class:`ProjectFacts` and history records.

The JSON API returns these as they are and the HTML pages render them, so both always agree.
"""

from __future__ import annotations

import weakref
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from envgraph.history._records import EnvRecord, RunRecord
from envgraph.identity import drv12, registry_tag
from envgraph.lock._diff import diff_packages
from envgraph.registry._records import PushRecord
from envgraph.server._facts import EnvFacts, ProjectFacts

__all__ = ["diff_model", "env_model", "graph_model", "run_model", "where_model"]

SHARED_WITH_LIMIT = 12
"""Envs listed per env as sharing layers with it (the most shared first); the count of all is given too."""


_SHARING: weakref.WeakKeyDictionary[ProjectFacts, dict[str, tuple[int, list[tuple[str, int]], int]]] = (
    weakref.WeakKeyDictionary()
)


def _sharing(facts: ProjectFacts) -> dict[str, tuple[int, list[tuple[str, int]], int]]:
    """env -> (its layers also in another env, [(other env, layers shared)] most first, how many envs share)."""
    cached = _SHARING.get(facts)
    if cached is None:
        cached = _SHARING[facts] = _compute_sharing(facts)
    return cached


def _compute_sharing(facts: ProjectFacts) -> dict[str, tuple[int, list[tuple[str, int]], int]]:
    users: dict[str, list[str]] = {}
    for env in facts.envs.values():
        if env.image is not None:
            for digest in {layer.digest for layer in env.image.layers}:
                users.setdefault(digest, []).append(env.name)
    out: dict[str, tuple[int, list[tuple[str, int]], int]] = {}
    for env in facts.envs.values():
        if env.image is None:
            out[env.name] = (0, [], 0)
            continue
        counts: Counter[str] = Counter()
        shared = 0
        for digest in {layer.digest for layer in env.image.layers}:
            others = users[digest]
            if len(others) > 1:
                shared += 1
                counts.update(others)
        del counts[env.name]
        top = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[env.name] = (shared, top[:SHARED_WITH_LIMIT], len(top))
    return out


def _steps(facts: ProjectFacts) -> dict[str, list[tuple[str, str]]]:
    """env -> [(pipeline, step)]"""
    out: dict[str, list[tuple[str, str]]] = {}
    for name, pipe in sorted(facts.graph.spec.pipeline.items()):
        for step, env in sorted(pipe.steps.items()):
            out.setdefault(env, []).append((name, step))
    return out


def graph_model(facts: ProjectFacts, pipeline: str | None = None) -> dict[str, Any]:
    """Pipelines -> steps -> envs -> bases, each env with its drv, image digest, size and shared layers; with
    ``pipeline``, only what that pipeline needs (its steps' envs, their ancestors and bases)."""
    sharing = _sharing(facts)
    steps = _steps(facts)
    spec = facts.graph.spec
    selected = set(facts.graph.select(pipelines=[pipeline])) if pipeline is not None else None
    envs = []
    for name in facts.graph.envs():
        if selected is not None and name not in selected:
            continue
        e = facts.envs[name]
        shared, top, n_sharing = sharing[name]
        envs.append(
            {
                "name": name,
                "parent": e.parent,
                "base": e.base,
                "drv": e.drv,
                "image_id": e.ident,
                "digest": e.image.digest if e.image else None,
                "size": e.image.size if e.image else None,
                "layers": len(e.image.layers) if e.image else None,
                "packages": len(e.packages),
                "shared_layers": shared,
                "shared_with": [{"env": other, "layers": n} for other, n in top],
                "sharing_envs": n_sharing,
                "steps": [{"pipeline": p, "step": s} for p, s in steps.get(name, ())],
            }
        )
    used_bases = {e["base"] for e in envs}
    bases = []
    for name, base in sorted(spec.bases.items()):
        if selected is not None and name not in used_bases:
            continue
        kind = "debian" if base.debian is not None else "image" if base.image else "scratch"
        bases.append({"name": name, "kind": kind, "image": base.image})
    pipelines = [
        {"name": name, "steps": [{"step": s, "env": env} for s, env in sorted(pipe.steps.items())]}
        for name, pipe in sorted(spec.pipeline.items())
        if pipeline in (None, name)
    ]
    return {"project": facts.name, "bases": bases, "envs": envs, "pipelines": pipelines}


def env_model(
    facts: ProjectFacts, env: EnvFacts, pushes: Sequence[tuple[PushRecord, datetime]], host: str
) -> dict[str, Any]:
    """One env: what it is, its packages (with the layer holding each) and the images using it."""
    shared, top, n_sharing = _sharing(facts)[env.name]
    current = env.image.digest if env.image else None
    return {
        "name": env.name,
        "parent": env.parent,
        "base": env.base,
        "chain": facts.graph.chain(env.name),
        "children": sorted(facts.graph.children(env.name)),
        "drv": env.drv,
        "image_id": env.ident,
        "lock_digest": env.lock_digest,
        "digest": current,
        "size": env.image.size if env.image else None,
        "layers": [
            {"digest": layer.digest, "size": layer.size, "label": layer.label}
            for layer in (env.image.layers if env.image else ())
        ],
        "packages": [
            {
                "name": p.name,
                "version": p.version,
                "size": p.layer.size if p.layer else None,
                "layer": p.layer.digest if p.layer else None,
            }
            for p in env.packages
        ],
        "shared_layers": shared,
        "shared_with": [{"env": other, "layers": n} for other, n in top],
        "sharing_envs": n_sharing,
        "steps": [{"pipeline": p, "step": s} for p, s in _steps(facts).get(env.name, ())],
        "images": [
            {
                "where": "store",
                "tag": tag,
                "reference": f"{host}/{tag}",
                "digest": digest,
                "current": digest == current,
            }
            for tag, digest in env.tags
        ]
        + [
            {
                "where": "registry",
                "tag": p.tag,
                "reference": f"{p.registry}/{p.repository}:{p.tag}",
                "digest": p.digest,
                "current": p.digest == current,
                "pushed": when.isoformat(),
            }
            for p, when in pushes
        ],
    }


def where_model(
    facts: ProjectFacts, pushes: Sequence[tuple[PushRecord, datetime]], host: str
) -> list[dict[str, Any]]:
    """For each pipeline step: the env, the reference to pull from this server and the digests pushed."""
    by_env: dict[str, list[tuple[PushRecord, datetime]]] = {}
    for p, when in pushes:
        by_env.setdefault(p.env, []).append((p, when))
    out = []
    for name, pipe in sorted(facts.graph.spec.pipeline.items()):
        for step, env in sorted(pipe.steps.items()):
            e = facts.envs[env]
            current = e.image.digest if e.image else None
            pushed = [
                {
                    "registry": p.registry,
                    "repository": p.repository,
                    "tag": p.tag,
                    "reference": f"{p.registry}/{p.repository}:{p.tag}",
                    "pinned": f"{p.registry}/{p.repository}@{p.digest}",
                    "digest": p.digest,
                    "current": p.digest == current,
                    "pushed": when.isoformat(),
                }
                for p, when in by_env.get(env, ())
                if e.ident is None or p.tag == registry_tag(env, e.ident) or p.digest == current
            ]
            out.append(
                {
                    "pipeline": name,
                    "step": step,
                    "env": env,
                    "drv": e.drv,
                    "digest": current,
                    "reference": f"{host}/{env}:{drv12(e.ident)}" if e.ident and current else None,
                    "pinned": f"{host}/{env}@{current}" if current else None,
                    "pushed": pushed,
                }
            )
    return out


def run_model(run: RunRecord, *, full: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": run.id,
        "kind": run.kind,
        "project": run.project,
        "started": run.started.isoformat(),
        "seconds": run.seconds,
        "ok": run.ok,
        "user": run.user,
        "host": run.host,
        "selection": list(run.selection),
        "layers_built": run.layers_built,
        "layers_reused": run.layers_reused,
        "layers_pulled": run.layers_pulled,
        "bytes_written": run.bytes_written,
        "error": run.error,
    }
    if full:
        out["report"] = run.report
        out["envs"] = [
            {
                "env": e.env,
                "drv": e.drv,
                "lock_digest": e.lock_digest,
                "status": e.status,
                "digest": e.digest,
                "bytes": e.bytes,
                "seconds": e.seconds,
                "layers_built": e.layers_built,
                "layers_reused": e.layers_reused,
                "layers_pulled": e.layers_pulled,
                "packages": e.packages,
            }
            for e in run.envs
        ]
        out["pushes"] = [
            {"env": p.env, "reference": p.reference, "digest": p.digest, "bytes_uploaded": p.bytes_uploaded}
            for p in run.pushes
        ]
    return out


def diff_model(
    old: Mapping[str, EnvRecord], new: Mapping[str, EnvRecord], env: str | None = None
) -> list[dict[str, Any]]:
    """Per env, the package changes between two runs (envgraph.lock.diff_packages, as `envgraph diff`)."""
    names = sorted(set(old) | set(new)) if env is None else [env]
    out = []
    for name in names:
        a, b = old.get(name), new.get(name)
        d = diff_packages(a.packages if a else {}, b.packages if b else {})
        out.append(
            {
                "env": name,
                "in_old": a is not None,
                "in_new": b is not None,
                "old_drv": a.drv if a else None,
                "new_drv": b.drv if b else None,
                "added": [{"name": n, "version": v} for n, v in d.added],
                "removed": [{"name": n, "version": v} for n, v in d.removed],
                "changed": [{"name": c.name, "old": c.old, "new": c.new} for c in d.changed],
                "unchanged": d.empty and (a is None) == (b is None),
            }
        )
    return out
