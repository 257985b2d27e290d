"""The build report (``--report FILE``) and the end-of-build summary rows."""

from __future__ import annotations

from typing import Any

from envgraph.builder._scheduler import BuildResult
from envgraph.oci._store import Store

__all__ = ["build_report"]


def build_report(result: BuildResult, store: Store) -> dict[str, Any]:
    """``{"envs": [...], "totals": {...}}``; ``bytes_logical`` counts every image as if stored alone."""
    envs = []
    logical = 0
    unique: dict[str, int] = {}
    for img in result.images:
        layers = []
        image_bytes = 0
        for d in img.base_layers:
            unique[d.digest] = d.size
            image_bytes += d.size
        for key in img.layers:
            r = result.layers[key]
            rec = r.record
            layers.append(
                {
                    "key": key,
                    "label": r.label,
                    "digest": rec.digest if rec else None,
                    "size": rec.size if rec else 0,
                    "status": "reused" if r.status in ("reused",) else r.status,
                    "seconds": round(r.seconds, 4),
                    "worker": r.worker,  # the Dask worker that built it; None when built (or found) here
                }
            )
            if rec is not None:
                unique[rec.digest] = rec.size
                image_bytes += rec.size
        if img.descriptor is not None:
            manifest = img.descriptor
            unique[manifest.digest] = manifest.size
            image_bytes += manifest.size
        logical += image_bytes
        envs.append(
            {
                **({"platform": img.platform} if img.platform else {}),
                "env": img.env,
                "drv": img.drv,
                "digest": img.descriptor.digest if img.descriptor else None,
                "status": img.status,
                "error": img.error,
                "bytes": image_bytes,
                "seconds": round(img.seconds, 4),
                "layers": layers,
            }
        )
    statuses = [r.status for r in result.layers.values()]
    stored = sum(unique.values())
    return {
        "envs": envs,
        "failures": list(result.failures),
        "totals": {
            "layers_built": statuses.count("built"),
            "layers_reused": statuses.count("reused"),
            "layers_pulled": statuses.count("pulled"),
            "layers_failed": statuses.count("failed"),
            "bytes_written": result.bytes_written,
            "bytes_logical": logical,
            "bytes_stored": stored,
            "dedup_ratio": round(logical / stored, 4) if stored else 1.0,
            "seconds": round(result.seconds, 4),
        },
    }
