"""Session fixtures for tests that need a Docker daemon or a Debian base rootfs.

Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from envgraph._docker import DEFAULT_DOCKER_HOST, connect, docker_host
from envgraph._hashing import digest_hex, digest_of
from envgraph.debian._rootfs import DEFAULT_EPOCH, DebianRootfs, build_debian_rootfs, default_mirror
from envgraph.errors import DockerError

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "libstdc++6", "ca-certificates")
# The suite moves at each point release; rebuilding a week-old base keeps pinned rebuilds possible.
CACHE_MAX_AGE_S = 7 * 24 * 3600
DOCKERD_START_TIMEOUT_S = 60.0


def cache_dir() -> Path:
    return Path(os.environ.get("ENVGRAPH_TEST_CACHE") or Path.home() / ".cache" / "envgraph-tests")


def _try_connect() -> docker.DockerClient | None:
    try:
        return connect(timeout=30)
    except DockerError:
        return None


def _start_dockerd(log_path: Path) -> subprocess.Popen[bytes]:
    host = docker_host()
    cmd = ["dockerd"]
    if host != DEFAULT_DOCKER_HOST:
        cmd += ["--host", host]
    with open(log_path, "ab") as log:
        # Same process group as pytest on purpose: when pytest is killed before its teardown
        # (Ctrl-C, `timeout`), the daemon gets the signal too instead of living on as an orphan.
        return subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


def _tail(path: Path, n: int = 5) -> str:
    try:
        return " | ".join(path.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"


@pytest.fixture(scope="session")
def docker_client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[docker.DockerClient]:
    """A client for a running daemon; starts ``dockerd`` for the session when none answers (as root)."""
    client = _try_connect()
    if client is not None:
        yield client
        client.close()
        return
    if shutil.which("dockerd") is None:
        pytest.skip("no Docker daemon answers and dockerd is not installed (apt-get install docker.io)")
    if os.geteuid() != 0:
        pytest.skip(f"no Docker daemon answers at {docker_host()} and starting dockerd needs root")
    if not docker_host().startswith("unix://"):
        pytest.skip(f"no Docker daemon answers at {docker_host()} (not a local socket we could start)")
    log_path = tmp_path_factory.mktemp("dockerd") / "dockerd.log"
    proc = _start_dockerd(log_path)
    try:
        deadline = time.monotonic() + DOCKERD_START_TIMEOUT_S
        while (client := _try_connect()) is None:
            if proc.poll() is not None:
                pytest.fail(f"dockerd exited with {proc.returncode}: {_tail(log_path)}")
            if time.monotonic() > deadline:
                pytest.fail(
                    f"dockerd did not answer within {DOCKERD_START_TIMEOUT_S:.0f} s: {_tail(log_path)}"
                )
            time.sleep(0.5)
        yield client
        client.close()
    finally:
        _stop(proc)


def base_inputs() -> dict[str, object]:
    """Everything the cached base depends on; its digest names the cache entry."""
    return {
        "suite": BASE_SUITE,
        "packages": sorted(BASE_PACKAGES),
        "pins": None,
        "mirror": default_mirror(),
        "epoch": DEFAULT_EPOCH,
        "arch": "amd64",
        # Bump when envgraph.debian._rootfs changes what it puts in the tar.
        "builder": 1,
    }


@pytest.fixture(scope="session")
def debian_rootfs() -> DebianRootfs:
    """The bookworm base, built once and cached across runs under ``$ENVGRAPH_TEST_CACHE``."""
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed (apt-get install mmdebstrap)")
    cache = cache_dir() / "debian"
    cache.mkdir(parents=True, exist_ok=True)
    key = digest_hex(digest_of(base_inputs()))[:16]
    tar_path = cache / f"{BASE_SUITE}-{key}.tar"
    versions_path = cache / f"{BASE_SUITE}-{key}.versions.json"
    # The versions file is written last, so its presence means the entry is complete.
    if versions_path.exists() and tar_path.exists():
        if time.time() - versions_path.stat().st_mtime < CACHE_MAX_AGE_S:
            return DebianRootfs(versions=json.loads(versions_path.read_text()), tar_path=tar_path)
        versions_path.unlink()
    rootfs = build_debian_rootfs(BASE_SUITE, BASE_PACKAGES, pins=None, out_tar=tar_path)
    tmp = versions_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rootfs.versions, indent=1, sort_keys=True))
    os.replace(tmp, versions_path)
    return rootfs
