"""What the runner needs running: a Docker daemon, local registries, an HTTP wheelhouse; and the meters.

The registry is started by the tests' code (``tests/support/registry_server.py``): one implementation."""

from __future__ import annotations

import functools
import http.server
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import attrs
import docker

from tests.support.registry_server import registry_binary as registry_binary  # re-exported for the runner
from tests.support.registry_server import start_registry

CLK_TCK = os.sysconf("SC_CLK_TCK")
CGROUP_PARENT = "envgraph-bench"


def disk_usage(path: Path) -> int:
    """Bytes a tree occupies on disk (``du -sxB1``: hard links once, sparse files as stored)."""
    if not path.exists():
        return 0
    out = subprocess.run(["du", "-sxB1", str(path)], capture_output=True, text=True)
    return int(out.stdout.split()[0]) if out.stdout else 0


# --------------------------------------------------------------------------------------------- CPU


def _proc_children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(entry))
    return kids


def _tree_ticks(root: int) -> int:
    """utime+stime+cutime+cstime of ``root`` and all its live descendants, in clock ticks."""
    kids, total, todo = _proc_children(), 0, [root]
    while todo:
        pid = todo.pop()
        try:
            f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in f[11:15])
        except (OSError, IndexError, ValueError):
            pass
        todo += kids.get(pid, [])
    return total


def _cgroup_ns() -> int:
    p = Path(f"/sys/fs/cgroup/cpuacct/{CGROUP_PARENT}/cpuacct.usage")
    try:
        return int(p.read_text())
    except (OSError, ValueError):
        return 0


@attrs.frozen
class CpuSnapshot:
    children: float
    daemon_ticks: int
    cgroup_ns: int


class CpuMeter:
    """CPU seconds of our children (rusage), the daemon's process tree (/proc/<pid>/stat) and its containers' cgroup."""

    def __init__(self, daemon_pid: int | None) -> None:
        self.daemon_pid = daemon_pid

    def snap(self) -> CpuSnapshot:
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        ticks = _tree_ticks(self.daemon_pid) if self.daemon_pid else 0
        return CpuSnapshot(ru.ru_utime + ru.ru_stime, ticks, _cgroup_ns())

    def since(self, s: CpuSnapshot) -> float:
        now = self.snap()
        return round(
            (now.children - s.children)
            + (now.daemon_ticks - s.daemon_ticks) / CLK_TCK
            + (now.cgroup_ns - s.cgroup_ns) / 1e9,
            3,
        )


def self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


# --------------------------------------------------------------------------------------------- memory

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# Runs argv[2:] and writes its ru_maxrss (KiB) to argv[1]. A child's peak RSS counts the memory of the
# process it was forked from (Linux keeps the old mm's high-water mark across exec, and with vfork that
# is the parent's own): forked from this small process instead of the benchmark's, it is the build's.
_RSS_WRAPPER = """\
import os, subprocess, sys
p = subprocess.Popen(sys.argv[2:])
_, status, usage = os.wait4(p.pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
code = os.waitstatus_to_exitcode(status)
sys.exit(code if code >= 0 else 128 - code)
"""


def run_with_peak_rss(cmd: list[str], env: dict[str, str]) -> tuple[subprocess.CompletedProcess[str], int]:
    """Run ``cmd`` to completion; also return its peak RSS in bytes: the largest of the process and its
    children (``wait4``), exact whatever their lifetime, not counting the benchmark's own memory."""
    done, peak, _ = run_with_usage(cmd, env)
    return done, peak


def run_with_usage(
    cmd: list[str], env: dict[str, str]
) -> tuple[subprocess.CompletedProcess[str], int, float]:
    """:func:`run_with_peak_rss` and the CPU seconds (user + system) of the process and its children: on a
    shared machine the wall time depends on the load, the CPU time much less."""
    with tempfile.TemporaryDirectory(prefix="envgraph-bench-rss-") as tmp:
        report = Path(tmp) / "maxrss"
        wrapped = [sys.executable, "-S", "-c", _RSS_WRAPPER, str(report), *cmd]
        done = subprocess.run(wrapped, capture_output=True, text=True, env=env)
        peak, cpu = (report.read_text().split() + ["0", "0"])[:2] if report.exists() else ("0", "0")
    return (
        subprocess.CompletedProcess(cmd, done.returncode, done.stdout, done.stderr),
        int(peak) * 1024,
        float(cpu),
    )


