"""Layer writers (envgraph/builder/_layers.py) in-process: the venv, files and package layers, their keys and
records, bytecode, and refusals. (What installer puts where is tests/builder/test_install.py.)"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import attrs
import pytest

from envgraph._hashing import files_content, tree_sha256
from envgraph.builder._layers import (
    build_files_layer,
    build_package_layer,
    build_venv_layer,
    bytecode_interpreter,
)
from envgraph.errors import BuildError
from envgraph.identity import DEFAULT_MTIME, Compression, InstallTarget, files_key, package_key, venv_key
from envgraph.oci._store import Store
from tests.support.store import layer_file, layer_members
from tests.support.wheels import make_wheel

TARGET = InstallTarget(python="3.11", interpreter="/usr/bin/python3.11", bytecode=False)
SITE = "opt/venv/lib/python3.11/site-packages"


def test_venv_layer_links_the_base_interpreter(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    record = build_venv_layer(store, TARGET)
    assert record.key == venv_key(TARGET)
    assert store.get_key(record.key) == record
    members = layer_members(store, record.digest)
    assert list(members) == [
        "opt", "opt/venv", "opt/venv/bin", "opt/venv/bin/python", "opt/venv/bin/python3",
        "opt/venv/bin/python3.11", "opt/venv/include", "opt/venv/lib", "opt/venv/lib/python3.11",
        "opt/venv/lib/python3.11/site-packages", "opt/venv/lib64", "opt/venv/pyvenv.cfg",
    ]  # fmt: skip
    links = {n: m.linkname for n, m in members.items() if m.issym()}
    assert links == {
        "opt/venv/bin/python": "/usr/bin/python3.11",
        "opt/venv/bin/python3": "python",
        "opt/venv/bin/python3.11": "python",
        "opt/venv/lib64": "lib",
    }
    assert layer_file(store, record.digest, "opt/venv/pyvenv.cfg") == (
        b"home = /usr/bin\ninclude-system-site-packages = false\nversion = 3.11\n"
    )
    assert {(m.uid, m.gid, m.uname, m.gname, m.mtime) for m in members.values()} == {
        (0, 0, "", "", DEFAULT_MTIME)
    }
    # The path list (for the two-packages-one-path check) holds what is not a directory.
    assert store.read_paths(record) == [n for n, m in members.items() if not m.isdir()]


def test_same_inputs_same_digests_in_any_store(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "w", "alpha", "1.0")
    key = package_key(TARGET, [(wheel.name, hashlib.sha256(wheel.read_bytes()).hexdigest())])
    one, two = Store.open(tmp_path / "one"), Store.open(tmp_path / "two")
    for build in (
        lambda s: build_venv_layer(s, TARGET),
        lambda s: build_package_layer(s, TARGET, key, [("alpha", wheel.name, wheel)]),
    ):
        a, b = build(one), build(two)
        assert (a.key, a.diff_id, a.digest, a.size) == (b.key, b.diff_id, b.digest, b.size)
        assert one.read_paths(a) == two.read_paths(b)
    other = build_venv_layer(one, attrs.evolve(TARGET, interpreter="/usr/local/bin/python3.11"))
    assert other.key != venv_key(TARGET) and other.diff_id != build_venv_layer(two, TARGET).diff_id


def test_venv_layer_in_each_compression(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    diff_ids = set()
    for compression in Compression:
        record = build_venv_layer(store, attrs.evolve(TARGET, compression=compression))
        assert record.media_type == compression.media_type
        diff_ids.add(record.diff_id)
    assert len(diff_ids) == 1  # the same tar, compressed three ways
    assert len({r.key for r in store.records()}) == 3


def test_files_layer_from_a_directory_and_from_one_file(tmp_path: Path) -> None:
    app = tmp_path / "app"
    (app / "pkg").mkdir(parents=True)
    (app / "main.py").write_text("print('app')\n")
    (app / "pkg" / "run.sh").write_text("#!/bin/sh\n")
    os.chmod(app / "pkg" / "run.sh", 0o755)
    store = Store.open(tmp_path / "s")
    content = tree_sha256(app)
    record = build_files_layer(store, Compression.GZIP, app, "/srv/app", content)
    assert record.key == files_key(Compression.GZIP, "/srv/app", content)
    members = layer_members(store, record.digest)
    assert {"srv/app/main.py", "srv/app/pkg/run.sh"} <= set(members)
    assert members["srv/app/pkg/run.sh"].mode == 0o755 and members["srv/app/main.py"].mode == 0o644
    assert layer_file(store, record.digest, "srv/app/main.py") == b"print('app')\n"

    single = tmp_path / "tool.sh"
    single.write_text("#!/bin/sh\necho tool\n")
    os.chmod(single, 0o700)
    one = build_files_layer(store, Compression.GZIP, single, "/usr/local/bin/tool", tree_sha256(single))
    members = layer_members(store, one.digest)
    assert members["usr/local/bin/tool"].mode == 0o755  # executable for everyone, like the directory case
    assert layer_file(store, one.digest, "usr/local/bin/tool") == b"#!/bin/sh\necho tool\n"


def test_files_changed_since_the_lock_are_refused(tmp_path: Path) -> None:
    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("v1\n")
    pinned = tree_sha256(app)
    (app / "main.py").write_text("v2\n")
    store = Store.open(tmp_path / "s")
    with pytest.raises(BuildError, match=r"^files app changed while envgraph was building: build again$"):
        build_files_layer(store, Compression.GZIP, app, "/app", pinned)
    assert store.records() == [] and list(store.blobs_dir.iterdir()) == []


def test_files_edited_while_they_are_tarred_record_no_layer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tree is hashed again after it was read: an edit during the read leaves no key for the planned content."""
    import envgraph.builder._layers as layers

    app = tmp_path / "app"
    app.mkdir()
    (app / "main.py").write_text("v1\n")
    planned = files_content(app)
    real = layers.layer_from_directory

    def edit_while_reading(*args: object, **kwargs: object) -> object:
        out = real(*args, **kwargs)  # type: ignore[arg-type]
        (app / "main.py").write_text("v2\n")  # as if saved by an editor mid-build
        return out

    monkeypatch.setattr(layers, "layer_from_directory", edit_while_reading)
    store = Store.open(tmp_path / "s")
    with pytest.raises(BuildError, match=r"^files app changed while envgraph was building: build again$"):
        build_files_layer(store, Compression.GZIP, app, "/app", planned)
    assert store.records() == []


