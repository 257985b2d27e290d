"""``envgraph build --dry-run``: the plan, what the store already has, and why the rest must be built."""

from __future__ import annotations

from envgraph.identity import LABEL_DRV
from envgraph.oci._image import read_config, read_manifest
from envgraph.oci._store import Store
from envgraph.plan import Plan

__all__ = ["describe_plan"]


def describe_plan(store: Store, plan: Plan) -> str:
    tags = store.tags()
    missing = {k for k in plan.layers if store.get_key(k) is None}
    lines = [
        f"plan: {len(plan.layers)} distinct layers, {len(missing)} to build, {len(plan.layers) - len(missing)} in the store"
    ]
    for img in plan.images:
        new = [label for key, label in zip(img.layers, img.labels, strict=True) if key in missing]
        if img.tag in tags and not new:
            lines.append(
                f"env {img.env}: reuse image {tags[img.tag].digest[:19]} (drv {img.drv[7:19]} unchanged)"
            )
            continue
        why = "never built"
        previous = tags.get(f"{img.env}:latest")
        if previous is not None:
            cfg = read_config(store, read_manifest(store, previous.digest).config.digest)
            old_drv = ((cfg.config.Labels or {}) if cfg.config else {}).get(LABEL_DRV, "?")
            old_labels = {h.comment.removeprefix("envgraph: ") for h in cfg.history or () if h.comment}
            added = [label for label in img.labels if label not in old_labels]
            gone = sorted(old_labels - set(img.labels))
            parts = [f"drv {old_drv[7:19]} -> {img.drv[7:19]}"]
            if added:
                parts.append("new: " + ", ".join(added))
            if gone:
                parts.append("gone: " + ", ".join(gone))
            if not added and not gone:
                parts.append(
                    "config changed (environment, workdir, entrypoint, user, ports, labels or a parent)"
                )
            why = "; ".join(parts)
        lines.append(f"env {img.env}: build image ({why})")
        for label in new:
            lines.append(f"  build layer {label}")
    return "\n".join(lines)
