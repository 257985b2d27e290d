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
    # A layer built in this run counts as built for the first env (in build order) that lists it, and as
    # shared for every other env listing it: per-env counts that add up to the run's total.
    owner: dict[str, str] = {}
    for img in result.images:
        for key in img.layers:
            owner.setdefault(key, img.env)
    # A layer's entry is the same in every env that lists it: made once (a core layer is listed by 1,000 envs).
    entries: dict[str, dict[str, Any]] = {}
    for img in result.images:
        layers = []
        image_bytes = 0
        for d in img.base_layers:
            unique[d.digest] = d.size
            image_bytes += d.size
        for key in img.layers:
            entry = entries.get(key)
            if entry is None:
                r = result.layers[key]
                rec = r.record
                entry = entries[key] = {
                    "key": key,
                    "label": r.label,
                    "digest": rec.digest if rec else None,
                    "size": rec.size if rec else 0,
                    "status": "reused" if r.status in ("reused",) else r.status,
                    "seconds": round(r.seconds, 4),
                    "worker": r.worker,  # the Dask worker that built it; None when built (or found) here
                }
                if rec is not None:
                    unique[rec.digest] = rec.size
            layers.append(entry)
            image_bytes += entry["size"]
        if img.descriptor is not None:
            manifest = img.descriptor
            unique[manifest.digest] = manifest.size
            image_bytes += manifest.size
        logical += image_bytes
        counts = dict.fromkeys(("built", "shared", "reused", "pulled", "failed"), 0)
        for key in img.layers:
            status = result.layers[key].status
            if status in ("built", "pulled") and owner[key] != img.env:
                counts["shared"] += 1
            else:
                counts[status] += 1
        envs.append(
            {
                **({"platform": img.platform} if img.platform else {}),
                **{f"layers_{k}": v for k, v in counts.items()},
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
