"""Target platforms: the one place that knows what ``linux/amd64`` and ``linux/arm64`` mean to each tool.

A platform is named as OCI and Docker name it (``os/architecture[/variant]``); from it follow the machine name
of wheel tags and ELF headers (``x86_64``/``aarch64``), the manylinux/musllinux platform tags that fit a C
library, Debian's architecture name (``amd64``/``arm64``) and the fields of an OCI platform object.
"""

from __future__ import annotations

import platform as _platform
from collections.abc import Sequence

from attrs import frozen

__all__ = [
    "SUPPORTED",
    "TargetPlatform",
    "parse_platform",
    "host_platform",
    "check_platforms",
    "LEGACY_MANYLINUX",
]

# architecture -> (wheel/ELF machine name, Debian architecture)
_ARCHES: dict[str, tuple[str, str]] = {"amd64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}
SUPPORTED = tuple(f"linux/{a}" for a in _ARCHES)
# Legacy aliases of manylinux_2_17/2_12/2_5, still used by many wheels.
LEGACY_MANYLINUX = {(2, 17): "manylinux2014", (2, 12): "manylinux2010", (2, 5): "manylinux1"}


@frozen
class TargetPlatform:
    os: str  # "linux"
    architecture: str  # OCI's name: "amd64", "arm64"

    @property
    def name(self) -> str:
        """``linux/amd64``: how the declaration, lockfiles and ``docker --platform`` name it."""
        return f"{self.os}/{self.architecture}"

    @property
    def slug(self) -> str:
        """``linux-amd64``: the name in file names."""
        return f"{self.os}-{self.architecture}"

    @property
    def machine(self) -> str:
        """The machine name of wheel platform tags and of ``uname -m``: ``x86_64``, ``aarch64``."""
        return _ARCHES[self.architecture][0]

    @property
    def debian_arch(self) -> str:
        """Debian's architecture name (``dpkg --print-architecture``, mmdebstrap ``--architectures``)."""
        return _ARCHES[self.architecture][1]

    def oci(self) -> dict[str, str]:
        """The fields of an OCI platform object (image index entries, image configs)."""
        return {"os": self.os, "architecture": self.architecture}

    def wheel_platforms(self, libc: str) -> list[str]:
        """The wheel platform tags a C library (``glibc-2.36``, ``musl-1.2``) accepts on this architecture, most
        preferred first (``packaging.tags`` ranks earlier platforms higher)."""
        arch = self.machine
        family, _, version = libc.partition("-")
        major, minor = (int(x) for x in version.split("."))
        out: list[str] = []
        if family == "glibc":
            for m in range(minor, 4, -1):
                out.append(f"manylinux_{major}_{m}_{arch}")
                legacy = LEGACY_MANYLINUX.get((major, m))
                if legacy and (arch == "x86_64" or legacy == "manylinux2014"):
                    out.append(f"{legacy}_{arch}")
        else:
            for m in range(minor, -1, -1):
                out.append(f"musllinux_{major}_{m}_{arch}")
        return out


def parse_platform(text: str) -> TargetPlatform:
    """``linux/amd64`` or ``linux/arm64`` (``linux/arm64/v8`` too: v8 is the only arm64 variant); ValueError
    with the accepted names otherwise."""
    parts = text.split("/")
    if len(parts) == 3 and parts[:2] == ["linux", "arm64"] and parts[2] == "v8":
        parts = parts[:2]
    if len(parts) != 2 or parts[0] != "linux" or parts[1] not in _ARCHES:
        raise ValueError(f"unknown platform {text!r} (use {' or '.join(repr(s) for s in SUPPORTED)})")
    return TargetPlatform(parts[0], parts[1])


def check_platforms(names: Sequence[str]) -> list[TargetPlatform]:
    """A declared platform list: at least one, each known, none twice."""
    if not names:
        raise ValueError("platforms must name at least one platform")
    out = [parse_platform(n) for n in names]
    if len({p.name for p in out}) != len(out):
        raise ValueError(f"platforms lists a platform twice: {list(names)}")
    return out


def host_platform() -> TargetPlatform | None:
    """The platform this machine runs natively (what ``load`` and ``run`` pick), None when not supported."""
    machine = _platform.machine().lower()
    for arch, (name, _) in _ARCHES.items():
        if machine in (name, arch):
            return TargetPlatform("linux", arch)
    return None
