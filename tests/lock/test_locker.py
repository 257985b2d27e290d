"""Locking with a real pip-compile against wheels the tests build (offline), plus one marked PyPI test."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import envgraph
from envgraph._convert import structure, unstructure
from envgraph.errors import ResolutionError
from envgraph.identity import derivation
from envgraph.lock._lockfile import dumps
from envgraph.lock._model import BaseRef, FilePin, LockedPackage, Lockfile, ParentRef, Resolver, Wheel
from tests.support.wheels import make_wheel

CHAIN = """
[env.core]
base = "none"
requirements = ["alpha<2"]
environment = { A = "1" }

[env.train]
parent = "core"
requirements = ["gamma"]

[env.serve]
parent = "core"
requirements = ["delta"]
files = [{ src = "app/", dest = "/app" }]

[env.leaf]
parent = "train"
requirements = ["beta<2"]

[pipeline.p]
steps = { a = "leaf", b = "serve" }
"""


def lock(path: Path, **kw: object) -> dict[str, str]:
    ws = envgraph.load(path)
    result = ws.lock(**kw)  # type: ignore[arg-type]
    return {o.name: o.status for o in result.outcomes}


def drvs(root: Path) -> dict[str, str]:
    return {
        p.name.split(".")[0]: json.loads(p.read_text())["drv"]
        for p in sorted((root / "lockfiles").glob("*.lock.json"))
    }


@pytest.fixture
def chain(make_project, tmp_path: Path) -> Path:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text("print('app')\n")
    return make_project(CHAIN)


def test_lock_writes_canonical_lockfiles_and_requirements(chain: Path) -> None:
    assert lock(chain) == {
        "none": "resolved",
        "core": "resolved",
        "serve": "resolved",
        "train": "resolved",
        "leaf": "resolved",
    }
    root = chain.parent
    core = json.loads((root / "lockfiles" / "core.lock.json").read_text())
    assert [(p["name"], p["version"]) for p in core["packages"]] == [("alpha", "1.0")]
    assert (
        core["packages"][0]["wheel"]["url"] == "wheels/alpha-1.0-py3-none-any.whl"
    )  # relative, no absolute paths
    text = (root / "lockfiles" / "core.lock.json").read_text()
    assert text == json.dumps(json.loads(text), indent=2, sort_keys=True) + "\n"
    leaf = json.loads((root / "lockfiles" / "leaf.lock.json").read_text())
    # Child locks list only what they add; the parent's alpha==1.0 constrained beta to 1.0.
    assert [(p["name"], p["version"]) for p in leaf["packages"]] == [("beta", "1.0")]
    assert leaf["parent"]["env"] == "train"
    req = (root / "lockfiles" / "leaf.requirements.txt").read_text()
    assert "alpha==1.0" in req and "beta==1.0" in req and "gamma==1.0" in req
    # The requirements file is usable as-is by pip --require-hashes: it says where the packages come from.
    assert req.splitlines()[1:3] == ["--no-index", "--find-links ../wheels"]
    target = root / "site"
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--require-hashes", "--no-deps", "--target", str(target),
         "-r", str(root / "lockfiles" / "leaf.requirements.txt")],
        capture_output=True, text=True, cwd="/", env={**os.environ, "PIP_CONFIG_FILE": os.devnull, "PIP_FIND_LINKS": ""},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert (target / "beta" / "__init__.py").exists()


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
    lock(chain)
    before = {p: p.read_bytes() for p in (chain.parent / "lockfiles").rglob("*") if p.is_file()}
    assert set(lock(chain).values()) == {"unchanged"}
    assert set(lock(chain, check=True).values()) == {"unchanged"}
    after = {p: p.read_bytes() for p in (chain.parent / "lockfiles").rglob("*") if p.is_file()}
    assert before == after


def test_drv_is_stable_across_directories(chain: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    lock(chain)
    other = tmp_path_factory.mktemp("elsewhere") / "deeper" / "project"
    shutil.copytree(chain.parent, other, ignore=shutil.ignore_patterns("lockfiles"))
    lock(other / "envgraph.toml")
    for p in sorted((chain.parent / "lockfiles").rglob("*.*")):
        assert p.read_bytes() == (other / p.relative_to(chain.parent)).read_bytes(), p.name


@pytest.mark.parametrize(
    ("edit", "changed"),
    [
        (lambda t: t.replace('A = "1"', 'A = "2"'), {"core", "train", "serve", "leaf"}),
        (lambda t: t.replace('requirements = ["delta"]', 'requirements = ["gamma"]'), {"serve"}),
        (
            lambda t: t.replace(
                'requirements = ["gamma"]', 'requirements = ["gamma"]\nenvironment = { B = "x" }'
            ),
            {"train", "leaf"},
        ),
        (
            lambda t: t.replace('requirements = ["alpha<2"]', 'requirements = ["alpha>=2"]'),
            {"core", "train", "serve", "leaf"},
        ),
        (
            lambda t: t.replace('requirements = ["beta<2"]', 'requirements = ["beta<2"]\nworkdir = "/w"'),
            {"leaf"},
        ),
    ],
    ids=["env-var-at-root", "requirement-in-leaf", "env-var-in-middle", "parent-pin", "workdir"],
)
def test_drv_changes_for_exactly_the_env_and_descendants(chain: Path, edit, changed: set[str]) -> None:
    lock(chain)
    before = drvs(chain.parent)
    chain.write_text(edit(chain.read_text()))
    if "alpha>=2" in chain.read_text():
        chain.write_text(chain.read_text().replace('"beta<2"', '"beta"'))  # beta 2 is now allowed
    lock(chain)
    after = drvs(chain.parent)
    assert {e for e in before if before[e] != after[e]} == changed


def test_file_content_changes_drv(chain: Path) -> None:
    lock(chain)
    before = drvs(chain.parent)
    (chain.parent / "app" / "__main__.py").write_text("print('changed')\n")
    assert lock(chain, check=True)["serve"] == "stale"
    lock(chain)
    after = drvs(chain.parent)
    assert {e for e in before if before[e] != after[e]} == {"serve"}


def test_check_names_stale_envs_and_changes_nothing(chain: Path) -> None:
    lock(chain)
    chain.write_text(
        chain.read_text().replace('requirements = ["delta"]', 'requirements = ["delta", "alpha"]')
    )
    before = {p: p.read_bytes() for p in (chain.parent / "lockfiles").rglob("*") if p.is_file()}
    proc = subprocess.run(
        [sys.executable, "-m", "envgraph.cli", "lock", "--check"],
        cwd=chain.parent,
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [
        "envgraph: error: stale lockfiles: env serve (inputs changed): run `envgraph lock`"
    ]
    after = {p: p.read_bytes() for p in (chain.parent / "lockfiles").rglob("*") if p.is_file()}
    assert before == after


def test_missing_lockfile_is_stale(chain: Path) -> None:
    lock(chain)
    (chain.parent / "lockfiles" / "train.lock.json").unlink()
    status = lock(chain, check=True)
    assert status["train"] == "stale"


def test_existing_pins_are_kept_unless_upgraded(make_project, wheelhouse: Path) -> None:
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["alpha"]\n')
    (wheelhouse / "alpha-2.0-py3-none-any.whl").rename(wheelhouse.parent / "held-back.whl")
    lock(path)
    (wheelhouse.parent / "held-back.whl").rename(wheelhouse / "alpha-2.0-py3-none-any.whl")
    lock(path)  # the wheelhouse changed, so inputs changed, but pip-compile keeps the existing pin
    assert (
        json.loads((path.parent / "lockfiles" / "e.lock.json").read_text())["packages"][0]["version"] == "1.0"
    )
    lock(path, upgrade_packages=["alpha"])
    assert (
        json.loads((path.parent / "lockfiles" / "e.lock.json").read_text())["packages"][0]["version"] == "2.0"
    )


def test_child_conflicting_with_parent_pin_names_both(make_project) -> None:
    path = make_project(
        '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n[env.c]\nparent = "p"\nrequirements = ["alpha>=2"]\n'
    )
    with pytest.raises(
        ResolutionError, match=r"env c: requirement 'alpha>=2' conflicts with parent env p's pin alpha==1.0"
    ):
        lock(path)


def test_parent_pin_blocking_newer_releases_is_named(make_project) -> None:
    # beta's newest release needs alpha>=2, but the parent pins alpha 1.0: say so instead of silently taking beta 1.0.
    path = make_project(
        '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n[env.c]\nparent = "p"\nrequirements = ["beta"]\n'
    )
    with pytest.raises(ResolutionError) as info:
        lock(path)
    msg = str(info.value)
    assert "env c: 'beta' resolved to 1.0, far older than 2.0" in msg
    assert (
        "beta 2.0 (newest release allowed by 'beta') requires 'alpha>=2', but parent env p pins alpha==1.0"
        in msg
    )


def test_impossible_transitive_requirement_names_the_pin(make_project, wheelhouse: Path) -> None:
    make_wheel(wheelhouse, "needy", "1.0", requires=["alpha>=2"])
    path = make_project(
        '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n[env.c]\nparent = "p"\nrequirements = ["needy"]\n'
    )
    with pytest.raises(
        ResolutionError,
        match=r"env c: cannot resolve: needy 1.0 .* requires 'alpha>=2', but parent env p pins alpha==1.0",
    ):
        lock(path)


def test_resolution_time_budget(make_project) -> None:
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["alpha"]\n',
                        header=__import__("tests.conftest", fromlist=["HEADER"]).HEADER + "resolve-timeout = 0.001\n")  # fmt: skip
    text = path.read_text().replace("resolve-timeout = 0.001\n", "")
    text = text.replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nresolve-timeout = 0.001')
    path.write_text(text)
    with pytest.raises(ResolutionError, match=r"env e: resolution did not finish within 0.001 s"):
        lock(path)


def test_no_wheel_for_target_is_an_error(make_project, wheelhouse: Path) -> None:
    make_wheel(wheelhouse, "native", "1.0", tag="cp311-cp311-manylinux_2_39_x86_64")
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["native"]\n')
    # The host may accept manylinux_2_39 (pip resolves it), but the scratch base's libc is the manylinux2014 floor.
    with pytest.raises(ResolutionError, match=r"native"):
        lock(path)


def test_invalid_requirement(make_project) -> None:
    path = make_project('[env.e]\nbase = "none"\nrequirements = ["al pha"]\n')
    with pytest.raises(ResolutionError, match=r"env e: invalid requirement .al pha.: Expected semicolon"):
        lock(path)


def test_requirements_file(make_project, tmp_path: Path) -> None:
    (tmp_path / "reqs.txt").write_text("# core deps\nalpha<2  # pinned low\n\ngamma\n")
    path = make_project('[env.e]\nbase = "none"\nrequirements-file = "reqs.txt"\n')
    lock(path)
    data = json.loads((tmp_path / "lockfiles" / "e.lock.json").read_text())
    assert data["requirements"] == ["alpha<2", "gamma"]
    assert [p["name"] for p in data["packages"]] == ["alpha", "gamma"]


def test_layer_budget_merges_least_shared(make_project, wheelhouse: Path) -> None:
    body = '[env.p]\nbase = "none"\nrequirements = ["alpha<2", "delta"]\n[env.c]\nparent = "p"\nrequirements = ["gamma", "beta<2"]\n'
    path = make_project(body)
    path.write_text(
        path.read_text().replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nmax-layers = 4')
    )
    lock(path)
    c = json.loads((path.parent / "lockfiles" / "c.lock.json").read_text())
    # 0 base layers + venv = 1 fixed; 3 left: 2 own layers (alpha, delta: in both images) + 1 merged (beta, gamma).
    assert c["merged"] == ["beta", "gamma"]
    assert json.loads((path.parent / "lockfiles" / "p.lock.json").read_text())["merged"] == []


# -- hypothesis: hashes and round trips ------------------------------------------------------------

names = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
hexes = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
packages = st.builds(
    LockedPackage,
    name=names,
    version=st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True),
    wheel=st.builds(Wheel, filename=texts, sha256=hexes, size=st.integers(0, 2**40), url=texts),
)
lockfiles = st.builds(
    Lockfile,
    version=st.just(2),
    bytecode=st.booleans(),
    env=names,
    python=st.just("3.11"),
    platform=st.just("linux/amd64"),
    base=st.none() | st.builds(BaseRef, name=names, identity=hexes),
    parent=st.none() | st.builds(ParentRef, env=names, drv=hexes),
    requirements=st.lists(texts, max_size=3).map(tuple),
    packages=st.lists(packages, max_size=4).map(tuple),
    environment=st.dictionaries(texts, texts, max_size=3),
    files=st.lists(st.builds(FilePin, src=texts, dest=texts, sha256=hexes), max_size=2).map(tuple),
    workdir=st.none() | texts,
    entrypoint=st.none() | st.lists(texts, max_size=3).map(tuple),
    cmd=st.none() | st.lists(texts, max_size=3).map(tuple),
    merged=st.lists(names, max_size=3).map(tuple),
    resolver=st.just(Resolver("25.2", "7.5.1")),
    inputs=hexes,
    drv=hexes,
)


@given(lockfiles)
@settings(max_examples=100, deadline=None)
def test_lockfile_round_trip(lock_: Lockfile) -> None:
    text = dumps(lock_)
    again = structure(json.loads(text), Lockfile)
    assert again == lock_
    assert dumps(again) == text


@given(
    st.lists(packages, max_size=5, unique_by=lambda p: p.name),
    st.dictionaries(texts, texts, max_size=5),
    st.randoms(),
)
@settings(max_examples=100, deadline=None)
def test_drv_ignores_order_but_not_content(
    pkgs: list[LockedPackage], environment: dict[str, str], rnd
) -> None:
    def drv(ps, env):
        triples = [
            (p.name, p.version, p.wheel.filename, p.wheel.sha256, p.wheel.size, p.wheel.url) for p in ps
        ]
        return derivation(env="e", source="s", packages=triples, merged=(), environment=env, files=(),
                          workdir=None, entrypoint=None, cmd=None, python="3.11", platform="linux/amd64",
                          bytecode=False)  # fmt: skip

    shuffled = list(pkgs)
    rnd.shuffle(shuffled)
    items = list(environment.items())
    rnd.shuffle(items)
    assert drv(pkgs, environment) == drv(shuffled, dict(items))
    assert drv(pkgs, {**environment, "EXTRA-KEY-NOT-GENERATED!": "1"}) != drv(pkgs, environment)
    if pkgs:
        bumped = [unstructure(p) for p in pkgs]
        bumped[0]["version"] += ".1"
        assert drv([structure(p, LockedPackage) for p in bumped], environment) != drv(pkgs, environment)


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
