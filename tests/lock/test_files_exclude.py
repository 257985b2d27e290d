"""What running the code locally leaves behind (__pycache__, *.pyc) and what `exclude` / .envgraphignore name is
not part of an env's files: not in the content hash (the lock stays fresh) and not in the files layer."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import envgraph
from envgraph._hashing import exclude_patterns, is_excluded
from envgraph.oci._tar import tar_directory

BODY = (
    '[env.serve]\nbase = "none"\nrequirements = ["delta"]\nfiles = [{ src = "app/", dest = "/app"{extra} }]\n'
)


@pytest.mark.parametrize(
    ("rel", "excluded"),
    [
        ("__pycache__", True),
        ("pkg/__pycache__/m.cpython-311.pyc", True),
        ("m.pyc", True),
        ("m.py", False),
        ("run.log", True),
        ("logs/keep.txt", False),
        ("data/raw", True),
        ("data/raw/x.csv", True),
        ("data/clean.csv", False),
        ("other/data/raw", False),
    ],
)
def test_patterns(rel: str, excluded: bool) -> None:
    assert is_excluded(rel, ("__pycache__", "*.pyc", "*.log", "data/raw")) is excluded


def test_local_runs_and_excluded_files_leave_the_lock_fresh(make_project, tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "main.py").write_text("print('app')\n")
    path = make_project(BODY.replace("{extra}", ', exclude = ["*.log"]'))
    envgraph.load(path).lock()
    # Running the app locally, logs, and what .envgraphignore names: none of it stales the lock.
    (app / "pkg" / "__pycache__").mkdir()
    (app / "pkg" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00")
    (app / "stray.pyc").write_bytes(b"\x00")
    (app / "run.log").write_text("log\n")
    (app / ".envgraphignore").write_text("# local only\nsecrets/\n")
    (app / "secrets").mkdir()
    (app / "secrets" / "token").write_text("t\n")
    assert {o.name: o.status for o in envgraph.load(path).lock(check=True).outcomes}["serve"] == "unchanged"
    # A real source change is still seen.
    (app / "pkg" / "main.py").write_text("print('changed')\n")
    assert {o.name: o.status for o in envgraph.load(path).lock(check=True).outcomes}["serve"] == "stale"


def test_files_layer_leaves_out_what_is_excluded(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "pkg" / "__pycache__").mkdir(parents=True)
    (app / "pkg" / "main.py").write_text("x\n")
    (app / "pkg" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00")
    (app / "run.log").write_text("log\n")
    (app / ".envgraphignore").write_text("secrets\n")
    (app / "secrets").mkdir()
    (app / "secrets" / "token").write_text("t\n")
    patterns = exclude_patterns(app, ["*.log"])
    out = io.BytesIO()
    tar_directory(app, out, prefix="app/", skip=lambda rel: is_excluded(rel, patterns))
    out.seek(0)
    with tarfile.open(fileobj=out) as tf:
        names = sorted(tf.getnames())
    assert names == ["app", "app/pkg", "app/pkg/main.py"]
