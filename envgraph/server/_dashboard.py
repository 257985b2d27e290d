"""The dashboard and its JSON API beside the registry: ``/api/...`` (JSON, OpenAPI at ``/api/openapi.json``)
and ``/ui/...`` (server-rendered HTML). Read-only: nothing here writes to the store or the history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route

from envgraph.errors import EnvgraphError
from envgraph.graph import EnvGraph
from envgraph.history._db import History, open_history
from envgraph.oci._store import Store
from envgraph.registry._records import PushRecord, push_records
from envgraph.server import _pages
from envgraph.server._facts import FactsSource, ProjectFacts
from envgraph.server._model import diff_model, env_model, graph_model, run_model, where_model
from envgraph.server._openapi import openapi_document

__all__ = ["Dashboard", "dashboard_routes"]

MAX_RUNS = 1000
MAX_SIDE = 300
"""Longest lockfile side (``ENV@REV``) a diff accepts."""

LockDiff = Callable[[str, str], Any]
"""`envgraph diff`'s comparison (``Workspace.diff``: two sides, each ENV or ENV@REV, to an attrs instance). The
server is below the workspace, so whoever holds the workspace passes it in."""


def _when(iso: str) -> datetime:
    try:
        return datetime.fromisoformat(iso).astimezone(UTC)
    except ValueError:  # a record without a time (or a bad one): oldest
        return datetime.fromtimestamp(0, UTC)


class _NotFound(Exception):
    pass


class _BadRequest(Exception):
    pass


class Dashboard:
    """What the pages and the API read: the project's facts (when there is a declaration) and the history."""

    def __init__(
        self,
        graph: EnvGraph | None,
        lockdir: Path | None,
        store: Store | None,
        history_url: str | None,
        *,
        lock_diff: LockDiff | None = None,
    ) -> None:
        self.source = (
            FactsSource(graph, lockdir, store) if graph is not None and lockdir is not None else None
        )
        self.store = store
        self.history_url = history_url
        self._lock_diff = lock_diff
        self._history: History | None = None
        self._lock = threading.Lock()

    # -- data ----------------------------------------------------------------------------------------------
    def facts(self) -> ProjectFacts:
        if self.source is None:
            raise _NotFound("no declaration file: start `envgraph serve` in the project to see its graph")
        return self.source.facts()

    def history(self) -> History | None:
        with self._lock:
            if self._history is None and self.history_url is not None:
                self._history = open_history(self.history_url, readonly=True)  # None until a first run
            return self._history

    def runs(
        self, kind: str | None = None, env: str | None = None, limit: int = MAX_RUNS
    ) -> list[dict[str, Any]]:
        history = self.history()
        return [run_model(r) for r in history.runs(kind=kind, env=env, limit=limit)] if history else []

    def run(self, run_id: int) -> dict[str, Any]:
        history = self.history()
        run = history.run(run_id) if history else None
        if run is None:
            raise _NotFound(f"no run {run_id} in the history")
        return run_model(run, full=True)

    def pushes(self, env: str | None = None) -> list[tuple[PushRecord, datetime]]:
        """The newest push of each image to each repository, from the store's push records (what `envgraph
        push` records and `export-settings` reads: the one source of "what was pushed where")."""
        if self.store is None:
            return []
        latest: dict[tuple[str, str, str, str], tuple[PushRecord, datetime]] = {}
        for r in push_records(self.store):
            if env is None or r.env == env:
                latest[(r.env, r.registry, r.repository, r.tag)] = (r, _when(r.pushed_at))
        return [latest[k] for k in sorted(latest)]

    def graph(self, pipeline: str | None = None) -> dict[str, Any]:
        facts = self.facts()
        if pipeline is not None and pipeline not in facts.graph.spec.pipeline:
            raise _NotFound(f"unknown pipeline {pipeline!r}")
        model = graph_model(facts, pipeline)
        model["all_pipelines"] = sorted(facts.graph.spec.pipeline)
        return model

    def env(self, name: str, host: str) -> dict[str, Any]:
        facts = self.facts()
        env = facts.envs.get(name)
        if env is None:
            raise _NotFound(f"unknown env {name!r}")
        model = env_model(facts, env, self.pushes(name), host)
        model["runs"] = self.runs(env=name, limit=50)
        return model

    def where(self, host: str, pipeline: str | None = None, step: str | None = None) -> list[dict[str, Any]]:
        facts = self.facts()
        if pipeline is not None and pipeline not in facts.graph.spec.pipeline:
            raise _NotFound(f"unknown pipeline {pipeline!r}")
        if (
            pipeline is not None
            and step is not None
            and step not in facts.graph.spec.pipeline[pipeline].steps
        ):
            raise _NotFound(f"pipeline {pipeline} has no step {step!r}")
        rows = where_model(facts, self.pushes(), host)
        return [r for r in rows if pipeline in (None, r["pipeline"]) and step in (None, r["step"])]

    def diff(self, old: int, new: int, env: str | None = None) -> dict[str, Any]:
        history = self.history()
        if history is None:
            raise _NotFound("no runs recorded yet")
        a, b = history.run(old), history.run(new)
        for run_id, run in ((old, a), (new, b)):
            if run is None:
                raise _NotFound(f"no run {run_id} in the history")
        assert a is not None and b is not None
        old_envs, new_envs = {e.env: e for e in a.envs}, {e.env: e for e in b.envs}
        if env is not None and env not in old_envs and env not in new_envs:
            raise _NotFound(f"env {env!r} is in neither run")
        return {
            "from": run_model(a),
            "to": run_model(b),
            "envs": diff_model(old_envs, new_envs, env),
        }

    def lock_diff(self, old: str, new: str) -> dict[str, Any]:
        """What ``envgraph diff --json OLD NEW`` prints, each side ENV (its lockfiles now) or ENV@REV (at git
        revision REV of the project): computed by the same call."""
        if self._lock_diff is None:
            raise _NotFound("comparing lockfiles needs the project: start `envgraph serve` in it")
        try:
            d = self._lock_diff(old, new)
        except EnvgraphError as err:  # an unknown env or revision, a revision git refuses: the input's fault
            raise _BadRequest(str(err)) from None
        return attrs.asdict(d)


