"""How fast the dashboard answers for a large project: a synthetic graph of N envs (default 1,000) with built
images sharing layers, 100 pipelines, and R recorded builds in a real SQLite history, served through the real app.

    .venv/bin/python -m benchmarks.dashboard_scale [--envs 1000] [--runs 300]

Prints the seconds per request (cold: first request after a change; warm: facts cached) for each page and API.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from envgraph.graph import build_graph
from envgraph.history import EnvRecord, RunRecord, open_history
from envgraph.server._dashboard import Dashboard
from envgraph.server._facts import EnvFacts, ImageFacts, LayerFacts, PackageFacts, ProjectFacts
from envgraph.spec import Base, Env, Pipeline, Project, Spec

PATHS = ["/ui/", "/api/graph", "/ui/env/env0500", "/api/envs/env0500", "/ui/history", "/api/runs",
         "/ui/where", "/api/where/p050/s2", "/ui/diff?from=1&to={last}"]  # fmt: skip


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def synthetic_facts(n_envs: int, n_pipelines: int = 100, seed: int = 7) -> ProjectFacts:
    """N envs in 20 trees on 2 bases, 3 packages added per env, one layer per package (so children share their
    ancestors' layers), and pipelines of 5 steps over random envs."""
    rng = random.Random(seed)
    names = [f"env{i:04d}" for i in range(n_envs)]
    envs: dict[str, Env] = {}
    for i, name in enumerate(names):
        if i < 20:
            envs[name] = Env(base="debian" if i % 2 else "slim")
        else:
            envs[name] = Env(parent=names[rng.randrange(max(0, i - 200), i)])
    pipelines = {
        f"p{j:03d}": Pipeline(steps={f"s{k}": names[rng.randrange(n_envs)] for k in range(5)})
        for j in range(n_pipelines)
    }
    spec = Spec(
        project=Project(name="synthetic", python="3.11"),
        bases={
            "debian": Base(image="scratch", python="/usr/bin/python3"),
            "slim": Base(image="scratch", python="/p"),
        },
        env=envs,
        pipeline=pipelines,
    )
    graph = build_graph(spec)
    own = {name: [(f"pkg-{name}-{k}", f"1.{k}") for k in range(3)] for name in names}
    facts: dict[str, EnvFacts] = {}
    for name in names:
        chain = graph.chain(name)
        base = graph.root_base(name)
        venv = LayerFacts(_digest("venv" + base), 20_000, "venv")
        packages = []
        layers = [venv]
        for a in chain:
            for pkg, version in own[a]:
                layer = LayerFacts(_digest(pkg + version), 1_000_000 + len(pkg) * 1000, f"{pkg} {version}")
                layers.append(layer)
                packages.append(PackageFacts(pkg, version, layer))
        drv = _digest("drv" + name)
        image = ImageFacts(
            f"{name}:{drv[7:19]}", _digest("img" + name), sum(la.size for la in layers), tuple(layers)
        )
        facts[name] = EnvFacts(name, graph.parent(name), base, drv, drv, _digest("lock" + name), tuple(packages), image,
                               ((image.tag, image.digest), (f"{name}:latest", image.digest)))  # fmt: skip
    return ProjectFacts("synthetic", graph, facts)


def fill_history(url: str, facts: ProjectFacts, runs: int) -> None:
    history = open_history(url)
    assert history is not None
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for i in range(runs):
        envs = tuple(
            EnvRecord(e.name, e.drv or "", e.lock_digest, {p.name: p.version if i < runs - 1 else "2.0" for p in e.packages},
                      "built", e.image.digest if e.image else None, 1000, 0.1, i % 3, 5, 0)
            for e in facts.envs.values()
        ) if i in (0, runs - 1) else ()  # fmt: skip
        history.add(RunRecord("build", "synthetic", start + timedelta(hours=i), 1.0 + i % 7, True, "u", "h",
                              layers_built=i % 5, layers_reused=10, layers_pulled=i % 2, bytes_written=i * 1000,
                              envs=envs))  # fmt: skip
    history.close()


class SyntheticDashboard(Dashboard):
    def __init__(self, facts: ProjectFacts, history_url: str) -> None:
        super().__init__(None, None, None, history_url)
        self._synthetic = facts

    def facts(self) -> ProjectFacts:
        return self._synthetic


def measure(n_envs: int = 1000, runs: int = 300, work: Path | None = None) -> dict[str, Any]:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from envgraph.server._dashboard import dashboard_routes

    t0 = time.perf_counter()
    facts = synthetic_facts(n_envs)
    made = time.perf_counter() - t0
    with tempfile.TemporaryDirectory(dir=work) as tmp:
        url = f"sqlite:///{Path(tmp) / 'history.sqlite'}"
        fill_history(url, facts, runs)
        app = Starlette(routes=dashboard_routes(SyntheticDashboard(facts, url)))
        out: dict[str, Any] = {"envs": n_envs, "runs": runs, "facts_seconds": round(made, 3), "pages": {}}
        with TestClient(app) as client:
            for path in PATHS:
                path = path.format(last=runs)
                timings = []
                size = 0
                for _ in range(3):
                    t = time.perf_counter()
                    r = client.get(path)
                    timings.append(time.perf_counter() - t)
                    assert r.status_code == 200, (path, r.status_code, r.text[:200])
                    size = len(r.content)
                out["pages"][path] = {
                    "first": round(timings[0], 3),
                    "best": round(min(timings), 3),
                    "bytes": size,
                }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=300)
    args = parser.parse_args()
    result = measure(args.envs, args.runs)
    print(f"{result['envs']} envs, {result['runs']} runs; synthetic facts made in {result['facts_seconds']}s")
    for path, t in result["pages"].items():
        print(f"{path:<28} first {t['first']:.3f}s  best {t['best']:.3f}s  {t['bytes'] / 1e3:8.1f} kB")


if __name__ == "__main__":
    main()
