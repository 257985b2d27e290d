"""Pytest fixtures running the real CNCF distribution registry (Debian package ``docker-registry``).

Use from a conftest with ``pytest_plugins = ["registry_fixture"]`` (``tests/`` is on ``sys.path``
under pytest's default rootdir-relative import mode) or import the fixtures into a test module.

Fixtures (session-scoped: one registry process per test run; use distinct repository names):

- ``registry``: anonymous, plain HTTP on ``127.0.0.1:<free port>``, filesystem storage, deletes enabled.
- ``registry_basic_auth``: the same with htpasswd Basic auth; ``.username``/``.password`` are valid.

Both yield a :class:`RunningRegistry` (``.host`` = ``"127.0.0.1:PORT"``, ``.url``, ``.storage``,
``.blob_data_path(digest)``). :func:`start_registry` is the context manager behind them, for tests
that need a registry of their own. Everything is skipped with a reason when the binary is missing;
``ENVGRAPH_TEST_REGISTRY_BIN`` points at another binary.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

__all__ = ["RunningRegistry", "start_registry", "registry_binary", "registry", "registry_basic_auth"]

STARTUP_TIMEOUT = 15.0
TEST_USER = "envgraph"
TEST_PASSWORD = "s3cret-pass"


@dataclass
class RunningRegistry:
    host: str
    url: str
    storage: Path
    log: Path
    process: subprocess.Popen[bytes]
    username: str | None = None
    password: str | None = None

    def blob_data_path(self, digest: str) -> Path:
        """Where the filesystem driver keeps a blob's bytes (for corrupting it in tests)."""
        hexd = digest.split(":", 1)[1]
        return self.storage / "docker" / "registry" / "v2" / "blobs" / "sha256" / hexd[:2] / hexd / "data"


def registry_binary() -> str | None:
    override = os.environ.get("ENVGRAPH_TEST_REGISTRY_BIN")
    if override:
        return override if os.access(override, os.X_OK) else None
    return shutil.which("docker-registry") or shutil.which("registry")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def htpasswd_line(user: str, password: str) -> str:
    """A bcrypt htpasswd entry: ``htpasswd -Bbn`` (apache2-utils), else the ``bcrypt`` module."""
    tool = shutil.which("htpasswd")
    if tool:
        out = subprocess.run([tool, "-Bbn", user, password], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    try:
        import bcrypt  # type: ignore[import-not-found]
    except ImportError:
        pytest.skip("neither htpasswd (apt install apache2-utils) nor the bcrypt module is available")
    return f"{user}:" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=5)).decode()


def _config(port: int, storage: Path, htpasswd: Path | None) -> str:
    lines = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "  accesslog:",
        "    disabled: true",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {storage}",
        "  delete:",
        "    enabled: true",
        "  maintenance:",
        "    uploadpurging:",
        "      enabled: false",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: envgraph-test-secret",
    ]
    if htpasswd is not None:
        lines += ["auth:", "  htpasswd:", "    realm: envgraph-test", f"    path: {htpasswd}"]
    return "\n".join(lines) + "\n"


@contextmanager
def start_registry(workdir: Path, *, basic_auth: tuple[str, str] | None = None) -> Iterator[RunningRegistry]:
    """Run ``docker-registry serve`` under ``workdir`` until the block exits; skips when it is not installed."""
    binary = registry_binary()
    if binary is None:
        pytest.skip(
            "docker-registry binary not found (apt install docker-registry, or set ENVGRAPH_TEST_REGISTRY_BIN)"
        )
    workdir.mkdir(parents=True, exist_ok=True)
    storage = workdir / "storage"
    storage.mkdir(exist_ok=True)
    htpasswd: Path | None = None
    if basic_auth is not None:
        htpasswd = workdir / "htpasswd"
        htpasswd.write_text(htpasswd_line(*basic_auth) + "\n")
    # REGISTRY_* variables override the config file: keep the caller's out.
    env = {k: v for k, v in os.environ.items() if not k.startswith("REGISTRY_")}

    last_error = ""
    for _attempt in range(3):  # another process may grab the free port between probe and bind
        port = _free_port()
        config = workdir / "config.yml"
        config.write_text(_config(port, storage, htpasswd))
        log = workdir / "registry.log"
        with open(log, "wb") as log_file:
            proc = subprocess.Popen(
                [binary, "serve", str(config)], stdout=log_file, stderr=subprocess.STDOUT, env=env
            )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + STARTUP_TIMEOUT
        ready = False
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                if requests.get(f"{url}/v2/", timeout=1).status_code in (200, 401):
                    ready = True
                    break
            except requests.RequestException:
                pass
            time.sleep(0.05)
        if ready:
            running = RunningRegistry(
                host=f"127.0.0.1:{port}",
                url=url,
                storage=storage,
                log=log,
                process=proc,
                username=basic_auth[0] if basic_auth else None,
                password=basic_auth[1] if basic_auth else None,
            )
            try:
                yield running
            finally:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            return
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        last_error = log.read_text(errors="replace").strip()[-2000:]
    pytest.fail(f"docker-registry did not start: {last_error}")


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def registry_basic_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(
        tmp_path_factory.mktemp("registry-auth"), basic_auth=(TEST_USER, TEST_PASSWORD)
    ) as reg:
        yield reg
