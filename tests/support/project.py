"""Offline test projects: declaration headers, writing and locking a project once, and copying it per test.

Locking runs pip-compile (about a second or two per generation of envs), so tests that need valid lockfiles
rather than a fresh resolution lock a template once per module or session and take copies: lockfiles hold
relative wheel paths and drvs that do not depend on the directory, so a copy is as locked as the original.
"""

from __future__ import annotations

import json
import shutil
import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import envgraph
from envgraph.lock import LockResult
from tests.support.wheels import standard_wheels

__all__ = [
    "HEADER",
    "SCRATCH_PYTHON",
    "BUILD_HEADER",
    "TWO_ENVS",
    "PIPELINES",
    "GRAPH",
    "Locked",
    "write_project",
    "lock",
    "locked_template",
    "copy_project",
    "lock_json",
    "lock_drv",
    "lock_drvs",
]

# Offline: no index, the project's own wheels directory; a scratch base (no layers of its own).
HEADER = """
[project]
name = "t"
python = "3.11"
index-url = ""
find-links = ["wheels"]

[bases.none]
image = "scratch"
"""

# The same, with an interpreter path for the scratch base, so envs get a venv layer and can be built.
SCRATCH_PYTHON = "/usr/bin/python3.11"
BUILD_HEADER = HEADER.replace('image = "scratch"\n', f'image = "scratch"\npython = "{SCRATCH_PYTHON}"\n')

# Two envs, one on the other: the smallest graph with a parent (the registry tests push and cache it).
TWO_ENVS = """
[env.core]
base = "none"
requirements = ["alpha"]

[env.app]
parent = "core"
requirements = ["gamma"]
"""


# The builder tests' graph. Three pipelines, six envs: core is shared by train and serve, api extends serve, and batch and
# report are independent roots that lock some of the same wheels (alpha, delta), so share layers.
PIPELINES = """
[env.core]
base = "none"
requirements = ["alpha<2"]
environment = { GREETING = "hola" }

[env.train]
parent = "core"
requirements = ["gamma"]

[env.serve]
parent = "core"
requirements = ["delta==0.5"]
files = [{ src = "app/", dest = "/app" }]
workdir = "/app"

[env.api]
parent = "serve"
requirements = ["beta<2"]

[env.batch]
base = "none"
requirements = ["alpha<2", "delta==0.5"]

[env.report]
base = "none"
requirements = ["gamma", "alpha<2"]

[pipeline.training]
steps = { prep = "core", fit = "train", eval = "report" }

[pipeline.serving]
steps = { api = "api", warm = "serve" }

[pipeline.nightly]
steps = { run = "batch", summary = "report" }
"""


def write_project(root: Path, body: str, header: str = BUILD_HEADER) -> Path:
    """``root/envgraph.toml`` (header + body) with the standard wheels and an ``app/`` directory; returns the toml."""
    root.mkdir(parents=True, exist_ok=True)
    standard_wheels(root / "wheels")
    (root / "app").mkdir(exist_ok=True)
    (root / "app" / "main.py").write_text("print('app')\n")
    toml = root / "envgraph.toml"
    toml.write_text(textwrap.dedent(header) + textwrap.dedent(body), encoding="utf-8")
    return toml


def lock(toml: Path, **kwargs: Any) -> LockResult:
    """``envgraph lock`` in this process (the library call the CLI makes)."""
    return envgraph.load(toml).lock(**kwargs)


def locked_template(root: Path, body: str, header: str = BUILD_HEADER) -> Path:
    """Write and lock a project (see :func:`write_project`) in ``root``; returns ``root``. Copy it per test."""
    lock(write_project(root, body, header))
    return root


@dataclass(frozen=True)
class Locked:
    """A locked template and what its first lock said about each env and base (name -> status)."""

    root: Path
    first: dict[str, str]


def copy_project(template: Path, dest: Path) -> Path:
    """A copy of a (locked) project without its store; returns ``dest``."""
    shutil.copytree(template, dest, ignore=shutil.ignore_patterns(".envgraph"), symlinks=True)
    return dest


def lock_json(project: Path, env: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((project / "lockfiles" / f"{env}.lock.json").read_text())
    return data


def lock_drv(project: Path, env: str) -> str:
    drv: str = lock_json(project, env)["drv"]
    return drv


def lock_drvs(project: Path) -> dict[str, str]:
    """env -> drv of every lockfile in the project."""
    return {
        p.name.split(".")[0]: json.loads(p.read_text())["drv"]
        for p in sorted((project / "lockfiles").glob("*.lock.json"))
    }


# Four envs on a scratch base, two pipelines: what the catalog and tag tests expect.
GRAPH = """
[env.core]
base = "none"
requirements = ["alpha<2"]
environment = { GREETING = "hola" }

[env.train]
parent = "core"
requirements = ["gamma"]

[env.serve]
parent = "core"
requirements = ["delta"]
files = [{ src = "app/", dest = "/app" }]
workdir = "/app"

[env.batch]
base = "none"
requirements = ["delta"]

[pipeline.training]
steps = { prep = "core", fit = "train" }

[pipeline.serving]
steps = { api = "serve", nightly = "batch" }
"""
