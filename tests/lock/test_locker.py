"""Locking with a real pip-compile against wheels the tests build (offline), plus one marked PyPI test.

pip-compile is what these tests exercise, but each run costs a second or two: a project is locked once per
module and copied, so a test resolves only what its edit makes stale (the locker is incremental).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from envgraph.errors import ResolutionError
from tests.support.cli import cli
from tests.support.project import HEADER, Locked, copy_project, lock, lock_drvs, lock_json, write_project
from tests.support.wheels import make_wheel


def statuses(path: Path, **kw: Any) -> dict[str, str]:
    """Lock in this process; returns name -> status of every outcome."""
    return {o.name: o.status for o in lock(path, **kw).outcomes}


def lockfile_bytes(root: Path) -> dict[Path, bytes]:
    return {p.relative_to(root): p.read_bytes() for p in (root / "lockfiles").rglob("*") if p.is_file()}


@pytest.fixture
def chain(pipelines_template: Path, tmp_path: Path) -> Path:
    """A copy of the session's locked PIPELINES project (tests/support/project.py); returns its envgraph.toml.

    core <- train, core <- serve <- api; batch and report are roots of their own."""
    return copy_project(pipelines_template, tmp_path / "project") / "envgraph.toml"


def test_lock_writes_canonical_lockfiles_and_requirements(pipelines_locked: Locked, tmp_path: Path) -> None:
    assert pipelines_locked.first == dict.fromkeys(
        ["none", "core", "train", "serve", "api", "batch", "report"], "resolved"
    )
    root = pipelines_locked.root
    core = lock_json(root, "core")
    assert [(p["name"], p["version"]) for p in core["packages"]] == [("alpha", "1.0")]
    assert (
        core["packages"][0]["wheel"]["url"] == "wheels/alpha-1.0-py3-none-any.whl"
    )  # relative, no absolute paths
    text = (root / "lockfiles" / "core.lock.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    api = lock_json(root, "api")
    # Child locks list only what they add; the ancestors' alpha==1.0 constrained beta to 1.0.
    assert [(p["name"], p["version"]) for p in api["packages"]] == [("beta", "1.0")]
    assert api["parent"]["env"] == "serve"
    req = (root / "lockfiles" / "api.requirements.txt").read_text()
    assert "alpha==1.0" in req and "beta==1.0" in req and "delta==0.5" in req
    # The requirements file is usable as-is by pip --require-hashes: it says where the packages come from.
    assert req.splitlines()[1:3] == ["--no-index", "--find-links ../wheels"]
    target = tmp_path / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--require-hashes", "--no-deps", "--target", str(target),
         "-r", str(root / "lockfiles" / "api.requirements.txt")],
        capture_output=True, text=True, cwd="/", env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (target / "beta" / "__init__.py").exists() and (target / "delta" / "__init__.py").exists()


def test_requirements_name_the_index_without_credentials() -> None:
    from envgraph.lock._lockfile import index_options

    assert index_options(
        "https://bob:s3cret@pypi.example/simple", ["https://x.example/s"], ["../wheels"]
    ) == [
        "--index-url https://pypi.example/simple",
        "--extra-index-url https://x.example/s",
        "--find-links ../wheels",
    ]


def test_second_lock_is_a_noop_and_check_passes(chain: Path) -> None:
    before = lockfile_bytes(chain.parent)
    assert set(statuses(chain).values()) == {"unchanged"}
    assert set(statuses(chain, check=True).values()) == {"unchanged"}
    assert lockfile_bytes(chain.parent) == before


def test_drv_is_stable_across_directories(
    pipelines_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    other = tmp_path_factory.mktemp("elsewhere") / "deeper" / "project"
    shutil.copytree(pipelines_template, other, ignore=shutil.ignore_patterns("lockfiles"))
    # api and its ancestors (a files layer, a grandchild): half the resolutions of the whole graph.
    statuses(other / "envgraph.toml", envs=["api"])
    here, there = lockfile_bytes(pipelines_template), lockfile_bytes(other)
    assert {p.name for p in there} == {
        f"{e}.{kind}" for e in ("core", "serve", "api") for kind in ("lock.json", "requirements.txt")
    } | {"none.lock.json"}
    assert there == {p: here[p] for p in there}


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (lambda t: t.replace('GREETING = "hola"', 'GREETING = "hello"'), {"core", "train", "serve", "api"}),
        (lambda t: t.replace('requirements = ["beta<2"]', 'requirements = ["beta<2", "gamma"]'), {"api"}),
        (
            lambda t: t.replace(
                'requirements = ["delta==0.5"]\n',
                'requirements = ["delta==0.5"]\nenvironment = { B = "x" }\n',
            ),
            {"serve", "api"},
        ),
        (
            # core's own pin moves; its descendants re-resolve under the new pin; batch and report pin alpha
            # themselves and keep their drvs.
            lambda t: t.replace('requirements = ["alpha<2"]', 'requirements = ["alpha>=2"]'),
            {"core", "train", "serve", "api"},
        ),
        (
            lambda t: t.replace('requirements = ["beta<2"]', 'requirements = ["beta<2"]\nworkdir = "/w"'),
            {"api"},
        ),
    ],
    ids=["env-var-at-root", "requirement-in-leaf", "env-var-in-middle", "parent-pin", "workdir"],
)
def test_drv_changes_for_exactly_the_env_and_descendants(
    chain: Path, edit: Callable[[str], str], changed: set[str]
) -> None:
    before = lock_drvs(chain.parent)
    edited = edit(chain.read_text())
    assert edited != chain.read_text()
    chain.write_text(edited)
    statuses(chain)
    after = lock_drvs(chain.parent)
    assert {e for e in before if before[e] != after[e]} == changed


def test_file_content_is_not_in_the_drv_but_what_the_files_are_is(chain: Path) -> None:
    """Code is not a dependency: a code edit leaves every lockfile as it is; another dest does not."""
    before = lock_drvs(chain.parent)
    (chain.parent / "app" / "main.py").write_text("print('changed')\n")
    assert statuses(chain, check=True)["serve"] == "unchanged"
    chain.write_text(chain.read_text().replace('dest = "/app"', 'dest = "/srv"'))
    assert statuses(chain, check=True)["serve"] == "stale"
    statuses(chain)
    after = lock_drvs(chain.parent)
    assert {e for e in before if before[e] != after[e]} == {"serve", "api"}  # api: its parent's drv moved


def test_check_names_stale_envs_and_changes_nothing(chain: Path) -> None:
    chain.write_text(
        chain.read_text().replace(
            'requirements = ["delta==0.5"]\n', 'requirements = ["delta==0.5", "alpha"]\n'
        )
    )
    before = lockfile_bytes(chain.parent)
    proc = cli(chain.parent, "lock", "--check", check=False)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "envgraph: error: stale lockfiles: env serve (inputs changed): run `envgraph lock`"
    ]
    assert lockfile_bytes(chain.parent) == before


def test_missing_lockfile_is_stale(chain: Path) -> None:
    (chain.parent / "lockfiles" / "train.lock.json").unlink()
    assert statuses(chain, check=True)["train"] == "stale"


def test_existing_pins_are_kept_unless_upgraded(make_project: Callable[..., Path], wheelhouse: Path) -> None:
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["alpha"]\n')
    (wheelhouse / "alpha-2.0-py3-none-any.whl").rename(wheelhouse.parent / "held-back.whl")
    lock(path)
    (wheelhouse.parent / "held-back.whl").rename(wheelhouse / "alpha-2.0-py3-none-any.whl")
    lock(path)  # the wheelhouse changed, so inputs changed, but pip-compile keeps the existing pin
    assert lock_json(path.parent, "e")["packages"][0]["version"] == "1.0"
    lock(path, upgrade_packages=["alpha"])
    assert lock_json(path.parent, "e")["packages"][0]["version"] == "2.0"


PARENT = '[env.p]\nbase = "none"\nrequirements = ["alpha<2", "delta"]\n'


@pytest.fixture(scope="module")
def parent_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Env p (alpha<2 and delta: alpha 1.0, delta 0.5) locked over the standard wheels plus needy 1.0
    (needs alpha>=2). Tests add a child env c and lock again: only c is resolved."""
    root = tmp_path_factory.mktemp("parent")
    make_wheel(root / "wheels", "needy", "1.0", requires=["alpha>=2"])
    lock(write_project(root, PARENT, HEADER))
    return root


