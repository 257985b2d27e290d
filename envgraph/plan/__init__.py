"""Planning builds: from lockfiles to the layers and images a request needs (pure functions, no I/O)."""

from envgraph.plan._model import (
    BaseLayer,
    FilesLayer,
    ImagePlan,
    LayerTask,
    MergedLayer,
    PackageLayer,
    Plan,
    PlanTarget,
    VenvLayer,
)
from envgraph.plan._planner import make_plan

__all__ = [
    "BaseLayer",
    "FilesLayer",
    "ImagePlan",
    "LayerTask",
    "MergedLayer",
    "PackageLayer",
    "Plan",
    "PlanTarget",
    "VenvLayer",
    "make_plan",
]