def _host(request: Request) -> str:
    return request.headers.get("host") or request.url.netloc


def _is_id(value: str) -> bool:
    return value.isascii() and value.isdigit()  # not str.isdigit alone: int() refuses "²"


def _int(request: Request, name: str, default: int | None = None) -> int:
    value = request.query_params.get(name)
    if value is None:
        if default is None:
            raise _BadRequest(f"query parameter {name!r} is required")
        return default
    if not _is_id(value) or len(value) > 12:
        raise _BadRequest(f"query parameter {name!r} must be a non-negative integer")
    return int(value)


def _api(fn: Callable[[Dashboard, Request], Any], dash: Dashboard) -> Callable[[Request], Any]:
    def endpoint(request: Request) -> Response:
        try:
            return JSONResponse(fn(dash, request))
        except _NotFound as err:
            return JSONResponse({"error": str(err)}, status_code=404)
        except _BadRequest as err:
            return JSONResponse({"error": str(err)}, status_code=400)
        except EnvgraphError as err:
            return JSONResponse({"error": str(err)}, status_code=503)

    return endpoint


def _page(fn: Callable[[Dashboard, Request], str], dash: Dashboard) -> Callable[[Request], Any]:
    def endpoint(request: Request) -> Response:
        try:
            return HTMLResponse(fn(dash, request))
        except _NotFound as err:
            return HTMLResponse(_pages.error_page(str(err)), status_code=404)
        except _BadRequest as err:
            return HTMLResponse(_pages.error_page(str(err)), status_code=400)
        except EnvgraphError as err:
            return HTMLResponse(_pages.error_page(str(err)), status_code=503)

    return endpoint


