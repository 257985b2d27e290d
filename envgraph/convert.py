"""The one cattrs converter used for every model (declarations, lockfiles, store index, reports).

Field names are written with dashes where the TOML/JSON formats use dashes: a field whose
attrs metadata has ``{"key": "max-layers"}`` is (de)serialised under that key.
"""

from __future__ import annotations

from typing import Any

import attrs
import cattrs
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = ["converter", "structure", "unstructure"]

converter = cattrs.Converter(forbid_extra_keys=True)


def _overrides(cls: type) -> dict[str, Any]:
    out = {}
    for a in attrs.fields(cls):
        key = a.metadata.get("key")
        omit_default = a.metadata.get("omit_if_default", False)
        if key or omit_default:
            out[a.name] = override(rename=key, omit_if_default=omit_default)
    return out


def _is_attrs(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls)


converter.register_structure_hook_factory(
    _is_attrs,
    lambda cls: make_dict_structure_fn(cls, converter, _cattrs_forbid_extra_keys=True, **_overrides(cls)),
)
converter.register_unstructure_hook_factory(
    _is_attrs,
    lambda cls: make_dict_unstructure_fn(cls, converter, **_overrides(cls)),
)


def structure(data: Any, cls: type[Any]) -> Any:
    return converter.structure(data, cls)


def unstructure(obj: Any) -> Any:
    return converter.unstructure(obj)
