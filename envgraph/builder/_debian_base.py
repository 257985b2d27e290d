"""Debian bases: pinned at lock time (versions and layer digest), rebuilt bit-identically at build time."""

from __future__ import annotations

import tempfile
from pathlib import Path

from attrs import evolve

from envgraph.debian._rootfs import build_debian_rootfs, default_mirror
from envgraph.errors import BuildError
from envgraph.identity import DEFAULT_COMPRESSION, LOCK_VERSION, Compression, debian_key
from envgraph.lock._lockfile import base_identity
from envgraph.lock._model import BaseLock, DebianPin, LayerPin
from envgraph.oci._layer import LayerBlob, layer_from_tarstream, record_layer
from envgraph.oci._store import LayerRecord, Store
from envgraph.spec import Base, libc_of

__all__ = ["pin_debian_base", "ensure_debian_layer"]


def _build(
    store: Store,
    suite: str,
    packages: tuple[str, ...],
    pins: dict[str, str] | None,
    mirror: str,
    compression: Compression,
) -> tuple[LayerBlob, dict[str, str]]:
    with tempfile.TemporaryDirectory(prefix="envgraph-rootfs-", dir=store.tmp_dir) as tmp:
        rootfs = build_debian_rootfs(
            suite, packages, pins=pins, out_tar=Path(tmp) / "rootfs.tar", mirror=mirror
        )
        with open(rootfs.tar_path, "rb") as f:
            blob = layer_from_tarstream(store, f, compression)
    return blob, rootfs.versions


def pin_debian_base(
    store: Store, name: str, base: Base, compression: Compression = DEFAULT_COMPRESSION
) -> DebianPin:
    """Build the root filesystem once to learn every installed version and the layer digest."""
    assert base.debian is not None
    mirror = base.debian.mirror or default_mirror()
    blob, versions = _build(
        store, base.debian.suite, tuple(sorted(base.debian.packages)), None, mirror, compression
    )
    pin = DebianPin(
        suite=base.debian.suite,
        packages=tuple(sorted(base.debian.packages)),
        mirror=mirror,
        versions=versions,
        layer=LayerPin(blob.diff_id, blob.digest, blob.size, blob.media_type),
    )
    # Record the layer under the key the build will look for, so the first build reuses it.
    lock = BaseLock(LOCK_VERSION, name, base.python, libc_of(base), "", "", debian=pin)
    lock = evolve(lock, identity=base_identity(lock))
    record_layer(store, debian_key(lock.identity, versions, compression), blob, [])
    return pin


def ensure_debian_layer(store: Store, key: str, lock: BaseLock, compression: Compression) -> LayerRecord:
    """Rebuild a locked Debian base with exactly its pinned versions; it must match the locked digest."""
    assert lock.debian is not None
    d = lock.debian
    blob, _ = _build(store, d.suite, d.packages, dict(d.versions), d.mirror, compression)
    # The content (diff_id) is what the lock pins; the compressed digest also depends on the compressor.
    if d.layer is not None and blob.diff_id != d.layer.diff_id:
        raise BuildError(
            f"base {lock.name}: rebuilt layer content {blob.diff_id} differs from the locked {d.layer.diff_id} "
            "(the Debian archive or mmdebstrap changed): run `envgraph lock --upgrade` to re-pin the base"
        )
    # A root filesystem has thousands of paths; the conflict check concerns package layers only, so none are kept.
    return record_layer(store, key, blob, [])
