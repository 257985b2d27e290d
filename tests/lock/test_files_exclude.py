"""Code is not a dependency: an env's files are pinned by what they are (src, dest, excludes), their content is
hashed at build time into the files layer's key and the image id. What running the code locally leaves behind
(__pycache__, *.pyc) and what `exclude` / .envgraphignore name is not part of the content at all."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

import envgraph
from envgraph._hashing import exclude_patterns, is_excluded
from envgraph.oci._tar import tar_directory
from tests.support.project import BUILD_HEADER

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


def _state(path: Path) -> tuple[str, str, str, str]:
    """(lock --check status, drv, files layer key, image tag) of env serve."""
    ws = envgraph.load(path)
    status = {o.name: o.status for o in ws.lock(check=True).outcomes}["serve"]
    plan = ws.plan(["serve"])
    (img,) = plan.images
    (files_key,) = [k for k in img.layers if type(plan.layers[k]).__name__ == "FilesLayer"]
    return status, img.drv, files_key, img.tag


def test_code_edits_change_the_image_not_the_lock(make_project, tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "pkg" / "main.py").write_text("print('app')\n")
    path = make_project(BODY.replace("{extra}", ', exclude = ["*.log"]'), BUILD_HEADER)
    envgraph.load(path).lock()
    lockfile = (tmp_path / "lockfiles" / "serve.lock.json").read_bytes()
    status, drv, key, tag = _state(path)
    assert status == "unchanged" and tag.startswith("serve:") and tag != f"serve:{drv[7:19]}"
    # Running the app locally, logs, and what .envgraphignore names: neither the lock nor the image changes.
    (app / "pkg" / "__pycache__").mkdir()
    (app / "pkg" / "__pycache__" / "main.cpython-311.pyc").write_bytes(b"\x00")
    (app / "stray.pyc").write_bytes(b"\x00")
    (app / "run.log").write_text("log\n")
    (app / ".envgraphignore").write_text("# local only\nsecrets/\n")
    (app / "secrets").mkdir()
    (app / "secrets" / "token").write_text("t\n")
    after_run = _state(path)
    # .envgraphignore itself is left out too: only what it names changes nothing.
    assert after_run == (status, drv, key, tag)
    # A real source change: the lock stays fresh (and its bytes the same), the files layer and the image change.
    (app / "pkg" / "main.py").write_text("print('changed')\n")
    status2, drv2, key2, tag2 = _state(path)
    assert (status2, drv2) == ("unchanged", drv)
    assert key2 != key and tag2 != tag and tag2.startswith("serve:")
    envgraph.load(path).lock()
    assert (tmp_path / "lockfiles" / "serve.lock.json").read_bytes() == lockfile
    # What the files are is pinned: another dest or exclude stales the lock.
    path.write_text(path.read_text().replace('"*.log"', '"*.log", "*.tmp"'))
    outcomes = envgraph.load(path).lock(check=True).outcomes
    assert {o.name: o.status for o in outcomes}["serve"] == "stale"


def test_missing_files_are_a_one_line_error_at_build_time(make_project, tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("x\n")
    path = make_project(BODY.replace("{extra}", ""), BUILD_HEADER)
    envgraph.load(path).lock()
    (app / "main.py").unlink()
    app.rmdir()
    with pytest.raises(envgraph.EnvgraphError, match=r"^env serve: files src 'app/' does not exist$"):
        envgraph.load(path).plan(["serve"])
    # Naming the current image (export, run, push) hashes the files too.
    with pytest.raises(
        envgraph.EnvgraphError, match=r"^files 'app/' does not exist \(the lockfile names it\)"
    ):
        envgraph.load(path).image("serve")


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
