"""Child processes that die with envgraph, even when envgraph is killed with SIGKILL.

A child (pip-compile, mmdebstrap and everything they start) runs under a small guardian process
(:mod:`envgraph._guardian`). The guardian asks the kernel to signal it when envgraph dies
(``PR_SET_PDEATHSIG``), puts the child in a process group of its own, and when envgraph dies, times out or is
interrupted, kills that whole group and removes the child's scratch directories (without crossing into file
systems mounted below them). The guardian passes the child's output through unchanged.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

__all__ = ["Completed", "GuardedTimeout", "run_guarded"]


@attrs.frozen
class Completed:
    returncode: int
    output: str  # stdout and stderr interleaved


class GuardedTimeout(Exception):
    def __init__(self, seconds: float, output: str) -> None:
        super().__init__(f"took longer than {seconds:g} s")
        self.seconds = seconds
        self.output = output


def run_guarded(
    args: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float | None = None,
    cleanup: Sequence[Path] = (),
) -> Completed:
    """Run ``args`` under a guardian; return its exit code and output. On timeout (``GuardedTimeout``), on an
    exception in this process (Ctrl-C) and when this process dies, the child's whole process group is killed and
    ``cleanup`` directories are removed."""
    spec = {
        "args": list(args),
        "cwd": str(cwd) if cwd is not None else None,
        "env": dict(env if env is not None else os.environ),
        "parent": os.getpid(),
        "cleanup": [str(p) for p in cleanup],
    }
    proc = subprocess.Popen(
        [sys.executable, "-I", "-m", "envgraph._guardian", json.dumps(spec)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        errors="replace",
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate()
        raise GuardedTimeout(timeout or 0.0, out or "") from None
    except BaseException:
        proc.send_signal(signal.SIGTERM)
        proc.wait()
        raise
    return Completed(proc.returncode, out or "")
