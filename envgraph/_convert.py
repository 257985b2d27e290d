"""The one cattrs converter used for every model (declarations, lockfiles, store index, reports).

Field names are written with dashes where the TOML/JSON formats use dashes: a field whose
attrs metadata has ``{"key": "max-layers"}`` is (de)serialised under that key.

Structuring is strict: no type coercion, no extra keys, and models may attach checks that run only on
input (``{"check": fn}`` in a field's metadata, :func:`register_check` for a whole class), so that values
the program builds itself are not re-validated. :func:`describe_error` turns a structuring failure into one
line that names the offending key the way the input spells it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any, Literal

import attrs
import cattrs
from cattrs.errors import (
    AttributeValidationNote,
    ClassValidationError,
    ForbiddenExtraKeysError,
    IterableValidationError,
    IterableValidationNote,
)
from cattrs.gen import make_dict_structure_fn, make_dict_unstructure_fn, override

__all__ = [
    "converter",
    "structure",
    "unstructure",
    "Invalid",
    "WrongType",
    "invalid_item",
    "register_check",
    "describe_error",
    "quote",
    "key_path",
]

converter = cattrs.Converter(forbid_extra_keys=True)

Format = Literal["toml", "json"]


class Invalid(ValueError):
    """A value a model refuses; its message is shown to the user as it is."""


class WrongType(TypeError):
    """A value of the wrong JSON/TOML type; ``expected`` is one of str, int, float, bool, list, dict."""

    def __init__(self, expected: type, value: Any) -> None:
        super().__init__(f"expected {expected.__name__}, got {type(value).__name__}")
        self.expected = expected
        self.value = value


_class_checks: dict[type, Callable[[Any], None]] = {}


def invalid_item(index: int | str, message: str) -> Exception:
    """The failure of item ``index`` of a list (or key of a table), reported at its path like cattrs' own."""
    return IterableValidationError(
        "invalid item",
        [_note(Invalid(message), IterableValidationNote(f"item @ index {index!r}", index, Any))],
        tuple,
    )


def register_check(cls: type, check: Callable[[Any], None]) -> None:
    """Run ``check(obj)`` after structuring ``cls`` from input; it raises :class:`Invalid` to refuse."""
    _class_checks[cls] = check


def _checked_hook(check: Callable[[Any], None]) -> Callable[[Any, Any], Any]:
    def hook(value: Any, t: Any) -> Any:
        result = converter.structure(value, t)
        check(result)
        return result

    return hook


def _overrides(cls: type) -> dict[str, Any]:
    out = {}
    for a in attrs.fields(cls):
        key = a.metadata.get("key")
        omit_default = a.metadata.get("omit_if_default", False)
        check = a.metadata.get("check")
        if key or omit_default or check:
            hook = _checked_hook(check) if check else None
            out[a.name] = override(rename=key, omit_if_default=omit_default, struct_hook=hook)
    return out


def _is_attrs(cls: Any) -> bool:
    return isinstance(cls, type) and attrs.has(cls)


def _attrs_structure(cls: type) -> Callable[[Any, Any], Any]:
    generated: Callable[[Any, Any], Any] = make_dict_structure_fn(
        cls, converter, _cattrs_forbid_extra_keys=True, **_overrides(cls)
    )

    def hook(value: Any, t: Any) -> Any:
        # Without this a string would be taken for a set of (unknown) keys, a list would fail on indexing.
        if not isinstance(value, dict):
            raise WrongType(dict, value)
        obj = generated(value, t)
        check = _class_checks.get(cls)
        if check is not None:
            try:
                check(obj)
            except Invalid as e:  # a group like every other structuring failure, also at the top level
                raise ClassValidationError(f"While checking {cls.__name__}", [e], cls) from None
        return obj

    return hook


converter.register_structure_hook_factory(_is_attrs, _attrs_structure)
converter.register_unstructure_hook_factory(
    _is_attrs,
    lambda cls: make_dict_unstructure_fn(cls, converter, **_overrides(cls)),
)


def structure(data: Any, cls: type[Any]) -> Any:
    """``data`` as a ``cls``: the fast path when it accepts, else cattrs (which then names the problem)."""
    try:
        return _fast(cls)(data)
    except Exception:
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
            raise WrongType(kind, value)
        return kind(value)

    return hook


converter.register_structure_hook(str, _strict(str, (str,)))
converter.register_structure_hook(int, _strict(int, (int,)))
converter.register_structure_hook(float, _strict(float, (int, float)))
converter.register_structure_hook(bool, _strict(bool, (bool,)))


def _is_homogeneous_tuple(t: Any) -> bool:
    return getattr(t, "__origin__", None) is tuple


