"""Lock wall time of a workload's envs at several ``-j`` (bases pinned once beforehand, pip's cache warm).

    python -m benchmarks.lock_parallel [realistic|gpu] [-j 1 -j 2]

Each run removes the env lockfiles and locks afresh (``--upgrade``); a first run warms pip's download cache
so that every measured run downloads the same (nothing)."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.workloads import get, render_toml


def lock(root: Path, jobs: int) -> float:
    for p in (root / "lockfiles").glob("*.*"):
        p.unlink()
    start = time.monotonic()
    done = subprocess.run(
        [str(Path(sys.executable).parent / "envgraph"), "-f", str(root / "envgraph.toml"), "lock", "-U", "-j", str(jobs)],
        capture_output=True, text=True,
    )  # fmt: skip
    took = time.monotonic() - start
    if done.returncode != 0:
        raise SystemExit(f"lock -j {jobs} failed: {done.stderr[-2000:]}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("workload", nargs="?", default="realistic")
    ap.add_argument("-j", dest="jobs", type=int, action="append")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--resolver", choices=["pip-tools", "uv"], action="append")
    ap.add_argument("--root", type=Path, help="keep the project here (its pinned base is reused next time)")
    args = ap.parse_args()
    w = get(args.workload, False)
    root = args.root or Path(tempfile.mkdtemp(prefix="lockbench-"))
    root.mkdir(parents=True, exist_ok=True)
    try:
        # Without PEP 658 metadata pip reads candidate wheels whole: give resolution time on a shared machine.
        toml = render_toml(w, w.versions[0]).replace(
            'platform = "linux/amd64"\n', 'platform = "linux/amd64"\nresolve-timeout = 1200\n'
        )
        (root / "envgraph.toml").write_text(toml, encoding="utf-8")
        for resolver in args.resolver or ["pip-tools"]:
            text = toml.replace('python = "3.11"\n', f'python = "3.11"\nresolver = "{resolver}"\n', 1)
            (root / "envgraph.toml").write_text(text, encoding="utf-8")
            print(f"warm-up ({resolver}: bases, download cache): {lock(root, 2):.1f} s", flush=True)
            for _ in range(args.repeat):
                for j in args.jobs or [1, 2]:
                    print(f"{args.workload} {resolver} lock -j {j}: {lock(root, j):.1f} s", flush=True)
    finally:
        if args.root is None:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
