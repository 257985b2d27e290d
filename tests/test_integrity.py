"""Issue 10: lockfiles, the store and the wheel cache are untrusted input. Each case the issue reports is a test:
a damaged or edited store is detected and repaired, never used; every lockfile field is covered by lock --check;
child processes and partial files do not outlive a killed envgraph; bases that cannot run are refused; gc keeps
what other projects use; credentials never reach output."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.errors import EnvgraphError
from envgraph.identity import LOCK_VERSION
from envgraph.lock._model import Wheel
from envgraph.lock._wheelcache import WheelCache
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from tests.support.cli import cli_env, cli_process
from tests.support.images import fake_python_base
from tests.support.project import BUILD_HEADER
from tests.support.wheels import standard_wheels

PROJECT = """
[env.core]
base = "none"
requirements = ["alpha<2"]

[env.serve]
parent = "core"
requirements = ["delta"]
files = [{ src = "app/", dest = "/app" }]
workdir = "/app"
"""


def _env() -> dict[str, str]:
    return cli_env()


# The real command line in a fresh process: these tests kill, lock and damage things a process owns.
cli = cli_process


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("envgraph: error:")]
    assert errors, proc.stderr
    return errors[0]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("integrity")
    standard_wheels(root / "wheels")
    (root / "app").mkdir()
    (root / "app" / "main.py").write_text("print('app')\n")
    (root / "envgraph.toml").write_text(textwrap.dedent(BUILD_HEADER) + textwrap.dedent(PROJECT))
    envgraph.load(root / "envgraph.toml").lock()
    return root


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / "p", ignore=shutil.ignore_patterns(".envgraph")))


@pytest.fixture(scope="module")
def reference(template: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """env -> image digest of a clean build."""
    ws = envgraph.load(template / "envgraph.toml", store=tmp_path_factory.mktemp("ref") / "store")
    result = ws.build()
    assert result.ok
    return {i.env: i.descriptor.digest for i in result.images if i.descriptor}


def digests(project: Path) -> dict[str, str]:
    ws = envgraph.load(project / "envgraph.toml")
    store = ws.open_store()
    return {img.env: store.tags()[img.tag].digest for img in ws.plan().images}


def flip_byte(path: Path, offset: int = -10) -> None:
    path.chmod(0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def layer_record(project: Path, label_part: str) -> Any:
    ws = envgraph.load(project / "envgraph.toml")
    store = ws.open_store()
    for key, task in ws.plan().layers.items():
        if label_part in task.label:
            record = store.get_key(key)
            assert record is not None
            return record
    raise AssertionError(label_part)


# --- the store ------------------------------------------------------------------------------------------


def test_a_flipped_byte_in_a_layer_is_found_moved_aside_and_rebuilt(
    project: Path, reference: dict[str, str]
) -> None:
    cli(project, "build", "-q")
    record = layer_record(project, "alpha")
    blob = project / ".envgraph" / "blobs" / "sha256" / record.digest.removeprefix("sha256:")
    flip_byte(blob)
    verify = cli(project, "verify", check=False)
    assert f"problem: key record {record.key}: blob {record.digest} is corrupt" in verify.stdout
    assert one_line_error(verify).endswith("run `envgraph verify --repair` (or `envgraph build`) to repair")
    # build does not reuse it: the layer is built again, to the same digest, and the store is consistent.
    cli(project, "build", "--report", "r.json")
    report = json.loads((project / "r.json").read_text())
    statuses = {layer["label"]: layer["status"] for e in report["envs"] for layer in e["layers"]}
    assert statuses["alpha 1.0"] == "built"
    assert digests(project) == reference
    assert cli(project, "verify").stdout.strip().endswith("is consistent")
    assert (project / ".envgraph" / "corrupt" / blob.name).is_file()


def test_export_refuses_a_damaged_image_and_verify_repair_restores_it(
    project: Path, reference: dict[str, str]
) -> None:
    cli(project, "build", "-q")
    record = layer_record(project, "delta")
    flip_byte(project / ".envgraph" / "blobs" / "sha256" / record.digest.removeprefix("sha256:"))
    err = one_line_error(cli(project, "export", "serve", "-o", "out.tar", check=False))
    assert "is missing or damaged" in err and record.digest in err
    assert not (project / "out.tar").exists()
    repaired = cli(project, "verify", "--repair")
    assert f"repaired: moved corrupt blob {record.digest}" in repaired.stdout
    assert repaired.stdout.strip().endswith("problems repaired, 1 layers rebuilt)")
    cli(project, "export", "serve", "-o", "out.tar")
    assert digests(project) == reference


def test_an_edited_manifest_is_never_used_and_the_next_build_rewrites_it(
    project: Path, reference: dict[str, str]
) -> None:
    cli(project, "build", "-q")
    manifest = project / ".envgraph" / "blobs" / "sha256" / reference["core"].removeprefix("sha256:")
    doc = json.loads(manifest.read_text())
    doc["layers"][0]["size"] += 1
    manifest.chmod(0o644)
    manifest.write_text(json.dumps(doc))
    err = one_line_error(cli(project, "export", "core", "-o", "core.tar", check=False))
    assert reference["core"] in err
    cli(project, "build", "-q")
    assert digests(project) == reference
    cli(project, "export", "core", "-o", "core.tar")


def test_an_edited_diff_id_in_a_key_record_is_caught(project: Path, reference: dict[str, str]) -> None:
    cli(project, "build", "-q")
    record = layer_record(project, "alpha")
    path = project / ".envgraph" / "keys" / record.key[7:9] / f"{record.key[7:]}.json"
    doc = json.loads(path.read_text())
    wrong = doc["diff_id"][:-1] + ("0" if doc["diff_id"][-1] != "0" else "1")
    doc["diff_id"] = wrong
    path.write_text(json.dumps(doc))
    problems = verify_store(Store.open(project / ".envgraph", readonly=True)).problems
    assert problems == (
        f"key record {record.key}: it says diff_id {wrong} but its layer decompresses to {record.diff_id}",
    )
    # The images keep their right diff_ids: the record is not used, the layer is built again.
    (project / ".envgraph" / "index.json").write_text(
        '{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[]}'
    )
    cli(project, "build", "-q")
    assert digests(project) == reference
    assert json.loads(path.read_text())["diff_id"] == record.diff_id


def test_the_next_build_removes_what_killed_writers_left(project: Path) -> None:
    cli(project, "build", "-q")
    tmp = project / ".envgraph" / "tmp"
    dead = tmp / "blob-dead.tmp"
    dead.write_bytes(b"x" * 4096)
    (tmp / "pyc-dead").mkdir()
    old = time.time() - 600
    for p in (dead, tmp / "pyc-dead"):
        os.utime(p, (old, old))
    cli(project, "build", "-q")
    assert list(tmp.iterdir()) == []


def test_a_swapped_cached_wheel_is_fetched_again_not_used(
    project: Path, tmp_path: Path, reference: dict[str, str]
) -> None:
    env = {**_env(), "ENVGRAPH_CACHE": str(tmp_path / "cache")}
    cli(project, "build", "-q", env=env)
    lock = json.loads((project / "lockfiles" / "core.lock.json").read_text())
    alpha = Wheel(**{k: v for k, v in lock["packages"][0]["wheel"].items()})
    cached = WheelCache(project, tmp_path / "cache" / "wheels").path_for(alpha)
    assert cached.is_file() and cached.name == f"{alpha.sha256}.whl"  # named by content, not by the lockfile
    cached.chmod(0o644)
    cached.write_bytes((project / "wheels" / "delta-0.5-py3-none-any.whl").read_bytes())
    cli(project, "--store", str(tmp_path / "other"), "build", "-q", env=env)
    ws = envgraph.load(project / "envgraph.toml", store=tmp_path / "other")
    assert {i.env: ws.open_store().tags()[i.tag].digest for i in ws.plan().images} == reference
    assert WheelCache(project, tmp_path / "cache" / "wheels")._cached(alpha, cached)


def test_the_cache_path_comes_from_the_hash_alone() -> None:
    cache = WheelCache(Path("/p"), Path("/cache"))
    wheel = Wheel("../../../../etc/evil-1.0-py3-none-any.whl", "ab" * 32, 1, "https://x/evil.whl")
    assert cache.path_for(wheel) == Path("/cache") / "ab" / f"{'ab' * 32}.whl"


# --- lockfiles ------------------------------------------------------------------------------------------


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[tuple[Any, ...], Any]]:
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list) and value:
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))
    else:
        yield path, value


def _mutate(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        if value.startswith("sha256:") or len(value) == 64:
            return value[:-1] + ("0" if value[-1] != "0" else "1")
        return value + "x"
    if value is None:
        return "x"
    if isinstance(value, list):
        return ["x"]
    if isinstance(value, dict):
        return {"x": "y"}
    raise AssertionError(value)


def _set(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for p in path[:-1]:
        doc = doc[p]
    doc[path[-1]] = value


@pytest.mark.parametrize("name", ["core.lock.json", "serve.lock.json", "bases/none.lock.json"])
def test_lock_check_notices_every_single_field_edit(project: Path, name: str) -> None:
    path = project / "lockfiles" / name
    original = path.read_text()
    doc = json.loads(original)
    missed = []
    for leaf, value in _leaves(doc):
        edited = json.loads(original)
        _set(edited, leaf, _mutate(value))
        path.write_text(json.dumps(edited))
        try:
            stale = envgraph.load(project / "envgraph.toml").lock(check=True).stale
        except EnvgraphError:
            continue
        if not stale:
            missed.append(leaf)
    path.write_text(original)
    assert missed == []
    assert not envgraph.load(project / "envgraph.toml").lock(check=True).stale


def test_lock_does_not_rebless_a_tampered_hash(project: Path) -> None:
    path = project / "lockfiles" / "serve.lock.json"
    doc = json.loads(path.read_text())
    real = doc["packages"][0]["wheel"]["sha256"]
    doc["packages"][0]["wheel"]["sha256"] = "0" * 64
    path.write_text(json.dumps(doc, indent=2))
    check = cli(project, "lock", "--check", check=False)
    assert "env serve (its content does not match its drv (edited?))" in one_line_error(check)
    out = cli(project, "lock").stdout
    assert "env serve: resolved" in out
    assert json.loads(path.read_text())["packages"][0]["wheel"]["sha256"] == real
    assert not envgraph.load(project / "envgraph.toml").lock(check=True).stale


def test_a_lockfile_of_an_older_format_is_stale_and_relocked_keeping_its_versions(project: Path) -> None:
    path = project / "lockfiles" / "core.lock.json"
    doc = json.loads(path.read_text())
    doc["version"] = LOCK_VERSION - 1
    path.write_text(json.dumps(doc))
    err = one_line_error(cli(project, "lock", "--check", check=False))
    assert f"lockfile version {LOCK_VERSION - 1} is not {LOCK_VERSION}" in err
    cli(project, "lock")
    assert [p["version"] for p in json.loads(path.read_text())["packages"]] == ["1.0"]


# --- child processes -------------------------------------------------------------------------------------


class _SlowIndex(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802
        time.sleep(60)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _processes_mentioning(marker: str) -> list[int]:
    out = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if marker.encode() in cmdline:
                out.append(int(pid))
    return out


def test_kill_9_of_lock_leaves_no_pip_compile_and_no_scratch(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _SlowIndex)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        project = tmp_path / "p"
        project.mkdir()
        (project / "envgraph.toml").write_text(
            f'[project]\nname = "k"\npython = "3.11"\nindex-url = "http://127.0.0.1:{server.server_address[1]}/simple"\n'
            '[bases.none]\nimage = "scratch"\n[env.e]\nbase = "none"\nrequirements = ["slowpkg"]\n'
        )
        cache = tmp_path / "cache"
        env = {**_env(), "ENVGRAPH_CACHE": str(cache)}
        proc = subprocess.Popen([sys.executable, "-m", "envgraph.cli", "lock"], cwd=project, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        deadline = time.monotonic() + 60
        while not _processes_mentioning(str(cache / "tmp")):
            assert time.monotonic() < deadline, "pip-compile never started"
            time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        deadline = time.monotonic() + 30
        while _processes_mentioning(str(cache / "tmp")) or any((cache / "tmp").iterdir()):
            assert time.monotonic() < deadline, "pip-compile or its scratch dir outlived envgraph"
            time.sleep(0.1)
    finally:
        server.shutdown()


# --- bases that cannot run ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("machine", "platform", "python", "error"),
    [
        (
            0x3E,
            "linux/arm64",
            "3.11",
            "base b: its interpreter /usr/bin/python3 is built for amd64, but project.platform is linux/arm64",
        ),
        (
            0x3E,
            "linux/amd64",
            "3.12",
            "base b: its interpreter /usr/bin/python3 is Python 3.11, but project.python is 3.12",
        ),
        (
            0xB7,
            "linux/amd64",
            "3.11",
            "base b: its interpreter /usr/bin/python3 is built for arm64, but project.platform is linux/amd64",
        ),
        (0x3E, "linux/amd64", "3.11", None),
    ],
)
def test_a_base_that_cannot_run_the_target_is_refused_at_lock_time(
    tmp_path: Path, machine: int, platform: str, python: str, error: str | None
) -> None:
    fake_python_base(tmp_path / "base", machine)
    (tmp_path / "envgraph.toml").write_text(
        f'[project]\nname = "b"\npython = "{python}"\nplatform = "{platform}"\nindex-url = ""\n'
        '[bases.b]\nimage = "oci:base:base"\npython = "/usr/bin/python3"\n[env.e]\nbase = "b"\n'
    )
    ws = envgraph.load(tmp_path / "envgraph.toml", store=tmp_path / "store")
    if error is None:
        ws.lock()
        base = json.loads((tmp_path / "lockfiles" / "bases" / "b.lock.json").read_text())
        assert (base["architecture"], base["python-version"]) == ("amd64", "3.11")
        return
    with pytest.raises(EnvgraphError) as err:
        ws.lock()
    assert str(err.value).startswith(error)


# --- gc on a shared store ------------------------------------------------------------------------------------


def test_gc_keeps_what_another_project_on_the_same_store_uses(template: Path, tmp_path: Path) -> None:
    store = tmp_path / "shared"
    a = Path(shutil.copytree(template, tmp_path / "a", ignore=shutil.ignore_patterns(".envgraph")))
    b = Path(shutil.copytree(template, tmp_path / "b", ignore=shutil.ignore_patterns(".envgraph")))
    toml = b / "envgraph.toml"
    toml.write_text(
        toml.read_text().replace('requirements = ["delta"]', 'requirements = ["delta", "beta<2"]')
    )
    envgraph.load(toml).lock()
    env = {**_env(), "ENVGRAPH_STORE": str(store)}
    cli(a, "build", "-q", env=env)
    cli(b, "build", "-q", env=env)
    b_tags = {img.tag for img in envgraph.load(toml, store=store).plan().images}
    out = cli(a, "gc", "--keep-last", "0", env=env).stdout
    assert "keeping 2 tags and" in out and str(toml) in out
    assert b_tags <= set(Store.open(store).tags())
    assert "0 layers built" in cli(b, "build", "-q", env=env).stdout
    toml.unlink()
    out = cli(a, "gc", "--keep-last", "0", env=env).stdout
    assert f"forgetting {toml} (the declaration no longer exists)" in out


# --- secrets -------------------------------------------------------------------------------------------------


def test_a_password_in_a_registry_reference_is_refused_and_never_echoed(project: Path) -> None:
    proc = cli(
        project, "push", "--registry", "alice:s3cret-pass@127.0.0.1:5000/repo", "--insecure", check=False
    )
    err = one_line_error(proc)
    assert "must not carry credentials" in err
    assert "s3cret" not in proc.stdout + proc.stderr


# --- kill -9 during builds -------------------------------------------------------------------------------------

KILLS = int(os.environ.get("ENVGRAPH_TEST_KILLS", "3"))  # a longer campaign: ENVGRAPH_TEST_KILLS=30


def test_builds_killed_at_random_points_leave_a_store_the_next_build_completes(
    project: Path, reference: dict[str, str]
) -> None:
    rnd = random.Random(1234)
    for _ in range(KILLS):
        proc = subprocess.Popen([sys.executable, "-m", "envgraph.cli", "build", "-q"], cwd=project, env=_env(),
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        time.sleep(rnd.uniform(0.3, 2.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if (project / ".envgraph").exists():
            assert verify_store(Store.open(project / ".envgraph", readonly=True)).problems == ()
    cli(project, "build", "-q")
    assert digests(project) == reference
    assert cli(project, "verify").returncode == 0
    assert list((project / ".envgraph" / "tmp").iterdir()) == []


@pytest.mark.debian
@pytest.mark.network
def test_kill_9_of_lock_leaves_no_mmdebstrap_and_no_chroot(tmp_path: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    project = tmp_path / "p"
    project.mkdir()
    (project / "envgraph.toml").write_text(
        '[project]\nname = "d"\npython = "3.11"\n'
        '[bases.debian]\ndebian = { suite = "bookworm", packages = ["python3-minimal"] }\npython = "/usr/bin/python3.11"\n'
        '[env.e]\nbase = "debian"\n'
    )
    scratch = Path(tempfile.gettempdir()) / f"envgraph-debian-{os.getuid()}"
    before = set(scratch.iterdir()) if scratch.is_dir() else set()
    proc = subprocess.Popen([sys.executable, "-m", "envgraph.cli", "lock"], cwd=project, env=_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    deadline = time.monotonic() + 120
    while not (scratch.is_dir() and set(scratch.iterdir()) - before):
        assert time.monotonic() < deadline, "mmdebstrap never started"
        time.sleep(0.1)
    (ours,) = set(scratch.iterdir()) - before
    time.sleep(3)  # let it get going: mounts, apt, a chroot under our scratch dir
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60
    while _processes_mentioning(str(ours)) or ours.exists():
        assert time.monotonic() < deadline, "mmdebstrap or its chroot outlived envgraph"
        time.sleep(0.2)
    assert str(ours) not in Path("/proc/self/mountinfo").read_text()
