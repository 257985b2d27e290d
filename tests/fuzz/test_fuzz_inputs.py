"""Property: whatever a declaration or lockfile holds, ``load -> lock(check=True) -> plan`` raises nothing but
envgraph's one-line user error (issue 10). In-process, offline, over the project of ``conftest.py``.

Run longer locally with ``ENVGRAPH_FUZZ=long`` (twenty times the examples); see ``conftest.py``. Each
example gets a fresh mutation of the valid project's declaration or of one of its lockfiles (two env
lockfiles on a scratch base, one on a Debian base, both base locks), and the valid file is put back after.
"""

from __future__ import annotations

import json
import math
import signal
import tomllib
import unicodedata
from pathlib import Path
from typing import Any

from hypothesis import event, given
from hypothesis import strategies as st

import envgraph
from envgraph.errors import EnvgraphError
from tests.fuzz.conftest import FuzzProject, fuzz_settings
from tests.fuzz.mutations import (
    damaged,
    edited,
    json_dumps,
    json_values,
    replaced,
    sweep,
    toml_dumps,
    toml_values,
)

# Characters that break a line or hide text on a terminal: never in a message.
HIDDEN = {"Cc", "Cf", "Zl", "Zp", "Cs"}

# An example that takes this long has hung (a FIFO opened for reading did, before tree_sha256 refused them).
HANG_SECONDS = 30


class Hung(Exception):
    pass


def _hung(signum: int, frame: Any) -> None:
    raise Hung(f"no answer within {HANG_SECONDS} s")


def outcome(run: Any) -> str:
    """Run ``run()``; the name of the user error it raised (checked to be one non-empty line), or "ok"."""
    previous = signal.signal(signal.SIGALRM, _hung)
    signal.setitimer(signal.ITIMER_REAL, HANG_SECONDS)
    try:
        run()
    except EnvgraphError as e:
        text = str(e)
        assert text and not any(unicodedata.category(ch) in HIDDEN for ch in text), repr(text)
        return type(e).__name__
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    return "ok"


def load_lock_plan(root: Path) -> None:
    ws = envgraph.load(root / "envgraph.toml", store=root / "store")
    ws.lock(check=True)
    ws.plan()


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b):
        return True
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    return type(a) is type(b) and a == b


@given(st.dictionaries(st.text(max_size=10), toml_values, max_size=4))
@fuzz_settings(200)
def test_the_toml_writer_round_trips(doc: dict[str, Any]) -> None:
    # The mutations below are only as good as their serialisation: it must say exactly what was generated.
    assert _same(tomllib.loads(toml_dumps(doc)), doc)


def test_the_fuzzed_project_is_valid(fuzz_project: FuzzProject) -> None:
    fuzz_project.restore()
    assert outcome(lambda: load_lock_plan(fuzz_project.root)) == "ok"


@given(data=st.data())
@fuzz_settings(3000)
def test_mutated_declarations_raise_only_user_errors(fuzz_project: FuzzProject, data: st.DataObject) -> None:
    doc = data.draw(edited(fuzz_project.declaration, toml_values, root_edits=False), label="declaration")
    (fuzz_project.root / "envgraph.toml").write_text(toml_dumps(doc), encoding="utf-8")
    event(outcome(lambda: load_lock_plan(fuzz_project.root)))


@given(data=st.data())
@fuzz_settings(800)
def test_damaged_declarations_raise_only_user_errors(fuzz_project: FuzzProject, data: st.DataObject) -> None:
    raw = data.draw(damaged(fuzz_project.text.encode()), label="declaration bytes")
    (fuzz_project.root / "envgraph.toml").write_bytes(raw)
    event(outcome(lambda: load_lock_plan(fuzz_project.root)))


@given(data=st.data())
@fuzz_settings(3000)
def test_mutated_lockfiles_raise_only_user_errors(fuzz_project: FuzzProject, data: st.DataObject) -> None:
    fuzz_project.restore()
    rel = data.draw(st.sampled_from(sorted(fuzz_project.locks)), label="lockfile")
    doc = data.draw(edited(json.loads(fuzz_project.locks[rel]), json_values, root_edits=True), label="lock")
    path = fuzz_project.root / rel
    try:
        path.write_text(json_dumps(doc), encoding="utf-8")
        event(outcome(lambda: load_lock_plan(fuzz_project.root)))
    finally:
        path.write_text(fuzz_project.locks[rel], encoding="utf-8")


@given(data=st.data())
@fuzz_settings(800)
def test_damaged_lockfiles_raise_only_user_errors(fuzz_project: FuzzProject, data: st.DataObject) -> None:
    fuzz_project.restore()
    rel = data.draw(st.sampled_from(sorted(fuzz_project.locks)), label="lockfile")
    raw = data.draw(damaged(fuzz_project.locks[rel].encode()), label="lock bytes")
    path = fuzz_project.root / rel
    try:
        path.write_bytes(raw)
        event(outcome(lambda: load_lock_plan(fuzz_project.root)))
    finally:
        path.write_text(fuzz_project.locks[rel], encoding="utf-8")


def _failures(cases: list[tuple[str, Any]], write: Any, root: Path) -> list[str]:
    failures = []
    for label, case in cases:
        write(case)
        try:
            outcome(lambda: load_lock_plan(root))
        except BaseException as e:  # noqa: BLE001 - every escape is a finding, reported together
            failures.append(f"{label}: {type(e).__name__}: {str(e)[:200]}")
    return failures


def test_sweep_every_hostile_value_through_the_declaration(fuzz_project: FuzzProject) -> None:
    """Each value of the pools put once at each place it matters (hundreds of cases, deterministic)."""
    fuzz_project.restore()
    doc = fuzz_project.declaration
    cases = [(f"{'.'.join(map(str, p))} = {v!r:.60}", replaced(doc, p, v)) for p, v in sweep(doc)]
    path = fuzz_project.root / "envgraph.toml"
    failures = _failures(cases, lambda d: path.write_text(toml_dumps(d), encoding="utf-8"), fuzz_project.root)
    fuzz_project.restore()
    assert not failures, "\n".join(failures)


def test_sweep_every_hostile_value_through_the_lockfiles(fuzz_project: FuzzProject) -> None:
    fuzz_project.restore()
    failures = []
    for rel, text in sorted(fuzz_project.locks.items()):
        doc = json.loads(text)
        cases = [(f"{rel}: {'.'.join(map(str, p))} = {v!r:.60}", replaced(doc, p, v)) for p, v in sweep(doc)]
        cases += [(f"{rel}: top level {v!r}", v) for v in ([], None, 1, "x", 1.5, True)]
        path = fuzz_project.root / rel
        failures += _failures(cases, lambda d, path=path: path.write_text(json_dumps(d)), fuzz_project.root)
        path.write_text(text, encoding="utf-8")
    assert not failures, "\n".join(failures)
