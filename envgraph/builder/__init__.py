"""Building a plan: layer writers, wheels streamed into layers, Debian bases, the scheduler and its report."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.builder._report import build_report as build_report
    from envgraph.builder._scheduler import BuildResult as BuildResult
    from envgraph.builder._scheduler import ImageResult as ImageResult
    from envgraph.builder._scheduler import LayerResult as LayerResult
    from envgraph.builder._scheduler import RemoteCache as RemoteCache
    from envgraph.builder._scheduler import Reporter as Reporter
    from envgraph.builder._scheduler import Scheduler as Scheduler
    from envgraph.builder._scheduler import SilentReporter as SilentReporter

_EXPORTS = {
    "BuildResult": "envgraph.builder._scheduler",
    "ImageResult": "envgraph.builder._scheduler",
    "LayerResult": "envgraph.builder._scheduler",
    "RemoteCache": "envgraph.builder._scheduler",
    "Reporter": "envgraph.builder._scheduler",
    "Scheduler": "envgraph.builder._scheduler",
    "SilentReporter": "envgraph.builder._scheduler",
    "build_report": "envgraph.builder._report",
}
__all__ = [
    "BuildResult",
    "ImageResult",
    "LayerResult",
    "RemoteCache",
    "Reporter",
    "Scheduler",
    "SilentReporter",
    "build_report",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
