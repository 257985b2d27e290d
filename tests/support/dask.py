"""A real Dask cluster on 127.0.0.1: ``dask scheduler`` and ``dask worker`` processes, each worker with its own
envgraph store and wheel cache (as if on separate machines: they share nothing but the registry)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

__all__ = ["Cluster", "DaskWorker", "start_cluster"]

STARTUP_TIMEOUT = 30.0


@dataclass
class DaskWorker:
    address: str
    process: subprocess.Popen[bytes]
    store: Path
    cache: Path
    log: Path

    def kill(self) -> None:
        """SIGKILL: the worker dies mid-task, as a lost machine would."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait()


@dataclass
class Cluster:
    address: str  # tcp://127.0.0.1:PORT
    scheduler: subprocess.Popen[bytes]
    workdir: Path
    env: dict[str, str]
    stack: ExitStack
    nthreads: int = 1
    workers: list[DaskWorker] = field(default_factory=list)

    def add_worker(self) -> DaskWorker:
        """One more worker with a store and wheel cache of its own (e.g. to replace a killed one)."""
        worker = start_worker(self, self.workdir / f"worker-{len(self.workers)}", self.env, self.stack)
        self.workers.append(worker)
        _wait_workers(self, sum(1 for w in self.workers if w.process.poll() is None))
        return worker

    @property
    def executor(self) -> str:
        return "dask://" + self.address.removeprefix("tcp://")

    def worker(self, address: str) -> DaskWorker:
        return next(w for w in self.workers if w.address == address)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _dask() -> list[str]:
    exe = Path(sys.executable).with_name("dask")
    if not exe.exists():
        pytest.skip("the dask command is not installed (pip install -e '.[dask]')")
    return [str(exe)]


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _wait_port(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{log.name} exited: {log.read_text(errors='replace')[-2000:]}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    pytest.fail(f"{log.name} did not listen within {STARTUP_TIMEOUT} s")


@contextmanager
def start_cluster(workdir: Path, n_workers: int = 2, nthreads: int = 1) -> Iterator[Cluster]:
    """A scheduler and ``n_workers`` workers of ``nthreads`` threads (no nanny: killing one kills the worker itself)."""
    workdir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DASK_", "ENVGRAPH_"))}
    env["DASK_DISTRIBUTED__SCHEDULER__WORKER_TTL"] = "30s"
    with ExitStack() as stack:
        port = _free_port()
        log = workdir / "scheduler.log"
        with open(log, "wb") as out:
            scheduler = subprocess.Popen(
                [*_dask(), "scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=env,
            )
        stack.callback(_stop, scheduler)
        _wait_port(port, scheduler, log)
        cluster = Cluster(f"tcp://127.0.0.1:{port}", scheduler, workdir, env, stack, nthreads)
        for i in range(n_workers):
            cluster.workers.append(start_worker(cluster, workdir / f"worker-{i}", env, stack))
        _wait_workers(cluster, n_workers)
        yield cluster


def start_worker(cluster: Cluster, wdir: Path, env: dict[str, str], stack: ExitStack) -> DaskWorker:
    wdir.mkdir(parents=True, exist_ok=True)
    wport = _free_port()
    wenv = {**env, "ENVGRAPH_WORKER_STORE": str(wdir / "store"), "ENVGRAPH_CACHE": str(wdir / "cache")}
    log = wdir / "worker.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*_dask(), "worker", cluster.address, "--host", "127.0.0.1", "--worker-port", str(wport),
             "--nthreads", str(cluster.nthreads), "--no-nanny", "--no-dashboard", "--local-directory", str(wdir / "dask")],
            stdout=out, stderr=subprocess.STDOUT, env=wenv,
        )  # fmt: skip
    stack.callback(_stop, proc)
    _wait_port(wport, proc, log)
    return DaskWorker(f"tcp://127.0.0.1:{wport}", proc, wdir / "store", wdir / "cache", log)


def _wait_workers(cluster: Cluster, n: int) -> None:
    from distributed import Client

    with Client(cluster.address, timeout=STARTUP_TIMEOUT, set_as_default=False) as client:
        client.wait_for_workers(n, timeout=STARTUP_TIMEOUT)
