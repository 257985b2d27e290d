"""Parallel locking: envs start when their own parent is locked, independent envs resolve at once."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

import envgraph
from envgraph.lock._schedule import run_dag


def test_independent_nodes_run_at_once() -> None:
    both = threading.Barrier(2, timeout=5)  # breaks (an error) unless two nodes run at the same time

    def work(n: str) -> str:
        both.wait()
        return n.upper()

    assert run_dag(["a", "b"], {}, work, jobs=2) == {"a": "A", "b": "B"}
    with pytest.raises(threading.BrokenBarrierError):
        run_dag(["a", "b"], {}, lambda n: both.wait() and n, jobs=1)


def test_child_waits_for_its_parent_only() -> None:
    # slow and parent are independent; child needs parent, not slow: it must start while slow still runs.
    events: list[str] = []
    lock = threading.Lock()
    slow_may_finish = threading.Event()

    def work(n: str) -> None:
        with lock:
            events.append(f"start {n}")
        if n == "slow":
            assert slow_may_finish.wait(5), "child did not start before slow finished"
        if n == "child":
            slow_may_finish.set()
        with lock:
            events.append(f"end {n}")

    seen: list[str] = []
    run_dag(
        ["parent", "slow", "child"], {"child": ["parent"]}, work, jobs=2, done=lambda n, _r: seen.append(n)
    )
    assert events.index("start child") > events.index("end parent")
    assert events.index("start child") < events.index("end slow")
    assert seen.index("parent") < seen.index("child")


def test_first_failure_in_order_is_raised_and_stops_new_starts() -> None:
    started: list[str] = []

    def work(n: str) -> None:
        started.append(n)
        if n in ("b", "a"):
            time.sleep(0.05 if n == "a" else 0)
            raise ValueError(n)

    with pytest.raises(ValueError, match="^a$"):  # a is first in order, though b failed first
        run_dag(["a", "b", "c"], {"c": ["a"]}, work, jobs=2)
    assert "c" not in started


def test_lock_in_parallel_gives_the_same_lockfiles_and_says_how_long(make_project, tmp_path: Path) -> None:
    body = (
        '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n'
        '[env.c1]\nparent = "p"\nrequirements = ["gamma"]\n'
        '[env.c2]\nparent = "p"\nrequirements = ["delta"]\n'
    )
    path = make_project(body)
    lines: list[str] = []
    envgraph.load(path).lock(jobs=2, log=lines.append)
    first = {p.name: p.read_bytes() for p in (tmp_path / "lockfiles").glob("*.*")}
    assert len(first) == 6
    assert any(line.startswith("env c1: 1 packages resolved in ") and "pip-compile" in line for line in lines)
    assert lines.index("resolving env p") < lines.index("resolving env c1")
    for p in (tmp_path / "lockfiles").glob("*.*"):
        p.unlink()
    envgraph.load(path).lock(jobs=1)
    assert {p.name: p.read_bytes() for p in (tmp_path / "lockfiles").glob("*.*")} == first


def test_failed_resolution_shows_which_requirements_conflict(make_project, wheelhouse: Path) -> None:
    from envgraph.errors import ResolutionError
    from tests.support.wheels import make_wheel

    make_wheel(wheelhouse, "needy", "1.0", requires=["alpha>=2"])
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["needy", "alpha<2"]\n')
    with pytest.raises(ResolutionError) as info:
        envgraph.load(path).lock()
    msg = str(info.value)
    assert msg.startswith("env e: cannot resolve: conflicting dependencies: ")
    assert "needy 1.0 requires 'alpha>=2'" in msg and "the env requires 'alpha<2'" in msg
