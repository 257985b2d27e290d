"""Locking native dependencies offline: Debian packages from a signed loopback archive the tests make, and
packages without a wheel (sdists, directories, git commits) resolved by a real pip-compile.

The Debian base is pinned by a stand-in pinner (the real one runs mmdebstrap; see tests/e2e/test_native.py):
it gives the base an installed set, which is what Debian package resolution works against.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from envgraph.errors import DebianError, LockError
from envgraph.graph import build_graph
from envgraph.identity import LOCK_VERSION, Compression
from envgraph.lock import BaseLock, DebianPin, ImagePin, Locker, LockResult, read_base_lock
from envgraph.lock._lockfile import read_lock
from envgraph.lock._sources import source_hash
from envgraph.plan import DebLayer, MergedLayer, PackageLayer, PlanTarget, make_plan
from envgraph.spec import Base, libc_of, read_spec
from tests.support.debian import TestKeys, build_deb, make_archive, serve
from tests.support.sdists import backend_wheel, make_sdist, make_source_tree
from tests.support.wheels import installed_wheel, make_wheel, standard_wheels

BASE_VERSIONS = {"base-files": "12.4", "libc6": "2.36-9"}

HEADER = """
[project]
name = "t"
python = "3.11"
index-url = ""
find-links = ["wheels"]
build-apt = []
{project}
[bases.deb]
debian = {{ suite = "bookworm", packages = ["python3-minimal"], mirror = "{mirror}" }}
python = "/usr/bin/python3.11"
{base}
[bases.none]
image = "scratch"
"""


def _debs(directory: Path) -> list[Path]:
    return [
        build_deb(directory, "libc6", "2.36-9"),
        build_deb(directory, "gcc-12-base", "12.2.0-14"),
        build_deb(
            directory,
            "libgomp1",
            "12.2.0-14",
            fields={"Depends": "gcc-12-base (= 12.2.0-14), libc6 (>= 2.34)"},
            files={
                "usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0": b"\x7fELF gomp",
                "usr/lib/x86_64-linux-gnu/libgomp.so.1": b"\x7fELF gomp",
            },
        ),  # fmt: skip
        build_deb(directory, "libonig5", "6.9.8-1", fields={"Depends": "libc6"}),
        build_deb(directory, "libjq1", "1.6-2.1", fields={"Depends": "libonig5 (>= 6.1.0)"}),
        build_deb(directory, "jq", "1.6-2.1", fields={"Depends": "libjq1 (= 1.6-2.1)"}),
        build_deb(directory, "broken", "1.0", fields={"Depends": "libjq1, not-in-the-archive"}),
    ]


@pytest.fixture
def mirror(tmp_path: Path, test_keys: TestKeys, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    root = tmp_path / "mirror"
    make_archive(root, "bookworm", _debs(tmp_path / "debs"), keys=test_keys)
    monkeypatch.setenv("ENVGRAPH_DEBIAN_KEYRING", str(test_keys.keyring))
    monkeypatch.setenv("ENVGRAPH_CACHE", str(tmp_path / "cache"))
    with serve(root) as server:
        yield server.url


def _pin_base(name: str, base: Base, existing: BaseLock | None) -> BaseLock:
    """What the real pinner records, without building a root filesystem: an installed set and a content id."""
    debian = None
    if base.debian is not None:
        debian = DebianPin(
            suite=base.debian.suite,
            packages=tuple(sorted(base.debian.packages)),
            mirror=base.debian.mirror or "",
            versions=BASE_VERSIONS,
            diff_id="sha256:" + "1" * 64,
        )
    # A scratch base pins the image "scratch", as the real pinner does (a base lock holds debian or image).
    image = ImagePin(reference="scratch") if base.image == "scratch" else None
    return BaseLock(
        version=LOCK_VERSION, name=name, python=base.python, libc=libc_of(base), inputs="", identity="",
        debian=debian, image=image, architecture="amd64" if debian else None,
        python_version="3.11" if debian else None,
    )  # fmt: skip


Project = Callable[..., Path]


@pytest.fixture
def project(tmp_path: Path, mirror: str) -> Project:
    standard_wheels(tmp_path / "wheels")

    def make(body: str, *, project: str = "", base: str = "") -> Path:
        path = tmp_path / "envgraph.toml"
        header = HEADER.format(mirror=mirror, project=project, base=base)
        path.write_text(textwrap.dedent(header) + textwrap.dedent(body))
        return path

    return make


def lock(path: Path, **kw: object) -> LockResult:
    spec = read_spec(path)
    locker = Locker(spec, build_graph(spec), spec.root / "lockfiles", pin_base=_pin_base)
    return locker.lock(**kw)  # type: ignore[arg-type]


def statuses(result: LockResult) -> dict[str, str]:
    return {o.name: o.status for o in result.outcomes}


def doc(path: Path, env: str) -> dict:  # type: ignore[type-arg]
    return json.loads((path.parent / "lockfiles" / f"{env}.lock.json").read_text())


def plan(path: Path):  # type: ignore[no-untyped-def]
    spec = read_spec(path)
    graph = build_graph(spec)
    lockdir = spec.root / "lockfiles"
    locks = {e: read_lock(lockdir, e) for e in graph.envs()}
    bases = {b: lk for b in spec.bases if (lk := read_base_lock(lockdir, b)) is not None}
    return make_plan(graph, locks, bases, PlanTarget("3.11", False, Compression.GZIP))  # type: ignore[arg-type]


# --- Debian packages ---------------------------------------------------------------------------------------

APT = """
[env.core]
base = "deb"
requirements = ["alpha<2"]
apt = ["libgomp1"]

