"""Bases: pinning them at lock time and providing their layers at build time.

- ``scratch``: no layers.
- ``debian = {suite, packages}``: a root filesystem made with mmdebstrap at a fixed
  SOURCE_DATE_EPOCH; the lock records every installed package version and the layer digest,
  and a rebuild installs exactly those versions.
- ``image = "TRANSPORT:REF"``: the lock pins the manifest digest; a locked build never follows a moved tag.
"""

from __future__ import annotations

from pathlib import Path

from envgraph.errors import BuildError
from envgraph.identity import LOCK_VERSION
from envgraph.lock._model import BaseLock, DebianPin, ImagePin
from envgraph.oci._store import Store
from envgraph.spec import Base, libc_of

__all__ = ["BasePinner"]


class BasePinner:
    """Pins a base for the lockfile (called by the locker when a base's declaration changed)."""

    def __init__(self, store_path: Path, project_root: Path, platform: str) -> None:
        self.store_path = store_path
        self.root = project_root
        self.platform = platform

    def __call__(self, name: str, base: Base, existing: BaseLock | None) -> BaseLock:
        common = dict(
            version=LOCK_VERSION, name=name, python=base.python, libc=libc_of(base), inputs="", identity=""
        )
        if base.image == "scratch":
            return BaseLock(**common, image=ImagePin(reference="scratch", digest=None, layers=0))  # type: ignore[arg-type]
        if base.debian is not None:
            return BaseLock(**common, debian=self._pin_debian(name, base))  # type: ignore[arg-type]
        assert base.image is not None
        return BaseLock(**common, image=self._pin_image(name, base.image))  # type: ignore[arg-type]

    def _pin_debian(self, name: str, base: Base) -> DebianPin:
        from envgraph.builder._debian_base import pin_debian_base

        return pin_debian_base(Store.open(self.store_path), name, base)

    def _pin_image(self, name: str, reference: str) -> ImagePin:
        from envgraph._image_bases import pin_image_base

        try:
            return pin_image_base(Store.open(self.store_path), reference, self.root, self.platform)
        except BuildError as e:
            raise BuildError(f"base {name}: {e}") from None
