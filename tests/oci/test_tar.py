"""The deterministic tar writer: property tests over generated trees, plus the refusals."""

from __future__ import annotations

import io
import os
import random
import tarfile
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from envgraph._hashing import tree_sha256
from envgraph.errors import BuildError
from envgraph.identity import DEFAULT_MTIME, layer_mtime
from envgraph.oci._tar import LayerEntry, tar_directory, write_tar

# --- generated trees -----------------------------------------------------------------------------------

names = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=("Cs", "Cc"), exclude_characters="/\\\x00"),
    min_size=1,
    max_size=6,
).filter(lambda s: s not in (".", ".."))

leaf: st.SearchStrategy[Any] = st.one_of(
    st.tuples(st.just("file"), st.binary(max_size=300), st.booleans()),
    st.tuples(st.just("symlink"), st.sampled_from(["target", "../up", "/abs/path", "sub/é", "."])),
    st.tuples(st.just("hardlink"), st.integers(0, 50)),
    st.just(("dir", {})),
)
nodes = st.recursive(
    leaf,
    lambda children: st.dictionaries(names, children, max_size=4).map(lambda d: ("dir", d)),
    max_leaves=20,
)
trees = st.dictionaries(names, nodes, min_size=0, max_size=5)

Model = dict[str, tuple[Any, ...]]


def flatten(tree: dict[str, Any], rel: str = "") -> Model:
    """path -> ("dir",) | ("file", data, exec) | ("symlink", target) | ("hardlink", index)"""
    out: Model = {}
    for name, node in tree.items():
        path = rel + name
        if node[0] == "dir":
            out[path] = ("dir",)
            out.update(flatten(node[1], path + "/"))
        else:
            out[path] = node
    return out


def resolve_hardlinks(model: Model) -> Model:
    files = sorted(p for p, n in model.items() if n[0] == "file")
    out: Model = {}
    for path, node in model.items():
        if node[0] == "hardlink":
            out[path] = ("hardlink", files[node[1] % len(files)]) if files else ("file", b"", False)
        else:
            out[path] = node
    return out


def materialize(root: Path, model: Model, seed: int) -> None:
    """Create the tree in a seed-dependent order with seed-dependent mtimes and permission bits."""
    rnd = random.Random(seed)
    root.mkdir()
    order = list(model)
    rnd.shuffle(order)
    for path in order:
        node = model[path]
        p = root / path
        p.parent.mkdir(parents=True, exist_ok=True)
        if node[0] == "dir":
            p.mkdir(exist_ok=True)
            os.chmod(p, rnd.choice([0o700, 0o755, 0o775]))
        elif node[0] == "file":
            p.write_bytes(node[1])
            os.chmod(p, rnd.choice([0o700, 0o755, 0o711, 0o744] if node[2] else [0o600, 0o644, 0o640]))
        elif node[0] == "symlink":
            os.symlink(node[1], p)
    for path in order:  # hard links once their targets exist
        node = model[path]
        if node[0] == "hardlink":
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            os.link(root / node[1], root / path)
    for path in order:
        t = rnd.randrange(0, 2**31)
        os.utime(root / path, (t, t), follow_symlinks=False)


