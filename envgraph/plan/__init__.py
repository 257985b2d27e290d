"""Planning builds: from lockfiles to the layers and images a request needs (pure functions, no I/O)."""

from envgraph.plan._model import (
    BaseLayer,
    BuildTask,
    DebLayer,
    FilesLayer,
    ImagePlan,
    LayerTask,
    MergedLayer,
    PackageLayer,
    Plan,
    PlanTarget,
    VenvLayer,
    WheelBuild,
)
from envgraph.plan._planner import make_plan

__all__ = [
    "BaseLayer",
    "BuildTask",
    "DebLayer",
    "FilesLayer",
    "ImagePlan",
    "LayerTask",
    "MergedLayer",
    "PackageLayer",
    "Plan",
    "PlanTarget",
    "VenvLayer",
    "WheelBuild",
    "make_plan",
]
