"""Output: the terminal table, the JSON file and the PNG chart."""

from __future__ import annotations

import json
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.records import CONTENDERS, SCENARIOS, RunResult, to_json


def _mb(n: int | None) -> str:
    return "–" if n is None else f"{n / 1e6:.1f}"


def _s(x: float | None) -> str:
    return "–" if x is None else f"{x:.2f}"


def table(result: RunResult, console: Console | None = None) -> None:
    console = console or Console()
    t = Table(
        title=f"envgraph benchmarks · {result.workload}{' (quick)' if result.quick else ''} · {result.date}"
    )
    for col in (
        "contender",
        "scenario",
        "wall s",
        "cpu s",
        "stored MB",
        "pushed MB",
        "layers built",
        "peak RSS MB",
        "wall ×envgraph",
    ):
        t.add_column(col, justify="left" if col in ("contender", "scenario") else "right")
    by = {(m.contender, m.scenario): m for m in result.measurements}
    for c in CONTENDERS:
        for s in SCENARIOS:
            m = by.get((c, s))
            if m is None:
                continue
            if not m.ok:
                why = (
                    "[yellow]skipped[/yellow]"
                    if any(n.startswith("skipped") for n in m.notes)
                    else "[red]failed[/red]"
                )
                t.add_row(c, s, why, "", "", "", "", "", "", end_section=s == SCENARIOS[-1])
                continue
            ratio = result.ratios.get(c, {}).get(s, {}).get("wall_seconds")
            t.add_row(
                c, s, _s(m.wall_seconds), _s(m.cpu_seconds), _mb(m.bytes_stored), _mb(m.bytes_pushed),
                "–" if m.layers_built is None else str(m.layers_built), _mb(m.peak_rss_bytes),
                "" if ratio is None else f"{ratio:.1f}×", end_section=s == SCENARIOS[-1],
            )  # fmt: skip
    for i, lb in enumerate(result.lower_bounds):
        t.add_row("unpack once, 1 thread", lb.scenario, _s(lb.unpack_seconds), "", _mb(lb.cumulative_installed_bytes),
                  "", f"{lb.unique_wheels} new wheels", "", "", end_section=i == len(result.lower_bounds) - 1)  # fmt: skip
    for lb in result.lower_bounds:  # the work no builder avoids, on every core, writing nothing
        t.add_row(f"inflate once, {lb.inflate_threads} threads", lb.scenario, _s(lb.inflate_seconds), "", "", "",
                  f"{lb.unique_wheels} new wheels", "", "")  # fmt: skip
    console.print(t)
    notes = [(m.contender, m.scenario, n) for m in result.measurements for n in m.notes]
    for c, s, n in notes:
        console.print(f"[dim]{c}/{s}: {n}[/dim]")
    for miss in result.missing:
        console.print(f"[yellow]missing: {miss}[/yellow]")


def write_json(result: RunResult, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(to_json(result), indent=1, sort_keys=True) + "\n")


def chart(result: RunResult, path: Path) -> None:
    """Grouped bars: wall seconds and bytes stored per scenario, one bar per contender plus the lower bound."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by = {(m.contender, m.scenario): m for m in result.measurements if m.ok}
    lbs = {lb.scenario: lb for lb in result.lower_bounds}
    series = [c for c in CONTENDERS if any((c, s) in by for s in SCENARIOS)] + ["lower bound", "inflate once"]
    fig, axes = plt.subplots(1, 2, figsize=(13, 4.8))
    width = 0.8 / max(len(series), 1)
    for ax, metric, label in (
        (axes[0], "wall_seconds", "wall seconds"),
        (axes[1], "bytes_stored", "MB stored"),
    ):
        for i, c in enumerate(series):
            vals = []
            for s in SCENARIOS:
                lb = lbs.get(s)
                if c == "lower bound":
                    v = (
                        (lb.unpack_seconds if metric == "wall_seconds" else lb.cumulative_installed_bytes)
                        if lb
                        else None
                    )
                elif c == "inflate once":  # a time only: it stores nothing
                    v = lb.inflate_seconds if lb and metric == "wall_seconds" else None
                else:
                    m = by.get((c, s))
                    v = getattr(m, metric) if m else None
                if v is not None and metric == "bytes_stored":
                    v = v / 1e6
                vals.append(v if v is not None else 0.0)
            xs = [j + (i - (len(series) - 1) / 2) * width for j in range(len(SCENARIOS))]
            ax.bar(xs, vals, width, label=c, hatch={"lower bound": "//", "inflate once": ".."}.get(c))
        ax.set_xticks(range(len(SCENARIOS)), SCENARIOS)
        ax.set_ylabel(label)
        ax.set_title(label)
        if metric == "wall_seconds":
            ax.set_yscale("symlog", linthresh=1)
    axes[0].legend(fontsize=8)
    fig.suptitle(
        f"{result.workload}{' (quick)' if result.quick else ''} · {result.date} · {result.machine.get('cpu', '')}"
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
