"""envgraph: declared, locked, layered container images for the environments of ML pipelines."""

from envgraph.errors import EnvgraphError
from envgraph.graph import EnvGraph, build_graph
from envgraph.spec import Spec, read_spec
from envgraph.workspace import Workspace, load

__all__ = ["EnvGraph", "EnvgraphError", "Spec", "Workspace", "build_graph", "load", "read_spec"]
__version__ = "0.1.0"
