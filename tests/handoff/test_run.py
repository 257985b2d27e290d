"""``envgraph run`` on a par with ``docker run``: -e -v -p -i/-t --user --gpus, stdin, SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import docker.types
import pytest

from envgraph._docker import _environment, _volumes, parse_gpus, parse_ports
from envgraph.errors import DockerError
from tests.e2e.test_build import cli_env


def test_ports_parse_like_docker_run() -> None:
    assert parse_ports(["8000:80", "127.0.0.1:9000:90/udp", "7000", ":6000"]) == {
        "80/tcp": 8000,
        "90/udp": ("127.0.0.1", 9000),
        "7000/tcp": None,
        "6000/tcp": None,
    }
    for bad in ("http", "80/icmp", "a:b", "1:2:3:4"):
        with pytest.raises(DockerError, match=f"-p {bad}: expected"):
            parse_ports([bad])


def test_gpus_become_device_requests() -> None:
    assert parse_gpus("all") == [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
    assert parse_gpus("2")[0]["Count"] == 2
    assert parse_gpus('"device=0,2"')[0]["DeviceIDs"] == ["0", "2"]
    with pytest.raises(DockerError, match="--gpus many: expected"):
        parse_gpus("many")


def test_environment_and_volumes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FROM_HERE", "yes")
    monkeypatch.delenv("UNSET_HERE", raising=False)
    assert _environment(["A=1", "B=", "FROM_HERE", "UNSET_HERE"]) == ["A=1", "B=", "FROM_HERE=yes"]
    monkeypatch.chdir(tmp_path)
    assert _volumes(["./d:/data:ro", "cache:/cache"]) == [f"{tmp_path}/d:/data:ro", "cache:/cache"]
    with pytest.raises(DockerError, match="-v d: expected"):
        _volumes(["d"])
    with pytest.raises(DockerError, match="expected"):
        _volumes(["./d:relative"])


def envgraph_run(
    project: Path, *args: str, stdin: Any = subprocess.DEVNULL, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envgraph.cli", "run", "--network", "none", *args],
        cwd=project, stdin=stdin, capture_output=True, text=True, timeout=timeout, env=cli_env(),
    )  # fmt: skip


@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_piped_stdin_reaches_the_command(run_project: Path, loaded_cleanup: list[str]) -> None:
    loaded_cleanup.append("envgraph/core")
    proc = subprocess.run(
        f"echo 'print(1)' | {sys.executable} -m envgraph.cli run --network none core -- python -",
        shell=True, cwd=run_project, capture_output=True, text=True, timeout=600, env=cli_env(),
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "1\n"
    # A larger input arrives whole, and the command sees its end.
    data = "".join(f"line {i}\n" for i in range(20000))
    proc = subprocess.run(
        [sys.executable, "-m", "envgraph.cli", "run", "--network", "none", "core", "--", "wc", "-l"],
        input=data, cwd=run_project, capture_output=True, text=True, timeout=600, env=cli_env(),
    )  # fmt: skip
    assert proc.stdout.strip() == "20000", proc.stderr


@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_env_volume_user_and_separate_stderr(
    run_project: Path, loaded_cleanup: list[str], tmp_path: Path
) -> None:
    loaded_cleanup.append("envgraph/core")
    (tmp_path / "in.txt").write_text("from the host\n")
    os.chmod(tmp_path, 0o755)
    script = 'id -u; id -g; echo "$A $B"; cat /data/in.txt; echo oops >&2; touch /data/x 2>/dev/null || echo read-only'
    proc = envgraph_run(
        run_project, "-e", "A=1", "-e", "B", "-v", f"{tmp_path}:/data:ro", "--user", "1234:5678", "core", "--",
        "sh", "-c", script,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == ["1234", "5678", "1 ", "from the host", "read-only"]
    assert "oops" in proc.stderr and "oops" not in proc.stdout


@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_sigterm_stops_and_removes_the_container(
    run_project: Path, loaded_cleanup: list[str], docker_client: Any
) -> None:
    loaded_cleanup.append("envgraph/core")
    envgraph_run(run_project, "core", "--", "true")  # loaded: the next start is quick
    before = {c.id for c in docker_client.containers.list(all=True)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "envgraph.cli", "run", "--network", "none", "core", "--", "sh", "-c", "echo up; sleep 300"],
        cwd=run_project, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env(),
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline() == "up\n"
        mine = [c for c in docker_client.containers.list(all=True) if c.id not in before]
        assert len(mine) == 1
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 30
    finally:
        proc.kill()
        proc.wait()
    assert {c.id for c in docker_client.containers.list(all=True)} == before


@pytest.mark.docker
@pytest.mark.debian
@pytest.mark.timeout(900)
def test_gpus_without_gpus_is_one_line_error(run_project: Path, loaded_cleanup: list[str]) -> None:
    loaded_cleanup.append("envgraph/core")
    proc = envgraph_run(run_project, "--gpus", "all", "core", "--", "true")
    assert proc.returncode != 0
    assert proc.stderr.startswith("envgraph: error: ") and proc.stderr.count("\n") == 1, proc.stderr
