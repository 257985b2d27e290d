"""The dashboard's HTML pages: plain server-rendered HTML around the models of :mod:`envgraph.server._model`.

No scripts, no external assets (the machine may have no internet): styles are inline, drawings are SVG.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape
from typing import Any
from urllib.parse import quote

from envgraph.server._svg import _human, chart_svg, graph_svg

__all__ = [
    "diff_page",
    "env_page",
    "error_page",
    "graph_page",
    "history_page",
    "lock_diff_page",
    "run_page",
    "where_page",
]

STYLE = """
body{font-family:system-ui,sans-serif;margin:0;color:#1f2933;background:#fff}
header{background:#243b53;color:#fff;padding:8px 16px;display:flex;gap:18px;align-items:baseline}
header a{color:#d9e2ec;text-decoration:none} header a.here{color:#fff;font-weight:bold}
header .brand{font-weight:bold;color:#fff;margin-right:12px}
main{padding:12px 16px} h1{font-size:20px;margin:6px 0 12px} h2{font-size:16px;margin:18px 0 6px}
table{border-collapse:collapse;font-size:13px} th,td{border-bottom:1px solid #e4e7eb;padding:3px 10px 3px 0;
text-align:left;vertical-align:top} th{color:#52606d} td.num{text-align:right}
code{font-size:12px;background:#f5f7fa;padding:1px 3px} .ok{color:#2f8132} .bad{color:#c62828}
.add{color:#2f8132} .rm{color:#c62828} .chg{color:#b26a00} .muted{color:#7b8794}
.scroll{overflow:auto;border:1px solid #e4e7eb;max-height:80vh} dl{display:grid;grid-template-columns:max-content auto;
gap:2px 12px;font-size:13px} dt{color:#52606d}
"""

NAV = [("/ui/", "graph"), ("/ui/history", "history"), ("/ui/diff", "diff"), ("/ui/where", "where does this run"),
       ("/api/openapi.json", "API")]  # fmt: skip


def _layout(title: str, body: str, here: str = "") -> str:
    nav = "".join(
        f'<a href="{href}"{" class=here" if href == here else ""}>{escape(label)}</a>' for href, label in NAV
    )
    return (
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>{escape(title)} · envgraph</title>"
        f"<style>{STYLE}</style></head><body><header><span class=brand>envgraph</span>{nav}</header>"
        f"<main>{body}</main></body></html>"
    )


def _short(digest: str | None, n: int = 19) -> str:
    if not digest:
        return '<span class="muted">-</span>'
    return f'<code title="{escape(digest)}">{escape(digest[:n])}</code>'


def _env_link(name: str) -> str:
    return f'<a href="/ui/env/{quote(name)}">{escape(name)}</a>'


def error_page(message: str) -> str:
    return _layout("error", f"<h1>Not available</h1><p>{escape(message)}</p>")


def graph_page(model: Mapping[str, Any]) -> str:
    envs = model["envs"]
    built = sum(1 for e in envs if e["digest"])
    summary = (
        f"<p>{len(model['pipelines'])} pipelines, {len(envs)} envs ({built} built), {len(model['bases'])} bases. "
        "Arrows point from what is needed to what needs it; click an env for its packages and images.</p>"
    )
    shown = {p["name"] for p in model["pipelines"]}
    choices = ['<a href="/ui/">all</a>' if len(shown) < len(model["all_pipelines"]) else "<b>all</b>"] + [
        f"<b>{escape(p)}</b>" if shown == {p} else f'<a href="/ui/?pipeline={quote(p)}">{escape(p)}</a>'
        for p in model["all_pipelines"]
    ]
    summary += f'<p id="pipelines">pipeline: {" · ".join(choices)}</p>'
    return _layout(
        f"{model['project']}: graph",
        f"<h1>{escape(model['project'])}</h1>{summary}<div class=scroll>{graph_svg(model)}</div>",
        "/ui/",
    )


def env_page(m: Mapping[str, Any]) -> str:
    facts = [
        ("env", escape(m["name"])),
        ("chain", " → ".join([f"base {escape(m['base'])}", *(_env_link(e) for e in m["chain"])])),
        ("children", ", ".join(_env_link(c) for c in m["children"]) or "-"),
        ("drv", _short(m["drv"], 80)),
        ("lockfile", _short(m["lock_digest"], 80)),
        ("image", _short(m["digest"], 80) if m["digest"] else '<span class="bad">not built</span>'),
        ("size", f"{_human(m['size'])} in {len(m['layers'])} layers" if m["digest"] else "-"),
        ("used by", ", ".join(f"{escape(s['pipeline'])}/{escape(s['step'])}" for s in m["steps"]) or "-"),
        (
            "shares layers",
            f"{m['shared_layers']} layers with {m['sharing_envs']} envs: "
            + (", ".join(f"{_env_link(s['env'])} ({s['layers']})" for s in m["shared_with"]) or "-"),
        ),
    ]
    dl = "".join(f"<dt>{k}</dt><dd>{v}</dd>" for k, v in facts)
    rows = "".join(
        f"<tr><td>{escape(p['name'])}</td><td>{escape(p['version'])}</td>"
        f"<td class=num>{_human(p['size']) if p['size'] is not None else '-'}</td><td>{_short(p['layer'])}</td></tr>"
        for p in m["packages"]
    )
    packages = (
        f'<table id="packages"><thead><tr><th>package</th><th>version</th><th>layer size</th><th>layer</th></tr>'
        f"</thead><tbody>{rows}</tbody></table>"
    )
    images = "".join(
        f"<tr><td>{escape(i['where'])}</td><td><code>{escape(i['reference'])}</code></td><td>{_short(i['digest'])}</td>"
        f"<td>{'current' if i['current'] else ''}</td><td>{escape(i.get('pushed', '')[:19])}</td></tr>"
        for i in m["images"]
    )
    runs = "".join(
        f'<tr><td><a href="/ui/run/{r["id"]}">#{r["id"]}</a></td><td>{escape(r["kind"])}</td>'
        f"<td>{escape(r['started'][:19])}</td><td>{'ok' if r['ok'] else 'failed'}</td></tr>"
        for r in reversed(m["runs"])
    )
    return _layout(
        f"env {m['name']}",
        f"<h1>env {escape(m['name'])}</h1><dl>{dl}</dl>"
        f"<h2>Packages ({len(m['packages'])})</h2>{packages}"
        f'<h2>Images</h2><table id="images"><thead><tr><th>where</th><th>reference</th><th>digest</th><th></th>'
        f"<th>pushed</th></tr></thead><tbody>{images}</tbody></table>"
        f"<h2>Runs that touched it</h2><table><tbody>{runs}</tbody></table>",
    )


def _run_rows(runs: Sequence[Mapping[str, Any]]) -> str:
    return "".join(
        f'<tr><td><a href="/ui/run/{r["id"]}">#{r["id"]}</a></td><td>{escape(r["kind"])}</td>'
        f"<td>{escape(r['started'][:19].replace('T', ' '))}</td><td>{escape(r['user'])}@{escape(r['host'])}</td>"
        f"<td>{escape(' '.join(r['selection']) or 'all')}</td>"
        f"<td class=num>{r['layers_built']}</td><td class=num>{r['layers_reused']}</td>"
        f"<td class=num>{r['layers_pulled']}</td><td class=num>{r['seconds']:.2f}</td>"
        f"<td class=num>{_human(r['bytes_written'])}</td>"
        f"<td class={'ok' if r['ok'] else 'bad'}>{'ok' if r['ok'] else 'failed'}</td></tr>"
        for r in reversed(runs)
    )


RUN_HEAD = (
    "<thead><tr><th>run</th><th>kind</th><th>started (UTC)</th><th>by</th><th>asked for</th><th>built</th>"
    "<th>reused</th><th>pulled</th><th>seconds</th><th>written</th><th></th></tr></thead>"
)


def _diff_form(runs: Sequence[Mapping[str, Any]], old: int | None = None, new: int | None = None) -> str:
    def options(selected: int | None) -> str:
        return "".join(
            f'<option value="{r["id"]}"{" selected" if r["id"] == selected else ""}>#{r["id"]} {escape(r["kind"])} '
            f"{escape(r['started'][:19].replace('T', ' '))}</option>"
            for r in reversed(runs)
        )

    if not runs:
        return "<p>No runs recorded yet.</p>"
    if (
        old is None and len(runs) >= 2
    ):  # the two newest runs of the newest run's kind (builds: the last change)
        same = [r for r in runs if r["kind"] == runs[-1]["kind"]]
        pair = same[-2:] if len(same) >= 2 else runs[-2:]
        old, new = pair[0]["id"], pair[1]["id"]
    return (
        f'<form action="/ui/diff" method="get">compare <select name="from" id="diff-from">{options(old)}</select> '
        f'with <select name="to" id="diff-to">{options(new)}</select> <button type="submit">diff</button></form>'
    )


def _lock_form(old: str = "", new: str = "") -> str:
    return (
        '<form action="/ui/diff" method="get" id="lock-diff">compare lockfiles '
        f'<input name="from" id="lock-from" value="{escape(old)}" placeholder="ENV@HEAD~1" size=22> with '
        f'<input name="to" id="lock-to" value="{escape(new)}" placeholder="ENV" size=22> <button type="submit">diff'
        "</button> <span class=muted>each ENV (its lockfiles now) or ENV@REV (at a git revision), as "
        "<code>envgraph diff</code></span></form>"
    )


def history_page(runs: Sequence[Mapping[str, Any]], all_runs: Sequence[Mapping[str, Any]], kind: str) -> str:
    kinds = " · ".join(
        f'<a href="/ui/history?kind={k}">{k}s</a>' if k != kind else f"<b>{k}s</b>"
        for k in ("build", "push", "lock")
    )
    return _layout(
        "history",
        f"<h1>History</h1><p>{kinds}</p><h2>Layers, seconds and bytes written per {escape(kind)}</h2>{chart_svg(runs)}"
        f"<h2>Diff two runs</h2>{_diff_form(all_runs)}<p>{_lock_form()}</p>"
        f'<h2>Runs</h2><table id="runs">{RUN_HEAD}<tbody>{_run_rows(all_runs)}</tbody></table>',
        "/ui/history",
    )


def run_page(r: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><td>{_env_link(e['env'])}</td><td>{escape(e['status'])}</td><td>{_short(e['drv'])}</td>"
        f"<td>{_short(e['digest'])}</td><td class=num>{e['layers_built']}</td><td class=num>{e['layers_reused']}</td>"
        f"<td class=num>{e['layers_pulled']}</td><td class=num>{e['seconds']:.2f}</td><td class=num>{len(e['packages'])}</td></tr>"
        for e in r["envs"]
    )
    pushes = "".join(
        f"<tr><td>{_env_link(p['env'])}</td><td><code>{escape(p['reference'])}</code></td><td>{_short(p['digest'])}</td></tr>"
        for p in r["pushes"]
    )
    error = f'<p class="bad">{escape(r["error"])}</p>' if r["error"] else ""
    return _layout(
        f"run {r['id']}",
        f"<h1>{escape(r['kind'])} #{r['id']}</h1>{error}<table>{RUN_HEAD}<tbody>{_run_rows([r])}</tbody></table>"
        "<h2>Envs</h2><table><thead><tr><th>env</th><th>status</th><th>drv</th><th>image</th><th>built</th>"
        f"<th>reused</th><th>pulled</th><th>seconds</th><th>packages</th></tr></thead><tbody>{rows}</tbody></table>"
        + (f"<h2>Pushed</h2><table><tbody>{pushes}</tbody></table>" if pushes else ""),
    )


def diff_page(d: Mapping[str, Any] | None, runs: Sequence[Mapping[str, Any]]) -> str:
    if d is None:
        return _layout("diff", f"<h1>Diff</h1>{_diff_form(runs)}<p>{_lock_form()}</p>", "/ui/diff")
    parts = []
    for e in d["envs"]:
        if e["unchanged"]:
            continue
        items = (
            [f'<li class=add>+ {escape(p["name"])} {escape(p["version"])}</li>' for p in e["added"]]
            + [f'<li class=rm>− {escape(p["name"])} {escape(p["version"])}</li>' for p in e["removed"]]
            + [f'<li class=chg>~ {escape(c["name"])} {escape(c["old"])} → {escape(c["new"])}</li>' for c in e["changed"]]
        )  # fmt: skip
        note = (
            ""
            if e["in_old"] and e["in_new"]
            else (" (only in the newer run)" if e["in_new"] else " (only in the older run)")
        )
        parts.append(
            f"<h2>{_env_link(e['env'])}{note}</h2><ul class=diff>{''.join(items) or '<li>no package change</li>'}</ul>"
        )
    unchanged = [e["env"] for e in d["envs"] if e["unchanged"]]
    if unchanged:
        parts.append(f"<p class=muted>unchanged: {', '.join(escape(u) for u in unchanged)}</p>")
    head = f"<h1>Diff #{d['from']['id']} → #{d['to']['id']}</h1>{_diff_form(runs, d['from']['id'], d['to']['id'])}"
    return _layout("diff", head + f"<p>{_lock_form()}</p>" + "".join(parts), "/ui/diff")


def _layer_items(sign: str, cls: str, layers: Sequence[Mapping[str, Any]]) -> list[str]:
    return [
        f"<li class={cls}>{sign} {_short(x['digest'])} {_human(x['size'])} {escape(x['what'])}</li>"
        for x in layers
    ]


def _count(layers: Sequence[Mapping[str, Any]]) -> str:
    return f"{len(layers)} ({_human(sum(x['size'] for x in layers))})"


def lock_diff_page(d: Mapping[str, Any], runs: Sequence[Mapping[str, Any]]) -> str:
    """``envgraph diff``'s answer (its ``--json``) between two lockfile sides, as its text output reads."""
    old, new = d["old"], d["new"]
    parts = [
        f"<p>{escape(old['spec'])} (drv {_short(old['drv'])}) → {escape(new['spec'])} (drv {_short(new['drv'])})</p>"
    ]
    for title, pd in (("Python packages", d["python"]), ("Debian packages", d["debian"])):
        items = (
            [f"<li class=add>+ {escape(n)} {escape(v)}</li>" for n, v in pd["added"]]
            + [f"<li class=rm>− {escape(n)} {escape(v)}</li>" for n, v in pd["removed"]]
            + [f"<li class=chg>~ {escape(c['name'])} {escape(c['old'])} → {escape(c['new'])}</li>" for c in pd["changed"]]
        )  # fmt: skip
        parts.append(f"<h2>{title}</h2><ul class=diff>{''.join(items) or '<li>no change</li>'}</ul>")
    im = d["images"]
    if im is None:
        missing = ", ".join(escape(s["spec"]) for s in (old, new) if s["image"] is None)
        parts.append(
            f"<h2>Image layers</h2><p class=muted>not compared: no image in the store for {missing} (not built, "
            "or an env with files at a git revision: its image id needs the content its files had then)</p>"
        )
    else:
        parts.append(
            f"<h2>Image layers</h2><p>{_short(im['old'])} → {_short(im['new'])}: shared {_count(im['shared'])}, "
            f"removed {_count(im['removed'])}, added {_count(im['added'])}</p><ul class=diff id=layers>"
            + "".join(_layer_items("−", "rm", im["removed"]) + _layer_items("+", "add", im["added"]))
            + "</ul>"
        )
    head = (
        f"<h1>Diff {escape(old['spec'])} → {escape(new['spec'])}</h1>{_diff_form(runs)}"
        f"<p>{_lock_form(old['spec'], new['spec'])}</p>"
    )
    return _layout("diff", head + "".join(parts), "/ui/diff")


def where_page(rows: Sequence[Mapping[str, Any]]) -> str:
    out = []
    seen = set()
    for r in rows:
        anchor = f' id="pipeline-{escape(r["pipeline"])}"' if r["pipeline"] not in seen else ""
        seen.add(r["pipeline"])
        pushed = (
            "<br>".join(
                f"<code>{escape(p['pinned'])}</code>{'' if p['current'] else ' <span class=muted>(older)</span>'}"
                for p in r["pushed"]
            )
            or '<span class="muted">not pushed</span>'
        )
        out.append(
            f"<tr{anchor}><td>{escape(r['pipeline'])}</td><td>{escape(r['step'])}</td><td>{_env_link(r['env'])}</td>"
            f"<td>{'<code>' + escape(r['reference']) + '</code>' if r['reference'] else '<span class=bad>not built</span>'}</td>"
            f"<td>{pushed}</td></tr>"
        )
    return _layout(
        "where does this run",
        "<h1>Where does this run</h1><p>The image each pipeline step runs in: pull it from this server, or by digest "
        "from the registries it was pushed to. For machines: <code>GET /api/where/PIPELINE/STEP</code>.</p>"
        '<table id="where"><thead><tr><th>pipeline</th><th>step</th><th>env</th><th>pull from this server</th>'
        f"<th>pushed (by digest)</th></tr></thead><tbody>{''.join(out)}</tbody></table>",
        "/ui/where",
    )