def members_of(data: bytes) -> list[tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        return tf.getmembers()


def tar_bytes(root: Path, prefix: str) -> tuple[bytes, list[str]]:
    buf = io.BytesIO()
    paths = tar_directory(root, buf, prefix=prefix)
    return buf.getvalue(), paths


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=trees,
    seeds=st.tuples(st.integers(0, 2**32), st.integers(0, 2**32)),
    prefix=st.sampled_from(["", "opt/venv/", "a/é"]),
)
def test_same_tree_gives_identical_tar(tree: dict[str, Any], seeds: tuple[int, int], prefix: str) -> None:
    model = resolve_hardlinks(flatten(tree))
    with tempfile.TemporaryDirectory() as tmp:
        one, two = Path(tmp) / "one", Path(tmp) / "two"
        materialize(one, model, seeds[0])
        materialize(two, model, seeds[1])
        data1, paths1 = tar_bytes(one, prefix)
        data2, paths2 = tar_bytes(two, prefix)
        assert data1 == data2
        assert paths1 == paths2

        pre = prefix.rstrip("/") + "/" if prefix else ""
        members = members_of(data1)
        names_ = [m.name for m in members]
        # sorted by UTF-8 bytes, each path once
        assert names_ == sorted(names_, key=lambda n: n.encode()) and len(set(names_)) == len(names_)
        positions = {n: i for i, n in enumerate(names_)}
        for m in members:
            assert (m.uid, m.gid, m.uname, m.gname, m.mtime) == (0, 0, "", "", DEFAULT_MTIME)
            if "/" in m.name:  # parents explicit and before their children
                parent = m.name.rsplit("/", 1)[0]
                assert members[positions[parent]].isdir() and positions[parent] < positions[m.name]
            if m.isdir():
                assert m.mode == 0o755
            elif m.issym():
                assert m.mode == 0o777
            else:
                assert m.mode in (0o644, 0o755)
        for component in filter(None, pre.split("/")):
            assert any(n == component or n.endswith("/" + component) for n in names_)
        assert paths1 == sorted((m.name for m in members if not m.isdir()), key=lambda n: n.encode())
        assert paths1 == sorted(
            (pre + p for p, n in model.items() if n[0] != "dir"), key=lambda n: n.encode()
        )
        for m in members:  # a hard link points at the first-sorted path of its inode
            if m.islnk():
                assert m.linkname.encode() < m.name.encode()
                assert members[positions[m.linkname]].isreg()

        out = Path(tmp) / "out"
        out.mkdir()
        with tarfile.open(fileobj=io.BytesIO(data1)) as tf:
            tf.extractall(out, filter="fully_trusted")
        extracted = out / pre if pre else out
        assert tree_sha256(extracted) == tree_sha256(one)
        for path, node in model.items():
            if node[0] == "hardlink":
                assert os.path.samefile(extracted / path, extracted / node[1])


# --- specific behaviour --------------------------------------------------------------------------------


def test_hard_link_targets_first_sorted_path(tmp_path: Path) -> None:
    root = tmp_path / "t"
    root.mkdir()
    (root / "z").write_bytes(b"data")
    os.link(root / "z", root / "a")
    os.link(root / "z", root / "m")
    data, paths = tar_bytes(root, "")
    members = {m.name: m for m in members_of(data)}
    assert members["a"].isreg() and members["a"].size == 4
    assert members["m"].islnk() and members["m"].linkname == "a"
    assert members["z"].islnk() and members["z"].linkname == "a"
    assert paths == ["a", "m", "z"]


def test_prefix_parents_and_only_non_directories_returned(tmp_path: Path) -> None:
    root = tmp_path / "t"
    (root / "pkg" / "empty").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    data, paths = tar_bytes(root, "/opt/venv")
    names_ = [m.name for m in members_of(data)]
    assert names_ == ["opt", "opt/venv", "opt/venv/pkg", "opt/venv/pkg/empty", "opt/venv/pkg/mod.py"]
    assert paths == ["opt/venv/pkg/mod.py"]


def test_source_date_epoch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "f").write_text("x")
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    assert layer_mtime() == 1700000000
    data, _ = tar_bytes(tmp_path, "")
    assert [m.mtime for m in members_of(data)] == [1700000000]
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "yesterday")
    with pytest.raises(BuildError, match="SOURCE_DATE_EPOCH"):
        layer_mtime()
    monkeypatch.delenv("SOURCE_DATE_EPOCH")
    assert layer_mtime() == DEFAULT_MTIME


def test_owner_from_fs(tmp_path: Path) -> None:
    (tmp_path / "f").write_text("x")
    if os.geteuid() == 0:
        os.chown(tmp_path / "f", 1234, 4321)
    buf = io.BytesIO()
    tar_directory(tmp_path, buf, owner_from_fs=True)
    (m,) = members_of(buf.getvalue())
    st = os.stat(tmp_path / "f")
    assert (m.uid, m.gid, m.uname, m.gname) == (st.st_uid, st.st_gid, "", "")


