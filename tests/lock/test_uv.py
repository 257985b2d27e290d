"""`[project] resolver = "uv"`: the pinned uv gives the same lockfiles (same drvs), switching makes locks stale,
the same parent-pin constraints and downgrade guard apply."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import envgraph
from envgraph.errors import ResolutionError
from envgraph.lock._resolve import UV_VERSION

BODY = (
    '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n'
    '[env.c]\nparent = "p"\nrequirements = ["gamma", "delta"]\n'
)


def use_uv(path: Path) -> None:
    path.write_text(path.read_text().replace('python = "3.11"\n', 'python = "3.11"\nresolver = "uv"\n', 1))


def locks(root: Path) -> dict[str, dict[str, object]]:
    return {p.name: json.loads(p.read_text()) for p in sorted((root / "lockfiles").glob("*.lock.json"))}


def test_uv_gives_the_same_lock_and_switching_makes_it_stale(make_project, tmp_path: Path) -> None:
    path = make_project(BODY)
    envgraph.load(path).lock()
    before = locks(tmp_path)
    use_uv(path)
    stale = envgraph.load(path).lock(check=True).stale
    assert {o.name for o in stale} == {"p", "c"} and all(o.reason == "inputs changed" for o in stale)
    lines: list[str] = []
    assert {o.name: o.status for o in envgraph.load(path).lock(log=lines.append).outcomes}["c"] == "resolved"
    assert any(line.startswith("env c: 2 packages resolved in ") and "(uv " in line for line in lines)
    after = locks(tmp_path)
    for name in before:
        assert after[name]["drv"] == before[name]["drv"]  # the drv depends only on what was resolved
        assert after[name]["packages"] == before[name]["packages"]
        assert after[name]["resolver"] == {**before[name]["resolver"], "uv": UV_VERSION}  # type: ignore[dict-item]
        assert after[name]["inputs"] != before[name]["inputs"]


def test_uv_keeps_the_parent_pin_and_the_downgrade_guard(make_project) -> None:
    path = make_project(
        '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n[env.c]\nparent = "p"\nrequirements = ["beta"]\n'
    )
    use_uv(path)
    with pytest.raises(ResolutionError) as info:
        envgraph.load(path).lock()
    assert (
        "env c: 'beta' resolved to 1.0, far older than 2.0: beta 2.0 (newest release allowed by 'beta') "
        in str(info.value)
    )


def test_uv_explains_a_conflict(make_project, wheelhouse: Path) -> None:
    from tests.support.wheels import make_wheel

    make_wheel(wheelhouse, "needy", "1.0", requires=["alpha>=2"])
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["needy", "alpha<2"]\n')
    use_uv(path)
    with pytest.raises(ResolutionError, match=r"env e: cannot resolve: .*needy.*alpha>=2"):
        envgraph.load(path).lock()
