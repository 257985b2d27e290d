"""``envgraph export-settings``: each pipeline step's pushed image, by digest, for pipeline frameworks.

Pure functions over the declarations' pipelines, the envs' current drvs and the push records: no I/O.

- ``json``: ``{registry, pipelines: {P: {steps: {S: {env, drv, image, reference, digest}}}}}`` where ``image``
  is ``HOST/REPO@sha256:...`` (what to run) and ``reference`` the tag it was pushed as.
- ``zenml``: per pipeline, a ZenML run configuration (YAML; written as JSON, which YAML reads) setting every
  step's ``DockerSettings`` to ``parent_image=<image by digest>, skip_build=True``, so ZenML runs the step in
  its envgraph image and builds nothing. The pipeline-level settings name the first step's image, which ZenML
  uses for the orchestrator's own container. The envs must contain ``zenml`` (ZenML runs its entrypoint in
  the image).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from envgraph.errors import RegistryError
from envgraph.registry._records import PushRecord
from envgraph.registry._reference import Reference

__all__ = ["SettingsFormat", "SETTINGS_FORMATS", "step_images", "settings_json", "zenml_config"]

SettingsFormat = Literal["json", "zenml"]
SETTINGS_FORMATS: tuple[SettingsFormat, ...] = ("json", "zenml")


def step_images(
    target: Reference,
    pipelines: Mapping[str, Mapping[str, str]],
    drvs: Mapping[str, str],
    records: Sequence[PushRecord],
) -> dict[str, dict[str, PushRecord]]:
    """pipeline -> step -> the record of the step env's current image (its current drv) in ``target``.

    An env whose current image was never pushed there is an error naming every such env."""
    found: dict[tuple[str, str], PushRecord] = {}
    for r in records:  # sorted by push time: the latest push of an image wins
        if r.registry == target.host and r.repository == target.repository:
            found[(r.env, r.drv)] = r
    out: dict[str, dict[str, PushRecord]] = {}
    missing: list[str] = []
    for pipeline, steps in pipelines.items():
        out[pipeline] = {}
        for step, env in steps.items():
            record = found.get((env, drvs[env]))
            if record is None:
                if env not in missing:
                    missing.append(env)
                continue
            out[pipeline][step] = record
    if missing:
        where = f"{target.host}/{target.repository}"
        names = ", ".join(f"{e} (image {drvs[e].removeprefix('sha256:')[:12]})" for e in missing)
        raise RegistryError(
            f"not pushed to {where}: {names}: run `envgraph push --registry {where}` "
            "(after `envgraph build`) first"
        )
    return out


def settings_json(target: Reference, images: Mapping[str, Mapping[str, PushRecord]]) -> dict[str, Any]:
    return {
        "registry": f"{target.host}/{target.repository}",
        "pipelines": {
            p: {
                "steps": {
                    s: {
                        "env": r.env,
                        "image_id": r.drv,  # the drv unless the env has files (identity.image_id)
                        "image": r.pinned,
                        "reference": r.reference,
                        "digest": r.digest,
                    }
                    for s, r in steps.items()
                }
            }
            for p, steps in images.items()
        },
    }


def _docker(record: PushRecord) -> dict[str, Any]:
    return {"settings": {"docker": {"parent_image": record.pinned, "skip_build": True}}}


def zenml_config(steps: Mapping[str, PushRecord]) -> dict[str, Any]:
    """One pipeline's ZenML run configuration (``pipeline.with_options(config_path=...)``)."""
    if not steps:
        raise RegistryError("a pipeline without steps has no ZenML settings")
    first = next(iter(steps.values()))
    return {**_docker(first), "steps": {s: _docker(r) for s, r in steps.items()}}
