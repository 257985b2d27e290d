"""Software bills of materials of envs: CycloneDX 1.6 (cyclonedx-python-lib) and SPDX 2.3 JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.sbom._collect import collect as collect
    from envgraph.sbom._collect import wheel_metadata as wheel_metadata
    from envgraph.sbom._cyclonedx import to_cyclonedx as to_cyclonedx
    from envgraph.sbom._cyclonedx import validate_cyclonedx as validate_cyclonedx
    from envgraph.sbom._model import SbomFormat as SbomFormat
    from envgraph.sbom._model import SbomInput as SbomInput
    from envgraph.sbom._spdx import to_spdx as to_spdx

_EXPORTS = {
    "collect": "envgraph.sbom._collect",
    "wheel_metadata": "envgraph.sbom._collect",
    "to_cyclonedx": "envgraph.sbom._cyclonedx",
    "validate_cyclonedx": "envgraph.sbom._cyclonedx",
    "SbomFormat": "envgraph.sbom._model",
    "SbomInput": "envgraph.sbom._model",
    "to_spdx": "envgraph.sbom._spdx",
}
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
