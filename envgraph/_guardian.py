"""The guardian process of :func:`envgraph._subprocess.run_guarded` (``python -m envgraph._guardian SPEC``).

It asks the kernel for SIGTERM when envgraph dies (``PR_SET_PDEATHSIG``), runs the child in a process group of
its own, and on SIGTERM/SIGINT/SIGHUP (envgraph died, timed out or was interrupted) kills that group and
removes the child's scratch directories. When the child ends, whatever it left running in its group is killed
too. Its exit code is the child's (128 + signal when stopped).
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import signal
import subprocess
import sys
import time
from types import FrameType

from envgraph._fs import remove_tree

PR_SET_PDEATHSIG = 1


def main(argv: list[str]) -> int:
    spec = json.loads(argv[0])
    child: subprocess.Popen[bytes] | None = None

    def stop(signum: int, _frame: FrameType | None) -> None:
        if child is not None:
            with contextlib.suppress(OSError):
                os.killpg(child.pid, signal.SIGKILL)
            # Reap it directly: Popen.wait, interrupted by this handler, holds its lock.
            deadline = time.monotonic() + 10
            with contextlib.suppress(ChildProcessError):
                while os.waitpid(child.pid, os.WNOHANG) == (0, 0) and time.monotonic() < deadline:
                    time.sleep(0.01)
        for d in spec["cleanup"]:
            remove_tree(d)
        os._exit(128 + signum)

    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, stop)
    # Not on Linux: the guardian still cleans up on timeouts and interrupts.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != spec["parent"]:  # envgraph died before the death signal was armed
        stop(signal.SIGTERM, None)
    child = subprocess.Popen(
        spec["args"], cwd=spec["cwd"], env=spec["env"], start_new_session=True, stdin=subprocess.DEVNULL
    )
    code = child.wait()
    with contextlib.suppress(OSError):
        os.killpg(child.pid, signal.SIGKILL)  # nothing the child started outlives it (agents, helpers)
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
