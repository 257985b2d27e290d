"""Debian: root filesystems with mmdebstrap."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.debian._rootfs import DebianRootfs as DebianRootfs
    from envgraph.debian._rootfs import build_debian_rootfs as build_debian_rootfs

_EXPORTS = {
    "DebianRootfs": "envgraph.debian._rootfs",
    "build_debian_rootfs": "envgraph.debian._rootfs",
}
__all__ = [
    "DebianRootfs",
    "build_debian_rootfs",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
