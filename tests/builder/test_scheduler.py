"""The build scheduler (issue 4), unmocked: the real command line over real lockfiles, wheels and stores.

The command line runs in this process (``tests.support.cli.cli``) except where a process is the point:
two concurrent builds, kill -9, Ctrl-C and a terminal. Projects are locked once per module and copied.

Blob writes are observed with inotify on ``blobs/sha256`` (every blob becomes visible by a rename into
that directory), so "each blob is written once" is checked on the file system itself, not inferred.
"""

from __future__ import annotations

import collections
import ctypes
import os
import pty
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.oci._image import read_manifest
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from tests.support.cli import cli, cli_env, popen_cli
from tests.support.project import copy_project, locked_template
from tests.support.store import assert_store_clean, corrupt, key_records, read_report, store_of
from tests.support.wheels import make_wheel

ALL = {"core", "train", "serve", "api", "batch", "report"}


class BlobWrites:
    """inotify on a directory: the names created in or renamed into it since the watch started."""

    IN_MOVED_TO = 0x00000080
    IN_CREATE = 0x00000100

    def __init__(self, directory: Path) -> None:
        self.libc = ctypes.CDLL(None, use_errno=True)
        self.fd = self.libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
        if self.fd < 0:
            pytest.skip(f"inotify unavailable: errno {ctypes.get_errno()}")
        wd = self.libc.inotify_add_watch(self.fd, str(directory).encode(), self.IN_MOVED_TO | self.IN_CREATE)
        assert wd >= 0, ctypes.get_errno()

    def take(self) -> collections.Counter[str]:
        """Names written since the last call (with how often each was written)."""
        counts: collections.Counter[str] = collections.Counter()
        while True:
            try:
                buf = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return counts
            i = 0
            while i < len(buf):
                _wd, mask, _cookie, length = struct.unpack_from("iIII", buf, i)
                name = buf[i + 16 : i + 16 + length].rstrip(b"\0").decode()
                assert mask & 0x4000 == 0, "inotify queue overflowed"
                counts["sha256:" + name] += 1
                i += 16 + length

    def close(self) -> None:
        os.close(self.fd)


@pytest.fixture
def pipelines(pipelines_template: Path, tmp_path: Path) -> Path:
    """A fresh copy of the locked PIPELINES project (no store yet)."""
    return copy_project(pipelines_template, tmp_path / "project")


@pytest.fixture(scope="module")
def bumped_template(pipelines_template: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """PIPELINES after bumping serve's delta to 0.6 and locking (incrementally: serve and api re-resolve)."""
    root = copy_project(pipelines_template, tmp_path_factory.mktemp("bumped") / "project")
    toml = root / "envgraph.toml"
    toml.write_text(
        toml.read_text().replace('requirements = ["delta==0.5"]', 'requirements = ["delta==0.6"]')
    )
    envgraph.load(toml).lock()
    return root


def bump_delta(project: Path, bumped: Path) -> None:
    """Edit serve's requirement to delta==0.6 and lock (the locked result is copied from ``bumped``)."""
    toml = project / "envgraph.toml"
    edited = toml.read_text().replace('requirements = ["delta==0.5"]', 'requirements = ["delta==0.6"]')
    assert edited == (bumped / "envgraph.toml").read_text()
    toml.write_text(edited)
    shutil.rmtree(project / "lockfiles")
    shutil.copytree(bumped / "lockfiles", project / "lockfiles")


@pytest.fixture
def writes(pipelines: Path) -> Iterator[BlobWrites]:
    watcher = BlobWrites(store_of(pipelines).blobs_dir)
    yield watcher
    watcher.close()


def statuses(report: dict[str, Any]) -> dict[str, str]:
    return {e["env"]: e["status"] for e in report["envs"]}


def distinct_layers(report: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {layer["key"]: layer for e in report["envs"] for layer in e["layers"]}


# --- exactly once, reuse, bump -----------------------------------------------------------------------


def test_each_shared_layer_is_built_and_written_exactly_once(pipelines: Path, writes: BlobWrites) -> None:
    cli(pipelines, "build", "-j", "4", "--report", "r.json")
    report = read_report(pipelines / "r.json")
    layers = distinct_layers(report)
    # alpha, beta, gamma, delta, venv, files: 6 distinct layers across 6 images that list 20.
    assert len(layers) == 6
    assert sum(len(e["layers"]) for e in report["envs"]) == 20
    assert report["totals"]["layers_built"] == 6
    assert report["totals"]["layers_reused"] == 0
    assert {layer["status"] for layer in layers.values()} == {"built"}
    assert report["totals"]["bytes_written"] == sum(layer["size"] for layer in layers.values())
    # Same key, same digest, wherever it appears.
    for e in report["envs"]:
        for layer in e["layers"]:
            assert layer["digest"] == layers[layer["key"]]["digest"]
    assert statuses(report) == dict.fromkeys(ALL, "built")
    # On disk: every blob the store holds was renamed into place exactly once.
    written = writes.take()
    store = store_of(pipelines)
    assert set(written) == {"sha256:" + p.name for p in store.blobs_dir.iterdir()}
    assert max(written.values()) == 1, [d for d, n in written.items() if n > 1]
    assert {layer["digest"] for layer in layers.values()} <= set(written)
    assert_store_clean(store)


def test_noop_rebuild_does_no_layer_work(pipelines: Path, writes: BlobWrites) -> None:
    cli(pipelines, "build", "-q")
    writes.take()
    store = store_of(pipelines)
    before = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.blobs_dir.iterdir()}
    proc = cli(pipelines, "build", "--report", "again.json")
    report = read_report(pipelines / "again.json")
    assert report["totals"]["layers_built"] == 0
    assert report["totals"]["layers_reused"] == 6
    assert report["totals"]["bytes_written"] == 0
    assert statuses(report) == dict.fromkeys(ALL, "reused")
    assert writes.take() == {}
    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in store.blobs_dir.iterdir()} == before
    assert "built layer" not in proc.stdout
    assert "total: 0 layers built, 6 reused" in proc.stdout


