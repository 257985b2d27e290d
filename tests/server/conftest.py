"""Fixtures for the registry endpoint: a real store built once by the real builder, copies to damage."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from envgraph.oci._store import Store
from envgraph.server import create_app
from tests.support.cli import cli
from tests.support.project import locked_template

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


@pytest.fixture(scope="session")
def built_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The offline four-env GRAPH project (core, train, serve, batch on a scratch base), locked and built."""
    root = locked_template(tmp_path_factory.mktemp("served"), GRAPH)
    cli(root, "build", "-q")
    return root


def snapshot(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path under ``root`` with its mode, size and mtime: what "nothing was written" compares."""
    out = {}
    for dirpath, dirs, files in os.walk(root):
        for name in [*dirs, *files]:
            st = os.lstat(os.path.join(dirpath, name))
            out[os.path.relpath(os.path.join(dirpath, name), root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


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