def _kind(request: Request) -> str | None:
    kind = request.query_params.get("kind")
    if kind not in (None, "build", "push", "lock"):
        raise _BadRequest("kind must be build, push or lock")
    return kind


def _sides(r: Request) -> tuple[str, str] | None:
    """``from`` and ``to`` as lockfile sides (ENV or ENV@REV); None when both are run ids."""
    old, new = r.query_params.get("from"), r.query_params.get("to")
    if old is None or new is None:
        raise _BadRequest(f"query parameter {'from' if old is None else 'to'!r} is required")
    if _is_id(old) and _is_id(new):
        return None
    if _is_id(old) or _is_id(new):
        raise _BadRequest("compare two runs (ids) or two lockfile sides (ENV or ENV@REV), not one of each")
    for side in (old, new):
        if not side or len(side) > MAX_SIDE or side.startswith("-"):
            raise _BadRequest(f"invalid side {side[:MAX_SIDE]!r}: ENV or ENV@REV (a git revision)")
    if "env" in r.query_params:
        raise _BadRequest("env applies to runs: a lockfile side names its env")
    return old, new


def _diff(d: Dashboard, r: Request) -> dict[str, Any]:
    sides = _sides(r)
    if sides is not None:
        return d.lock_diff(*sides)
    return d.diff(_int(r, "from"), _int(r, "to"), r.query_params.get("env"))


def _diff_or_form(d: Dashboard, r: Request) -> str:
    if "from" not in r.query_params and "to" not in r.query_params:
        return _pages.diff_page(None, d.runs())
    sides = _sides(r)
    if sides is not None:
        return _pages.lock_diff_page(d.lock_diff(*sides), d.runs())
    return _pages.diff_page(_diff(d, r), d.runs())


API: list[tuple[str, Callable[[Dashboard, Request], Any]]] = [
    ("/graph", lambda d, r: d.graph(r.query_params.get("pipeline"))),
    ("/envs/{env}", lambda d, r: d.env(r.path_params["env"], _host(r))),
    ("/runs", lambda d, r: d.runs(kind=_kind(r), env=r.query_params.get("env"), limit=_int(r, "limit", MAX_RUNS))),
    ("/runs/{run_id:int}", lambda d, r: d.run(r.path_params["run_id"])),
    ("/diff", _diff),
    ("/where", lambda d, r: d.where(_host(r))),
    ("/where/{pipeline}", lambda d, r: d.where(_host(r), r.path_params["pipeline"])),
    ("/where/{pipeline}/{step}", lambda d, r: _one(d.where(_host(r), r.path_params["pipeline"], r.path_params["step"]))),
    ("/openapi.json", lambda d, r: openapi_document()),
]  # fmt: skip


def _one(rows: list[dict[str, Any]]) -> dict[str, Any]:
    return rows[0]


PAGES: list[tuple[str, Callable[[Dashboard, Request], str]]] = [
    ("/", lambda d, r: _pages.graph_page(d.graph(r.query_params.get("pipeline")))),
    ("/env/{env}", lambda d, r: _pages.env_page(d.env(r.path_params["env"], _host(r)))),
    ("/history", lambda d, r: _pages.history_page(d.runs(kind=_kind(r) or "build"), d.runs(), _kind(r) or "build")),
    ("/run/{run_id:int}", lambda d, r: _pages.run_page(d.run(r.path_params["run_id"]))),
    ("/diff", _diff_or_form),
    ("/where", lambda d, r: _pages.where_page(d.where(_host(r)))),
]  # fmt: skip


def dashboard_routes(dash: Dashboard) -> list[BaseRoute]:
    """``/api`` and ``/ui`` mounts, and ``/`` redirecting to the dashboard."""
    api = [Route(path, _api(fn, dash), methods=["GET"]) for path, fn in API]
    ui = [Route(path, _page(fn, dash), methods=["GET"]) for path, fn in PAGES]
    return [
        Mount("/api", routes=api),
        Mount("/ui", routes=ui),
        Route("/", lambda r: RedirectResponse("/ui/"), methods=["GET"]),
    ]
