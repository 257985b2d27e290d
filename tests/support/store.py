"""Looking into a project's store: its records and blobs, layer contents, reports, and the clean-store check."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._verify import verify_store

__all__ = [
    "store_of",
    "key_records",
    "referenced_blobs",
    "blob_files",
    "assert_store_clean",
    "corrupt",
    "layer_members",
    "layer_file",
    "read_report",
]


def store_of(project: Path) -> Store:
    """The project's default store (``.envgraph`` beside its envgraph.toml)."""
    return Store.open(project / ".envgraph")


def key_records(store: Store) -> list[LayerRecord]:
    return store.records()


def referenced_blobs(store: Store) -> set[str]:
    """Every digest the store needs: reachable from tags, plus key records' layers and path lists."""
    needed = set(store.reachable(list(store.read_index().manifests)))
    for record in key_records(store):
        needed.add(record.digest)
        if record.paths_digest:
            needed.add(record.paths_digest)
    return needed


def blob_files(store: Store) -> set[str]:
    return {"sha256:" + p.name for p in store.blobs_dir.iterdir()}


def assert_store_clean(store: Store) -> None:
    """Consistent (verify), no temp leftovers, and exactly one file per needed blob, nothing else."""
    assert verify_store(store).problems == ()
    assert list(store.tmp_dir.iterdir()) == []
    assert blob_files(store) == referenced_blobs(store)


def corrupt(path: Path) -> bytes:
    """Flip one byte near the end of ``path``; returns the original bytes."""
    original = path.read_bytes()
    data = bytearray(original)
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    return original


def layer_members(store: Store, digest: str) -> dict[str, tarfile.TarInfo]:
    """A layer blob's tar members by name, in any compression."""
    with store.open_blob(digest) as f, tarfile.open(fileobj=f, mode="r:*") as tf:
        return {m.name: m for m in tf.getmembers()}


def layer_file(store: Store, digest: str, name: str) -> bytes:
    with store.open_blob(digest) as f, tarfile.open(fileobj=f, mode="r:*") as tf:
        member = tf.extractfile(name)
        assert member is not None
        return member.read()


def read_report(path: Path) -> dict[str, Any]:
    """A ``build --report`` file."""
    report: dict[str, Any] = json.loads(path.read_text())
    return report
