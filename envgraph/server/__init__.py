"""``envgraph serve``: the store as a read-only OCI registry (and, later, a dashboard beside it).

The implementation imports Starlette and uvicorn: only ``serve`` and ``load`` touch it (lazy exports), so
other commands never import them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.server._app import create_app as create_app
    from envgraph.server._app import registry_mount as registry_mount
    from envgraph.server._runner import BackgroundServer as BackgroundServer
    from envgraph.server._runner import serve_until_stopped as serve_until_stopped
    from envgraph.server._stats import ServeStats as ServeStats
    from envgraph.server._stats import StatsSnapshot as StatsSnapshot

_EXPORTS = {
    "BackgroundServer": "envgraph.server._runner",
    "ServeStats": "envgraph.server._stats",
    "StatsSnapshot": "envgraph.server._stats",
    "create_app": "envgraph.server._app",
    "registry_mount": "envgraph.server._app",
    "serve_until_stopped": "envgraph.server._runner",
}
__all__ = [
    "BackgroundServer",
    "ServeStats",
    "StatsSnapshot",
    "create_app",
    "registry_mount",
    "serve_until_stopped",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