def test_fifo_is_refused(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(BuildError, match="fifo"):
        tar_directory(tmp_path, io.BytesIO())


def test_non_utf8_name_is_refused(tmp_path: Path) -> None:
    with open(os.path.join(os.fsencode(tmp_path), b"bad\xff"), "wb") as f:
        f.write(b"x")
    with pytest.raises(BuildError, match="UTF-8"):
        tar_directory(tmp_path, io.BytesIO())


def test_root_must_be_a_directory(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="not a directory"):
        tar_directory(tmp_path / "missing", io.BytesIO())


def test_write_tar_entries() -> None:
    entries = [
        LayerEntry.from_bytes("etc/app/conf.toml", b"a = 1\n"),
        LayerEntry.symlink("usr/bin/app", "../lib/app/run"),
        LayerEntry.from_bytes("usr/lib/app/run", b"#!/bin/sh\n", executable=True),
        LayerEntry.hardlink("usr/lib/app/run2", "usr/lib/app/run"),
    ]
    buf = io.BytesIO()
    paths = write_tar(reversed(entries), buf)
    assert paths == ["etc/app/conf.toml", "usr/bin/app", "usr/lib/app/run", "usr/lib/app/run2"]
    again = io.BytesIO()
    write_tar(entries, again)
    assert buf.getvalue() == again.getvalue()
    members = {m.name: m for m in members_of(buf.getvalue())}
    assert set(members) >= {"etc", "etc/app", "usr", "usr/bin", "usr/lib", "usr/lib/app"}
    assert members["usr/lib/app/run"].mode == 0o755


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([LayerEntry.from_bytes("a", b"1"), LayerEntry.from_bytes("a", b"2")], "twice"),
        ([LayerEntry.from_bytes("a", b"1"), LayerEntry.from_bytes("a/b", b"2")], "directory"),
        ([LayerEntry.hardlink("a", "z"), LayerEntry.from_bytes("z", b"")], "hard link"),
    ],
)
def test_write_tar_refuses_inconsistent_entries(entries: list[LayerEntry], message: str) -> None:
    with pytest.raises(BuildError, match=message):
        write_tar(entries, io.BytesIO())


@pytest.mark.parametrize("bad", ["/abs", "a/../b", "a//b", "./a", ""])
def test_invalid_paths(bad: str) -> None:
    with pytest.raises(BuildError):
        LayerEntry.from_bytes(bad, b"")


def test_explicit_modes_replace_the_normalised_ones() -> None:
    """Debian packages keep their permission bits; without ``mode`` nothing changes."""
    from envgraph.oci._tar import TarStream

    entries = [
        LayerEntry.directory("d", mode=0o1777),
        LayerEntry.from_bytes("d/suid", b"x", executable=True),
        LayerEntry("d/secret", "file", data=b"k", mode=0o4750),
        LayerEntry("d/z-link", "hardlink", linkname="d/secret", mode=0o4750),
    ]
    buf = io.BytesIO()
    write_tar(entries, buf)
    with TarStream(buf2 := io.BytesIO()) as tar:
        tar.add_file("a/b", io.BytesIO(b"abc"), 3, mode=0o2711)
        tar.add_file("a/c", io.BytesIO(b"abc"), 3, executable=True)
    with tarfile.open(fileobj=io.BytesIO(buf.getvalue())) as tf:
        assert {m.name: m.mode for m in tf} == {
            "d": 0o1777,
            "d/suid": 0o755,
            "d/secret": 0o4750,
            "d/z-link": 0o4750,
        }
    with tarfile.open(fileobj=io.BytesIO(buf2.getvalue())) as tf:
        assert {m.name: m.mode for m in tf} == {"a": 0o755, "a/b": 0o2711, "a/c": 0o755}
    # the default (mode=None) writes the very bytes it always wrote
    plain = [LayerEntry.directory("d"), LayerEntry.from_bytes("d/f", b"x")]
    explicit = [LayerEntry.directory("d", mode=0o755), LayerEntry("d/f", "file", data=b"x", mode=0o644)]
    a, b = io.BytesIO(), io.BytesIO()
    write_tar(plain, a)
    write_tar(explicit, b)
    assert a.getvalue() == b.getvalue()
    with pytest.raises(BuildError, match="invalid file mode 10644"):
        LayerEntry("x", "file", data=b"", mode=0o10644)
    with pytest.raises(BuildError, match="invalid file mode"):
        TarStream(io.BytesIO()).add_file("x", io.BytesIO(b""), 0, mode=-1)
