"""Running the command line: in this process (fast, the default) or as a real process (when that is the point).

:func:`cli` drives ``envgraph.cli.main`` with click's ``CliRunner`` in the project's directory, with the
environment a fresh shell would give it (no ``ENVGRAPH_STORE``, no ``SOURCE_DATE_EPOCH``), stdout and stderr
captured apart, and the exit code ``sys.exit`` gave. An exception the CLI does not turn into its one-line error
(a bug: the real command would print a traceback) is raised in the test instead of being swallowed.

:func:`cli_process` and :func:`popen_cli` start ``python -m envgraph.cli``: for signals, kill -9, concurrent
processes, terminals, and smoke tests of the real entry point.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from click.testing import CliRunner

__all__ = ["CliResult", "cli", "cli_env", "cli_process", "popen_cli", "working_directory"]

# Variables a user's shell may set that change what the CLI does; tests run without them.
AMBIENT = ("ENVGRAPH_STORE", "SOURCE_DATE_EPOCH")


@dataclass(frozen=True)
class CliResult:
    """What ``subprocess.run`` would say about the command (the fields tests use)."""

    args: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str


@contextmanager
def working_directory(path: Path) -> Iterator[None]:
    old = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(old)


def cli(project: Path, *args: str, check: bool = True) -> CliResult:
    """Run ``envgraph ARGS`` in this process, in ``project``'s directory."""
    from envgraph.cli import main

    with working_directory(project):
        result = CliRunner().invoke(
            main, list(args), prog_name="envgraph", env=dict.fromkeys(AMBIENT), catch_exceptions=True
        )
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise AssertionError(
            f"envgraph {' '.join(args)} raised {type(exc).__name__} (a traceback for a user)\n{result.stderr}"
        ) from exc
    out = CliResult(tuple(args), result.exit_code, result.stdout, result.stderr)
    if check:
        assert out.returncode == 0, f"envgraph {' '.join(args)}: {out.returncode}\n{out.stdout}\n{out.stderr}"
    return out


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in AMBIENT}
    env["PYTHONUNBUFFERED"] = "1"
    return env


def cli_process(
    project: Path, *args: str, check: bool = True, timeout: float = 300, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the real command line (a fresh ``python -m envgraph.cli`` process) in the project's directory
    (``env``: the whole environment instead of :func:`cli_env`)."""
    proc = subprocess.run(
        [sys.executable, "-m", "envgraph.cli", *args],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env if env is not None else cli_env(),
    )
    if check:
        assert proc.returncode == 0, (
            f"envgraph {' '.join(args)}: {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        )
    return proc


def popen_cli(project: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    """Start ``python -m envgraph.cli ARGS`` in the project's directory, stdout and stderr piped."""
    return subprocess.Popen(
        [sys.executable, "-m", "envgraph.cli", *args],
        cwd=project,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=cli_env(),
        **kw,
    )
