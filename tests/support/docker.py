"""Session fixtures for tests that need a Docker daemon or a Debian base rootfs, and daemon helpers.

Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``. Daemon calls get a load-tolerant
timeout (:data:`DAEMON_TIMEOUT_S`): on a busy CI machine a daemon can take well over 30 s to delete an image.
Cleanup never fails a test: :func:`remove_images` is best effort and only warns.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import tarfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import docker
import docker.errors
import pytest

from envgraph._docker import DEFAULT_DOCKER_HOST, connect, docker_host
from envgraph._hashing import canonical_json, digest_hex, digest_of, file_sha256, sha256_hex
from envgraph.debian._rootfs import DEFAULT_EPOCH, DebianRootfs, build_debian_rootfs, default_mirror
from envgraph.errors import DockerError

BASE_SUITE = "bookworm"
BASE_PACKAGES = ("python3-minimal", "libpython3.11-stdlib", "libstdc++6", "ca-certificates")
# The suite moves at each point release; rebuilding a week-old base keeps pinned rebuilds possible.
CACHE_MAX_AGE_S = 7 * 24 * 3600
DOCKERD_START_TIMEOUT_S = 60.0
# Every request of the tests' client; a timed-out DELETE once failed a whole CI run at 30 s.
DAEMON_TIMEOUT_S = 300


def cache_dir() -> Path:
    return Path(os.environ.get("ENVGRAPH_TEST_CACHE") or Path.home() / ".cache" / "envgraph-tests")


def _try_connect() -> docker.DockerClient | None:
    try:
        return connect(timeout=DAEMON_TIMEOUT_S)
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
    """Stop the daemon we started; best effort (a daemon slow to die must not fail the session's last test)."""
    proc.terminate()
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            warnings.warn(f"dockerd (pid {proc.pid}) did not exit after SIGKILL", stacklevel=2)


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


def remove_images(client: docker.DockerClient, *refs: str) -> None:
    """Untag each ``repo:tag``, or every tag of each ``repo``, in ``refs`` (other names of the same image stay).

    Best effort: cleanup must not fail a test, so errors (a slow or vanished daemon) only warn."""
    for ref in refs:
        try:
            if ":" in ref.rsplit("/", 1)[-1]:
                names = [ref]
            else:
                images = client.images.list(name=ref)
                names = sorted({t for image in images for t in image.tags if t.rsplit(":", 1)[0] == ref})
            for name in names:
                with contextlib.suppress(docker.errors.ImageNotFound):
                    client.images.remove(name, force=True)
        except Exception as err:  # leftovers are harmless test images
            warnings.warn(f"could not remove {ref} from the Docker daemon: {err}", stacklevel=2)


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


def write_docker_archive(layer_tar: Path, out: Path, repo_tag: str) -> str:
    """A minimal one-layer docker-archive (``manifest.json`` + config + layer); returns the config digest.

    Stand-in for the real exporter in ``envgraph.oci``: just enough for ``docker load``.
    """
    diff_id = "sha256:" + file_sha256(layer_tar)[0]
    config = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
    )
    config_name = sha256_hex(config) + ".json"
    layer_name = diff_id.removeprefix("sha256:") + "/layer.tar"
    manifest = [{"Config": config_name, "RepoTags": [repo_tag], "Layers": [layer_name]}]
    with tarfile.open(out, "w") as tf:
        _add_bytes(tf, config_name, config)
        tf.add(layer_tar, arcname=layer_name)  # copied in chunks, not read into memory
        _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
    return "sha256:" + sha256_hex(config)


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


@pytest.fixture(scope="session")
def debian_archive(debian_rootfs: DebianRootfs, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's one Debian rootfs as an uncompressed one-layer docker-archive (made by copying)."""
    out = tmp_path_factory.mktemp("debian-base") / "bookworm.tar"
    write_docker_archive(debian_rootfs.tar_path, out, "envgraph-test/bookworm:base")
    return out


@pytest.fixture
def loaded_cleanup(docker_client: docker.DockerClient) -> Iterator[list[str]]:
    """Repositories whose tags the test loaded into the daemon; removed afterwards, best effort."""
    repos: list[str] = []
    yield repos
    remove_images(docker_client, *repos)