@pytest.fixture
def with_child(parent_template: Path, tmp_path: Path) -> Callable[[str], Path]:
    """A copy of the locked parent project with env c (on p) requiring the given requirements; its toml."""

    def make(*requirements: str) -> Path:
        toml = copy_project(parent_template, tmp_path / "project") / "envgraph.toml"
        reqs = ", ".join(f'"{r}"' for r in requirements)
        toml.write_text(toml.read_text() + f'[env.c]\nparent = "p"\nrequirements = [{reqs}]\n')
        return toml

    return make


def test_child_conflicting_with_parent_pin_names_both(with_child: Callable[[str], Path]) -> None:
    path = with_child("alpha>=2")
    with pytest.raises(
        ResolutionError, match=r"env c: requirement 'alpha>=2' conflicts with parent env p's pin alpha==1.0"
    ):
        lock(path)


def test_parent_pin_blocking_newer_releases_is_named(with_child: Callable[[str], Path]) -> None:
    # beta's newest release needs alpha>=2, but the parent pins alpha 1.0: say so instead of silently taking beta 1.0.
    path = with_child("beta")
    with pytest.raises(ResolutionError) as info:
        lock(path)
    msg = str(info.value)
    assert "env c: 'beta' resolved to 1.0, far older than 2.0" in msg
    assert (
        "beta 2.0 (newest release allowed by 'beta') requires 'alpha>=2', but parent env p pins alpha==1.0"
        in msg
    )


