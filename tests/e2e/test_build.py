"""The image builder (issue 3), end to end and unmocked: real lockfiles, real wheels, a real store.

The command line runs in this process (``tests.support.cli.cli``; one build is a real process), over copies
of the session's locked PIPELINES project. Offline projects use a ``scratch`` base that declares an
interpreter: such images cannot run, but their layers, manifests and store are real. Tests that run images use one Debian bookworm root filesystem for
the whole suite (``debian_rootfs``, cached across runs), wrapped as an uncompressed docker-archive that
projects name as ``image = "docker-archive:..."``. That is the simplest robust route: locking imports it
by copying (seconds), while a ``debian = {...}`` base would run mmdebstrap at every lock and build.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.errors import SpecError
from envgraph.identity import DEFAULT_MTIME
from envgraph.oci._image import read_config, read_manifest
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from tests.support.cli import cli, cli_process
from tests.support.docker import remove_images
from tests.support.project import BUILD_HEADER as SCRATCH_HEADER
from tests.support.project import SCRATCH_PYTHON as PYTHON
from tests.support.project import copy_project, lock, lock_drv, lock_json
from tests.support.runnable import RUN_HEADER
from tests.support.store import (
    assert_store_clean,
    corrupt,
    key_records,
    layer_file,
    layer_members,
    read_report,
    store_of,
)
from tests.support.wheels import make_wheel

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (CI installs it)")


@pytest.fixture
def project(pipelines_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the session's locked PIPELINES project (tests/support/project.py; no store yet)."""
    return copy_project(pipelines_template, tmp_path / "project")


ENVS = ("core", "train", "serve", "api", "batch", "report")


# --- determinism and validity ------------------------------------------------------------------------


