"""A project on the test suite's one Debian base, without running mmdebstrap again.

The session's base root filesystem (``debian_rootfs`` in :mod:`tests.support.docker`, cached across runs) is
put into the project's store under the layer key a build looks for, and its pin is written as the base's
lockfile, exactly as ``envgraph lock`` would have written it; the locker then sees the base as unchanged.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

from attrs import evolve

from envgraph.builder._deb_layer import merged_usr_dirs
from envgraph.debian._rootfs import DebianRootfs, default_mirror
from envgraph.identity import DEFAULT_COMPRESSION, LOCK_VERSION, debian_key
from envgraph.lock import BaseLock, DebianPin
from envgraph.lock._locker import base_inputs
from envgraph.lock._lockfile import base_identity, write_base_lock
from envgraph.oci._layer import layer_from_tarstream, record_layer
from envgraph.oci._store import Store
from envgraph.spec import Base, DebianBase
from tests.support.docker import BASE_PACKAGES, BASE_SUITE

__all__ = ["DEBIAN_HEADER", "seed_debian_base"]

DEBIAN_HEADER = f"""
[project]
name = "native"
python = "3.11"
{{project}}

[bases.debian]
debian = {{{{ suite = "{BASE_SUITE}", packages = [{", ".join(f'"{p}"' for p in BASE_PACKAGES)}] }}}}
python = "/usr/bin/python3.11"
"""


def seed_debian_base(root: Path, store: Path, rootfs: DebianRootfs, body: str, project: str = "") -> Path:
    """Write ``envgraph.toml`` (the Debian base + ``body``), the base's lockfile, and its layer into ``store``."""
    path = root / "envgraph.toml"
    path.write_text(DEBIAN_HEADER.format(project=project) + textwrap.dedent(body))
    st = Store.open(store)
    with open(rootfs.tar_path, "rb") as f:
        blob = layer_from_tarstream(st, f, DEFAULT_COMPRESSION)
    pin = DebianPin(
        suite=BASE_SUITE,
        packages=tuple(sorted(BASE_PACKAGES)),
        mirror=default_mirror(),
        versions=dict(rootfs.versions),
        diff_id=blob.diff_id,
        merged_usr=merged_usr_dirs(rootfs.tar_path),
    )
    record_layer(st, debian_key(pin.suite, pin.versions, pin.diff_id, DEFAULT_COMPRESSION), blob, [])
    declared = Base(debian=DebianBase(BASE_SUITE, BASE_PACKAGES), python="/usr/bin/python3.11")
    lock = BaseLock(
        version=LOCK_VERSION, name="debian", python=declared.python, libc="glibc-2.36",
        inputs=base_inputs(declared, "linux/amd64"), identity="", debian=pin, architecture="amd64",
        python_version="3.11",
    )  # fmt: skip
    write_base_lock(root / "lockfiles", evolve(lock, identity=base_identity(lock)))
    return path
