"""Native dependencies end to end, for real: Debian packages from Debian's archive as layers, and wheels built
from source in the env's own base (a chroot of its layers), on the suite's one cached Debian base.

Downloads (.debs, wheels, sdists) go to the test cache (``~/.cache/envgraph-tests/envgraph``), so a second
run fetches nothing; each module builds into its own store, once.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.debian._rootfs import DebianRootfs
from envgraph.oci._image import read_config, read_manifest
from envgraph.oci._store import Store
from envgraph.plan import PackageLayer, WheelBuild
from tests.support.cli import cli_process
from tests.support.docker import cache_dir
from tests.support.native import seed_debian_base
from tests.support.sdists import C_SOURCE, make_sdist, make_source_tree

pytestmark = [pytest.mark.network, pytest.mark.debian, pytest.mark.timeout(1800)]

# A lean toolchain for the tests (the default is build-essential and python3-dev).
BUILD_APT = 'build-apt = ["gcc", "libc6-dev", "python3-dev"]'


@pytest.fixture(scope="module", autouse=True)
def shared_downloads() -> Iterator[None]:
    """Every download of this module (and of the envgraph processes it starts) in the suite's cache."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ENVGRAPH_CACHE", str(cache_dir() / "envgraph"))
        mp.delenv("ENVGRAPH_STORE", raising=False)
        yield


def cli(
    project: Path, *args: str, check: bool = True, timeout: float = 900
) -> subprocess.CompletedProcess[str]:
    return cli_process(project, *args, check=check, timeout=timeout)


def history(store: Store, env: str) -> list[str]:
    config = read_config(store, read_manifest(store, store.tags()[f"{env}:latest"].digest).config.digest)
    return [(h.comment or "").removeprefix("envgraph: ") for h in config.history or ()]


def layer_digests(store: Store, env: str) -> dict[str, str]:
    """history comment -> layer digest of an env's image."""
    manifest = read_manifest(store, store.tags()[f"{env}:latest"].digest)
    comments = [c for c in history(store, env)]
    return dict(zip(comments[-len(manifest.layers) :], [d.digest for d in manifest.layers], strict=True))


# --- Debian packages --------------------------------------------------------------------------------------

GBM = ["lightgbm==4.6.0", "numpy==2.2.6", "scipy==1.15.3"]
APT_BODY = f"""
[env.gbm]
base = "debian"
requirements = {json.dumps(GBM)}
apt = ["libgomp1"]

[env.gbm-nolib]
base = "debian"
requirements = {json.dumps(GBM)}

[env.tools]
base = "debian"
apt = ["jq", "libgomp1"]
"""

TRAIN = """
import numpy as np, lightgbm as lgb
rng = np.random.default_rng(0)
X = rng.normal(size=(300, 4)); y = (X[:, 0] + X[:, 1] > 0).astype(float)
booster = lgb.train({"objective": "binary", "verbose": -1, "num_threads": 1}, lgb.Dataset(X, y), num_boost_round=20)
print("accuracy %.2f" % ((booster.predict(X) > 0.5) == y).mean())
"""


