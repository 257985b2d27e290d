"""The benchmark runner on the tiny workload: it runs, writes valid JSON with every metric, and draws the chart.

No timing assertions: the numbers belong in the report, not in pass/fail.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from benchmarks.records import METRICS, SCENARIOS
from tests.support.docker import cache_dir

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"


def work_dir() -> Path:
    """The runner's caches, per version of the benchmark code: the wheelhouse is keyed by file name, so two
    checkouts whose generators differ (say, two branches on one machine) must not share it."""
    code = hashlib.sha256()
    for path in sorted(BENCHMARKS.glob("*.py")):
        code.update(path.name.encode() + b"\0" + path.read_bytes())
    return cache_dir() / f"benchmarks-tiny-{code.hexdigest()[:12]}"


def _run(tmp_path: Path, contenders: list[str]) -> dict:
    from benchmarks.runner import main  # imports the Docker SDK and the contenders: only when a test runs

    out = tmp_path / "results"
    # Caches (wheelhouse, Debian base tar, the private daemon's data root) persist across test runs.
    work = work_dir()
    main(
        ["--workload", "tiny", "--contenders", *contenders, "--out", str(out), "--work", str(work), "-j", "2"]
    )
    files = sorted(out.glob("*-tiny.json"))
    assert len(files) == 1
    assert files[0].with_suffix(".png").stat().st_size > 0
    return json.loads(files[0].read_text())


def _check(data: dict, contenders: list[str]) -> None:
    assert data["workload"] == "tiny"
    assert {"cpu", "cores", "memory_bytes"} <= data["machine"].keys()
    assert [lb["scenario"] for lb in data["lower_bounds"]] == list(SCENARIOS)
    assert data["lower_bounds"][0]["unique_wheels"] > 0
    by = {(m["contender"], m["scenario"]): m for m in data["measurements"]}
    for c in contenders:
        for s in SCENARIOS:
            m = by[(c, s)]
            assert m["ok"], m["notes"]
            assert set(METRICS) <= m.keys()
            for metric in ("wall_seconds", "cpu_seconds", "bytes_stored", "layers_built", "images"):
                assert isinstance(m[metric], int | float), (c, s, metric)
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
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
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
