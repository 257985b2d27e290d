"""Fixtures for the registry endpoint: a real store built once by the real builder, copies to damage."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from envgraph.oci._store import Store
from envgraph.server import create_app
from tests.support.cli import cli
from tests.support.project import GRAPH, locked_template

DASHBOARD_RUNS = 4  # runs the dashboard project's commands recorded (tests may add more after)


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline four-env GRAPH project (core, train, serve, batch on a scratch base), locked and built."""
    root = locked_template(tmp_path_factory.mktemp("served"), GRAPH)
    cli(root, "build", "-q")
    return root


@pytest.fixture
def store_copy(built_project: Path, tmp_path: Path) -> Path:
    """A private copy of the built store (to damage or extend)."""
    dest = tmp_path / "store"
    shutil.copytree(built_project / ".envgraph", dest)
    return dest


@pytest.fixture
def client(built_project: Path) -> Iterator[TestClient]:
    store = Store.open(built_project / ".envgraph", readonly=True)
    with TestClient(create_app(store)) as c:
        yield c


@pytest.fixture(scope="session")
def dashboard_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The GRAPH project with a history: locked (run 1), built (run 2), then core moves to alpha 2 and train gains
    beta: locked (run 3), built (run 4)."""
    root = locked_template(tmp_path_factory.mktemp("dashboard"), GRAPH)
    cli(root, "build", "-q")
    toml = root / "envgraph.toml"
    body = toml.read_text()
    body = body.replace('requirements = ["alpha<2"]', 'requirements = ["alpha>=2"]')
    body = body.replace('requirements = ["gamma"]', 'requirements = ["gamma", "beta"]')
    toml.write_text(body)
    cli(root, "lock", "-q")
    cli(root, "build", "-q")
    return root
