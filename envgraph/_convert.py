"""The one cattrs converter used for every model (declarations, lockfiles, store index, reports).

Field names are written with dashes where the TOML/JSON formats use dashes: a field whose
attrs metadata has ``{"key": "max-layers"}`` is (de)serialised under that key.
"""

from __future__ import annotations

from pathlib import Path, PurePosixPath
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


converter.register_structure_hook(PurePosixPath, lambda v, _: PurePosixPath(v))
converter.register_unstructure_hook(PurePosixPath, str)
converter.register_structure_hook(Path, lambda v, _: Path(v))
converter.register_unstructure_hook(Path, str)


def _strict(kind: type, accept: tuple[type, ...]) -> Any:
    # cattrs would coerce 1 -> "1" and 1.5 -> 1; a declaration with the wrong type must be rejected instead.
    def hook(value: Any, _: Any) -> Any:
        if isinstance(value, bool) and kind is not bool or not isinstance(value, accept):
            raise TypeError(f"expected {kind.__name__}, got {type(value).__name__} {value!r}")
        return kind(value)

    return hook


converter.register_structure_hook(str, _strict(str, (str,)))
converter.register_structure_hook(int, _strict(int, (int,)))
converter.register_structure_hook(float, _strict(float, (int, float)))
converter.register_structure_hook(bool, _strict(bool, (bool,)))


def _is_homogeneous_tuple(t: Any) -> bool:
    return getattr(t, "__origin__", None) is tuple


def _tuple_hook(t: Any) -> Any:
    item = t.__args__[0]  # our models only use homogeneous tuple[X, ...]

    def hook(value: Any, _: Any) -> Any:
        # A bare string is iterable: without this, requirements = "numpy" would become ('n', 'u', ...).
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected a list, got {type(value).__name__} {value!r}")
        return tuple(converter.structure(v, item) for v in value)

    return hook


converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook)