@pytest.fixture(scope="module")
def apt_project(debian_rootfs: DebianRootfs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("apt")
    seed_debian_base(root, root / ".envgraph", debian_rootfs, APT_BODY)
    cli(root, "lock", "-q")
    cli(root, "build", "-q")
    return root


def test_debian_packages_are_locked_and_shared_as_layers(apt_project: Path) -> None:
    gbm = json.loads((apt_project / "lockfiles" / "gbm.lock.json").read_text())
    assert [p["name"] for p in gbm["apt"]["packages"]] == ["libgomp1"]  # its dependencies are in the base
    assert "apt" not in json.loads((apt_project / "lockfiles" / "gbm-nolib.lock.json").read_text())
    tools = json.loads((apt_project / "lockfiles" / "tools.lock.json").read_text())
    assert {"jq", "libjq1", "libonig5", "libgomp1"} <= {p["name"] for p in tools["apt"]["packages"]}
    store = Store.open(apt_project / ".envgraph")
    gomp = f"deb:libgomp1 {gbm['apt']['packages'][0]['version']}"
    gbm_layers, tools_layers = layer_digests(store, "gbm"), layer_digests(store, "tools")
    assert gbm_layers[gomp] == tools_layers[gomp]  # two envs, one layer blob
    assert not any(c.startswith("deb:") for c in layer_digests(store, "gbm-nolib"))
    # lock --check notices an edited apt list; the lockfiles stay as they are.
    toml = apt_project / "envgraph.toml"
    original = toml.read_text()
    try:
        toml.write_text(original.replace('apt = ["libgomp1"]', 'apt = ["libgomp1", "jq"]'))
        proc = cli(apt_project, "lock", "--check", check=False)
        assert proc.returncode == 1
        assert proc.stderr.strip() == (
            "envgraph: error: stale lockfiles: env gbm (apt inputs changed): run `envgraph lock`"
        )
    finally:
        toml.write_text(original)
    assert cli(apt_project, "lock", "--check").returncode == 0


@pytest.mark.docker
def test_lightgbm_trains_with_libgomp1_and_fails_at_import_without(
    apt_project: Path, loaded_cleanup: list[str]
) -> None:
    loaded_cleanup += ["envgraph/gbm", "envgraph/gbm-nolib", "envgraph/tools"]
    proc = cli(apt_project, "run", "--network", "none", "gbm", "--", "python", "-c", TRAIN, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.strip().startswith("accuracy 0.9")
    proc = cli(apt_project, "run", "--network", "none", "gbm-nolib", "--", "python", "-c", "import lightgbm",
               check=False)  # fmt: skip
    assert proc.returncode == 1
    # The container's stderr stays apart from its stdout (like docker run).
    assert "libgomp.so.1: cannot open shared object file" in proc.stderr
    proc = cli(apt_project, "run", "--network", "none", "tools", "--", "jq", "--version", check=False)
    assert (proc.returncode, proc.stdout.strip()) == (0, "jq-1.6")


# --- packages without a wheel ------------------------------------------------------------------------------

SRC_BODY = """
[env.src]
base = "debian"
requirements = ["cnative==1.0", "./libs/purelocal", "antlr4-python3-runtime==4.9.3", "{git}"]

[env.broken]
base = "debian"
requirements = ["cbroken==1.0"]
"""


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def _src_tree(root: Path) -> str:
    """The sources of the src project; returns the git requirement."""
    make_sdist(root / "dists", "cnative", "1.0", c_source=C_SOURCE)
    make_sdist(root / "dists", "cbroken", "1.0", c_source=C_SOURCE.replace("return PyLong", "retrun PyLong"))
    make_source_tree(root / "libs" / "purelocal", "purelocal", "0.2")
    repo = make_source_tree(root.parent / f"{root.name}-repo", "gitpkg", "0.5")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "gitpkg 0.5")
    return f"gitpkg @ git+file://{repo}@{_git(repo, 'rev-parse', 'HEAD')}"


@pytest.fixture(scope="module")
def src_project(debian_rootfs: DebianRootfs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("src")
    body = SRC_BODY.format(git=_src_tree(root))
    seed_debian_base(root, root / ".envgraph", debian_rootfs, body, f'find-links = ["dists"]\n{BUILD_APT}')
    cli(root, "lock", "-q")
    return root


def _wheel_builds(ws: envgraph.Workspace, env: str) -> dict[str, WheelBuild]:
    return {t.name: t for t in ws.plan([env]).builds.values() if isinstance(t, WheelBuild)}


def test_packages_without_a_wheel_are_built_in_the_base_and_rebuilt_bit_for_bit(src_project: Path) -> None:
    lockfile = json.loads((src_project / "lockfiles" / "src.lock.json").read_text())
    kinds = {p["name"]: p["source"]["kind"] for p in lockfile["packages"] if "source" in p}
    assert kinds == {
        "cnative": "sdist",
        "purelocal": "directory",
        "antlr4-python3-runtime": "sdist",
        "gitpkg": "git",
    }
    assert {p["name"] for p in lockfile["build-apt"]["packages"]} >= {"gcc-12", "libpython3.11-dev"}
    ws = envgraph.load(src_project / "envgraph.toml")
    result = ws.build(["src"])
    assert result.ok, result.failures
    store = ws.open_store()
    # The C extension was compiled in the base, against its Python, and installed like any wheel.
    plan = ws.plan(["src"])
    cnative = next(t for t in plan.layers.values() if isinstance(t, PackageLayer) and t.name == "cnative")
    paths = store.read_paths(store.get_key(cnative.key))  # type: ignore[arg-type]
    assert "opt/venv/lib/python3.11/site-packages/cnative/_native.cpython-311-x86_64-linux-gnu.so" in paths
    builds = _wheel_builds(ws, "src")
    logs = {name: (store.root / "logs").glob(f"{name}-*.log") for name in builds}
    assert all(list(found) for found in logs.values())
    first = layer_digests(store, "src")
    # Bit for bit: drop the built wheels and their layers, build again, get the same bytes.
    for name, build in builds.items():
        store.drop_key(build.key)
        store.drop_key(
            next(t.key for t in plan.layers.values() if isinstance(t, PackageLayer) and t.name == name)
        )
    again = ws.build(["src"])
    assert again.ok, again.failures
    assert sum(1 for r in again.layers.values() if r.status == "built") == 4
    assert layer_digests(store, "src") == first


def test_a_failed_build_is_one_line_with_the_package_the_log_and_its_last_lines(src_project: Path) -> None:
    proc = cli(src_project, "build", "broken", check=False)
    assert proc.returncode == 1
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith(
        "envgraph: error: layer cbroken 1.0: building cbroken 1.0 from cbroken-1.0.tar.gz failed"
    )
    log = Path(error.split("; log: ", 1)[1].split(";", 1)[0])
    assert log.parent == src_project / ".envgraph" / "logs" and log.is_file()
    assert "retrun" in log.read_text()
    last = error.split("last lines: ", 1)[1]
    assert last.startswith("first error: ") and "retrun" in last  # the compiler's error, then the tail


@pytest.mark.registry
def test_built_wheels_are_shared_through_a_registry_cache(
    src_project: Path, registry: Any, tmp_path: Path
) -> None:
    from envgraph.registry import RegistryCache

    ref = f"{registry.host}/native-cache"
    ws = envgraph.load(src_project / "envgraph.toml")
    assert ws.build(
        ["src"], cache=RegistryCache.from_reference(ref, insecure=True)
    ).ok  # publishes everything
    # A second machine with the same lockfiles but .pyc files in its layers: other package layers, the same
    # wheels. It pulls the wheels built on the first machine instead of building them.
    other = tmp_path / "other"
    shutil.copytree(src_project, other, ignore=shutil.ignore_patterns(".envgraph"))
    toml = other / "envgraph.toml"
    toml.write_text(toml.read_text().replace("[project]\n", "[project]\nbytecode = true\n", 1))
    cli(other, "lock", "-q")
    ws2 = envgraph.load(toml)
    assert {n: b.key for n, b in _wheel_builds(ws2, "src").items()} == {
        n: b.key for n, b in _wheel_builds(ws, "src").items()
    }
    result = ws2.build(["src"], cache=RegistryCache.from_reference(ref, insecure=True, mode="read"))
    assert result.ok, result.failures
    statuses = {r.label: r.status for r in result.layers.values()}
    assert {
        statuses[n] for n in ("cnative 1.0", "purelocal 0.2", "antlr4-python3-runtime 4.9.3", "gitpkg 0.5")
    } == {"built"}
    store = ws2.open_store()
    assert (
        not (store.root / "logs").exists() and not (store.root / "build-roots").exists()
    )  # nothing built from source
    assert "base debian" in statuses and statuses["base debian"] == "pulled"


@pytest.mark.docker
def test_the_built_packages_import_in_the_container(src_project: Path, loaded_cleanup: list[str]) -> None:
    cli(src_project, "build", "-q", "src")
    loaded_cleanup.append("envgraph/src")
    script = "import cnative, purelocal, gitpkg, antlr4; print(cnative.total(2, 3), purelocal.total(1, 1), gitpkg.total(2, 2), antlr4.__name__)"
    proc = cli(src_project, "run", "--network", "none", "src", "--", "python", "-c", script, check=False)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert proc.stdout.strip() == "5 2 4 antlr4"