def _note(exc: Exception, note: str) -> Exception:
    exc.__notes__ = [*getattr(exc, "__notes__", []), note]
    return exc


def _tuple_hook(t: Any) -> Any:
    item = t.__args__[0]  # our models only use homogeneous tuple[X, ...]

    def hook(value: Any, _: Any) -> Any:
        # A bare string is iterable: without this, requirements = "numpy" would become ('n', 'u', ...).
        if not isinstance(value, list | tuple):
            raise WrongType(list, value)
        out, errors = [], []
        for i, v in enumerate(value):
            try:
                out.append(converter.structure(v, item))
            except Exception as e:
                errors.append(_note(e, IterableValidationNote(f"item @ index {i}", i, item)))
        if errors:
            raise IterableValidationError(f"While structuring {t!r}", errors, t)
        return tuple(out)

    return hook


converter.register_structure_hook_factory(_is_homogeneous_tuple, _tuple_hook)


def _is_dict(t: Any) -> bool:
    return getattr(t, "__origin__", None) is dict


def _dict_hook(t: Any) -> Any:
    key_type, value_type = t.__args__

    def hook(value: Any, _: Any) -> Any:
        if not isinstance(value, dict):
            raise WrongType(dict, value)
        out, errors = {}, []
        for k, v in value.items():
            try:
                out[converter.structure(k, key_type)] = converter.structure(v, value_type)
            except Exception as e:
                errors.append(_note(e, IterableValidationNote(f"value @ key {k!r}", k, value_type)))
        if errors:
            raise IterableValidationError(f"While structuring {t!r}", errors, t)
        return out

    return hook


converter.register_structure_hook_factory(_is_dict, _dict_hook)


# -- one-line messages ------------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
_QUOTE_LIMIT = 80


def quote(value: Any, limit: int = _QUOTE_LIMIT) -> str:
    """A value as the user wrote it, on one line (control characters escaped), cut short when huge."""
    if isinstance(value, str) and len(value) > limit:
        return f"{value[:limit]!r}... ({len(value)} characters)"
    text = repr(value)
    return text if len(text) <= limit + 20 else text[: limit + 20] + "..."


def key_path(parts: list[str | int]) -> str:
    """``env.a.environment.OMP_NUM_THREADS``, ``packages[3].wheel``, ``env."odd.name"``: keys as written."""
    out = ""
    for p in parts:
        if isinstance(p, int):
            out += f"[{p}]"
            continue
        shown = p if _BARE_KEY.fullmatch(p) else json.dumps(p, ensure_ascii=False)
        if len(shown) > _QUOTE_LIMIT + 2:
            shown = shown[:_QUOTE_LIMIT] + '..."'
        out += ("." if out else "") + shown
    return out


def _field_key(cls: Any, name: str) -> str:
    if _is_attrs(cls):
        for a in attrs.fields(cls):
            if a.name == name:
                return str(a.metadata.get("key") or name)
    return name


def _walk(exc: BaseException, path: list[str | int]) -> Iterator[tuple[list[str | int], BaseException]]:
    if isinstance(exc, ClassValidationError | IterableValidationError):
        for sub in exc.exceptions:
            notes = getattr(sub, "__notes__", [])
            note = next(
                (n for n in notes if isinstance(n, AttributeValidationNote | IterableValidationNote)), None
            )
            if isinstance(note, AttributeValidationNote):
                yield from _walk(sub, [*path, _field_key(exc.cl, note.name)])
            elif isinstance(note, IterableValidationNote):
                yield from _walk(sub, [*path, note.index])
            else:
                yield from _walk(sub, path)
    else:
        yield path, exc


_WORDS: dict[type, tuple[str, str]] = {  # (TOML, JSON)
    str: ("a string", "a string"),
    int: ("an integer", "an integer"),
    float: ("a number", "a number"),
    bool: ("a boolean", "true or false"),
    list: ("an array", "an array"),
    dict: ("a table", "an object"),
}


def _shown(value: Any, fmt: Format) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list | tuple):
        return _WORDS[list][fmt == "json"]
    if isinstance(value, dict):
        return _WORDS[dict][fmt == "json"]
    if isinstance(value, str | int | float):
        return quote(value)
    return f"{type(value).__name__} {value}"  # TOML dates and times


