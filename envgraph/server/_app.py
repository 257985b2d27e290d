"""The server's ASGI app: the registry API at ``/v2``, and room for more routes beside it (a dashboard)."""

from __future__ import annotations

from collections.abc import Sequence

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Mount

from envgraph.oci._store import Store
from envgraph.server._registry import RegistryApp
from envgraph.server._stats import ServeStats

__all__ = ["create_app", "registry_mount"]


def registry_mount(store: Store, stats: ServeStats | None = None) -> Mount:
    """The read-only distribution API over ``store`` as a route to compose into any Starlette app."""
    return Mount("/v2", app=RegistryApp(store, stats), name="registry")


def create_app(
    store: Store, *, stats: ServeStats | None = None, routes: Sequence[BaseRoute] = ()
) -> Starlette:
    """The app ``envgraph serve`` runs: ``/v2`` plus ``routes`` (e.g. ``Mount("/", dashboard)``).

    ``app.state.stats`` is the :class:`ServeStats` the registry counts into."""
    mount = registry_mount(store, stats)
    app = Starlette(routes=[mount, *routes])
    assert isinstance(mount.app, RegistryApp)
    app.state.stats = mount.app.stats
    return app
