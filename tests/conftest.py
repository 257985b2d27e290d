"""Shared fixtures: offline projects over wheels the tests build themselves.

Helpers live in ``tests/support/`` (test modules import from there, never from each other).
"""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import AMBIENT
from tests.support.debian import TestKeys
from tests.support.project import HEADER, PIPELINES, TWO_ENVS, Locked, lock, locked_template, write_project
from tests.support.wheels import make_wheel, standard_wheels

pytest_plugins = [
    "tests.support.registry",
    "tests.support.docker",
    "tests.support.runnable",
    "tests.support.postgres",
]


@pytest.fixture(scope="session", autouse=True)
def _no_ambient_settings() -> Iterator[None]:
    """A user's ENVGRAPH_STORE or SOURCE_DATE_EPOCH would move stores and digests: the tests run without them."""
    with pytest.MonkeyPatch.context() as mp:
        for name in AMBIENT:
            mp.delenv(name, raising=False)
        yield


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """A find-links directory: alpha 1.0/2.0, beta 1.0/2.0 (beta 2 needs alpha>=2), gamma 1.0 (needs alpha), delta 0.5."""
    return standard_wheels(tmp_path / "wheels")


@pytest.fixture(scope="session")
def two_envs_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """TWO_ENVS (core, app on core) locked once per session over the standard wheels: copy it per test."""
    return locked_template(tmp_path_factory.mktemp("two-envs"), TWO_ENVS)


@pytest.fixture(scope="session")
def pipelines_locked(tmp_path_factory: pytest.TempPathFactory) -> Locked:
    """PIPELINES (six envs, three pipelines) over the standard wheels plus delta 0.6, locked once per session.

    The lock, builder and end-to-end tests all start from copies of it (each lock costs a pip-compile per env)."""
    root = tmp_path_factory.mktemp("pipelines")
    make_wheel(root / "wheels", "delta", "0.6")
    result = lock(write_project(root, PIPELINES))
    return Locked(root, {o.name: o.status for o in result.outcomes})


@pytest.fixture(scope="session")
def pipelines_template(pipelines_locked: Locked) -> Path:
    """The locked PIPELINES project's directory: copy it (tests.support.project.copy_project), never change it."""
    return pipelines_locked.root


@pytest.fixture
def make_project(tmp_path: Path, wheelhouse: Path) -> Callable[..., Path]:
    """Write an envgraph.toml (offline header + the given body) into tmp_path; returns its path."""

    def make(body: str, header: str = HEADER) -> Path:
        path = tmp_path / "envgraph.toml"
        path.write_text(textwrap.dedent(header) + textwrap.dedent(body), encoding="utf-8")
        return path

    return make


@pytest.fixture(scope="session")
def test_keys(tmp_path_factory: pytest.TempPathFactory) -> TestKeys:
    """A throwaway GnuPG home that signs the tests' own Debian archives."""
    if shutil.which("gpg") is None or shutil.which("gpgv") is None:
        pytest.skip("gpg and gpgv are needed (apt-get install gpg gpgv)")
    return TestKeys(tmp_path_factory.mktemp("gnupg"))