[env.child]
parent = "core"
requirements = ["gamma"]
apt = ["jq", "libgomp1"]
"""


def test_each_env_pins_only_the_debian_packages_it_adds(project: Project) -> None:
    path = project(APT)
    assert statuses(lock(path)) == {"deb": "resolved", "core": "resolved", "child": "resolved"}
    core, child = doc(path, "core"), doc(path, "child")
    assert [(p["name"], p["version"]) for p in core["apt"]["packages"]] == [
        ("gcc-12-base", "12.2.0-14"),
        ("libgomp1", "12.2.0-14"),
    ]  # libc6 is in the base: not added again
    assert core["apt"]["requested"] == ["libgomp1"]
    gomp = core["apt"]["packages"][1]
    assert gomp["filename"].startswith("pool/main/l/libgomp1_") and len(gomp["sha256"]) == 64
    # The child asks for libgomp1 again: its parent has it, so the child adds jq's closure only.
    assert [p["name"] for p in child["apt"]["packages"]] == ["jq", "libjq1", "libonig5"]
    assert statuses(lock(path)) == {"deb": "unchanged", "core": "unchanged", "child": "unchanged"}
    assert not lock(path, check=True).stale

    p = plan(path)
    labels = {img.env: list(img.labels) for img in p.images}
    assert labels["core"] == [
        "base deb",
        "venv /opt/venv",
        "deb:gcc-12-base 12.2.0-14",
        "deb:libgomp1 12.2.0-14",
        "alpha 1.0",
    ]
    assert labels["child"][:5] == labels["core"]  # a child's image extends its parent's layer list
    assert labels["child"][5:] == [
        "deb:jq 1.6-2.1", "deb:libjq1 1.6-2.1", "deb:libonig5 6.9.8-1", "gamma 1.0",
    ]  # fmt: skip
    core_img, child_img = p.images
    assert set(core_img.layers) <= set(child_img.layers)  # one layer per Debian package, shared
    deb = next(t for t in p.layers.values() if isinstance(t, DebLayer) and t.pin.name == "libgomp1")
    assert deb.merged_usr == ("bin", "lib", "lib64", "sbin") and deb.mirror.startswith("http://127.0.0.1")


def test_lock_check_notices_an_edited_apt_list_and_an_edited_pin(project: Project) -> None:
    path = project(APT)
    lock(path)
    path.write_text(path.read_text().replace('apt = ["libgomp1"]', 'apt = ["libgomp1", "libonig5"]'))
    stale = {o.name: o.reason for o in lock(path, check=True).stale}
    assert stale == {"core": "apt inputs changed"}  # the child follows once its parent is relocked
    assert statuses(lock(path))["core"] == "resolved"
    assert [p["name"] for p in doc(path, "core")["apt"]["packages"]] == [
        "gcc-12-base",
        "libgomp1",
        "libonig5",
    ]
    assert [p["name"] for p in doc(path, "child")["apt"]["packages"]] == ["jq", "libjq1"]  # libonig5 moved up
    # A hand-edited pin (here a size) no longer gives the lockfile's drv.
    lockfile = path.parent / "lockfiles" / "core.lock.json"
    text = json.loads(lockfile.read_text())
    text["apt"]["packages"][1]["size"] += 1
    lockfile.write_text(json.dumps(text, indent=2, sort_keys=True) + "\n")
    assert {o.name: o.reason for o in lock(path, check=True).stale}["core"] == (
        "its content does not match its drv (edited?)"
    )


def test_a_bases_apt_packages_are_layers_of_every_env_on_it(project: Project) -> None:
    path = project(
        """
        [env.a]
        base = "deb"
        requirements = ["alpha"]

        [env.b]
        base = "deb"
        requirements = ["delta"]
        apt = ["jq"]
        """,
        base='apt = ["libgomp1"]',
    )
    lock(path)
    assert [p["name"] for p in doc(path, "a")["apt"]["packages"]] == ["gcc-12-base", "libgomp1"]
    assert doc(path, "b")["apt"]["requested"] == ["jq", "libgomp1"]
    p = plan(path)
    a, b = p.images
    gomp = [k for k in a.layers if isinstance(p.layers[k], DebLayer)]
    assert len(gomp) == 2 and set(gomp) <= set(b.layers)  # the same .deb, the same layer
    assert json.loads((path.parent / "lockfiles" / "bases" / "deb.lock.json").read_text()).get("apt") is None


def test_unmet_debian_dependencies_and_image_bases_are_clear_errors(project: Project) -> None:
    path = project('[env.core]\nbase = "deb"\napt = ["broken"]\n')
    with pytest.raises(DebianError) as e:
        lock(path)
    assert str(e.value) == (
        "env core: Debian package broken needs not-in-the-archive, which bookworm/amd64 does not provide"
    )
    path = project('[env.core]\nbase = "deb"\napt = ["nosuch"]\n')
    with pytest.raises(DebianError, match="env core: Debian package nosuch is not in bookworm/amd64"):
        lock(path)
    path = project('[env.core]\nbase = "none"\napt = ["jq"]\n')
    with pytest.raises(
        LockError, match="env core: Debian packages need a Debian base .* base none is an image"
    ):
        lock(path)


def test_the_layer_budget_merges_debian_and_python_packages_alike(project: Project) -> None:
    # The base, the venv and 3 package layers: core's 5 units (2 .debs, alpha, delta, gamma) do not fit.
    path = project(
        """
        [env.core]
        base = "deb"
        requirements = ["delta", "gamma"]
        apt = ["libgomp1"]

        [env.other]
        base = "deb"
        requirements = ["delta"]
        """,
        project="max-layers = 5",
    )
    lock(path)
    # delta is in both images and keeps its layer; of the rest (one image each) the first by name does too.
    assert doc(path, "core")["merged"] == ["deb:gcc-12-base", "deb:libgomp1", "gamma"]
    p = plan(path)
    core = p.images[0]
    assert core.labels[:4] == ("base deb", "venv /opt/venv", "alpha 2.0", "delta 0.5")
    merged = p.layers[core.layers[-1]]
    assert isinstance(merged, MergedLayer) and len(core.layers) == 5
    assert merged.label == "merged deb:gcc-12-base, deb:libgomp1, gamma"
    assert [d.pin.name for d in merged.debs] == ["gcc-12-base", "libgomp1"]
    assert [n for n, _ in merged.packages] == ["gamma"]


def test_debian_package_layers_are_built_from_the_pinned_deb(project: Project, tmp_path: Path) -> None:
    from envgraph.builder._layers import build_deb_layer
    from envgraph.builder._scheduler import _fetch_deb
    from envgraph.oci._store import Store

    path = project(APT)
    lock(path)
    p = plan(path)
    deb = next(t for t in p.layers.values() if isinstance(t, DebLayer) and t.pin.name == "libgomp1")
    store = Store.open(tmp_path / "store")
    record = build_deb_layer(store, deb, _fetch_deb(deb))
    assert record.key == deb.key
    assert store.read_paths(record) == [
        "usr/lib/x86_64-linux-gnu/libgomp.so.1",
        "usr/lib/x86_64-linux-gnu/libgomp.so.1.0.0",
        "var/lib/dpkg/status.d/libgomp1",
    ]


# --- packages without a wheel --------------------------------------------------------------------------------


def test_a_package_with_only_an_sdist_is_locked_with_its_sdist_and_build_requirements(
    project: Project,
) -> None:
    root = project('[env.core]\nbase = "deb"\nrequirements = ["sdonly"]\n').parent
    backend_wheel(root / "wheels")
    sdist = make_sdist(root / "wheels", "sdonly", "1.0", requires=["alpha<2"], build_requires=["tinybackend"])
    path = root / "envgraph.toml"
    assert statuses(lock(path))["core"] == "resolved"
    (pkg,) = [p for p in doc(path, "core")["packages"] if p["name"] == "sdonly"]
    assert "wheel" not in pkg
    assert pkg["source"] == {
        "kind": "sdist",
        "filename": "sdonly-1.0.tar.gz",
        "url": "wheels/sdonly-1.0.tar.gz",
        "sha256": hashlib.sha256(sdist.read_bytes()).hexdigest(),
        "size": sdist.stat().st_size,
    }
    assert pkg["build"]["backend"] == "tinybackend"
    assert [(d["name"], d["wheel"]["filename"]) for d in pkg["build"]["packages"]] == [
        ("tinybackend", "tinybackend-1.0-py3-none-any.whl")
    ]
    assert [p["name"] for p in doc(path, "core")["packages"]] == ["alpha", "sdonly"]  # its dependency too
    build_apt = doc(path, "core")["build-apt"]
    assert (build_apt["requested"], build_apt["packages"]) == ([], [])  # project.build-apt = [] here
    requirements = (root / "lockfiles" / "core.requirements.txt").read_text()
    assert f"sdonly==1.0 \\\n    --hash=sha256:{pkg['source']['sha256']}" in requirements
    layer = next(t for t in plan(path).layers.values() if isinstance(t, PackageLayer) and t.name == "sdonly")
    assert layer.wheel is None and layer.built is not None
    assert layer.built.environment == (next(iter(plan(path).builds)),)  # the base's root filesystem only
    assert statuses(lock(path))["core"] == "unchanged"


@pytest.mark.parametrize(
    ("field", "value"),
    [("url", "../../etc"), ("kind", "tarball"), ("sha256", "sha256:../x")],
)
def test_a_lockfile_source_is_checked_before_any_path_is_made_of_it(
    project: Project, field: str, value: str
) -> None:
    path = project('[env.core]\nbase = "deb"\nrequirements = ["./libs/features"]\n')
    make_source_tree(path.parent / "libs" / "features", "features", "0.3")
    lock(path)
    lockfile = path.parent / "lockfiles" / "core.lock.json"
    doc_ = json.loads(lockfile.read_text())
    doc_["packages"][0]["source"][field] = value
    lockfile.write_text(json.dumps(doc_))
    (stale,) = lock(path, check=True).stale
    assert stale.name == "core" and "malformed lockfile" in stale.reason


def test_a_package_without_a_wheel_on_an_image_base_says_it_needs_a_debian_base(project: Project) -> None:
    root = project('[env.core]\nbase = "none"\nrequirements = ["sdonly"]\n').parent
    make_sdist(root / "wheels", "sdonly", "1.0")
    with pytest.raises(LockError) as e:
        lock(root / "envgraph.toml")
    assert str(e.value) == (
        "env core: sdonly must be built from source (no wheel for the target), which needs a Debian base to "
        "build in, and base none is an image; or pin a release that has a wheel"
    )


def test_a_directory_of_the_project_is_locked_by_content_and_its_dependencies_resolved(
    project: Project,
) -> None:
    path = project(
        '[env.core]\nbase = "deb"\nrequirements = ["./libs/features"]\n\n[env.child]\nparent = "core"\nrequirements = ["usesfeatures"]\n'
    )
    root = path.parent
    make_source_tree(root / "libs" / "features", "features", "0.3", requires=["alpha<2"])
    make_wheel(root / "wheels", "usesfeatures", "1.0", requires=["features>=0.3"])
    lock(path)
    core = doc(path, "core")
    assert core["requirements"] == ["./libs/features"]
    (features,) = [p for p in core["packages"] if p["name"] == "features"]
    assert features["version"] == "0.3"
    assert features["source"]["kind"] == "directory" and features["source"]["url"] == "libs/features"
    assert features["build"]["backend"] == "backend" and features["build"]["backend-path"] == ["."]
    assert {p["name"] for p in core["packages"]} == {"alpha", "features"}
    # The child needs features too: its parent has it (from the directory), so the child adds only its own.
    assert [p["name"] for p in doc(path, "child")["packages"]] == ["usesfeatures"]
    assert not lock(path, check=True).stale
    (root / "libs" / "features" / "src" / "features" / "__init__.py").write_text("CHANGED = 1\n")
    assert {o.name: o.reason for o in lock(path, check=True).stale} == {"core": "inputs changed"}
    lock(path)
    assert doc(path, "core")["packages"][1]["source"]["sha256"] != features["source"]["sha256"]


def _tree(root: Path) -> dict[str, str]:
    """Every path under ``root`` (directories too) with its content hash: what "unchanged" means."""
    return {
        p.relative_to(root).as_posix(): "dir" if p.is_dir() else hashlib.sha256(p.read_bytes()).hexdigest()
        for p in root.rglob("*")
    }


@pytest.mark.parametrize("resolver", ["pip-tools", "uv"])
def test_locking_a_setuptools_directory_leaves_the_users_tree_unchanged(
    project: Project, resolver: str
) -> None:
    # Issue 13: setuptools' metadata hooks write src/<name>.egg-info into the directory the resolver is given
    # (the child resolves it again, from its parent's lockfile). uv once dropped the directory from the lock.
    path = project(
        '[env.core]\nbase = "deb"\nrequirements = ["./libs/feat"]\n\n'
        '[env.child]\nparent = "core"\nrequirements = ["gamma"]\n',
        project=f'resolver = "{resolver}"',
    )
    root = path.parent
    # A real setuptools that needs no `wheel` to build (70.1 and later), offline: the test's own, packed.
    installed_wheel(root / "wheels", "setuptools")
    feat = root / "libs" / "feat"
    (feat / "src" / "feat").mkdir(parents=True)
    (feat / "src" / "feat" / "__init__.py").write_text("X = 1\n")
    (feat / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=70.1"]\nbuild-backend = "setuptools.build_meta"\n\n'
        '[project]\nname = "feat"\nversion = "0.4"\ndependencies = ["alpha<2"]\n\n'
        '[tool.setuptools.packages.find]\nwhere = ["src"]\n'
    )
    before = _tree(root / "libs")
    lock(path)
    assert _tree(root / "libs") == before
    (pkg,) = [p for p in doc(path, "core")["packages"] if p["name"] == "feat"]
    assert pkg["version"] == "0.4"
    assert pkg["source"] == {"kind": "directory", "url": "libs/feat", "sha256": source_hash(feat)}
    assert pkg["build"]["backend"] == "setuptools.build_meta"
    assert {p["name"] for p in doc(path, "core")["packages"]} == {"alpha", "feat"}
    assert [p["name"] for p in doc(path, "child")["packages"]] == ["gamma"]
    assert not lock(path, check=True).stale


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


def test_a_git_url_pinned_to_a_commit_is_locked_with_its_tree(project: Project, tmp_path: Path) -> None:
    repo = make_source_tree(tmp_path / "repo", "gitpkg", "2.1")
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    commit = _git(repo, "rev-parse", "HEAD")
    path = project(f'[env.core]\nbase = "deb"\nrequirements = ["gitpkg @ git+file://{repo}@{commit}"]\n')
    lock(path)
    (pkg,) = doc(path, "core")["packages"]
    assert (pkg["name"], pkg["version"]) == ("gitpkg", "2.1")
    assert pkg["source"]["kind"] == "git" and pkg["source"]["commit"] == commit
    assert pkg["source"]["url"] == f"file://{repo}"
    path.write_text(path.read_text().replace(f"@{commit}", "@master"))
    with pytest.raises(LockError, match="names 'master', not a full commit"):
        lock(path)


def test_a_requirements_file_with_includes_and_constraints(project: Project) -> None:
    path = project('[env.core]\nbase = "none"\nrequirements-file = "reqs/core.txt"\n')
    reqs = path.parent / "reqs"
    reqs.mkdir()
    (reqs / "core.txt").write_text("# core\n-r common.txt\n-c constraints.txt\ngamma  # needs alpha\n")
    (reqs / "common.txt").write_text("delta\n")
    (reqs / "constraints.txt").write_text("alpha<2\n")
    lock(path)
    core = doc(path, "core")
    assert core["requirements"] == ["delta", "gamma"]
    assert core["constraints"] == ["alpha<2"]
    assert {(p["name"], p["version"]) for p in core["packages"]} == {
        ("alpha", "1.0"),
        ("delta", "0.5"),
        ("gamma", "1.0"),
    }
    (reqs / "constraints.txt").write_text("alpha>=2\n")
    assert {o.name: o.reason for o in lock(path, check=True).stale} == {"core": "inputs changed"}
    lock(path)
    assert ("alpha", "2.0") in {(p["name"], p["version"]) for p in doc(path, "core")["packages"]}
