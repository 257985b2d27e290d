"""Parallel chunked compression: gzip members of a fixed size, the same bytes whatever the threads."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import random
import tarfile
import threading
import time
import uuid
import zlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envgraph import identity
from envgraph.identity import GZIP_MEMBER_SIZE, Compression, layer_format
from envgraph.oci import _compress
from envgraph.oci._compress import (
    THREADS_ENV,
    Compressor,
    compression_threads,
    open_decompressed,
)
from envgraph.oci._layer import write_layer
from envgraph.oci._store import Store
from envgraph.oci._tar import LayerEntry, write_tar


def payload(size: int, seed: int = 0) -> bytes:
    """Compressible like real layers: random words with repeats, and some incompressible runs."""
    rng = random.Random(seed)
    words = [rng.randbytes(rng.randint(2, 12)).hex().encode() for _ in range(2000)]
    out = bytearray()
    while len(out) < size:
        out += rng.randbytes(512) if rng.random() < 0.05 else b" ".join(rng.choices(words, k=64))
    return bytes(out[:size])


def compress(
    data: bytes, compression: Compression = Compression.GZIP, *, threads: int, cuts: list[int] | None = None
) -> bytes:
    out = io.BytesIO()
    c = Compressor(compression, out, threads=threads)
    start = 0
    for cut in sorted(cuts or []):
        c.write(data[start:cut])
        start = cut
    c.write(memoryview(data)[start:])
    c.finish()
    return out.getvalue()


def members(blob: bytes) -> list[bytes]:
    """Each gzip member's decompressed bytes, read with zlib (not the code under test)."""
    out = []
    while blob:
        d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        out.append(d.decompress(blob) + d.flush())
        assert d.eof, "truncated member"
        blob = d.unused_data
    return out


@pytest.fixture(scope="module")
def big() -> bytes:
    return payload(2 * GZIP_MEMBER_SIZE + 123_457)  # two full members and a short one


def test_members_are_fixed_chunks_of_the_input(big: bytes) -> None:
    blob = compress(big, threads=2)
    parts = members(blob)
    assert [len(p) for p in parts] == [GZIP_MEMBER_SIZE, GZIP_MEMBER_SIZE, 123_457]
    assert b"".join(parts) == big
    assert gzip.decompress(blob) == big  # Python's reader takes the members as one stream
    assert open_decompressed(io.BytesIO(blob), Compression.GZIP).read() == big
    for i in range(len(parts)):  # every member has its own header: mtime 0, no name
        start = len(compress(big[: i * GZIP_MEMBER_SIZE], threads=1)) if i else 0
        assert blob[start : start + 2] == b"\x1f\x8b" and blob[start + 4 : start + 8] == b"\0\0\0\0"
        assert not blob[start + 3] & 0x08


@pytest.mark.parametrize("compression", list(Compression))
def test_same_bytes_for_every_thread_count_and_run(big: bytes, compression: Compression) -> None:
    want = compress(big, compression, threads=1)
    for threads in (2, 3, 8, 1, 2):
        assert compress(big, compression, threads=threads) == want, threads
    if compression is not Compression.NONE:
        assert len(want) < len(big) // 2