def test_one_package_bump_rebuilds_one_layer_and_the_descendant_manifests(
    pipelines: Path, bumped_template: Path, writes: BlobWrites
) -> None:
    cli(pipelines, "build", "-q")
    store = store_of(pipelines)
    old = store.tags()
    writes.take()
    bump_delta(pipelines, bumped_template)
    assert not envgraph.load(pipelines / "envgraph.toml").lock(check=True).stale
    dry = cli(pipelines, "build", "--dry-run").stdout
    assert dry.splitlines()[0] == "plan: 7 distinct layers, 1 to build, 6 in the store"
    assert "env core: reuse image" in dry and "env batch: reuse image" in dry
    assert "env serve: build image (drv " in dry and "new: delta 0.6; gone: delta 0.5" in dry
    assert "  build layer delta 0.6" in dry
    assert writes.take() == {}, "--dry-run wrote blobs"

    cli(pipelines, "build", "--report", "r.json")
    report = read_report(pipelines / "r.json")
    built = [layer for layer in distinct_layers(report).values() if layer["status"] == "built"]
    assert [layer["label"] for layer in built] == ["delta 0.6"]
    assert report["totals"]["layers_built"] == 1
    assert statuses(report) == {
        "core": "reused", "train": "reused", "batch": "reused", "report": "reused",
        "serve": "built", "api": "built",
    }  # fmt: skip
    new = store.tags()
    for env in ("core", "train", "batch", "report"):
        assert new[f"{env}:latest"].digest == old[f"{env}:latest"].digest
    for env in ("serve", "api"):
        assert new[f"{env}:latest"].digest != old[f"{env}:latest"].digest
    # Exactly the new layer (+ its path list) and the two new images' configs and manifests were written.
    written = writes.take()
    assert max(written.values()) == 1
    manifests = {new["serve:latest"].digest, new["api:latest"].digest}
    configs = {read_manifest(store, d).config.digest for d in manifests}
    record = next(r for r in key_records(store) if r.digest == built[0]["digest"])
    assert set(written) == manifests | configs | {record.digest, record.paths_digest}
    assert_store_clean(store)


# --- failure and resume -------------------------------------------------------------------------------