def _message(path: list[str | int], exc: BaseException, fmt: Format) -> str:
    where = key_path(path)
    if isinstance(exc, ForbiddenExtraKeysError):
        extra = ", ".join(key_path([k]) for k in sorted(exc.extra_fields))
        return f"unknown key(s) {extra} in {where or 'the top level'}"
    if isinstance(exc, KeyError):
        return f"missing required key {where}"
    if isinstance(exc, WrongType):
        text = f"expected {_WORDS[exc.expected][fmt == 'json']}, got {_shown(exc.value, fmt)}"
    elif isinstance(exc, Invalid):
        text = str(exc)
    else:  # a failure no check anticipated: still one line, with its type for the bug report
        text = f"invalid value ({type(exc).__name__}: {quote(str(exc), 200)})"
    return f"{where}: {text}" if where else text


def describe_error(exc: BaseException, fmt: Format = "toml") -> str:
    """The first problem of a structuring failure, on one line, naming keys as the input spells them."""
    for path, leaf in _walk(exc, []):
        return _message(path, leaf, fmt)
    return str(exc)


# -- the fast path -----------------------------------------------------------------------------------------
#
# Structuring through cattrs (per-value dispatch, detailed-validation bookkeeping) made up half of reading 1,000
# lockfiles. Valid input is by far the common case, so :func:`structure` first tries plain functions built from
# the same models with the same rules (exact str/int/bool, lists for tuples, objects for dicts and attrs
# classes, no unknown or missing keys, every field and class check; floats and other types go to cattrs);
# any failure, whatever it is, re-runs the input through cattrs, which raises the one-line error. So the fast
# path can only be as strict or stricter, never looser, and a type it does not know is handed to cattrs. It
# builds attrs models from their fields: a model given a structure hook of its own would be bypassed (a test
# checks that none of the structured models has one).


class _Reject(Exception):
    """The fast path does not accept this value (cattrs decides)."""


_fast_hooks: dict[Any, Callable[[Any], Any]] = {}


def _fast(t: Any) -> Callable[[Any], Any]:
    hook = _fast_hooks.get(t)
    if hook is None:
        hook = _fast_hooks[t] = _make_fast(t)
    return hook


def _exact(kind: type) -> Callable[[Any], Any]:
    def hook(value: Any) -> Any:
        if type(value) is not kind:  # bool is not an int here; a subclass goes to cattrs
            raise _Reject
        return value

    return hook


def _make_fast(t: Any) -> Callable[[Any], Any]:
    if t in (str, int, bool):
        return _exact(t)
    args: tuple[Any, ...] = getattr(t, "__args__", ())
    origin = getattr(t, "__origin__", None)
    if origin is None and len(args) == 2 and type(None) in args:  # X | None
        inner = next(a for a in args if a is not type(None))
        return _optional(inner)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _tuple(args[0])
    if origin is dict and len(args) == 2:
        return _dict(args[0], args[1])
    if _is_attrs(t) and not any(f.converter or f.validator for f in attrs.fields(t)):
        return _attrs_fast(t)
    # Anything else (floats, paths, literals, unions, models with converters) exactly as cattrs does it.
    return lambda value: converter.structure(value, t)


def _optional(inner: Any) -> Callable[[Any], Any]:
    def hook(value: Any) -> Any:
        return None if value is None else _fast(inner)(value)

    return hook


def _tuple(item: Any) -> Callable[[Any], Any]:
    def hook(value: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise _Reject
        one = _fast(item)
        return tuple([one(v) for v in value])

    return hook


def _dict(key: Any, item: Any) -> Callable[[Any], Any]:
    def hook(value: Any) -> Any:
        if not isinstance(value, dict):
            raise _Reject
        k, v = _fast(key), _fast(item)
        return {k(a): v(b) for a, b in value.items()}

    return hook


def _attrs_fast(cls: type) -> Callable[[Any], Any]:
    attrs.resolve_types(cls)
    # (input key, __init__ argument, field type, check or None, required)
    fields = [
        (
            str(a.metadata.get("key") or a.name),
            a.alias,
            a.type,
            a.metadata.get("check"),
            a.default is attrs.NOTHING,
        )
        for a in attrs.fields(cls)
        if a.init
    ]
    known = frozenset(f[0] for f in fields)
    required = frozenset(f[0] for f in fields if f[4])
    # The fields' hooks, made on first use (a model may contain itself).
    hooks: list[Callable[[Any], Any]] = []

    def hook(value: Any) -> Any:
        if type(value) is not dict or not known.issuperset(value) or not required.issubset(value):
            raise _Reject
        if not hooks:
            hooks.extend(_fast(f[2]) for f in fields)
        kwargs = {}
        for (key, arg, _, check, _), one in zip(fields, hooks, strict=True):
            if key in value:
                v = one(value[key])
                if check is not None:
                    check(v)
                kwargs[arg] = v
        obj = cls(**kwargs)
        class_check = _class_checks.get(cls)
        if class_check is not None:
            class_check(obj)
        return obj

    return hook
