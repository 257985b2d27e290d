"""The content-addressed store: atomic writes, key records, tags, verify, gc, concurrency, kill -9."""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import time
from pathlib import Path

import pytest

from envgraph.errors import HashMismatchError, StoreError
from envgraph.identity import ANNOTATION_REF_NAME
from envgraph.oci._gc import gc_blobs
from envgraph.oci._model import Descriptor
from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._verify import verify_store

MT = "application/vnd.oci.image.layer.v1.tar"


def sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def blobs(store: Store) -> list[str]:
    return sorted(p.name for p in store.blobs_dir.iterdir())


def test_open_creates_layout(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    assert json.loads((store.root / "oci-layout").read_bytes()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(store.index_path.read_bytes())
    assert index["schemaVersion"] == 2 and index["manifests"] == []
    assert Store.open(tmp_path / "s").root == store.root  # reopening is fine


def test_open_refuses_non_store(tmp_path: Path) -> None:
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "README").write_text("mine")
    with pytest.raises(StoreError, match="not an envgraph store"):
        Store.open(tmp_path / "project")
    (tmp_path / "file").write_text("x")
    with pytest.raises(StoreError, match="not a directory"):
        Store.open(tmp_path / "file")


def test_add_twice_stores_once(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    d1 = store.add_bytes(b"hello")
    d2 = store.add_stream(io.BytesIO(b"hello"))
    assert d1 == d2 == (sha(b"hello"), 5)
    assert blobs(store) == [sha(b"hello").removeprefix("sha256:")]
    assert list(store.tmp_dir.iterdir()) == []
    assert store.read_blob(d1[0]) == b"hello"
    assert store.has_blob(d1[0]) and not store.has_blob(sha(b"other"))
    assert store.blob_path(d1[0]).stat().st_mode & 0o222 == 0  # blobs are read-only


@pytest.mark.parametrize("how", ["bytes", "stream", "writer"])
def test_digest_mismatch_leaves_nothing(tmp_path: Path, how: str) -> None:
    store = Store.open(tmp_path / "s")
    wrong = sha(b"expected")
    with pytest.raises(HashMismatchError) as err:
        if how == "bytes":
            store.add_bytes(b"actual", expected_digest=wrong)
        elif how == "stream":
            store.add_stream(io.BytesIO(b"actual"), expected_digest=wrong)
        else:
            with store.blob_writer(wrong) as w:
                w.write(b"actual")
    assert wrong in str(err.value) and sha(b"actual") in str(err.value)
    assert blobs(store) == [] and list(store.tmp_dir.iterdir()) == []


def test_writer_exception_removes_temp(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with pytest.raises(ValueError), store.blob_writer() as w:
        w.write(b"partial")
        raise ValueError("producer failed")
    assert blobs(store) == [] and list(store.tmp_dir.iterdir()) == []


def test_invalid_digest(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    with pytest.raises(StoreError, match="invalid digest"):
        store.blob_path("sha256:../../etc/passwd")
    with pytest.raises(StoreError, match="missing or damaged in the store"):
        store.read_blob(sha(b"nope"))


def record_for(store: Store, key_seed: str, data: bytes, paths: list[str] | None = None) -> LayerRecord:
    digest, size = store.add_bytes(data)
    paths_digest = store.add_json(paths)[0] if paths is not None else None
    return LayerRecord(sha(key_seed.encode()), digest, digest, size, MT, paths_digest)


def test_keys(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    rec = record_for(store, "k1", b"layer", ["opt/a", "opt/b"])
    assert store.get_key(rec.key) is None
    store.put_key(rec)
    assert store.get_key(rec.key) == rec
    assert store.read_paths(rec) == ["opt/a", "opt/b"]
    hexkey = rec.key.removeprefix("sha256:")
    assert (store.keys_dir / hexkey[:2] / f"{hexkey}.json").is_file()
    # the blob vanishing makes the record absent, so the next build repairs it
    store.blob_path(rec.digest).unlink()
    assert store.get_key(rec.key) is None
    with pytest.raises(StoreError, match="invalid layer key"):
        store.get_key("not a digest")


def desc(store: Store, data: bytes) -> Descriptor:
    digest, size = store.add_bytes(data)
    return Descriptor("application/vnd.oci.image.config.v1+json", digest, size)


def test_tags_round_trip(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    a, b = desc(store, b"a"), desc(store, b"b")
    a_ann = a.evolve(annotations={"org.example": "x"})
    store.tag("env/a:1", a_ann)
    store.tag("b", b)
    assert store.tags() == {"env/a:1": a_ann, "b": b}
    store.tag("b", a)  # retagging replaces
    assert store.tags()["b"] == a
    assert store.untag("b") and not store.untag("b")
    assert store.tags() == {"env/a:1": a_ann}
    index = json.loads(store.index_path.read_bytes())
    assert index["manifests"][0]["annotations"][ANNOTATION_REF_NAME] == "env/a:1"
    assert index["manifests"][0]["mediaType"] == a.media_type
    with pytest.raises(StoreError, match="invalid tag"):
        store.tag("bad tag", a)


def test_verify_finds_corrupt_and_missing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    good = record_for(store, "good", b"good layer")
    bad = record_for(store, "bad", b"bad layer")
    gone = record_for(store, "gone", b"gone layer")
    for r in (good, bad, gone):
        store.put_key(r)
    tagged = desc(store, b"tagged config")
    store.tag("t", tagged)
    assert verify_store(store).problems == ()
    path = store.blob_path(bad.digest)
    path.chmod(0o644)
    path.write_bytes(b"bad layeR")
    store.blob_path(gone.digest).unlink()
    store.blob_path(tagged.digest).unlink()
    problems = list(verify_store(store).problems)
    assert len(problems) == 3, problems
    assert (
        f"key record {bad.key}: blob {bad.digest} is corrupt: its content hashes to {sha(b'bad layeR')}"
        in problems
    )
    assert f"key record {gone.key}: blob {gone.digest} is missing" in problems
    assert f"image t: blob {tagged.digest} is missing" in problems


def test_clean_tmp_removes_what_dead_writers_left_and_nothing_live(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    dead, young = store.tmp_dir / "blob-dead.tmp", store.tmp_dir / "blob-young.tmp"
    dead.write_bytes(b"x" * 100)
    young.write_bytes(b"y")
    os.utime(dead, (time.time() - 60, time.time() - 60))
    with store.blob_writer() as live, store.temp_dir("pyc-") as live_dir:
        live.write(b"being written")
        for p in (store.tmp_dir / live._tmp.name, live_dir):
            os.utime(p, (time.time() - 60, time.time() - 60))  # old, but its writer still holds it
        assert store.clean_tmp() == 101  # age does not matter, only whether a live writer holds it
        assert not dead.exists() and not young.exists() and live_dir.exists()
    assert live.digest == sha(b"being written") and store.read_blob(live.digest) == b"being written"


def test_gc(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    kept = record_for(store, "kept", b"k" * 1000, ["a"])
    dropped = record_for(store, "dropped", b"d" * 3000, ["b", "c"])
    store.put_key(kept)
    store.put_key(dropped)
    tagged = desc(store, b"t" * 10)
    store.tag("t", tagged)
    stray = store.add_bytes(b"s" * 500)
    dropped_paths = len(store.read_blob(dropped.paths_digest or ""))
    before = store.disk_usage()
    freed = gc_blobs(store, {kept.digest})
    assert freed == 3000 + 500 + dropped_paths
    assert store.get_key(kept.key) == kept and store.read_paths(kept) == ["a"]  # paths blob kept with it
    assert store.get_key(dropped.key) is None
    assert store.has_blob(tagged.digest)  # tags are always kept
    assert not store.has_blob(stray[0])
    assert verify_store(store).problems == ()
    assert store.disk_usage() < before


def _worker(root: str, n: int) -> None:
    store = Store.open(Path(root))
    for i in range(10):
        data = f"blob {n} {i}".encode()
        digest, size = store.add_bytes(data)
        store.add_bytes(b"shared by all")
        store.put_key(LayerRecord(sha(f"key {n} {i}".encode()), digest, digest, size, MT))
        store.tag(f"p{n}-t{i}", Descriptor(MT, digest, size))


def test_concurrent_processes(tmp_path: Path) -> None:
    root = tmp_path / "s"
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(str(root), n)) for n in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    store = Store.open(root)
    tags = store.tags()
    assert sorted(tags) == sorted(f"p{n}-t{i}" for n in range(4) for i in range(10))
    for n in range(4):
        for i in range(10):
            assert store.get_key(sha(f"key {n} {i}".encode())) is not None
    assert verify_store(store).problems == ()
    assert list(store.tmp_dir.iterdir()) == []


def _slow_writer(root: str) -> None:
    store = Store.open(Path(root))
    with store.blob_writer() as w:
        while True:
            w.write(b"x" * 65536)
            time.sleep(0.001)


def test_kill_9_leaves_store_consistent(tmp_path: Path) -> None:
    root = tmp_path / "s"
    store = Store.open(root)
    store.tag("before", desc(store, b"before"))
    proc = multiprocessing.get_context("fork").Process(target=_slow_writer, args=(str(root),))
    proc.start()
    deadline = time.time() + 10
    while not any(p.stat().st_size > 0 for p in store.tmp_dir.iterdir()) and time.time() < deadline:
        time.sleep(0.01)
    assert proc.pid is not None
    os.kill(proc.pid, signal.SIGKILL)
    proc.join()
    assert len(list(store.tmp_dir.iterdir())) == 1  # the partial blob is only a temp file
    assert blobs(store) == [sha(b"before").removeprefix("sha256:")]
    reopened = Store.open(root)
    assert verify_store(reopened).problems == () and list(reopened.tags()) == ["before"]