def test_failure_is_isolated_and_the_rebuild_resumes(pipelines: Path, writes: BlobWrites) -> None:
    wheel = pipelines / "wheels" / "delta-0.5-py3-none-any.whl"
    original = corrupt(wheel)
    proc = cli(pipelines, "build", "--report", "r.json", check=False)
    assert proc.returncode == 1
    report = read_report(pipelines / "r.json")
    # delta fails serve, its descendant api, and batch; the rest is built and kept.
    assert statuses(report) == {
        "core": "built", "train": "built", "report": "built",
        "serve": "failed", "api": "failed", "batch": "failed",
    }  # fmt: skip
    assert report["totals"]["layers_failed"] == 1 and report["totals"]["layers_built"] == 5
    # The summary names the failure and its cause.
    errors = [line for line in proc.stderr.splitlines() if line.startswith("envgraph: error:")]
    assert errors[0].startswith(
        "envgraph: error: layer delta 0.5: wheels/delta-0.5-py3-none-any.whl: sha256 "
    )
    assert errors[1:] == ["envgraph: error: env api: parent env serve failed"]
    summary = {line.split()[0]: line for line in proc.stdout.splitlines() if "layers:" in line}
    assert "FAILED" in summary["api"] and "FAILED" not in summary["train"]
    assert_store_clean(store_of(pipelines))
    tags = store_of(pipelines).tags()
    assert {t.split(":")[0] for t in tags} == {"core", "train", "report"}

    wheel.write_bytes(original)
    writes.take()
    cli(pipelines, "build", "--report", "again.json")
    again = read_report(pipelines / "again.json")
    assert again["totals"]["layers_built"] == 1 and again["totals"]["layers_reused"] == 5
    assert [layer["label"] for layer in distinct_layers(again).values() if layer["status"] == "built"] == [
        "delta 0.5"
    ]
    assert statuses(again) == {
        "core": "reused", "train": "reused", "report": "reused",
        "serve": "built", "api": "built", "batch": "built",
    }  # fmt: skip
    assert max(writes.take().values()) == 1
    assert_store_clean(store_of(pipelines))


def test_summary_counts_a_failed_layer_as_failed_not_reused(pipelines: Path) -> None:
    corrupt(pipelines / "wheels" / "delta-0.5-py3-none-any.whl")
    proc = cli(pipelines, "build", "batch", check=False)
    assert proc.returncode == 1
    line = next(line for line in proc.stdout.splitlines() if line.startswith("batch "))
    # batch = venv, alpha (built) + delta (failed): nothing was reused.
    assert "layers: 2 built, 0 reused, 0 shared, 1 failed" in line, line


# --- concurrency and crashes --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def big_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """24 packages with 256 KiB of incompressible data each over three envs: enough work to overlap and kill."""
    root = tmp_path_factory.mktemp("big")
    rng = random.Random(4)
    names = [f"pkg{i:02d}" for i in range(24)]
    for n in names:
        files: dict[str, str | bytes] = {f"{n}/__init__.py": "", f"{n}/blob.bin": rng.randbytes(256 << 10)}
        make_wheel(root / "wheels", n, "1.0", files=files)
    body = ""
    for k, env in enumerate(("one", "two", "three")):
        reqs = ", ".join(f'"{n}"' for n in names[k * 6 : k * 6 + 12])
        body += f'\n[env.{env}]\nbase = "none"\nrequirements = [{reqs}]\n'
    return locked_template(root, body)


@pytest.fixture
def big(big_template: Path, tmp_path: Path) -> Path:
    return copy_project(big_template, tmp_path / "project")


