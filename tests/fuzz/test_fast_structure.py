"""The fast structuring path (``envgraph._convert.structure``) is never looser than cattrs: whatever it accepts,
cattrs accepts as the same object, over the fuzzer's mutations and every hostile value of the sweep. (What it
refuses goes to cattrs, whose answer is then the answer: a refusal there is an error naming the key.)"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from envgraph._convert import _fast, converter, structure
from envgraph.lock._model import BaseLock, Lockfile
from envgraph.oci._model import Descriptor, ImageConfig, Index, Manifest
from envgraph.spec import Spec
from tests.fuzz.conftest import FuzzProject, fuzz_settings
from tests.fuzz.mutations import edited, json_values, replaced, sweep, toml_values


def _cls(rel: str) -> type[Any]:
    return BaseLock if "bases/" in rel else Lockfile


def _agree(doc: Any, cls: type[Any]) -> str:
    """ "fast" when the fast path accepted (and cattrs agrees), "cattrs" when only cattrs did, "rejected"."""
    try:
        expected = converter.structure(doc, cls)
    except Exception:
        expected = None
    try:
        got = _fast(cls)(doc)
    except Exception:
        got = None
    if got is not None:
        assert expected is not None, f"the fast path accepted what cattrs refuses: {doc!r:.300}"
        assert got == expected, f"{got!r:.300} != {expected!r:.300}"
    # The public function gives cattrs' answer either way.
    try:
        assert structure(doc, cls) == expected
    except Exception:
        assert expected is None
    return "fast" if got is not None else "cattrs" if expected is not None else "rejected"


def test_the_valid_lockfiles_take_the_fast_path(fuzz_project: FuzzProject) -> None:
    for rel, text in fuzz_project.locks.items():
        assert _agree(json.loads(text), _cls(rel)) == "fast", rel


@given(data=st.data())
@fuzz_settings(1500)
def test_mutated_lockfiles_are_refused_by_the_fast_path_where_cattrs_refuses(
    fuzz_project: FuzzProject, data: st.DataObject
) -> None:
    rel = data.draw(st.sampled_from(sorted(fuzz_project.locks)), label="lockfile")
    doc = data.draw(edited(json.loads(fuzz_project.locks[rel]), json_values, root_edits=True), label="lock")
    event(_agree(doc, _cls(rel)))


def test_every_hostile_value_of_the_sweep_agrees(fuzz_project: FuzzProject) -> None:
    outcomes = []
    for rel, text in sorted(fuzz_project.locks.items()):
        doc = json.loads(text)
        for path, value in sweep(doc):
            outcomes.append(_agree(replaced(doc, path, value), _cls(rel)))
    assert outcomes.count("rejected") > 100  # the sweep really reached the checks


def test_every_hostile_value_of_the_declaration_sweep_agrees(fuzz_project: FuzzProject) -> None:
    doc = {**fuzz_project.declaration, "root": "/project"}
    assert _agree(doc, Spec) == "fast"
    for path, value in sweep(doc):  # most are refused later, by the declaration's own checks (spec._validate)
        _agree(replaced(doc, path, value), Spec)


@given(data=st.data())
@fuzz_settings(800)
def test_mutated_declarations_agree(fuzz_project: FuzzProject, data: st.DataObject) -> None:
    doc = data.draw(edited(fuzz_project.declaration, toml_values, root_edits=True), label="declaration")
    event(_agree({**doc, "root": "/project"} if isinstance(doc, dict) else doc, Spec))


WHEEL = {
    "filename": "alpha-1.0-py3-none-any.whl",
    "sha256": "a" * 64,
    "size": 10,
    "url": "../wheels/alpha-1.0-py3-none-any.whl",
}


@pytest.mark.parametrize(
    "wheel",
    [
        {**WHEEL, "size": True},  # a boolean is not an integer
        {**WHEEL, "size": 1.0},
        {**WHEEL, "size": -1},
        {**WHEEL, "sha256": "A" * 64},
        {**WHEEL, "extra": 1},
        {k: v for k, v in WHEEL.items() if k != "url"},
        {**WHEEL, "url": "/abs/alpha-1.0-py3-none-any.whl"},
        {**WHEEL, "filename": "../alpha-1.0-py3-none-any.whl"},
        [WHEEL],
        "alpha",
    ],
)
def test_the_fast_path_refuses_each_rule(wheel: Any) -> None:
    from envgraph.lock._model import LockedPackage

    doc = {"name": "alpha", "version": "1.0", "wheel": wheel}
    assert _agree({**doc, "wheel": WHEEL}, LockedPackage) == "fast"
    assert _agree(doc, LockedPackage) == "rejected"
    assert _agree({**doc, "wheel": WHEEL, "version": "2.0"}, LockedPackage) == "rejected"  # not its wheel
    assert _agree({**doc, "wheel": WHEEL, "name": "Alpha"}, LockedPackage) == "rejected"  # not normalized


def test_store_documents_agree() -> None:
    desc = {
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "digest": "sha256:" + "b" * 64,
        "size": 5,
    }
    for doc, cls in [
        (desc, Descriptor),
        ({**desc, "size": "5"}, Descriptor),
        (
            {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": [desc]},
            Index,
        ),
        ({"schemaVersion": 2, "manifests": "x"}, Index),
        ({"schemaVersion": 2, "config": desc, "layers": [desc, desc]}, Manifest),
        (
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"diff_ids": ["x"]},
                "config": {"Volumes": {"/a": {}}},
            },
            ImageConfig,
        ),
        ({"architecture": "amd64", "os": "linux", "rootfs": {"diff_ids": "x"}}, ImageConfig),
    ]:
        _agree(doc, cls)


def _reachable(roots: list[type[Any]]) -> set[type[Any]]:
    import typing

    import attrs

    seen: set[type[Any]] = set()
    todo = list(roots)
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        attrs.resolve_types(cls)
        for a in attrs.fields(cls):
            stack = [a.type]
            while stack:
                t = stack.pop()
                if isinstance(t, type) and attrs.has(t):
                    todo.append(t)
                stack.extend(typing.get_args(t))
    return seen


def test_no_model_has_a_structure_hook_of_its_own() -> None:
    # The fast path builds a model from its fields; a model given its own cattrs hook would be bypassed.
    from envgraph.oci._store import LayerRecord

    classes = _reachable([Lockfile, BaseLock, Spec, Index, Manifest, ImageConfig, LayerRecord])
    assert len(classes) > 30
    for cls in classes:
        assert converter.get_structure_hook(cls).__qualname__ == "_attrs_structure.<locals>.hook", cls
    for scalar in (str, int, bool):
        assert converter.get_structure_hook(scalar).__qualname__ == "_strict.<locals>.hook", scalar