_MID = payload(3 * GZIP_MEMBER_SIZE // 2, seed=1)  # 1.5 members: writes straddle the member boundary
_MID_REFERENCE = compress(_MID, threads=1)


@settings(max_examples=12, deadline=None)
@given(threads=st.sampled_from([1, 2, 5]), cuts=st.lists(st.integers(0, len(_MID)), max_size=10))
def test_same_bytes_whatever_the_write_sizes(threads: int, cuts: list[int]) -> None:
    assert compress(_MID, threads=threads, cuts=cuts) == _MID_REFERENCE


@pytest.mark.parametrize("size", [0, 1, GZIP_MEMBER_SIZE - 1, GZIP_MEMBER_SIZE, 2 * GZIP_MEMBER_SIZE])
def test_edges(size: int) -> None:
    data = payload(size, seed=size)
    blob = compress(data, threads=2)
    assert blob == compress(data, threads=1)
    # An empty layer is one empty member; whole members get no empty one after them.
    full, rest = divmod(size, GZIP_MEMBER_SIZE)
    expected = [GZIP_MEMBER_SIZE] * full + ([rest] if rest else []) or [0]
    assert [len(p) for p in members(blob)] == expected
    assert gzip.decompress(blob) == data


def test_one_member_layer_stays_in_the_calling_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_pool(threads: int) -> Any:
        raise AssertionError("a one-member layer must not go to the pool")

    monkeypatch.setattr(_compress, "_pool", no_pool)
    data = payload(GZIP_MEMBER_SIZE - 1)
    assert gzip.decompress(compress(data, threads=4)) == data


def test_members_are_compressed_on_the_pool_in_parallel(big: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: set[str] = set()
    real = _compress._gzip_member

    def spy(data: bytes | bytearray) -> bytes:
        seen.add(threading.current_thread().name)
        return real(data)

    monkeypatch.setattr(_compress, "_gzip_member", spy)
    compress(big * 2, threads=2)
    assert any(name.startswith("envgraph-gzip") for name in seen)


def test_in_flight_members_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A slow pool must make the producer wait, not buffer the layer in memory."""
    gate = threading.Semaphore(0)
    real = _compress._gzip_member

    def slow(data: bytes | bytearray) -> bytes:
        gate.acquire()
        return real(data)

    def release() -> None:
        for _ in range(12):
            time.sleep(0.01)
            gate.release()

    class CountingSink(io.BytesIO):
        writes = 0

        def write(self, b: Any) -> int:
            CountingSink.writes += 1
            return super().write(b)

    monkeypatch.setattr(_compress, "_gzip_member", slow)
    out = CountingSink()
    c = Compressor(Compression.GZIP, out, threads=2)
    chunk = payload(GZIP_MEMBER_SIZE, seed=3)
    releaser = threading.Thread(target=release)
    releaser.start()
    most = 0
    for _ in range(12):
        c.write(chunk)
        most = max(most, c._units - CountingSink.writes)  # handed over, not written yet
    c.finish()
    releaser.join()
    assert 2 <= most <= 2 + 2  # the queue's limit (threads + 1), and the one the writer holds
    assert gzip.decompress(out.getvalue()) == chunk * 12
    assert c.input_digest == "sha256:" + hashlib.sha256(chunk * 12).hexdigest()


def test_abort_drops_queued_members(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = threading.Event()
    started: list[int] = []
    real = _compress._gzip_member

    def blocked(data: bytes | bytearray) -> bytes:
        started.append(len(data))
        gate.wait()
        return real(data)

    monkeypatch.setattr(_compress, "_gzip_member", blocked)
    out = io.BytesIO()
    c = Compressor(Compression.GZIP, out, threads=2)
    c.write(payload(3 * GZIP_MEMBER_SIZE, seed=4))
    threading.Timer(0.05, gate.set).start()
    c.abort()  # returns once the writer thread is gone
    assert len(started) <= 2  # the third member never started: the pool has two threads
    assert out.getvalue() == b""
    with pytest.raises(ValueError):
        c.write(b"x")


def test_a_failing_sink_fails_the_producer() -> None:
    class Full(io.BytesIO):
        def write(self, b: Any) -> int:
            raise OSError(28, "No space left on device")

    c = Compressor(Compression.GZIP, Full(), threads=2)
    with pytest.raises(OSError, match="No space"):
        for _ in range(20):  # the writer thread's error reaches the producer at its next member
            c.write(payload(GZIP_MEMBER_SIZE, seed=8))
        c.finish()
    c.abort()


def test_failing_producer_with_members_in_flight_leaves_nothing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")

    def produce(sink: Any) -> None:
        sink.write(payload(3 * GZIP_MEMBER_SIZE, seed=5))
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        write_layer(store, produce, Compression.GZIP)
    assert list(store.blobs_dir.iterdir()) == [] and list(store.tmp_dir.iterdir()) == []


def test_member_size_is_in_the_format_id(monkeypatch: pytest.MonkeyPatch) -> None:
    assert Compression.GZIP.compressor_id.endswith(f"-members{GZIP_MEMBER_SIZE}")
    assert f"members{GZIP_MEMBER_SIZE}" in layer_format(Compression.GZIP)
    fmt = layer_format(Compression.GZIP)
    monkeypatch.setattr(identity, "GZIP_MEMBER_SIZE", 1 << 20)
    assert layer_format(Compression.GZIP) != fmt  # another chunking, another key
    assert Compression.ZSTD.compressor_id.endswith("-mt")  # libzstd's multi-threaded format


def test_member_size_decides_the_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    data = payload(300_000, seed=6)
    monkeypatch.setattr(identity, "GZIP_MEMBER_SIZE", 100_000)
    small = compress(data, threads=2)
    assert [len(p) for p in members(small)] == [100_000] * 3
    monkeypatch.undo()
    assert compress(data, threads=2) != small


def test_thread_count_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(THREADS_ENV, "3")
    assert compression_threads() == 3
    for bad in ("", "0", "x"):
        monkeypatch.setenv(THREADS_ENV, bad)
        assert compression_threads() == len(os.sched_getaffinity(0))


def test_layers_compressed_concurrently_share_the_pool(tmp_path: Path) -> None:
    """Several layers at once (the scheduler's -j) give each its own bytes, the same as one at a time."""
    datas = [payload(GZIP_MEMBER_SIZE + 1000 * i, seed=10 + i) for i in range(4)]
    alone = [compress(d, threads=2) for d in datas]
    results: dict[int, bytes] = {}

    def one(i: int) -> None:
        results[i] = compress(datas[i], threads=2)

    ts = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert [results[i] for i in range(4)] == alone


@pytest.mark.docker
def test_docker_loads_a_multi_member_layer(tmp_path: Path, docker_client: Any) -> None:
    """The daemon decompresses every member: the diff_id it computes matches, and the files are whole."""
    from envgraph.oci._archive import export_docker_archive
    from envgraph.oci._image import ImageConfigSpec, write_image

    store = Store.open(tmp_path / "s")
    data = payload(2 * GZIP_MEMBER_SIZE + 99_999, seed=7)
    entries = [LayerEntry.from_bytes("opt/big.bin", data), LayerEntry.from_bytes("opt/z.txt", b"last\n")]
    blob, _ = write_layer(store, lambda sink: write_tar(entries, sink), Compression.GZIP)
    assert len(members(store.read_blob(blob.digest))) == 3
    desc = write_image(store, [blob.image_layer("big")], ImageConfigSpec(cmd=["/opt/none"]))
    tag = f"envgraph-members-test:{uuid.uuid4().hex[:12]}"
    archive = tmp_path / "docker.tar"
    export_docker_archive(store, desc, [tag], archive)
    with open(archive, "rb") as f:
        docker_client.images.load(f)
    container = None
    try:
        assert docker_client.images.get(tag).attrs["RootFS"]["Layers"] == [blob.diff_id]
        container = docker_client.containers.create(tag, network_mode="none")
        stream, _ = container.get_archive("/opt/big.bin")
        raw = b"".join(stream)
        with tarfile.open(fileobj=io.BytesIO(raw)) as tf:
            member = tf.extractfile("big.bin")
            assert member is not None
            got = member.read()
        assert hashlib.sha256(got).digest() == hashlib.sha256(data).digest()
    finally:
        if container is not None:
            container.remove(force=True)
        docker_client.images.remove(tag, force=True)
