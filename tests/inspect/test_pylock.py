"""`envgraph export-lock`: a PEP 751 pylock.toml that packaging parses and uv installs, offline."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.pylock import Pylock

from envgraph.lock import read_lock
from envgraph.workspace import Workspace


def _uv() -> str:
    uv = Path(sys.executable).with_name("uv")
    if not uv.exists():
        pytest.skip("uv is not installed (a test dependency: pip install -e '.[test]')")
    return str(uv)


def test_pylock_is_valid_and_uv_installs_exactly_the_lock(locked: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "elsewhere" / "pylock.toml"
    out.parent.mkdir()
    locked.export_lock("app", out)
    doc = tomllib.loads(out.read_text())
    lock = Pylock.from_dict(doc)
    assert str(lock.lock_version) == "1.0" and lock.created_by == "envgraph"
    expected = {
        p.name: p.version
        for e in ("core", "app")
        for p in read_lock(locked.lockdir, e).packages  # type: ignore[union-attr]
    }
    assert {str(p.name): str(p.version) for p in lock.packages} == expected
    alpha = next(p for p in doc["packages"] if p["name"] == "alpha")
    assert (
        alpha["wheels"][0]["path"] == "../project/wheels/alpha-2.0-py3-none-any.whl"
    )  # relative to the file
    assert doc["tool"]["envgraph"] == {"env": "app", "drv": read_lock(locked.lockdir, "app").drv}  # type: ignore[union-attr]

    uv = _uv()
    env = {**os.environ, "UV_CACHE_DIR": str(tmp_path / "uv-cache"), "UV_NO_CONFIG": "1"}
    venv = tmp_path / "venv"
    subprocess.run([uv, "venv", "-q", "-p", sys.executable, str(venv)], check=True, env=env)
    env["VIRTUAL_ENV"] = str(venv)
    subprocess.run([uv, "pip", "install", "--offline", "-q", "-r", str(out)], check=True, env=env)
    freeze = subprocess.run([uv, "pip", "freeze"], check=True, env=env, capture_output=True, text=True).stdout
    assert dict(line.split("==") for line in freeze.split()) == expected