def test_a_merged_layer_holds_every_wheel_under_one_key(tmp_path: Path) -> None:
    wheels = [make_wheel(tmp_path / "w", n, "1.0") for n in ("pa", "pb", "pc")]
    key = "sha256:" + "5" * 64
    store = Store.open(tmp_path / "s")
    record = build_package_layer(store, TARGET, key, [(w.name.split("-")[0], w.name, w) for w in wheels])
    assert store.get_key(key) == record
    names = set(layer_members(store, record.digest))
    for n in ("pa", "pb", "pc"):
        assert f"{SITE}/{n}/__init__.py" in names and f"{SITE}/{n}-1.0.dist-info/RECORD" in names
    paths = store.read_paths(record)
    assert f"{SITE}/pb/__init__.py" in paths and all(not p.startswith("/") for p in paths)


@pytest.mark.skipif(bytecode_interpreter("3.11") is None, reason="no Python 3.11 to compile bytecode with")
def test_bytecode_is_hash_checked_and_reproducible(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "w", "gamma", "1.0", files={"gamma/__init__.py": "X = 1\n", "gamma/bad.py": "def (\n"}
    )
    target = attrs.evolve(TARGET, bytecode=True)
    key = "sha256:" + "6" * 64
    one = build_package_layer(Store.open(tmp_path / "one"), target, key, [("gamma", wheel.name, wheel)])
    two = build_package_layer(Store.open(tmp_path / "two"), target, key, [("gamma", wheel.name, wheel)])
    assert (one.diff_id, one.digest) == (two.diff_id, two.digest)
    store = Store.open(tmp_path / "one")
    pycs = [n for n in layer_members(store, one.digest) if n.endswith(".pyc")]
    # A file that does not compile just gets no .pyc.
    assert pycs == [f"{SITE}/gamma/__pycache__/__init__.cpython-311.pyc"]
    pyc = layer_file(store, one.digest, pycs[0])
    assert int.from_bytes(pyc[4:8], "little") == 0b11  # hash-based, checked
    assert list(store.tmp_dir.iterdir()) == []  # the sources copied for compileall are gone


def test_bytecode_interpreter_is_this_one_for_its_version() -> None:
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    assert bytecode_interpreter(here) == sys.executable
    assert bytecode_interpreter("2.1") is None
