"""envgraph: declared, locked, layered container images for the environments of ML pipelines."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.errors import EnvgraphError as EnvgraphError
    from envgraph.graph import EnvGraph as EnvGraph
    from envgraph.graph import build_graph as build_graph
    from envgraph.spec import Spec as Spec
    from envgraph.spec import read_spec as read_spec
    from envgraph.workspace import Workspace as Workspace
    from envgraph.workspace import load as load

_EXPORTS = {
    "EnvGraph": "envgraph.graph",
    "EnvgraphError": "envgraph.errors",
    "Spec": "envgraph.spec",
    "Workspace": "envgraph.workspace",
    "build_graph": "envgraph.graph",
    "load": "envgraph.workspace",
    "read_spec": "envgraph.spec",
}
__all__ = [
    "EnvGraph",
    "EnvgraphError",
    "Spec",
    "Workspace",
    "build_graph",
    "load",
    "read_spec",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
__version__ = "0.1.0"
