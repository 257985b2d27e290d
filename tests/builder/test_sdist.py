"""The parts of building from source that need no Debian base: the PEP 517 frontend (run by this machine's
Python), assembling a build root from stored layers (whiteouts, replacements, hostile layers), and the built
wheel's record. The chroot builds themselves run in tests/e2e/test_native.py."""

from __future__ import annotations

import io
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from envgraph.builder import _sdist
from envgraph.builder._sdist import build_root, wheel_of_record
from envgraph.errors import BuildError
from envgraph.identity import Compression
from envgraph.oci._layer import record_layer, write_layer
from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._tar import LayerEntry, write_tar
from tests.support.sdists import make_source_tree

FRONTEND = Path(_sdist.__file__).with_name("_frontend.py")


def frontend(
    src: Path, out: Path, *, backend: str = "backend", paths: str = '["."]'
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(FRONTEND), backend, paths, str(src), str(out)], capture_output=True, text=True
    )


def test_the_frontend_builds_a_wheel_with_the_backend_in_the_tree(tmp_path: Path) -> None:
    src = make_source_tree(tmp_path / "src", "pure", "1.0")
    proc = frontend(src, tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[-1] == "envgraph-built-wheel: pure-1.0-py3-none-any.whl"
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["pure-1.0-py3-none-any.whl"]
    # Deterministic: the same source gives the same bytes.
    again = frontend(src, tmp_path / "again")
    assert again.returncode == 0
    assert (tmp_path / "out" / "pure-1.0-py3-none-any.whl").read_bytes() == (
        tmp_path / "again" / "pure-1.0-py3-none-any.whl"
    ).read_bytes()


def test_a_build_requirement_only_the_backend_knows_of_is_a_clear_failure(tmp_path: Path) -> None:
    src = make_source_tree(tmp_path / "src", "pure", "1.0", dynamic=["cython>=3"])
    proc = frontend(src, tmp_path / "out")
    assert proc.returncode == 3
    assert "asks for cython>=3 at build time, which the lockfile does not pin" in proc.stdout
    assert not (tmp_path / "out").exists()


def test_a_failing_backend_fails_the_frontend(tmp_path: Path) -> None:
    src = make_source_tree(tmp_path / "src", "pure", "1.0")
    proc = frontend(src, tmp_path / "out", backend="no_such_backend")
    assert proc.returncode == 1
    assert "ModuleNotFoundError: No module named 'no_such_backend'" in proc.stderr


def _layer(store: Store, key_char: str, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> LayerRecord:
    def produce(sink: io.RawIOBase) -> list[str]:
        with tarfile.open(fileobj=sink, mode="w|", format=tarfile.PAX_FORMAT) as tf:
            for info, data in members:
                if data is not None:
                    info.size = len(data)
                tf.addfile(info, io.BytesIO(data) if data is not None else None)
        return []

    blob, _ = write_layer(store, produce, Compression.GZIP)  # type: ignore[arg-type]
    return record_layer(store, "sha256:" + key_char * 64, blob, [])


def _file(name: str, data: bytes = b"x", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.mode = mode
    return info, data


def _entry(name: str, kind: bytes, target: str = "") -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, target, 0o755
    return info, None


def test_a_build_root_is_its_layers_in_order_and_is_kept_for_the_next_build(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    base = _layer(store, "a", [
        _entry("usr", tarfile.DIRTYPE), _entry("usr/bin", tarfile.DIRTYPE), _entry("bin", tarfile.SYMTYPE, "usr/bin"),
        _file("usr/bin/gcc", b"gcc", 0o755), _file("usr/bin/g++", b"g++", 0o755), _file("etc/old", b"old"),
        _file("etc/replaced", b"one"), _entry("dev", tarfile.DIRTYPE), _entry("dev/null", tarfile.CHRTYPE),
        _entry("var/run", tarfile.SYMTYPE, "/run"),
    ])  # fmt: skip
    top = _layer(store, "b", [
        _file("etc/.wh.old", b""), _file("etc/replaced", b"two"), _file("usr/lib/x86_64-linux-gnu/libgomp.so.1", b"so"),
    ])  # fmt: skip
    root = build_root(store, [base, top])
    assert root.parent.parent == store.root / "build-roots"
    assert not (root / "etc" / "old").exists()
    assert (root / "etc" / "replaced").read_bytes() == b"two"
    assert (root / "bin").is_symlink() and (root / "bin" / "gcc").read_bytes() == b"gcc"
    assert (root / "usr/lib/x86_64-linux-gnu/libgomp.so.1").read_bytes() == b"so"
    # what maintainer scripts would have made for a toolchain, and the mount points of the build
    assert (root / "usr" / "bin" / "cc").readlink() == Path("gcc")
    assert (root / "usr" / "bin" / "c++").readlink() == Path("g++")
    assert (root / "dev" / "null").is_file() and (root / "proc").is_dir()
    assert (root / "tmp").stat().st_mode & 0o7777 == 0o1777
    (root / "marker").write_text("kept")
    assert build_root(store, [base, top]) == root and (root / "marker").exists()  # not assembled again
    assert build_root(store, [base]) != root


@pytest.mark.parametrize(
    "members",
    [
        [_file("../escape")],
        [_entry("out", tarfile.SYMTYPE, "/"), _file("out/escape")],
        [_entry("up", tarfile.SYMTYPE, "../.."), _file("up/escape")],
    ],
    ids=["dotdot", "absolute-link", "relative-link"],
)
def test_a_hostile_layer_writes_nothing_outside_the_build_root(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> None:
    store = Store.open(tmp_path / "deep" / "store")
    layer = _layer(store, "c", members)
    with pytest.raises((BuildError, tarfile.TarError)):
        build_root(store, [layer])
    assert not (tmp_path / "escape").exists() and not Path("/escape").exists()
    assert not (tmp_path / "deep" / "escape").exists()
    assert [p for p in (store.root / "build-roots").iterdir() if not p.name.startswith(".")] == []


def test_a_built_wheel_is_stored_as_a_one_file_layer(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "store")
    wheel = tmp_path / "pure-1.0-py3-none-any.whl"
    wheel.write_bytes(b"PK not really a wheel")
    entries = [LayerEntry.from_file(wheel.name, wheel, executable=False)]
    blob, paths = write_layer(store, lambda sink: write_tar(entries, sink), Compression.NONE)
    record = record_layer(store, "sha256:" + "d" * 64, blob, paths)
    assert record.media_type == "application/vnd.oci.image.layer.v1.tar"
    (tmp_path / "out").mkdir()
    out = wheel_of_record(store, record, tmp_path / "out")
    assert out == tmp_path / "out" / wheel.name and out.read_bytes() == wheel.read_bytes()


def test_gc_removes_build_roots_whose_layers_are_no_longer_needed(tmp_path: Path) -> None:
    from envgraph.oci._gc import collect_garbage

    store = Store.open(tmp_path / "store")
    a = _layer(store, "a", [_file("usr/bin/python3", b"py", 0o755)])
    b = _layer(store, "b", [_file("usr/lib/libx.so", b"x")])
    kept = build_root(store, [a])
    dropped = build_root(store, [a, b])
    (store.root / "build-roots" / ".half-made").mkdir()  # a build killed while it assembled a root
    declaration = tmp_path / "envgraph.toml"
    declaration.write_text("")
    result = collect_garbage(
        store, declaration=declaration, current_tags=set(), current_keys={a.key}, dry_run=True
    )
    assert result.freed > 0 and dropped.exists()  # a dry run touches nothing
    collect_garbage(store, declaration=declaration, current_tags=set(), current_keys={a.key})
    assert kept.exists() and not dropped.parent.exists()
    assert not (store.root / "build-roots" / ".half-made").exists()
