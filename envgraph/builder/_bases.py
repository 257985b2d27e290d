"""Bases: pinning them at lock time and providing their layers at build time.

- ``scratch``: no layers.
- ``debian = {suite, packages}``: a root filesystem made with mmdebstrap at a fixed
  SOURCE_DATE_EPOCH; the lock records every installed package version and the layer digest,
  and a rebuild installs exactly those versions.
- ``image = "TRANSPORT:REF"``: the lock pins the manifest digest; a locked build never follows a moved tag.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph.errors import BuildError
from envgraph.lock._model import LOCK_VERSION, BaseLock, DebianPin, ImagePin
from envgraph.oci._store import Store
from envgraph.spec import Base, libc_of

if TYPE_CHECKING:
    from envgraph.workspace import Workspace

__all__ = ["BasePinner"]


class BasePinner:
    """Pins a base for the lockfile (called by the locker when a base's declaration changed)."""

    def __init__(self, workspace: Workspace) -> None:
        self.ws = workspace

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

        return pin_debian_base(Store.open(self.ws.store_path), name, base)

    def _pin_image(self, name: str, reference: str) -> ImagePin:
        from envgraph.builder._image_base import pin_image_base

        try:
            return pin_image_base(
                Store.open(self.ws.store_path), reference, self.ws.root, self.ws.spec.project.platform
            )
        except BuildError as e:
            raise BuildError(f"base {name}: {e}") from None
