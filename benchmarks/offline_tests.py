"""The offline test suite before and after issue 11, on the same tests and the same machine.

    python -m benchmarks.offline_tests [--before 8646e2a] [--runs 3]

Issue 11 asked that the offline tests (``-m "not network and not docker and not registry and not debian"``)
run at least twice as fast as before it. The suite has grown since (every later issue added offline tests),
so the whole suite's time says nothing about speed: this compares the same tests. It checks out
``--before`` (the commit the issue was filed against) into a temporary worktree, collects its offline
tests, finds each one's current form by its function name (renames are listed in ``RENAMED``; a test the
current suite no longer has is reported, never guessed), and runs the old suite and the current
counterparts alternately ``--runs`` times, so that a shared machine's load falls on both alike. Both run
with this checkout's virtualenv. Prints a table and writes ``<out>/<date>-offline-tests.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OFFLINE = "not network and not docker and not registry and not debian"
# Old test name -> its current name, where a later change renamed it (the test itself kept its purpose).
RENAMED = {
    "test_quiet_prints_only_the_summary": "test_quiet_prints_only_the_total_line",
    "test_images_are_tagged_by_drv_and_hold_the_declared_layers": (
        "test_images_are_tagged_by_image_id_and_hold_the_declared_layers"
    ),
    # issue 12: a files entry's content no longer changes the drv; it changes the image id instead
    "test_file_content_changes_drv": "test_code_edits_change_the_image_not_the_lock",
    # issue 10: temp files are cleaned by whether a live writer holds them, not by age
    "test_verify_cleans_stale_temp_files": "test_clean_tmp_removes_what_dead_writers_left_and_nothing_live",
}
# pytest runs the current counterparts from a list of node ids (parameter ids may hold spaces)
RUN_IDS = (
    "import sys, pytest; sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', *sys.argv[1].splitlines()]))"
)


def function_name(node_id: str) -> str:
    return re.sub(r"\[.*$", "", node_id.split("::")[-1])


def counterparts(before: Iterable[str], now: Iterable[str]) -> tuple[list[str], list[str]]:
    """The current node ids of the tests ``before`` had (by function name, through ``RENAMED``), and the
    old function names with no current test."""
    wanted = {RENAMED.get(function_name(i), function_name(i)) for i in before}
    now = list(now)
    have = {function_name(i) for i in now}
    return [i for i in now if function_name(i) in wanted], sorted(wanted - have)


def collect(cwd: Path, env: dict[str, str]) -> list[str]:
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "--collect-only", "-p", "no:cacheprovider", "-m", OFFLINE],
        cwd=cwd, env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [ln.strip() for ln in out.splitlines() if "::" in ln]


def timed(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, str]:
    """Wall seconds of ``cmd`` and pytest's last line. A failed test still took its time (the old suite has
    a timing-dependent test that can fail on a loaded machine): the outcome is recorded, not fatal."""
    started = time.monotonic()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    return time.monotonic() - started, lines[-1] if lines else f"exit {done.returncode}: {done.stderr[-300:]}"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.offline_tests", description=__doc__)
    p.add_argument("--before", default="8646e2a", help="the commit before issue 11 (default: 8646e2a)")
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    args = p.parse_args(argv)
    here = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="envgraph-before-") as tmp:
        old = Path(tmp) / "before"
        subprocess.run(
            ["git", "worktree", "add", "--detach", "-q", str(old), args.before], cwd=ROOT, check=True
        )
        try:
            # The old tree's envgraph comes first, in pytest and in every subprocess its tests start.
            there = dict(here, PYTHONPATH=str(old))
            before_ids, now_ids = collect(old, there), collect(ROOT, here)
            current, gone = counterparts(before_ids, now_ids)
            runs: dict[str, list[float]] = {"before": [], "now": []}
            outcomes: dict[str, list[str]] = {"before": [], "now": []}
            for n in range(args.runs):
                for side, cmd, cwd, env in (
                    ("before", [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", OFFLINE],
                     old, there),
                    ("now", [sys.executable, "-c", RUN_IDS, "\n".join(current)], ROOT, here),
                ):  # fmt: skip
                    seconds, outcome = timed(cmd, cwd, env)
                    runs[side].append(seconds)
                    outcomes[side].append(outcome)
                    print(f"run {n + 1} {side}: {seconds:.1f} s ({outcome})", flush=True)
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old)], cwd=ROOT, check=False)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    before_s, now_s = statistics.median(runs["before"]), statistics.median(runs["now"])
    result = {
        "date": datetime.date.today().isoformat(),
        "before": {
            "commit": args.before,
            "tests": len(before_ids),
            "seconds": runs["before"],
            "outcomes": outcomes["before"],
        },
        "now": {
            "commit": head.stdout.strip(),
            "tests": len(current),
            "seconds": runs["now"],
            "outcomes": outcomes["now"],
            "offline_suite_tests": len(now_ids),
        },
        "gone": gone,
        "speedup": round(before_s / now_s, 2),
        "cores": os.cpu_count(),
        "loadavg": os.getloadavg(),
    }
    print(
        f"| | tests | median wall |\n|---|---|---|\n| before ({args.before}) | {len(before_ids)} | {before_s:.1f} s |"
    )
    print(f"| now ({result['now']['commit']}), same tests | {len(current)} | {now_s:.1f} s |")
    print(f"speed-up {result['speedup']}x; old tests with no current form: {', '.join(gone) or 'none'}")
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{result['date']}-offline-tests.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
