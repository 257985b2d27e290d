"""A real PostgreSQL server for a test session (Debian package ``postgresql``): ``initdb`` on a temp directory and
``postgres`` on a free loopback port, both as the ``postgres`` user (they refuse to run as root), password auth."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

__all__ = ["RunningPostgres", "postgres_bin", "postgres_server"]

PASSWORD = "pg-s3cret"


@dataclass
class RunningPostgres:
    host: str
    port: int
    user: str
    password: str
    database: str

    @property
    def url(self) -> str:
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(cmd: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningPostgres]:
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (Debian package postgresql; CI installs it)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        pytest.skip("runuser is needed to run PostgreSQL as the postgres user")
    # Not under pytest's base temp: that is private to root, and postgres must reach its directories.
    work = Path(tempfile.mkdtemp(prefix="envgraph-postgres-"))
    data, run = work / "data", work / "run"
    run.mkdir()
    pwfile = work / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(work, "postgres")
        shutil.chown(run, "postgres")
        shutil.chown(pwfile, "postgres")
    init = subprocess.run(
        _as_postgres([str(bindir / "initdb"), "-D", str(data), "-U", "envgraph", "--auth=scram-sha-256",
                      f"--pwfile={pwfile}", "-E", "UTF8", "--locale=C"]),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    if init.returncode != 0:
        shutil.rmtree(work, ignore_errors=True)
        raise RuntimeError(f"initdb failed: {init.stderr[-2000:]}")
    port = _free_port()
    log = (work / "postgres.log").open("wb")
    proc = subprocess.Popen(
        _as_postgres([str(bindir / "postgres"), "-D", str(data), "-h", "127.0.0.1", "-p", str(port),
                      "-k", str(run), "-c", "fsync=off"]),
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            ready = subprocess.run(
                [str(bindir / "pg_isready"), "-h", "127.0.0.1", "-p", str(port)], capture_output=True
            )
            if ready.returncode == 0:
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"postgres did not start: {(work / 'postgres.log').read_text()[-2000:]}")
            time.sleep(0.2)
        env = {**os.environ, "PGPASSWORD": PASSWORD}
        subprocess.run(
            [str(bindir / "createdb"), "-h", "127.0.0.1", "-p", str(port), "-U", "envgraph", "history"],
            check=True, capture_output=True, env=env, timeout=30,
        )  # fmt: skip
        yield RunningPostgres("127.0.0.1", port, "envgraph", PASSWORD, "history")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(work, ignore_errors=True)
