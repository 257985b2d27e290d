"""Helpers shared by the server tests: ``envgraph serve`` as a real process, dashboard clients over a real
store, and the small file checks several of them make."""

from __future__ import annotations

import contextlib
import os
import re
import select
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

import envgraph
from envgraph.oci._store import Store
from envgraph.server import create_app
from envgraph.server._dashboard import Dashboard, dashboard_routes
from tests.support.cli import cli_env

STOP_TIMEOUT_S = 15


class Served:
    def __init__(self, proc: subprocess.Popen[str], address: str) -> None:
        self.proc = proc
        self.address = address
        self.url = f"http://{address}"

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        self.proc.send_signal(sig)
        _, err = self.proc.communicate(timeout=STOP_TIMEOUT_S)
        return self.proc.returncode, err


@contextlib.contextmanager
def serving(cwd: Path, *args: str, debug: bool = False) -> Iterator[Served]:
    """Run ``envgraph [args] serve --port 0`` until the block ends; yields its address once it listens."""
    cmd = [
        sys.executable,
        "-m",
        "envgraph.cli",
        *(["--debug"] if debug else []),
        *args,
        "serve",
        "--port",
        "0",
    ]
    proc = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cli_env()
    )
    try:
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 30)
        line = proc.stdout.readline() if ready else ""
        m = re.search(r"at http://(127\.0\.0\.1:\d+) ", line)
        if m is None:
            proc.kill()
            _, err = proc.communicate()
            pytest.fail(f"envgraph serve did not start: {line!r} {err}")
        yield Served(proc, m.group(1))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def dashboard_client(project: Path, *, declaration: bool = True, lock_diff: bool = False) -> TestClient:
    """A TestClient of the dashboard over ``project``'s store (read-only) and history; without ``declaration``
    it knows only the store, as ``envgraph serve --store`` outside a project does."""
    store = Store.open(project / ".envgraph", readonly=True)
    ws = envgraph.load(project / "envgraph.toml")
    if not declaration:
        dash = Dashboard(None, None, store, ws.history_url)
    else:
        dash = Dashboard(
            ws.graph, ws.lockdir, store, ws.history_url, lock_diff=ws.diff if lock_diff else None
        )
    return TestClient(create_app(store, routes=dashboard_routes(dash)))


def get_json(client: TestClient, path: str, status: int = 200) -> Any:
    r = client.get(path)
    assert r.status_code == status, r.text
    return r.json()


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and mtime: what "nothing was written" compares."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


def flip_byte(path: Path, offset: int = -10) -> None:
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
