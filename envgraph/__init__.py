"""envgraph: declared, locked, layered container images for the environments of ML pipelines."""

from .errors import EnvgraphError
from .graph import EnvGraph, build_graph
from .spec import Spec, read_spec
from .workspace import Workspace, load

__all__ = ["EnvGraph", "EnvgraphError", "Spec", "Workspace", "build_graph", "load", "read_spec"]
__version__ = "0.1.0"