def _rss(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return 0


def _in_cgroup(pid: int, parent: str) -> bool:
    try:
        return f"/{parent}/" in Path(f"/proc/{pid}/cgroup").read_text()
    except OSError:
        return False


class PeakRss:
    """Samples the summed RSS of the daemon's process tree, our own children's and every process in the
    build containers' cgroups (under :data:`CGROUP_PARENT`) every ``interval`` seconds; keeps the peak."""

    def __init__(self, daemon_pid: int | None, interval: float = 0.1) -> None:
        self.daemon_pid = daemon_pid
        self.interval = interval
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="peak-rss", daemon=True)
        # Our children that run anyway (the local registries) are not the build's.
        self._services = set(_proc_children().get(os.getpid(), [])) - {daemon_pid}

    def sample(self) -> int:
        kids = _proc_children()
        pids: set[int] = set()
        ours = [p for p in kids.get(os.getpid(), []) if p not in self._services]
        todo = [p for p in (self.daemon_pid, *ours) if p]
        while todo:
            pid = todo.pop()
            if pid not in pids:
                pids.add(pid)
                todo += kids.get(pid, [])
        pids |= {pid for ps in kids.values() for pid in ps if _in_cgroup(pid, CGROUP_PARENT)}
        return sum(_rss(pid) for pid in pids)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.sample())
            self._stop.wait(self.interval)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


# --------------------------------------------------------------------------------------------- dockerd


@attrs.frozen
class Daemon:
    host: str
    pid: int | None
    data_root: Path | None  # known for a daemon we started, else from `docker info`
    started: bool


def _ping(host: str) -> docker.DockerClient | None:
    try:
        c = docker.DockerClient(base_url=host, timeout=600)
        c.ping()
        return c
    except Exception:
        return None


def _pid_of_socket_owner(data_root: Path | None) -> int | None:
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmd = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if (
                cmd
                and cmd[0].endswith(b"dockerd")
                and (data_root is None or str(data_root).encode() in b" ".join(cmd))
            ):
                return int(entry)
    return None


@contextmanager
def docker_daemon(workdir: Path, host: str | None, log) -> Iterator[Daemon | None]:
    """The daemon given by ``host`` if it answers; else a private ``dockerd`` with its own data root under ``workdir``.

    A private daemon keeps the measurements clean (its data root holds only what the benchmark built)
    and keeps other users of the machine's default daemon out of the way. Yields None (and says why)
    when no daemon can be had.
    """
    if host:
        client = _ping(host)
        if client is None:
            log(f"missing: no Docker daemon answers at {host}")
            yield None
            return
        root = Path(client.info()["DockerRootDir"])
        client.close()
        yield Daemon(host, _pid_of_socket_owner(None), root, started=False)
        return
    if shutil.which("dockerd") is None:
        log("missing: dockerd is not installed (apt-get install docker.io)")
        yield None
        return
    if os.geteuid() != 0:
        log("missing: starting a private dockerd needs root (or pass --docker-host)")
        yield None
        return
    d = workdir / "dockerd"
    d.mkdir(parents=True, exist_ok=True)
    sock = d / "docker.sock"
    host = f"unix://{sock}"
    cmd = [
        "dockerd",
        "--host", host,
        "--data-root", str(d / "data"),
        "--exec-root", str(d / "exec"),
        "--pidfile", str(d / "docker.pid"),
        "--bridge", "none",  # builds run with network none/host: no bridge to fight over with another daemon
        "--iptables=false",
        "--ip-masq=false",
        "--cgroup-parent", f"/{CGROUP_PARENT}",
    ]  # fmt: skip
    logf = open(d / "dockerd.log", "ab")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 60
        while (client := _ping(host)) is None:
            if proc.poll() is not None or time.monotonic() > deadline:
                tail = (d / "dockerd.log").read_text(errors="replace").splitlines()[-3:]
                log(f"missing: private dockerd did not start: {' | '.join(tail)}")
                yield None
                return
            time.sleep(0.3)
        client.close()
        log(f"started a private dockerd at {host} (data root {d / 'data'})")
        yield Daemon(host, proc.pid, d / "data", started=True)
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        logf.close()


# --------------------------------------------------------------------------------------------- registry


@attrs.frozen
class Registry:
    host: str
    storage: Path
    process: subprocess.Popen[bytes]

    def stored_bytes(self) -> int:
        return disk_usage(self.storage)


@contextmanager
def registry(workdir: Path) -> Iterator[Registry]:
    """A fresh ``docker-registry`` on 127.0.0.1 with filesystem storage under ``workdir`` (wiped first and after).

    Started by the tests' own registry code (tests/support/registry_server.py), so both run it the same way."""
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        with start_registry(workdir) as reg:
            yield Registry(reg.host, reg.storage, reg.process)
    finally:
        # What it received is measured by then; kept, a GPU workload's Docker pushes (18 GB) left the next
        # contender's scenarios no room on the disk.
        shutil.rmtree(workdir, ignore_errors=True)


# --------------------------------------------------------------------------------------------- wheels over HTTP


class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def wheel_server(wheelhouse: Path) -> Iterator[str]:
    """Serve the wheelhouse on 127.0.0.1 (a find-links page) for builds without BuildKit's bind mounts."""
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(_Quiet, directory=str(wheelhouse))
    )
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()
