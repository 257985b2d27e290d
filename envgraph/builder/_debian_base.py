"""Debian bases: pinned at lock time (versions and layer digest), rebuilt bit-identically at build time."""

from __future__ import annotations

from pathlib import Path

from envgraph.builder._deb_layer import merged_usr_dirs
from envgraph.debian._rootfs import build_debian_rootfs, default_mirror
from envgraph.errors import BuildError
from envgraph.identity import DEFAULT_COMPRESSION, Compression, debian_key
from envgraph.lock._model import BaseLock, DebianPin
from envgraph.oci._layer import LayerBlob, layer_from_tarstream, record_layer
from envgraph.oci._store import LayerRecord, Store
from envgraph.platforms import host_platform
from envgraph.spec import Base

__all__ = ["pin_debian_base", "ensure_debian_layer"]


def _build(
    store: Store,
    suite: str,
    packages: tuple[str, ...],
    pins: dict[str, str] | None,
    mirror: str,
    compression: Compression,
    arch: str = "amd64",
    extract: bool = False,
) -> tuple[LayerBlob, dict[str, str], tuple[str, ...]]:
    with store.temp_dir("rootfs-") as tmp:
        rootfs = build_debian_rootfs(
            suite,
            packages,
            pins=pins,
            out_tar=Path(tmp) / "rootfs.tar",
            mirror=mirror,
            arch=arch,
            extract=extract,
        )
        with open(rootfs.tar_path, "rb") as f:
            blob = layer_from_tarstream(store, f, compression)
        merged = merged_usr_dirs(rootfs.tar_path)
    return blob, rootfs.versions, merged


def pin_debian_base(
    store: Store,
    base: Base,
    compression: Compression = DEFAULT_COMPRESSION,
    previous: DebianPin | None = None,
    arch: str = "amd64",
) -> tuple[DebianPin, LayerBlob]:
    """Build the root filesystem once to learn every installed version, its content (diff_id) and its merged-/usr
    links; the layer is recorded under the key the build will look for, so the first build reuses it.

    ``previous`` is the base's earlier pin (say, a lockfile of an older format): when it was made for the same
    suite, packages and mirror its versions are kept, as pip-compile keeps a lock's pins.

    ``arch``: Debian's architecture name. One this machine cannot run is made with mmdebstrap's ``extract``
    variant (no binfmt_misc here, so no foreign maintainer script can run): the declared packages and their
    dependencies unpacked, nothing configured — enough for an interpreter and wheels, not for packages whose
    maintainer scripts must run (see the README's "Multiple platforms")."""
    assert base.debian is not None
    mirror = base.debian.mirror or default_mirror()
    packages = tuple(sorted(base.debian.packages))
    keep = None
    if previous is not None and (previous.suite, tuple(sorted(previous.packages)), previous.mirror) == (
        base.debian.suite,
        packages,
        mirror,
    ):
        keep = dict(previous.versions)
    host = host_platform()
    extract = host is None or host.debian_arch != arch
    blob, versions, merged = _build(
        store, base.debian.suite, packages, keep, mirror, compression, arch, extract
    )
    pin = DebianPin(
        suite=base.debian.suite,
        packages=packages,
        mirror=mirror,
        versions=versions,
        diff_id=blob.diff_id,
        merged_usr=merged,
        architecture=None if arch == "amd64" else arch,
        variant="extract" if extract else None,
    )
    record_layer(store, debian_key(pin.suite, pin.versions, pin.diff_id, compression), blob, [])
    return pin, blob


def ensure_debian_layer(store: Store, key: str, lock: BaseLock, compression: Compression) -> LayerRecord:
    """Rebuild a locked Debian base with exactly its pinned versions; it must reproduce the locked content."""
    assert lock.debian is not None
    d = lock.debian
    arch = d.architecture or "amd64"
    host = host_platform()
    if d.variant is None and (host is None or host.debian_arch != arch):
        raise BuildError(
            f"base {lock.name}: its {arch} root filesystem was pinned with maintainer scripts run (on an {arch} "
            f"machine); this machine cannot run them: build on {arch}, or relock here (an extract-only root)"
        )
    blob, _, _ = _build(
        store, d.suite, d.packages, dict(d.versions), d.mirror, compression, arch, d.variant == "extract"
    )
    if blob.diff_id != d.diff_id:
        raise BuildError(
            f"base {lock.name}: rebuilt layer content {blob.diff_id} differs from the locked {d.diff_id} "
            "(the Debian archive or mmdebstrap changed): run `envgraph lock --upgrade` to re-pin the base"
        )
    # A root filesystem has thousands of paths; the conflict check concerns package layers only, so none are kept.
    return record_layer(store, key, blob, [])