def test_impossible_transitive_requirement_names_the_pin(with_child: Callable[[str], Path]) -> None:
    path = with_child("needy")
    with pytest.raises(
        ResolutionError,
        match=r"env c: cannot resolve: needy 1.0 .* requires 'alpha>=2', but parent env p pins alpha==1.0",
    ):
        lock(path)


def test_resolution_time_budget(make_project: Callable[..., Path]) -> None:
    header = HEADER.replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nresolve-timeout = 0.001')
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["alpha"]\n', header)
    with pytest.raises(ResolutionError, match=r"env e: resolution did not finish within 0.001 s"):
        lock(path)


def test_no_wheel_for_target_is_an_error(make_project: Callable[..., Path], wheelhouse: Path) -> None:
    make_wheel(wheelhouse, "native", "1.0", tag="cp311-cp311-manylinux_2_39_x86_64")
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["native"]\n')
    # The host may accept manylinux_2_39 (pip resolves it), but the scratch base's libc is the manylinux2014 floor.
    with pytest.raises(ResolutionError, match=r"native"):
        lock(path)


def test_invalid_requirement(make_project: Callable[..., Path]) -> None:
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["al pha"]\n')
    with pytest.raises(ResolutionError, match=r"env e: invalid requirement .al pha.: Expected semicolon"):
        lock(path)


def test_requirements_file(make_project: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "reqs.txt").write_text("# core deps\nalpha<2  # pinned low\n\ngamma\n")
    path = make_project('[env.e]\nbase = "none"\nrequirements-file = "reqs.txt"\n')
    lock(path)
    data = json.loads((tmp_path / "lockfiles" / "e.lock.json").read_text())
    assert data["requirements"] == ["alpha<2", "gamma"]
    assert [p["name"] for p in data["packages"]] == ["alpha", "gamma"]


def test_layer_budget_merges_least_shared(with_child: Callable[..., Path]) -> None:
    path = with_child("gamma", "beta<2")
    path.write_text(
        path.read_text().replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nmax-layers = 4')
    )
    assert statuses(path) == {
        "none": "unchanged",
        "p": "unchanged",
        "c": "resolved",
    }  # the budget needs no new pins
    c = lock_json(path.parent, "c")
    # 0 base layers + venv = 1 fixed; 3 left: 2 own layers (alpha, delta: in both images) + 1 merged (beta, gamma).
    assert c["merged"] == ["beta", "gamma"]
    assert lock_json(path.parent, "p")["merged"] == []


@pytest.mark.network
def test_lock_real_packages_from_pypi(tmp_path: Path) -> None:
    (tmp_path / "envgraph.toml").write_text(
        '[project]\nname = "n"\npython = "3.11"\n[bases.d]\nimage = "scratch"\n'
        '[env.e]\nbase = "d"\nrequirements = ["six==1.17.0"]\n[env.f]\nparent = "e"\nrequirements = ["attrs==25.3.0"]\n'
    )
    lock(tmp_path / "envgraph.toml")
    f = json.loads((tmp_path / "lockfiles" / "f.lock.json").read_text())
    wheel = f["packages"][0]["wheel"]
    assert wheel["filename"] == "attrs-25.3.0-py3-none-any.whl"
    assert wheel["url"].startswith("https://") and wheel["size"] > 0 and len(wheel["sha256"]) == 64
