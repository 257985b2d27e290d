"""Shared fixtures: offline projects over wheels the tests build themselves."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.debian import TestKeys
from tests.support.wheels import standard_wheels

pytest_plugins = ["tests.support.registry", "tests.support.docker", "tests.support.postgres"]


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """A find-links directory: alpha 1.0/2.0, beta 1.0/2.0 (beta 2 needs alpha>=2), gamma 1.0 (needs alpha), delta 0.5."""
    return standard_wheels(tmp_path / "wheels")


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


@pytest.fixture
def make_project(tmp_path: Path, wheelhouse: Path) -> Callable[[str], Path]:
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
