"""Shared fixtures: offline projects over wheels the tests build themselves."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.wheelfactory import make_wheel

pytest_plugins = ["tests.registry_fixture", "tests.docker_fixture"]


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """A find-links directory: alpha 1.0/2.0, beta 1.0/2.0 (beta 2 needs alpha>=2), gamma 1.0 (needs alpha), delta 0.5."""
    wh = tmp_path / "wheels"
    make_wheel(wh, "alpha", "1.0")
    make_wheel(wh, "alpha", "2.0")
    make_wheel(wh, "beta", "1.0", requires=["alpha"])
    make_wheel(wh, "beta", "2.0", requires=["alpha>=2"])
    make_wheel(wh, "gamma", "1.0", requires=["alpha"], scripts={"gamma-hello": "gamma:main"},
               files={"gamma/__init__.py": "def main():\n    print('hello from gamma')\n"})  # fmt: skip
    make_wheel(wh, "delta", "0.5")
    return wh


HEADER = """
[project]
name = "t"
python = "3.11"
index-url = ""
find-links = ["wheels"]

[bases.none]
image = "scratch"
"""


@pytest.fixture
def make_project(tmp_path: Path, wheelhouse: Path) -> Callable[[str], Path]:
    """Write an envgraph.toml (offline header + the given body) into tmp_path; returns its path."""

    def make(body: str, header: str = HEADER) -> Path:
        path = tmp_path / "envgraph.toml"
        path.write_text(textwrap.dedent(header) + textwrap.dedent(body), encoding="utf-8")
        return path

    return make
