"""``envgraph build --dry-run``: the plan, what the store already has, and why the rest must be built."""

from __future__ import annotations

from envgraph.identity import LABEL_DRV, LABEL_IMAGE
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
        new = [key for key in img.layers if key in missing]
        if img.tag in tags and not new:
            lines.append(
                f"env {img.env}: reuse image {tags[img.tag].digest[:19]} (drv {img.drv[7:19]} unchanged)"
            )
            continue
        why = "never built"
        previous = tags.get(f"{img.env}:latest")
        if previous is not None:
            cfg = read_config(store, read_manifest(store, previous.digest).config.digest)
            old = (cfg.config.Labels or {}) if cfg.config else {}
            old_drv = old.get(LABEL_DRV, "?")
            old_labels = {h.comment.removeprefix("envgraph: ") for h in cfg.history or () if h.comment}
            added = [label for label in img.labels if label not in old_labels]
            gone = sorted(old_labels - set(img.labels))
            if old_drv != img.drv:
                parts = [f"drv {old_drv[7:19]} -> {img.drv[7:19]}"]
            else:  # same lockfiles: the content of the chain's files changed
                parts = [f"files changed: image {old.get(LABEL_IMAGE, old_drv)[7:19]} -> {img.ident[7:19]}"]
            if added:
                parts.append("new: " + ", ".join(added))
            if gone:
                parts.append("gone: " + ", ".join(gone))
            if not added and not gone and old_drv != img.drv:
                parts.append(
                    "config changed (environment, workdir, entrypoint, user, ports, labels or a parent)"
                )
            why = "; ".join(parts)
        n = f"; {len(new)} new layer{'s' if len(new) != 1 else ''}" if new else ""
        lines.append(f"env {img.env}: build image ({why}{n})")
    # Each layer once, however many envs list it (at platform scale one layer is in hundreds of images).
    users: dict[str, int] = {}
    for img in plan.images:
        for key in img.layers:
            if key in missing:
                users[key] = users.get(key, 0) + 1
    if users:
        lines.append(f"layers to build ({len(users)}):")
        for key in sorted(users, key=lambda k: plan.layers[k].label):
            count = users[key]
            lines.append(
                f"  build layer {plan.layers[key].label}  (in {count} env{'s' if count != 1 else ''})"
            )
    return "\n".join(lines)
