"""Deterministic compression and one-pass layer writing."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import platform
from pathlib import Path
from typing import BinaryIO

import isal
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from envgraph.identity import (
    GZIP_LEVEL,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
    Compression,
    layer_format,
)
from envgraph.oci._compress import Compressor, Decompressor, open_decompressed, sniff_compression
from envgraph.oci._layer import layer_from_directory, layer_from_tarstream, record_layer, write_layer
from envgraph.oci._store import Store
from envgraph.oci._tar import tar_directory


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def compress_in_chunks(compression: Compression, data: bytes, cuts: list[int]) -> bytes:
    out = io.BytesIO()
    c = Compressor(compression, out)
    start = 0
    for cut in sorted(cuts):
        c.write(data[start:cut])
        start = cut
    c.write(data[start:])
    c.finish()
    return out.getvalue()


BIG = os.urandom(300_000) * 5 + bytes(range(256)) * 4000  # > 1 MiB so the fixed chunking matters


@settings(max_examples=15, deadline=None)
@given(
    compression=st.sampled_from(list(Compression)),
    cuts=st.lists(st.integers(0, len(BIG)), max_size=8),
)
def test_output_does_not_depend_on_write_sizes(compression: Compression, cuts: list[int]) -> None:
    assert compress_in_chunks(compression, BIG, cuts) == compress_in_chunks(compression, BIG, [])


@pytest.mark.parametrize("compression", list(Compression))
def test_round_trip_and_header(compression: Compression) -> None:
    data = b"hello " * 1000
    blob = compress_in_chunks(compression, data, [10, 100])
    assert sniff_compression(blob) is compression or (compression is Compression.NONE)
    assert open_decompressed(io.BytesIO(blob), compression).read() == data
    if compression is Compression.GZIP:
        assert blob[4:8] == b"\0\0\0\0"  # mtime 0
        assert not blob[3] & 0x08  # no file name
        assert gzip.decompress(blob) == data
    if compression is Compression.ZSTD:
        assert zstandard.ZstdDecompressor().decompressobj().decompress(blob) == data


def test_media_types_and_ids() -> None:
    assert Compression.GZIP.media_type == MEDIA_TYPE_LAYER_GZIP
    assert Compression.ZSTD.media_type == MEDIA_TYPE_LAYER_ZSTD
    assert Compression.NONE.media_type == MEDIA_TYPE_LAYER_TAR
    # Everything the compressed bytes depend on: library version, architecture family, member size.
    assert f"isal{isal.ISAL_VERSION}" in Compression.GZIP.compressor_id
    assert platform.machine() in Compression.GZIP.compressor_id
    assert Compression.GZIP.compressor_id.startswith(f"gzip-{GZIP_LEVEL}-")
    assert Compression.ZSTD.compressor_id != Compression.GZIP.compressor_id


def make_tree(root: Path) -> Path:
    (root / "pkg" / "sub").mkdir(parents=True)
    (root / "pkg" / "__init__.py").write_text("")
    (root / "pkg" / "sub" / "data.bin").write_bytes(os.urandom(50_000))
    (root / "bin").mkdir()
    (root / "bin" / "tool").write_text("#!/bin/sh\n")
    os.chmod(root / "bin" / "tool", 0o755)
    return root


@pytest.mark.parametrize("compression", list(Compression))
def test_layer_determinism_and_identity(tmp_path: Path, compression: Compression) -> None:
    tree = make_tree(tmp_path / "tree")
    s1, s2 = Store.open(tmp_path / "s1"), Store.open(tmp_path / "s2")
    b1, paths = layer_from_directory(s1, tree, "opt/venv/", compression)
    b2, _ = layer_from_directory(s2, tree, "opt/venv/", compression)
    assert b1 == b2
    assert paths == ["opt/venv/bin/tool", "opt/venv/pkg/__init__.py", "opt/venv/pkg/sub/data.bin"]
    blob = s1.read_blob(b1.digest)
    assert sha(blob) == b1.digest and len(blob) == b1.size
    with s1.open_blob(b1.digest) as f:
        raw = open_decompressed(f, compression).read()
    assert sha(raw) == b1.diff_id
    buf = io.BytesIO()
    tar_directory(tree, buf, prefix="opt/venv/")
    assert raw == buf.getvalue()
    if compression is Compression.NONE:
        assert b1.digest == b1.diff_id
    # an existing deterministic tar, compressed as-is, gives the same layer
    assert layer_from_tarstream(s2, io.BytesIO(raw), compression) == b1
    assert list((s1.root / "tmp").iterdir()) == []


def test_failing_producer_leaves_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")

    def produce(sink: BinaryIO) -> None:
        sink.write(b"x" * 5000)
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_layer(store, produce, Compression.GZIP)
    assert list(store.blobs_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_write_layer_returns_producer_result(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    tree = make_tree(tmp_path / "tree")
    blob, paths = write_layer(store, lambda sink: tar_directory(tree, sink), Compression.ZSTD)
    assert paths[0] == "bin/tool"
    assert blob.media_type == MEDIA_TYPE_LAYER_ZSTD
    assert blob.descriptor().digest == blob.digest
    assert blob.image_layer("pkg").diff_id == blob.diff_id


def test_record_layer_and_format(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = Store.open(tmp_path / "s")
    blob, paths = layer_from_directory(store, make_tree(tmp_path / "tree"), "opt/")
    key = "sha256:" + hashlib.sha256(b"numpy 1.0 " + layer_format(Compression.GZIP).encode()).hexdigest()
    record = record_layer(store, key, blob, paths)
    assert store.get_key(key) == record and store.read_paths(record) == paths
    assert record.descriptor() == blob.descriptor()
    fmt = layer_format(Compression.GZIP)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "86400")
    assert layer_format(Compression.GZIP) != fmt
    assert layer_format(Compression.ZSTD) != layer_format(Compression.GZIP)


@pytest.mark.parametrize("compression", list(Compression))
def test_decompressing_several_members_push_and_pull(compression: Compression) -> None:
    parts = [os.urandom(3000) + b"a" * 70_000, b"", b"tail" * 999]
    blob = b"".join(compress_in_chunks(compression, p, []) for p in parts)  # gzip members / zstd frames
    d = Decompressor(compression)
    pushed = b"".join(d.feed(blob[i : i + 777]) for i in range(0, len(blob), 777)) + d.flush()
    assert pushed == b"".join(parts)
    assert open_decompressed(io.BytesIO(blob), compression).read() == b"".join(parts)
    if compression is not Compression.NONE:
        with pytest.raises(Exception):  # noqa: B017 (the library's own error type)
            Decompressor(compression).feed(blob[:10] + bytes(200) + blob[210:])
