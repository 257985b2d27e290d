"""Frozen records of one benchmark run: what the JSON file holds."""

from __future__ import annotations

from typing import Any

import attrs

SCENARIOS: tuple[str, ...] = ("cold", "noop", "core-bump", "leaf-bump", "add-pipeline")
CONTENDERS: tuple[str, ...] = ("per-pipeline-docker", "docker-cache", "buildkit-uv", "envgraph")
BASELINES: tuple[str, ...] = CONTENDERS[:-1]
# The metrics every measurement carries (None with a note when a contender cannot give one).
METRICS: tuple[str, ...] = (
    "wall_seconds",
    "cpu_seconds",
    "bytes_stored",
    "bytes_pushed",
    "push_seconds",
    "layers_built",
    "images",
    "peak_rss_bytes",
)


@attrs.frozen
class Measurement:
    """One contender in one scenario."""

    contender: str
    scenario: str
    ok: bool
    wall_seconds: float | None = None
    cpu_seconds: float | None = None
    bytes_stored: int | None = None
    bytes_pushed: int | None = None
    push_seconds: float | None = None
    layers_built: int | None = None
    images: int | None = None
    # envgraph: the largest process of the build (its own or a child's), exact (wait4). Docker: the sum
    # over the daemon's processes, the build containers' and the CLIs', sampled every 0.1 s.
    peak_rss_bytes: int | None = None
    notes: tuple[str, ...] = ()


@attrs.frozen
class LowerBound:
    """What merely unpacking the wheels that are new in a scenario costs: the floor for any builder."""

    scenario: str
    unique_wheels: int
    wheel_bytes: int
    installed_bytes: int
    unpack_seconds: float  # zipfile extractall, one thread, to a temp dir
    # Inflating every member once on all cores, writing nothing: the work no builder can avoid.
    inflate_seconds: float = 0.0
    inflate_threads: int = 0
    # Bytes stored can't drop below every unique wheel seen so far, installed once.
    cumulative_installed_bytes: int = 0


@attrs.frozen
class RunResult:
    workload: str
    quick: bool
    date: str
    machine: dict[str, Any]
    workload_info: dict[str, Any]
    lower_bounds: tuple[LowerBound, ...]
    measurements: tuple[Measurement, ...]
    ratios: dict[str, dict[str, dict[str, float | None]]]
    missing: tuple[str, ...] = ()


def to_json(result: RunResult) -> dict[str, Any]:
    return attrs.asdict(result)


def ratios(measurements: tuple[Measurement, ...]) -> dict[str, dict[str, dict[str, float | None]]]:
    """``ratios[baseline][scenario][metric]`` = baseline / envgraph (None when either side is missing or zero)."""
    by = {(m.contender, m.scenario): m for m in measurements}
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for base in BASELINES:
        for scenario in SCENARIOS:
            b, e = by.get((base, scenario)), by.get(("envgraph", scenario))
            if b is None or e is None:
                continue
            row: dict[str, float | None] = {}
            for metric in ("wall_seconds", "cpu_seconds", "bytes_stored", "bytes_pushed", "layers_built"):
                bv, ev = getattr(b, metric), getattr(e, metric)
                row[metric] = round(bv / ev, 2) if bv is not None and ev not in (None, 0) else None
            out.setdefault(base, {})[scenario] = row
    return out