def popen_build(project: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    """``envgraph build ARGS`` as a real process (signals, kill -9 and concurrency need one).

    Started as from an interactive shell: with SIGINT at its default even when this test run ignores it
    (a run started in the background by a non-interactive shell does, and a child would inherit that)."""
    ignored = signal.getsignal(signal.SIGINT) == signal.SIG_IGN
    if ignored:  # a handled signal is reset to the default in the child at exec; an ignored one stays ignored
        signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        return popen_cli(project, "build", *args, **kw)
    finally:
        if ignored:
            signal.signal(signal.SIGINT, signal.SIG_IGN)


def wait_for_built_layers(proc: subprocess.Popen[str], n: int) -> None:
    """Read the build's progress lines until ``n`` layers have been built."""
    assert proc.stdout is not None
    built = 0
    for line in proc.stdout:
        built += "built layer" in line
        if built >= n:
            return


def test_two_concurrent_builds_share_one_store(big: Path) -> None:
    Store.open(big / ".envgraph")  # both processes open an existing store; creation races are Store's tests
    procs = [popen_build(big, "-j", "2", "--report", f"r{i}.json") for i in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, out + err
    reports = [read_report(big / f"r{i}.json") for i in range(2)]
    assert [r["envs"][0]["digest"] for r in reports][0] == reports[1]["envs"][0]["digest"]
    for r in reports:
        assert {e["status"] for e in r["envs"]} <= {"built", "reused"}
        assert r["totals"]["layers_failed"] == 0
    # Per-key build locks: between them the two processes built each of the 25 layers exactly once.
    assert sum(r["totals"]["layers_built"] for r in reports) == 25
    store = store_of(big)
    assert len(store.records()) == 25  # 24 packages + venv
    assert_store_clean(store)
    proc = cli(big, "verify")
    assert "is consistent" in proc.stdout


def test_build_killed_mid_way_leaves_a_consistent_store_and_rebuilds(big: Path) -> None:
    proc = popen_build(big, "-j", "1")
    assert proc.stdout is not None
    wait_for_built_layers(proc, 3)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    proc.stdout.close()
    assert proc.stderr is not None
    proc.stderr.close()
    store = store_of(big)
    done = len(store.records())
    assert 3 <= done < 25, "nothing left to kill: make the packages bigger"
    verify = cli(big, "verify", check=False)
    assert verify.returncode == 0, verify.stdout + verify.stderr
    cli(big, "build", "--report", "r.json")
    report = read_report(big / "r.json")
    assert report["totals"]["layers_reused"] >= done - 1  # the killed build's finished layers are kept
    assert report["totals"]["layers_built"] + report["totals"]["layers_reused"] == 25
    assert {e["status"] for e in report["envs"]} == {"built"}
    cli(big, "verify")
    assert verify_store(store).problems == ()


# --- progress output ------------------------------------------------------------------------------------


def test_plain_progress_prints_one_line_per_finished_task(pipelines: Path) -> None:
    out = cli(pipelines, "build").stdout.splitlines()
    assert out[0] == "plan: 6 layers, 6 to build, 0 in the store"
    layer_lines = [line for line in out if " layer " in line]
    assert len(layer_lines) == 6
    assert all(line.startswith("[") and "] built layer " in line for line in layer_lines)
    assert sorted(int(line[1 : line.index("/")]) for line in layer_lines) == list(range(1, 7))
    image_lines = [line for line in out if " image " in line]
    assert sorted(line.split()[2] for line in image_lines) == sorted(ALL)
    assert out[-1].startswith("total: 6 layers built, 0 reused")
    assert {line.split()[0] for line in out if "layers:" in line} == ALL


def test_quiet_prints_only_the_total_line(pipelines: Path) -> None:
    proc = cli(pipelines, "build", "-q")
    lines = proc.stdout.splitlines()
    assert len(lines) == 1, lines
    assert lines[-1].startswith("total: 6 layers built")
    assert "6 envs, 6 new images" in lines[-1]
    assert proc.stderr == ""


def test_summary_lines_say_built_for_this_env_shared_and_reused(pipelines: Path) -> None:
    cli(pipelines, "build", "core")
    lines = {
        line.split()[0]: line for line in cli(pipelines, "build", "--report", "r.json").stdout.splitlines()
    }
    # core's venv and alpha were built by the first run: every other env reuses them.
    assert "layers: 0 built, 2 reused, 0 shared" in lines["core"], lines["core"]
    report = read_report(pipelines / "r.json")
    per_env = {e["env"]: e for e in report["envs"]}
    assert sum(e["layers_built"] for e in per_env.values()) == report["totals"]["layers_built"]
    for e in per_env.values():
        assert e["layers_built"] + e["layers_shared"] + e["layers_reused"] == len(e["layers"])
    # A layer built in this run is built for one env and shared by every other env that lists it.
    gamma_users = [e for e in per_env.values() if any(la["label"].startswith("gamma") for la in e["layers"])]
    assert len(gamma_users) >= 2
    assert sum(1 for e in gamma_users if e["layers_shared"] > 0) >= 1


def test_terminal_progress_renders_and_prints_the_summary(pipelines: Path) -> None:
    master, slave = pty.openpty()
    env = {**cli_env(), "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "envgraph.cli", "build", "-j", "2"],
        cwd=pipelines,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        env=env,
        start_new_session=True,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            data = os.read(master, 1 << 16)
        except OSError:  # EIO: the child side closed
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    assert proc.wait(timeout=120) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "Traceback" not in text
    assert "\x1b[" in text  # rich drew (and cleared) its live display
    assert "total: 6 layers built, 0 reused" in text
    assert "[1/6] built layer" not in text  # not the plain mode
    assert "layers (" in text and " built" in text  # the bar counts what was built and reused
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)
    lines = [line.strip() for line in re.split(r"[\r\n]+", plain) if line.strip()]
    assert {line.split()[0] for line in lines if "layers:" in line and "sha256:" in line} == ALL
    assert lines[-1].startswith("total: 6 layers built")


def test_dry_run_names_what_would_be_built_and_why(pipelines: Path) -> None:
    out = cli(pipelines, "build", "--dry-run").stdout
    assert out.splitlines()[0] == "plan: 6 distinct layers, 6 to build, 0 in the store"
    assert "env core: build image (never built; 2 new layers)" in out
    # A layer shared by many envs is listed once, with how many envs use it.
    assert out.count("build layer alpha 1.0") == 1
    assert "  build layer alpha 1.0  (in 6 envs)" in out
    assert not store_of(pipelines).tags()
    cli(pipelines, "build", "-q")
    out = cli(pipelines, "build", "--dry-run").stdout
    assert out.splitlines()[0] == "plan: 6 distinct layers, 0 to build, 6 in the store"
    assert all("reuse image" in line for line in out.splitlines()[1:])
    # A changed environment changes drvs but no layer: the plan says so.
    toml = pipelines / "envgraph.toml"
    toml.write_text(toml.read_text().replace('GREETING = "hola"', 'GREETING = "hello"'))
    cli(pipelines, "lock", "-q")
    out = cli(pipelines, "build", "--dry-run").stdout
    assert "env core: build image (drv " in out and "config changed" in out
    assert "env batch: reuse image" in out
    assert "build layer" not in out


def test_ctrl_c_stops_cleanly_and_the_next_build_resumes(big: Path) -> None:
    proc = popen_build(big, "-j", "1")
    assert proc.stdout is not None and proc.stderr is not None
    wait_for_built_layers(proc, 2)
    proc.send_signal(signal.SIGINT)
    rest, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert err.strip().splitlines()[-1] == "envgraph: interrupted"
    assert "Traceback" not in err
    store = store_of(big)
    assert verify_store(store).problems == ()
    assert list(store.tmp_dir.iterdir()) == []  # no partial blobs or staging directories left behind
    done = len(store.records())
    assert 2 <= done < 25
    cli(big, "build", "--report", "r.json")
    report = read_report(big / "r.json")
    assert report["totals"]["layers_reused"] == done
    assert report["totals"]["layers_built"] == 25 - done


def test_gc_keeps_current_and_recent_images_and_frees_the_rest(
    pipelines: Path, bumped_template: Path
) -> None:
    cli(pipelines, "build", "-q")
    store = store_of(pipelines)
    old_serve = store.tags()["serve:latest"]
    old_delta = {r.digest for r in store.records() if r.size and "delta" in str(store.read_paths(r))}
    bump_delta(pipelines, bumped_template)
    cli(pipelines, "build", "-q")
    current = {ref: d.digest for ref, d in store.tags().items() if ref.endswith(":latest")}

    kept = cli(pipelines, "gc", "--keep-last", "1").stdout
    assert kept.startswith("freed 0.0 MB; untagged 0 old images")
    assert store.has_blob(old_serve.digest)  # the previous serve image is the one kept

    dry = cli(pipelines, "gc", "--keep-last", "0", "--dry-run").stdout
    assert (
        dry.startswith("would free") and "would untag 2 old images" in dry
    )  # serve's and api's previous images
    assert store.has_blob(old_serve.digest)

    out = cli(pipelines, "gc", "--keep-last", "0").stdout
    assert "untagged 2 old images" in out
    # The dry run counts exactly what the real run frees.
    assert dry.split(";")[0].removeprefix("would free") == out.split(";")[0].removeprefix("freed")
    assert not store.has_blob(old_serve.digest)
    # delta 0.5 is still locked by batch, so its layer stays; every current image is intact.
    assert all(store.has_blob(d) for d in old_delta)
    assert {ref: d.digest for ref, d in store.tags().items() if ref.endswith(":latest")} == current
    assert cli(pipelines, "verify").returncode == 0
    report = cli(pipelines, "build", "--report", "r.json")
    assert report.returncode == 0
    assert read_report(pipelines / "r.json")["totals"]["layers_built"] == 0


def test_gc_refuses_while_a_build_uses_the_store(pipelines: Path) -> None:
    cli(pipelines, "build", "-q")
    store = store_of(pipelines)
    with store.in_use():  # flock: another open file description conflicts as another process's would
        proc = cli(pipelines, "gc", check=False)
    assert proc.returncode == 1
    assert (
        proc.stderr.strip() == f"envgraph: error: a build is using {store.root}: run gc when it has finished"
    )
