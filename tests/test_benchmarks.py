"""The benchmark runner on the tiny workload: it runs, writes valid JSON with every metric, and draws the chart.

No timing assertions: the numbers belong in the report, not in pass/fail.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import zipfile
from pathlib import Path

import pytest

from benchmarks.records import METRICS, SCENARIOS
from benchmarks.wheels import inflate_once, make_wheel
from benchmarks.workloads import Version, get
from tests.support.docker import cache_dir

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def work_dir() -> Path:
    """The runner's caches, per version of the benchmark code: the wheelhouse is keyed by file name, so two
    checkouts whose generators differ (say, two branches on one machine) must not share it."""
    code = hashlib.sha256()
    for path in sorted(BENCHMARKS.glob("*.py")):
        code.update(path.name.encode() + b"\0" + path.read_bytes())
    return cache_dir() / f"benchmarks-tiny-{code.hexdigest()[:12]}"


def _run(tmp_path: Path, contenders: list[str], workload: str = "tiny") -> dict:
    from benchmarks.runner import main  # imports the Docker SDK and the contenders: only when a test runs

    out = tmp_path / "results"
    # Caches (wheelhouse, Debian base tar, the private daemon's data root) persist across test runs.
    work = work_dir()
    args = ["--workload", workload, "--contenders", *contenders, "--out", str(out), "--work", str(work)]
    assert main([*args, "-j", "2"]) == 0
    files = sorted(out.glob(f"*-{workload}.json"))
    assert len(files) == 1
    assert files[0].with_suffix(".png").stat().st_size > 0
    return json.loads(files[0].read_text())


def _check(data: dict, contenders: list[str], workload: str = "tiny") -> None:
    assert data["workload"] == workload
    assert {"cpu", "cores", "memory_bytes"} <= data["machine"].keys()
    assert [lb["scenario"] for lb in data["lower_bounds"]] == list(SCENARIOS)
    cold = data["lower_bounds"][0]
    assert cold["unique_wheels"] > 0 and cold["inflate_seconds"] > 0 and cold["inflate_threads"] >= 1
    by = {(m["contender"], m["scenario"]): m for m in data["measurements"]}
    for c in contenders:
        for s in SCENARIOS:
            m = by[(c, s)]
            assert m["ok"], m["notes"]
            assert set(METRICS) <= m.keys()
            for metric in ("wall_seconds", "cpu_seconds", "bytes_stored", "layers_built", "images"):
                assert isinstance(m[metric], int | float), (c, s, metric)
            if c == "envgraph":  # exact, from wait4; a Python process is never below 10 MB
                assert m["peak_rss_bytes"] > 10_000_000, (s, m["peak_rss_bytes"])
            # Bytes pushed is a number, or null with the reason in the notes.
            assert isinstance(m["bytes_pushed"], int) or any("bytes pushed" in n for n in m["notes"])
        # per-pipeline-docker builds without a cache by design, so even its no-op rebuilds everything.
        if c == "per-pipeline-docker":
            assert by[(c, "noop")]["layers_built"] == by[(c, "cold")]["layers_built"] > 0
        else:
            assert by[(c, "noop")]["layers_built"] == 0
        assert by[(c, "cold")]["layers_built"] > 0


@pytest.mark.debian
def test_runner_envgraph_tiny(tmp_path: Path) -> None:
    """envgraph alone, for machines without Docker; where a daemon can run, the all-contenders test runs this
    same measurement among the others (CI's time budget: one run of the tiny workload, not two)."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    if shutil.which("dockerd") is not None and os.geteuid() == 0:
        pytest.skip("a Docker daemon can run here: test_runner_all_contenders_tiny measures envgraph too")
    data = _run(tmp_path, ["envgraph"])
    _check(data, ["envgraph"])


@pytest.mark.docker
@pytest.mark.debian
def test_runner_all_contenders_tiny(tmp_path: Path, docker_client: object) -> None:
    """With a Docker daemon (the fixture proves one can run here) the runner starts its own private one."""
    contenders = ["per-pipeline-docker", "docker-cache", "buildkit-uv", "envgraph"]
    data = _run(tmp_path, contenders)
    _check(data, [c for c in contenders if not any(c in m for m in data["missing"])])
    assert data["ratios"]["docker-cache"]["cold"].keys() >= {"wall_seconds", "bytes_stored"}
    assert data["machine"]["docker_server"]  # asked while the private daemon still ran


@pytest.mark.debian
def test_runner_envgraph_gpu_tiny(tmp_path: Path) -> None:
    """The GPU workload's shape at a tiny size: a shared core with two multi-member wheels, vision, NLP and
    serving children; only the serving env's layer is rebuilt when its leaf package changes."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    data = _run(tmp_path, ["envgraph"], "gpu-tiny")
    _check(data, ["envgraph"], "gpu-tiny")
    by = {m["scenario"]: m for m in data["measurements"]}
    assert by["cold"]["images"] == 4  # core, vision, nlp, serving
    assert by["core-bump"]["layers_built"] == 1  # the bumped package; torch & co. are reused
    assert by["leaf-bump"]["layers_built"] == 1
    assert data["workload_info"]["images_per_scenario"]["add-pipeline"] == 5
    # Every wheel the workload uses was inflated by the reference, the two big ones among them.
    assert data["lower_bounds"][0]["installed_bytes"] > (9 << 20) + (5 << 20)


def test_gpu_workloads_have_the_same_shape() -> None:
    real, tiny = get("gpu", quick=False), get("gpu-tiny", quick=False)
    assert [sorted(e.name for e in g.envs) for g in real.versions] == [
        sorted(e.name for e in g.envs) for g in tiny.versions
    ]
    assert real.versions[0].images() == tiny.versions[0].images()
    assert len(real.versions[0].images()) == 3  # few images: Docker stores each image's torch on its own
    core = real.versions[0].env("core").requirements
    assert any(r.startswith("torch==") for r in core) and any(r.startswith("numpy") for r in core)
    # The core bump is a cheap package, not torch; the leaf bump is in serving.
    assert real.versions[2].env("core").requirements != core
    assert [r for r in real.versions[2].env("core").requirements if r.startswith("torch")] == [
        r for r in core if r.startswith("torch")
    ]
    assert real.versions[3].env("serving") != real.versions[2].env("serving")
    assert len(get("gpu", quick=True).versions[0].images()) == 2


def test_inflate_once_inflates_every_member(tmp_path: Path) -> None:
    wheels = [make_wheel(tmp_path, f"pkg{i}", "1.0", payload_bytes=200_000 * (i + 1)) for i in range(3)]
    stored = tmp_path / "stored-1.0-py3-none-any.whl"
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("stored/data.bin", b"x" * 1000)
    assert inflate_once([*wheels, stored], threads=2) > 0
    broken = tmp_path / "broken-1.0-py3-none-any.whl"
    raw = bytearray(wheels[2].read_bytes())
    raw[100:400] = bytes(300)  # inside the first member's deflate stream
    broken.write_bytes(raw)
    with pytest.raises(Exception):  # noqa: B017 - a corrupt stream raises isal's error or ours
        inflate_once([broken], threads=2)


def test_peak_rss_of_a_child_is_measured() -> None:
    from benchmarks.services import run_with_peak_rss  # imports the Docker SDK

    code = (
        "b = bytearray(200_000_000); b[::4096] = b'x' * len(b[::4096]); import sys; print('ok'); sys.exit(3)"
    )
    done, peak = run_with_peak_rss([sys.executable, "-c", code], dict(os.environ))
    assert done.returncode == 3 and done.stdout.strip() == "ok"
    assert 200_000_000 < peak < 400_000_000
    _, small = run_with_peak_rss([sys.executable, "-c", "pass"], dict(os.environ))
    assert small < 100_000_000


def test_docker_disk_need(tmp_path: Path) -> None:
    from benchmarks.runner import docker_disk_need  # imports the Docker SDK and the contenders

    """Per-pipeline Docker stores every image's env again; a cached contender only what changed."""
    wl = get("gpu-tiny", quick=False)
    versions = []
    for i, graph in enumerate(wl.versions):
        reqs, wheels = {}, {}
        for e in graph.envs:
            closure, cur = [], e
            while cur is not None:
                closure += cur.requirements
                cur = graph.env(cur.parent) if cur.parent else None
            reqs[e.name] = tmp_path / f"v{i}-{e.name}.txt"
            reqs[e.name].write_text("\n".join(sorted(closure)))
            wheels[e.name] = tuple(sorted(closure))
        versions.append(Version(SCENARIOS[i], i, graph, tmp_path, tmp_path / "t", reqs, wheels, "test"))
    sizes = {w: (1, 10) for v in versions for ws in v.wheels.values() for w in ws}
    cold = docker_disk_need("per-pipeline-docker", None, versions[0], sizes)
    assert cold == sum(11 * len(versions[0].wheels[e]) for e in versions[0].graph.images().values())
    assert docker_disk_need("per-pipeline-docker", versions[0], versions[1], sizes) == cold
    assert docker_disk_need("docker-cache", versions[0], versions[1], sizes) == 0
    leaf = docker_disk_need("docker-cache", versions[2], versions[3], sizes)
    assert leaf == 11 * len(versions[3].wheels["serving"])  # only the serving image is rebuilt
    # uv's cache holds each new wheel once, unpacked.
    assert docker_disk_need("buildkit-uv", versions[2], versions[3], sizes) == leaf + 10


def test_scale_shape_is_three_levels_with_pipelines_of_leaves() -> None:
    from benchmarks.workloads import ScaleParams, scale_graph

    for n in (10, 60, 1000):
        g = scale_graph(ScaleParams(envs=n))
        assert len(g.envs) == n and len(g.pipelines) == n // 4
        by = {e.name: e for e in g.envs}
        groups = [e for e in g.envs if e.parent == "core"]
        assert by["core"].parent is None and 1 <= len(groups) <= 15
        leaves = [e for e in g.envs if e.parent not in (None, "core")]
        assert all(by[e.parent].parent == "core" and len(e.requirements) == 3 for e in leaves)
        assert all(len(steps) == 4 and all(by[env] in leaves for _, env in steps) for _, steps in g.pipelines)


def test_scale_runner_at_a_small_size(tmp_path: Path) -> None:
    """The platform-scale curve's runner, offline, on 10 envs: every command measured, the table printed."""
    from benchmarks.scale import COMMANDS
    from benchmarks.scale import main as scale_main

    out = tmp_path / "out"
    args = ["--envs", "10", "--work", str(tmp_path / "work"), "--out", str(out), "--repeat", "1", "-j", "2"]
    assert scale_main(args) == 0
    (path,) = out.glob("*-scale.json")
    data = json.loads(path.read_text())
    (r,) = data["results"]
    assert r["envs"] == 10 and r["pipelines"] == 2
    assert set(r["commands"]) == set(COMMANDS)
    for name, c in r["commands"].items():
        assert c["wall_seconds"] > 0 and c["peak_rss_bytes"] > 10_000_000, name
    cold = r["commands"]["cold_build"]
    assert cold["images"] == 10 and cold["layers_built"] > 10 and cold["seconds_per_layer"] > 0
    assert r["peak_rss_bytes"] >= max(c["peak_rss_bytes"] for c in r["commands"].values())
    noop = r["commands"]["noop_build"]
    assert (
        noop["no_history_wall_seconds"] > 0
        and 0 < noop["cpu_seconds"] < 60
        and noop["no_history_cpu_seconds"] > 0
    )
    # A later run reuses the lockfiles and their recorded lock time (locking is the slow part).
    assert (tmp_path / "work" / "envs-10" / "lock-time.json").is_file()


def test_offline_tests_compares_each_old_test_with_its_current_form() -> None:
    from benchmarks.offline_tests import counterparts

    before = ["tests/test_lock.py::test_a[x]", "tests/test_lock.py::test_a[y]",
              "tests/test_scheduler.py::test_quiet_prints_only_the_summary", "tests/test_x.py::test_dropped"]  # fmt: skip
    now = ["tests/lock/test_locker.py::test_a[x]", "tests/lock/test_locker.py::test_a[z w]",
           "tests/builder/test_scheduler.py::test_quiet_prints_only_the_total_line", "tests/test_new.py::test_new"]  # fmt: skip
    current, gone = counterparts(before, now)
    assert current == now[:3]  # every parameter of a kept test, renames followed, new tests left out
    assert gone == ["test_dropped"]  # reported, never matched to something else
