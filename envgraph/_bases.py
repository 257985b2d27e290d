"""Bases: pinning them at lock time and providing their layers at build time.

- ``scratch``: no layers.
- ``debian = {suite, packages}``: a root filesystem made with mmdebstrap at a fixed
  SOURCE_DATE_EPOCH; the lock records every installed package version and the layer digest,
  and a rebuild installs exactly those versions.
- ``image = "TRANSPORT:REF"``: the lock pins the manifest digest; a locked build never follows a moved tag.
"""

from __future__ import annotations

from pathlib import Path

from attrs import evolve

from envgraph.errors import BuildError, LockError
from envgraph.identity import LOCK_VERSION
from envgraph.lock._model import BaseLock, ImagePin
from envgraph.oci._image import read_manifest
from envgraph.oci._probe import probe_interpreter
from envgraph.oci._store import Store
from envgraph.platforms import parse_platform
from envgraph.spec import Base, libc_of

__all__ = ["BasePinner"]


class BasePinner:
    """Pins a base for the lockfile (called by the locker when a base's declaration changed), and records what
    its interpreter is (architecture from its ELF header, Python version from its name), so the locker can refuse
    a base that could not run the target's wheels."""

    def __init__(self, store_path: Path, project_root: Path, platform: str) -> None:
        self.store_path = store_path
        self.root = project_root
        self.platform = platform

    def __call__(self, name: str, base: Base, existing: BaseLock | None) -> BaseLock:
        lock = BaseLock(
            version=LOCK_VERSION, name=name, python=base.python, libc=libc_of(base), inputs="", identity=""
        )
        if base.image == "scratch":
            return evolve(lock, image=ImagePin(reference="scratch", digest=None, layers=0))
        store = Store.open(self.store_path)
        if base.debian is not None:
            from envgraph.builder._debian_base import pin_debian_base

            previous = existing.debian if existing is not None else None
            arch = parse_platform(self.platform).debian_arch
            pin, blob = pin_debian_base(store, base, previous=previous, arch=arch)
            lock = evolve(lock, debian=pin)
            layers = [blob.descriptor()]
        else:
            assert base.image is not None
            from envgraph._image_bases import pin_image_base

            try:
                image = pin_image_base(store, base.image, self.root, self.platform)
            except BuildError as e:
                raise BuildError(f"base {name}: {e}") from None
            assert image.digest is not None
            lock = evolve(lock, image=image)
            layers = list(read_manifest(store, image.digest).layers)
        if base.python is None:
            return lock
        found = probe_interpreter(store, layers, base.python)
        if found is None:
            raise LockError(f"base {name}: there is no interpreter at {base.python} in the image")
        return evolve(lock, architecture=found.architecture, python_version=found.version)
