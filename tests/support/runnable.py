"""The runnable project: an offline env on the suite's Debian base with an entry-point script, files,
environment and workdir, locked and built once per test module (the run, load and hand-off tests start it).

Registered for every test by ``pytest_plugins`` in ``tests/conftest.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.cli import cli
from tests.support.project import lock
from tests.support.wheels import make_wheel

__all__ = ["RUN_HEADER", "run_project"]

# A project on the Debian base loaded from ``archive``; ``index`` is its package index settings.
RUN_HEADER = """
[project]
name = "run"
python = "3.11"
{index}

[bases.deb]
image = "docker-archive:{archive}"
python = "/usr/bin/python3.11"
"""


@pytest.fixture(scope="module")
def run_project(tmp_path_factory: pytest.TempPathFactory, debian_archive: Path) -> Path:
    """An offline env on the Debian base with an entry-point script, files, environment and workdir."""
    root = tmp_path_factory.mktemp("runproj")
    make_wheel(root / "wheels", "alpha", "1.0")
    make_wheel(root / "wheels", "gamma", "1.0", requires=["alpha"], scripts={"gamma-hello": "gamma:main"},
               files={"gamma/__init__.py": "def main():\n    print('hello from gamma')\n"})  # fmt: skip
    (root / "app").mkdir()
    (root / "app" / "motd.txt").write_text("files are here\n")
    header = RUN_HEADER.format(index='index-url = ""\nfind-links = ["wheels"]', archive=debian_archive)
    (root / "envgraph.toml").write_text(
        header
        + """
[env.core]
base = "deb"
requirements = ["gamma"]
environment = { GREETING = "hola", PYTHONDONTWRITEBYTECODE = "1" }
files = [{ src = "app/", dest = "/srv/app" }]
workdir = "/srv/app"
"""
    )
    lock(root / "envgraph.toml")
    cli(root, "build", "-q")
    return root
