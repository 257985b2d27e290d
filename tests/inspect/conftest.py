"""A small project of made wheels with licenses, markers and extras, for sbom, export-lock, why and diff."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest

import envgraph
from envgraph.workspace import Workspace
from tests.conftest import BUILD_HEADER
from tests.support.wheels import make_wheel

BODY = """
[env.core]
base = "none"
requirements = ["beta"]

[env.app]
parent = "core"
requirements = ["gamma[fast]"]
"""


def inspect_wheels(wh: Path) -> Path:
    """alpha (MIT), beta (needs alpha; delta only on Python 2), gamma (needs beta; with [fast]: epsilon),
    epsilon (needs alpha), delta."""
    make_wheel(wh, "alpha", "1.0", metadata=["License-Expression: MIT"])
    make_wheel(wh, "alpha", "2.0", metadata=["License-Expression: MIT"])
    make_wheel(wh, "beta", "2.0", requires=["alpha>=1", "delta; python_version < '3'"],
               metadata=["License: BSD-3-Clause"])  # fmt: skip
    make_wheel(wh, "gamma", "1.0", requires=["beta", "epsilon; extra == 'fast'"],
               metadata=["Provides-Extra: fast", "Classifier: License :: OSI Approved :: Apache Software License"])  # fmt: skip
    make_wheel(wh, "epsilon", "3.1", requires=["alpha"])
    make_wheel(wh, "delta", "0.5")
    return wh


@pytest.fixture(scope="session")
def locked_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, locked once per test run (pip-compile takes seconds); tests work on copies."""
    root = tmp_path_factory.mktemp("inspect-project")
    inspect_wheels(root / "wheels")
    path = root / "envgraph.toml"
    path.write_text(textwrap.dedent(BUILD_HEADER) + textwrap.dedent(BODY), encoding="utf-8")
    envgraph.load(path, store=root / ".envgraph").lock()
    return root


@pytest.fixture
def project(locked_template: Path, tmp_path: Path) -> Path:
    """A locked copy of the project: its declaration file."""
    root = tmp_path / "project"
    shutil.copytree(locked_template, root, ignore=shutil.ignore_patterns(".envgraph"))
    return root / "envgraph.toml"


@pytest.fixture
def locked(project: Path) -> Workspace:
    return envgraph.load(project, store=project.parent / ".envgraph")
