"""Server-side SVG: the graph laid out in columns (bases | envs by depth | pipelines) and the history chart.

Laying out on the server keeps the pages free of JavaScript libraries and CDNs, and is linear in the graph's
size (1,000 envs lay out in milliseconds); the browser only draws.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any

__all__ = ["chart_svg", "graph_svg"]

NODE_W, NODE_H, ROW, COL, PAD = 200, 34, 44, 270, 20
COLORS = {"base": "#d9e2ec", "env": "#e3f2e1", "unbuilt": "#fbe9e7", "pipeline": "#ede7f6"}


def _human(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "kB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} GB"


def _node(x: float, y: float, kind: str, title: str, line1: str, line2: str, href: str, node_id: str) -> str:
    fill = COLORS[kind]
    return (
        f'<a href="{escape(href)}" class="node {kind}" id="{escape(node_id)}" data-name="{escape(line1)}">'
        f"<title>{escape(title)}</title>"
        f'<rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="6" fill="{fill}" stroke="#52606d"/>'
        f'<text x="{x + 8}" y="{y + 14}" font-size="12" font-weight="bold">{escape(line1[:30])}</text>'
        f'<text x="{x + 8}" y="{y + 28}" font-size="10" fill="#3e4c59">{escape(line2[:40])}</text></a>'
    )


def _edge(x1: float, y1: float, x2: float, y2: float, title: str = "") -> str:
    t = f"<title>{escape(title)}</title>" if title else ""
    if x2 - x1 <= COL - NODE_W + 1:  # to the next column: one curve
        mx = (x1 + x2) / 2
        d = f"M{x1},{y1} C{mx},{y1} {mx},{y2} {x2},{y2}"
    else:  # across columns: along the gap below the source's row (rows align in every column: no node there)
        lane = y1 + NODE_H / 2 + (ROW - NODE_H) / 2
        d = (
            f"M{x1},{y1} C{x1 + 20},{y1} {x1 + 20},{lane} {x1 + 40},{lane} L{x2 - 40},{lane} "
            f"C{x2 - 20},{lane} {x2 - 20},{y2} {x2},{y2}"
        )
    return (
        f'<path d="{d}" fill="none" stroke="#9aa5b1" stroke-width="1.2" marker-end="url(#arrow)">{t}</path>'
    )


def graph_svg(model: Mapping[str, Any], *, env_href: str = "/ui/env/") -> str:
    """The graph of :func:`envgraph.server._model.graph_model` as an SVG: an arrow points from what is needed
    to what needs it; every env links to its page."""
    envs = {e["name"]: e for e in model["envs"]}
    children: dict[str | None, list[str]] = {}
    for e in model["envs"]:
        children.setdefault(e["parent"], []).append(e["name"])
    depth: dict[str, int] = {}
    order: list[str] = []  # depth-first from each base: children just below their parent

    def walk(name: str, d: int) -> None:
        depth[name] = d
        order.append(name)
        for c in sorted(children.get(name, ())):
            walk(c, d + 1)

    base_rows: dict[str, int] = {}
    for base in model["bases"]:
        base_rows[base["name"]] = len(order)
        for root in sorted(n for n in children.get(None, ()) if envs[n]["base"] == base["name"]):
            walk(root, 1)
    columns: dict[int, list[str]] = {}
    for name in order:
        columns.setdefault(depth[name], []).append(name)
    pos: dict[tuple[str, str], tuple[float, float]] = {}
    for d, names in columns.items():
        for i, name in enumerate(names):
            pos[("env", name)] = (PAD + d * COL, PAD + i * ROW)
    for i, base in enumerate(model["bases"]):
        pos[("base", base["name"])] = (PAD, PAD + i * ROW)
    last = (max(columns) if columns else 0) + 1
    rank = {("env", n): pos[("env", n)][1] for n in envs}
    pipes = sorted(
        model["pipelines"],
        key=lambda p: sum(rank[("env", s["env"])] for s in p["steps"]) / max(1, len(p["steps"])),
    )
    for i, p in enumerate(pipes):
        pos[("pipeline", p["name"])] = (PAD + last * COL, PAD + i * ROW)
    parts: list[str] = []
    for e in model["envs"]:
        x2, y2 = pos[("env", e["name"])]
        src = ("env", e["parent"]) if e["parent"] else ("base", e["base"])
        if src in pos:
            x1, y1 = pos[src]
            parts.append(_edge(x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2))
    for p in pipes:
        x2, y2 = pos[("pipeline", p["name"])]
        by_env: dict[str, list[str]] = {}
        for s in p["steps"]:
            by_env.setdefault(s["env"], []).append(s["step"])
        for env, steps in sorted(by_env.items()):
            x1, y1 = pos[("env", env)]
            parts.append(
                _edge(x1 + NODE_W, y1 + NODE_H / 2, x2, y2 + NODE_H / 2, f"{p['name']}: {', '.join(steps)}")
            )
    for base in model["bases"]:
        x, y = pos[("base", base["name"])]
        parts.append(
            _node(x, y, "base", f"base {base['name']}", base["name"], f"base · {base['kind']}", "#", f"base-{base['name']}")
        )  # fmt: skip
    for e in model["envs"]:
        x, y = pos[("env", e["name"])]
        built = e["digest"] is not None
        line2 = (
            f"{e['layers']} layers · {_human(e['size'])} · {e['shared_layers']} shared"
            if built
            else "not built"
        )
        shared = ", ".join(f"{s['env']} ({s['layers']})" for s in e["shared_with"])
        title = (
            f"env {e['name']}\ndrv {e['drv'] or '-'}\ndigest {e['digest'] or 'not built'}\n"
            f"size {_human(e['size'])}, {e['packages']} packages\n"
            f"{e['shared_layers']} layers shared with {e['sharing_envs']} envs: {shared or '-'}"
        )
        parts.append(
            _node(x, y, "env" if built else "unbuilt", title, e["name"], line2, env_href + e["name"], f"env-{e['name']}")
        )  # fmt: skip
    for p in pipes:
        x, y = pos[("pipeline", p["name"])]
        step_list = ", ".join(f"{s['step']}={s['env']}" for s in p["steps"])
        parts.append(
            _node(x, y, "pipeline", f"pipeline {p['name']}: {step_list}", p["name"], f"pipeline · {len(p['steps'])} steps",
                  f"/ui/where#pipeline-{p['name']}", f"pipeline-{p['name']}")
        )  # fmt: skip
    rows = max([len(c) for c in columns.values()] + [len(model["bases"]), len(pipes), 1])
    width = PAD * 2 + last * COL + NODE_W
    height = PAD * 2 + rows * ROW
    defs = (
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" '
        'orient="auto-start-reverse"><path d="M 0 0 L 10 5 L 0 10 z" fill="#9aa5b1"/></marker></defs>'
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="graph" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">{defs}{"".join(parts)}</svg>'
    )


def chart_svg(runs: Sequence[Mapping[str, Any]], *, width: int = 900, height: int = 260) -> str:
    """Builds over time: stacked bars of layers built / reused / pulled, seconds and bytes written as lines (each
    on its own scale, its maximum labelled on the right)."""
    left, right, top, bottom = 50, 60, 20, 40
    n = len(runs)
    if n == 0:
        return '<svg xmlns="http://www.w3.org/2000/svg" id="history-chart" width="400" height="40"><text x="10" y="25">no builds recorded yet</text></svg>'
    plot_w, plot_h = width - left - right, height - top - bottom
    max_layers = max(max(r["layers_built"] + r["layers_reused"] + r["layers_pulled"] for r in runs), 1)
    max_s = max(max(r["seconds"] for r in runs), 0.001)
    max_b = max(max(r["bytes_written"] for r in runs), 1)
    step = plot_w / n
    bar = max(min(step * 0.7, 40), 1)
    parts = [
        f'<line x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}" stroke="#52606d"/>',
        f'<text x="{left - 6}" y="{top + 10}" font-size="10" text-anchor="end">{max_layers}</text>',
        f'<text x="{left - 6}" y="{top + plot_h}" font-size="10" text-anchor="end">0</text>',
        f'<text x="12" y="{top + plot_h / 2}" font-size="10" transform="rotate(-90 12 {top + plot_h / 2})">layers</text>',
        f'<text x="{left + plot_w + 6}" y="{top + 10}" font-size="10" fill="#d64545">{max_s:.1f}s</text>',
        f'<text x="{left + plot_w + 6}" y="{top + 24}" font-size="10" fill="#2680c2">{_human(max_b)}</text>',
    ]  # fmt: skip
    points = []
    byte_points = []
    for i, r in enumerate(runs):
        x = left + i * step + (step - bar) / 2
        y = top + plot_h
        title = (
            f"#{r['id']} {r['started'][:19]} {'ok' if r['ok'] else 'FAILED'}: {r['layers_built']} built, "
            f"{r['layers_reused']} reused, {r['layers_pulled']} pulled; {r['seconds']:.2f}s; "
            f"{_human(r['bytes_written'])} written"
        )
        for key, color in (
            ("layers_reused", "#9fb3c8"),
            ("layers_built", "#f0b429"),
            ("layers_pulled", "#3ebd93"),
        ):
            h = plot_h * r[key] / max_layers
            if h > 0:
                y -= h
                parts.append(
                    f'<rect class="bar {key}" x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                    f'fill="{color}"><title>{escape(title)}</title></rect>'
                )
        points.append(f"{x + bar / 2:.1f},{top + plot_h - plot_h * r['seconds'] / max_s:.1f}")
        byte_points.append(f"{x + bar / 2:.1f},{top + plot_h - plot_h * r['bytes_written'] / max_b:.1f}")
        if n <= 40 or i % max(1, n // 20) == 0:
            parts.append(
                f'<a href="/ui/run/{r["id"]}"><text x="{x + bar / 2:.1f}" y="{top + plot_h + 14}" font-size="9" '
                f'text-anchor="middle">#{r["id"]}</text></a>'
            )
    parts.append(
        f'<polyline class="seconds" points="{" ".join(points)}" fill="none" stroke="#d64545" stroke-width="1.5"/>'
    )
    parts.append(
        f'<polyline class="bytes" points="{" ".join(byte_points)}" fill="none" stroke="#2680c2" '
        'stroke-width="1.5" stroke-dasharray="4 3"/>'
    )
    legend = [("built", "#f0b429"), ("reused", "#9fb3c8"), ("pulled", "#3ebd93"), ("seconds", "#d64545"),
              ("bytes written", "#2680c2")]  # fmt: skip
    for i, (label, color) in enumerate(legend):
        lx = left + i * 90
        parts.append(
            f'<rect x="{lx}" y="{height - 14}" width="10" height="10" fill="{color}"/>'
            f'<text x="{lx + 14}" y="{height - 5}" font-size="10">{label}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="history-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif">{"".join(parts)}</svg>'
    )
