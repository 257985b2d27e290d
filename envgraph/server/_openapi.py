"""The JSON API's OpenAPI 3.1 document (hand-written: the API is small and this keeps FastAPI out)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]


def _get(summary: str, params: list[dict[str, Any]], schema: str, *, errors: bool = True) -> dict[str, Any]:
    responses: dict[str, Any] = {
        "200": {
            "description": "OK",
            "content": {"application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}},
        }
    }
    if errors:
        responses["404"] = {
            "description": "unknown name or run",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
        responses["400"] = {
            "description": "bad query parameter",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return {"get": {"summary": summary, "parameters": params, "responses": responses}}  # fmt: skip


def _path(name: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": kind}}


def _query(name: str, kind: str = "string", required: bool = False, **extra: Any) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": required, "schema": {"type": kind, **extra}}


_S = {"type": "string"}
_NS = {"type": ["string", "null"]}
_I = {"type": "integer"}
_NI = {"type": ["integer", "null"]}


def _obj(**props: Any) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": sorted(props)}


def _arr(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": "array", "items": item}


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


SCHEMAS: dict[str, Any] = {
    "Error": _obj(error=_S),
    "Shared": _obj(env=_S, layers=_I),
    "StepRef": _obj(pipeline=_S, step=_S),
    "GraphEnv": _obj(name=_S, parent=_NS, base=_S, drv=_NS, digest=_NS, size=_NI, layers=_NI, packages=_I,
                     shared_layers=_I, shared_with=_arr(_ref("Shared")), sharing_envs=_I, steps=_arr(_ref("StepRef"))),
    "Graph": _obj(project=_S, all_pipelines=_arr(_S), bases=_arr(_obj(name=_S, kind={"enum": ["debian", "image", "scratch"]}, image=_NS)),
                  envs=_arr(_ref("GraphEnv")),
                  pipelines=_arr(_obj(name=_S, steps=_arr(_obj(step=_S, env=_S))))),
    "Package": _obj(name=_S, version=_S, size=_NI, layer=_NS),
    "Image": {**_obj(where={"enum": ["store", "registry"]}, tag=_S, reference=_S, digest=_S, current={"type": "boolean"}),
              "description": "registry images also have `pushed` (ISO time)"},
    "Env": _obj(name=_S, parent=_NS, base=_S, chain=_arr(_S), children=_arr(_S), drv=_NS, lock_digest=_NS,
                digest=_NS, size=_NI, layers=_arr(_obj(digest=_S, size=_I, label=_S)), packages=_arr(_ref("Package")),
                shared_layers=_I, shared_with=_arr(_ref("Shared")), sharing_envs=_I, steps=_arr(_ref("StepRef")),
                images=_arr(_ref("Image")), runs=_arr(_ref("Run"))),
    "Run": _obj(id=_I, kind={"enum": ["build", "push", "lock"]}, project=_S, started=_S, seconds={"type": "number"},
                ok={"type": "boolean"}, user=_S, host=_S, selection=_arr(_S), layers_built=_I, layers_reused=_I,
                layers_pulled=_I, bytes_written=_I, error=_NS),
    "Runs": _arr(_ref("Run")),
    "RunDetail": {"allOf": [_ref("Run"), {"type": "object", "properties": {
        "report": {"type": "object", "description": "the build's --report content, or the push/lock results"},
        "envs": _arr({"type": "object"}), "pushes": _arr({"type": "object"})}}]},
    "EnvDiff": _obj(env=_S, in_old={"type": "boolean"}, in_new={"type": "boolean"}, old_drv=_NS, new_drv=_NS,
                    added=_arr(_obj(name=_S, version=_S)), removed=_arr(_obj(name=_S, version=_S)),
                    changed=_arr(_obj(name=_S, old=_S, new=_S)), unchanged={"type": "boolean"}),
    "Diff": {"type": "object", "properties": {"from": _ref("Run"), "to": _ref("Run"), "envs": _arr(_ref("EnvDiff"))}},
    "PackageDiff": _obj(added=_arr(_arr(_S)), removed=_arr(_arr(_S)), changed=_arr(_obj(name=_S, old=_S, new=_S))),
    "DiffSide": _obj(spec=_S, env=_S, drv=_S, python={"type": "object"}, debian={"type": "object"},
                     image={"type": ["object", "null"]}),
    "LockDiff": {**_obj(old=_ref("DiffSide"), new=_ref("DiffSide"), python=_ref("PackageDiff"),
                        debian=_ref("PackageDiff"), images={"type": ["object", "null"]}),
                 "description": "what `envgraph diff --json` prints; added/removed are [name, version] pairs"},
    "AnyDiff": {"oneOf": [_ref("Diff"), _ref("LockDiff")]},
    "Pushed": _obj(registry=_S, repository=_S, tag=_S, reference=_S, pinned=_S, digest=_S,
                   current={"type": "boolean"}, pushed=_S),
    "Where": _obj(pipeline=_S, step=_S, env=_S, drv=_NS, digest=_NS, reference=_NS, pinned=_NS,
                  pushed=_arr(_ref("Pushed"))),
    "Wheres": _arr(_ref("Where")),
}  # fmt: skip

PATHS: dict[str, Any] = {
    "/api/graph": _get("Pipelines, steps, envs and bases, each env with its drv, digest, size and shared layers "
                       "(?pipeline=P: only what P needs)", [_query("pipeline")], "Graph"),
    "/api/envs/{env}": _get("An env: packages (name, version, size, layer digest), images using it, runs", [_path("env")], "Env"),
    "/api/runs": _get("Recorded runs, oldest first", [_query("kind", enum=["build", "push", "lock"]), _query("env"),
                                                    _query("limit", "integer")], "Runs"),
    "/api/runs/{run_id}": _get("One run with its report, envs (package sets) and pushes", [_path("run_id", "integer")], "RunDetail"),
    "/api/diff": _get("Package changes between two runs (ids: builds or locks), per env; or between two lockfile "
                      "sides, each ENV (its lockfiles now) or ENV@REV (at git revision REV): `envgraph diff --json`",
                      [_query("from", required=True), _query("to", required=True), _query("env")], "AnyDiff"),
    "/api/where": _get("For every pipeline step: the image to pull and the digests pushed", [], "Wheres"),
    "/api/where/{pipeline}": _get("The steps of one pipeline", [_path("pipeline")], "Wheres"),
    "/api/where/{pipeline}/{step}": _get("Which image for step S of pipeline P", [_path("pipeline"), _path("step")], "Where"),
}  # fmt: skip


def openapi_document() -> dict[str, Any]:
    return {
        "openapi": "3.1.0",
        "info": {"title": "envgraph dashboard API", "version": "1", "description": "Read-only. Sizes in bytes, "
                 "times in UTC (ISO 8601), digests as sha256:HEX."},
        "paths": {**PATHS, "/api/openapi.json": {"get": {"summary": "This document", "responses": {"200": {"description": "OK"}}}}},
        "components": {"schemas": SCHEMAS},
    }  # fmt: skip
