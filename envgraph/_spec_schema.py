"""A JSON Schema of ``envgraph.toml``, generated from the attrs models in :mod:`envgraph.spec`.

The shipped copy (``envgraph/schema/envgraph.schema.json``) is regenerated with
``envgraph schema > envgraph/schema/envgraph.schema.json``; a test keeps it in sync.
"""

from __future__ import annotations

import types
import typing
from typing import Any

import attrs

from envgraph.spec import Spec

__all__ = ["spec_schema"]


def _type_schema(tp: Any, defs: dict[str, Any]) -> dict[str, Any]:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in args if a is not type(None)]
        inner = (
            _type_schema(options[0], defs)
            if len(options) == 1
            else {"anyOf": [_type_schema(a, defs) for a in options]}
        )
        return inner
    if origin is tuple:
        return {"type": "array", "items": _type_schema(args[0], defs)}
    if origin is dict:
        return {"type": "object", "additionalProperties": _type_schema(args[1], defs)}
    if tp is str:
        return {"type": "string"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is bool:
        return {"type": "boolean"}
    if attrs.has(tp):
        name = tp.__name__
        if name not in defs:
            defs[name] = {}
            defs[name] = _class_schema(tp, defs)
        return {"$ref": f"#/$defs/{name}"}
    raise TypeError(f"no schema for {tp!r}")


def _class_schema(cls: type, defs: dict[str, Any]) -> dict[str, Any]:
    hints = typing.get_type_hints(cls)
    props: dict[str, Any] = {}
    required: list[str] = []
    for a in attrs.fields(cls):
        if a.metadata.get("schema") is False:
            continue
        key = a.metadata.get("key", a.name)
        props[key] = _type_schema(hints[a.name], defs)
        if a.default is attrs.NOTHING:
            required.append(key)
    out: dict[str, Any] = {"type": "object", "properties": props, "additionalProperties": False}
    if required:
        out["required"] = required
    if cls.__doc__ and not cls.__doc__.startswith(cls.__name__ + "("):
        out["description"] = cls.__doc__.strip().splitlines()[0]
    return out


def spec_schema() -> dict[str, Any]:
    defs: dict[str, Any] = {}
    top = _class_schema(Spec, defs)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://envgraph.dev/schema/envgraph.schema.json",
        "title": "envgraph.toml",
        **top,
        "$defs": dict(sorted(defs.items())),
    }