def test_same_lock_gives_same_digests_in_other_store_and_directory(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    cli(project, "build", "-q")
    other = tmp_path_factory.mktemp("elsewhere") / "a" / "copy"
    shutil.copytree(project, other, ignore=shutil.ignore_patterns(".envgraph"))
    other_store = tmp_path_factory.mktemp("other-store") / "store"
    # The second build is a real `python -m envgraph.cli` process: the entry point builds the same bytes.
    cli_process(other, "--store", str(other_store), "build", "-q", "-j", "1")
    first = store_of(project).tags()
    second = Store.open(other_store).tags()
    assert set(first) == set(second)
    assert len(first) == 12  # 6 envs, each <env>:<drv12> and <env>:latest
    assert {t: d.digest for t, d in first.items()} == {t: d.digest for t, d in second.items()}
    # The key index agrees too: same key -> same diff_id and compressed digest.
    assert {r.key: (r.diff_id, r.digest) for r in key_records(store_of(project))} == {
        r.key: (r.diff_id, r.digest) for r in key_records(Store.open(other_store))
    }


def test_bytecode_on_ships_hash_checked_pycs_reproducibly(
    project: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    toml = project / "envgraph.toml"
    toml.write_text(toml.read_text().replace("[project]\n", "[project]\nbytecode = true\n", 1))
    assert cli(project, "build", "train", "-q", check=False).returncode == 1  # bytecode is part of the drv
    lock(toml)
    cli(project, "build", "train", "-q")
    other_store = tmp_path_factory.mktemp("other-store") / "store"
    cli(project, "--store", str(other_store), "build", "train", "-q", "-j", "1")
    store = store_of(project)
    assert store.tags()["train:latest"].digest == Store.open(other_store).tags()["train:latest"].digest
    gamma = read_manifest(store, store.tags()["train:latest"].digest).layers[2]
    pycs = [n for n in layer_members(store, gamma.digest) if n.endswith(".pyc")]
    assert pycs == ["opt/venv/lib/python3.11/site-packages/gamma/__pycache__/__init__.cpython-311.pyc"]
    flags = int.from_bytes(layer_file(store, gamma.digest, pycs[0])[4:8], "little")
    assert flags == 0b11  # hash-based, checked


def test_images_are_tagged_by_image_id_and_hold_the_declared_layers(project: Path) -> None:
    cli(project, "build", "-q")
    store = store_of(project)
    tags = store.tags()
    idents = {img.env: img.ident for img in envgraph.load(project / "envgraph.toml").plan().images}
    for env in ENVS:
        drv = lock_drv(project, env)
        # The drv names the image, except where files are in the chain: then their content too.
        assert (idents[env] == drv) is (env not in ("serve", "api"))
        tag = f"{env}:{idents[env].removeprefix('sha256:')[:12]}"
        assert tags[tag].digest == tags[f"{env}:latest"].digest
    manifest = read_manifest(store, tags["serve:latest"].digest)
    config = read_config(store, manifest.config.digest)
    assert config.config is not None
    env_vars = dict(e.split("=", 1) for e in config.config.Env or ())
    assert env_vars["PATH"].startswith("/opt/venv/bin:")
    assert env_vars["GREETING"] == "hola"  # inherited from core
    assert config.config.WorkingDir == "/app"
    assert (config.config.Labels or {})["dev.envgraph.env"] == "serve"
    assert (config.config.Labels or {})["dev.envgraph.drv"] == lock_drv(project, "serve")
    assert (config.config.Labels or {})["dev.envgraph.image"] == idents["serve"]
    comments = [h.comment for h in config.history or ()]
    assert comments == [
        "envgraph: venv /opt/venv",
        "envgraph: alpha 1.0",
        "envgraph: delta 0.5",
        "envgraph: files /app",
    ]
    assert len(manifest.layers) == 4
    # The venv layer points at the base's interpreter.
    venv = layer_members(store, manifest.layers[0].digest)
    assert venv["opt/venv/bin/python"].issym() and venv["opt/venv/bin/python"].linkname == PYTHON
    assert b"home = /usr/bin" in layer_file(store, manifest.layers[0].digest, "opt/venv/pyvenv.cfg")
    # The files layer holds the app at its destination.
    assert layer_file(store, manifest.layers[3].digest, "app/main.py") == b"print('app')\n"
    # Deterministic tar headers: fixed mtime, uid/gid 0 and no owner names.
    for member in layer_members(store, manifest.layers[1].digest).values():
        assert (member.uid, member.gid, member.uname, member.gname) == (0, 0, "", "")
        assert member.mtime == DEFAULT_MTIME  # the CLI ran without SOURCE_DATE_EPOCH


def test_entry_point_script_has_the_venv_shebang(project: Path) -> None:
    cli(project, "build", "train", "-q")
    store = store_of(project)
    manifest = read_manifest(store, store.tags()["train:latest"].digest)
    gamma = manifest.layers[2]
    members = layer_members(store, gamma.digest)
    script = members["opt/venv/bin/gamma-hello"]
    assert script.mode & 0o111
    assert layer_file(store, gamma.digest, "opt/venv/bin/gamma-hello").startswith(b"#!/opt/venv/bin/python\n")
    # Bytecode, when shipped, is hash-based (flags 0b01 or 0b11 in the pyc header), so reproducible.
    for name in members:
        if name.endswith(".pyc"):
            flags = int.from_bytes(layer_file(store, gamma.digest, name)[4:8], "little")
            assert flags & 1, name


@skopeo
def test_skopeo_accepts_the_layout_and_every_tag(project: Path) -> None:
    cli(project, "build", "-q")
    store = store_of(project)
    for tag, desc in store.tags().items():
        raw = subprocess.run(
            ["skopeo", "inspect", "--raw", f"oci:{store.root}:{tag}"], capture_output=True, check=True
        ).stdout
        assert "sha256:" + hashlib.sha256(raw).hexdigest() == desc.digest
        info = json.loads(
            subprocess.run(
                ["skopeo", "inspect", f"oci:{store.root}:{tag}"], capture_output=True, text=True, check=True
            ).stdout
        )
        assert info["Labels"]["dev.envgraph.env"] == tag.split(":")[0]
        assert len(info["Layers"]) == len(read_manifest(store, desc.digest).layers)


@pytest.mark.docker
def test_docker_archive_export_loads_into_docker(project: Path, docker_client: Any) -> None:
    cli(project, "build", "serve", "-q")
    out = project / "serve.tar"
    proc = cli(project, "export", "serve", "-o", str(out), "--format", "docker-archive")
    id12 = (
        envgraph.load(project / "envgraph.toml").plan(["serve"]).images[-1].ident.removeprefix("sha256:")[:12]
    )
    assert f"serve:{id12}" in proc.stdout
    ref = f"envgraph/serve:{id12}"
    with open(out, "rb") as f:
        loaded = docker_client.images.load(f.read())
    try:
        assert any(ref in image.tags for image in loaded)
        attrs = docker_client.images.get(ref).attrs
        assert "GREETING=hola" in attrs["Config"]["Env"]
        assert len(attrs["RootFS"]["Layers"]) == 4
    finally:
        remove_images(docker_client, ref, "envgraph/serve:latest")


def test_oci_archive_export_roundtrips(project: Path, tmp_path_factory: pytest.TempPathFactory) -> None:
    from envgraph.oci._archive import import_oci_archive

    cli(project, "build", "core", "-q")
    out = project / "core.oci.tar"
    cli(project, "export", "core", "-o", str(out), "--format", "oci-archive")
    fresh = Store.open(tmp_path_factory.mktemp("import") / "store")
    desc = import_oci_archive(out, fresh)
    assert desc.digest == store_of(project).tags()["core:latest"].digest
    assert verify_store(fresh).problems == ()


# --- sharing -------------------------------------------------------------------------------------------


def test_two_envs_sharing_a_package_reference_one_blob(project: Path) -> None:
    cli(project, "build", "-q", "--report", "r.json")
    store = store_of(project)
    tags = store.tags()
    serve = read_manifest(store, tags["serve:latest"].digest)
    batch = read_manifest(store, tags["batch:latest"].digest)
    # serve and batch lock delta 0.5 independently (batch has no parent): same layer, same blob.
    shared = {d.digest for d in serve.layers} & {d.digest for d in batch.layers}
    report = read_report(project / "r.json")
    by_env = {e["env"]: {layer["label"]: layer for layer in e["layers"]} for e in report["envs"]}
    assert by_env["serve"]["delta 0.5"]["key"] == by_env["batch"]["delta 0.5"]["key"]
    assert by_env["serve"]["delta 0.5"]["digest"] in shared
    assert by_env["serve"]["venv /opt/venv"]["digest"] in shared
    delta_records = [r for r in key_records(store) if r.digest == by_env["serve"]["delta 0.5"]["digest"]]
    assert len(delta_records) == 1
    assert report["totals"]["layers_built"] == len(
        {layer["key"] for e in report["envs"] for layer in e["layers"]}
    )
    assert report["totals"]["dedup_ratio"] > 1
    assert_store_clean(store)


# --- bad input ---------------------------------------------------------------------------------------


def test_corrupted_wheel_is_one_line_error_naming_the_file(project: Path) -> None:
    wheel = project / "wheels" / "delta-0.5-py3-none-any.whl"
    corrupt(wheel)
    proc = cli(project, "build", "-q", check=False)
    assert proc.returncode != 0
    errors = [line for line in proc.stderr.splitlines() if line.startswith("envgraph: error:")]
    # One line for the failed layer, one for the env whose parent's image could not be built.
    assert len(errors) == 2, proc.stderr
    assert "wheels/delta-0.5-py3-none-any.whl" in errors[0] and "does not match the lockfile" in errors[0]
    assert errors[1] == "envgraph: error: env api: parent env serve failed"
    assert proc.stderr == "\n".join(errors) + "\n"  # nothing else: no traceback, no duplicate
    store = store_of(project)
    assert_store_clean(store)
    # Independent images were built and kept; those needing delta were not.
    assert {t.split(":")[0] for t in store.tags()} == {"core", "train", "report"}


def test_missing_lockfile_is_a_clear_error(project: Path) -> None:
    (project / "lockfiles" / "train.lock.json").unlink()
    proc = cli(project, "build", check=False)
    assert proc.returncode != 0
    assert proc.stderr.strip() == "envgraph: error: env train has no lockfile: run `envgraph lock`"
    assert store_of(project).tags() == {}


def test_stale_lockfile_is_a_clear_error(project: Path) -> None:
    toml = project / "envgraph.toml"
    toml.write_text(toml.read_text().replace('requirements = ["gamma"]', 'requirements = ["gamma", "beta"]'))
    proc = cli(project, "build", check=False)
    assert proc.returncode != 0
    assert proc.stderr.startswith("envgraph: error: stale lockfiles: env train")
    assert "run `envgraph lock`" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
    assert store_of(project).tags() == {}


def test_two_packages_writing_one_path_is_an_error_naming_both(
    make_project: Callable[..., Path], wheelhouse: Path, tmp_path: Path
) -> None:
    make_wheel(wheelhouse, "one", "1.0", files={"one/__init__.py": "", "shared/data.txt": "one\n"})
    make_wheel(wheelhouse, "two", "1.0", files={"two/__init__.py": "", "shared/data.txt": "two\n"})
    toml = make_project(
        """
        [env.clash]
        base = "none"
        requirements = ["one", "two"]

        [env.fine]
        base = "none"
        requirements = ["one"]
        """,
        SCRATCH_HEADER,
    )
    lock(toml)
    proc = cli(tmp_path, "build", "-q", check=False)
    assert proc.returncode != 0
    assert (
        "envgraph: error: env clash: packages one and two both write "
        "/opt/venv/lib/python3.11/site-packages/shared/data.txt"
    ) in proc.stderr
    store = store_of(tmp_path)
    assert {t.split(":")[0] for t in store.tags()} == {"fine"}
    assert_store_clean(store)


def test_conflict_inside_a_merged_layer_names_both_packages(
    make_project: Callable[..., Path], wheelhouse: Path, tmp_path: Path
) -> None:
    make_wheel(wheelhouse, "one", "1.0", files={"one/__init__.py": "", "shared/data.txt": "one\n"})
    make_wheel(wheelhouse, "two", "1.0", files={"two/__init__.py": "", "shared/data.txt": "two\n"})
    header = SCRATCH_HEADER.replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nmax-layers = 3')
    toml = make_project(
        """
        [env.clash]
        base = "none"
        requirements = ["one", "two", "delta"]
        """,
        header,
    )
    lock(toml)
    proc = cli(tmp_path, "build", "-q", check=False)
    assert proc.returncode != 0
    assert (
        "packages one and two both write /opt/venv/lib/python3.11/site-packages/shared/data.txt"
        in proc.stderr
    )
    assert_store_clean(store_of(tmp_path))


def test_more_packages_than_the_budget_are_merged_and_images_stay_within_it(
    make_project: Callable[..., Path], wheelhouse: Path, tmp_path: Path
) -> None:
    for n in "abcdef":
        make_wheel(wheelhouse, f"p{n}", "1.0")
    header = SCRATCH_HEADER.replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nmax-layers = 4')
    toml = make_project(
        """
        [env.many]
        base = "none"
        requirements = ["pa", "pb", "pc", "pd", "pe"]

        [env.more]
        parent = "many"
        requirements = ["pf"]

        [env.other]
        base = "none"
        requirements = ["pc", "pd"]
        """,
        header,
    )
    lock(toml)
    cli(tmp_path, "build", "-q", "--report", "r.json")
    store = store_of(tmp_path)
    for env in ("many", "more", "other"):
        assert len(read_manifest(store, store.tags()[f"{env}:latest"].digest).layers) <= 4
    labels = {
        e["env"]: [layer["label"] for layer in e["layers"]] for e in read_report(tmp_path / "r.json")["envs"]
    }
    # Budget 4 = venv + 2 own package layers + 1 merged. pc and pd are in 3 images (the most shared),
    # so they keep their own layers, most shared first; the rest is merged.
    assert labels["many"] == ["venv /opt/venv", "pc 1.0", "pd 1.0", "merged pa, pb, pe"]
    assert labels["more"] == ["venv /opt/venv", "pc 1.0", "pd 1.0", "merged pa, pb, pe, pf"]
    assert labels["other"] == ["venv /opt/venv", "pc 1.0", "pd 1.0"]
    # The merged layer really holds every merged package.
    merged = read_manifest(store, store.tags()["many:latest"].digest).layers[3]
    names = set(layer_members(store, merged.digest))
    for p in ("pa", "pb", "pe"):
        assert f"opt/venv/lib/python3.11/site-packages/{p}/__init__.py" in names
    assert_store_clean(store)


def test_unknown_transport_is_a_spec_error(make_project: Callable[..., Path], tmp_path: Path) -> None:
    toml = make_project(
        """
        [bases.odd]
        image = "ftp://example.org/image"
        python = "/usr/bin/python3"

        [env.e]
        base = "odd"
        requirements = ["alpha"]
        """,
        SCRATCH_HEADER,
    )
    with pytest.raises(SpecError, match="unknown transport"):
        envgraph.load(toml)
    proc = cli(tmp_path, "build", check=False)
    assert proc.returncode != 0
    assert "bases.odd: unknown transport in image 'ftp://example.org/image'" in proc.stderr
    assert not (tmp_path / ".envgraph").exists()


# --- images that run (Docker, one Debian base for the whole suite; run_project is in tests/support/runnable.py) --


def docker_run(project: Path, env: str, *command: str) -> subprocess.CompletedProcess[str]:
    # A real process: `envgraph run` hands the container's exit code and output to its own.
    # No network: the tests need none, and it keeps them independent of the daemon's bridge.
    return cli_process(project, "run", "--network", "none", env, "--", *command, check=False, timeout=600)


@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_entry_point_script_runs_in_the_container(run_project: Path, loaded_cleanup: list[str]) -> None:
    loaded_cleanup.append("envgraph/core")
    proc = docker_run(run_project, "core", "gamma-hello")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "hello from gamma\n"


@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_files_environment_and_workdir_are_visible(run_project: Path, loaded_cleanup: list[str]) -> None:
    loaded_cleanup.append("envgraph/core")
    script = 'cat motd.txt; echo "$GREETING"; pwd; python -c "import alpha, sys; print(alpha.__version__, sys.prefix)"'
    proc = docker_run(run_project, "core", "sh", "-c", script)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["files are here", "hola", "/srv/app", "1.0 /opt/venv"]
    # The command's exit code comes back.
    assert docker_run(run_project, "core", "sh", "-c", "exit 3").returncode == 3


@pytest.mark.network
@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_numpy_and_pandas_from_pypi_run_at_the_locked_version(
    tmp_path: Path, debian_archive: Path, loaded_cleanup: list[str]
) -> None:
    (tmp_path / "envgraph.toml").write_text(
        RUN_HEADER.format(index="", archive=debian_archive)
        + """
[env.sci]
base = "deb"
requirements = ["numpy>=1.26,<2.3", "pandas>=2.1,<2.3"]
"""
    )
    lock(tmp_path / "envgraph.toml")
    packages = lock_json(tmp_path, "sci")["packages"]
    numpy_version = next(p["version"] for p in packages if p["name"] == "numpy")
    cli(tmp_path, "build", "-q")
    loaded_cleanup.append("envgraph/sci")
    proc = docker_run(tmp_path, "sci", "python", "-c", "import numpy, pandas; print(numpy.__version__)")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == numpy_version
    # One layer per package: numpy and pandas each have their own.
    store = store_of(tmp_path)
    config = read_config(store, read_manifest(store, store.tags()["sci:latest"].digest).config.digest)
    comments = {h.comment for h in config.history or ()}
    assert f"envgraph: numpy {numpy_version}" in comments
    assert any(c and c.startswith("envgraph: pandas ") for c in comments)
