"""What an env's SBOM lists, collected once and rendered as CycloneDX or SPDX."""

from __future__ import annotations

import uuid
from typing import Literal

from attrs import frozen

from envgraph.lock._metadata import WheelMetadata
from envgraph.lock._model import BaseLock, LockedPackage

__all__ = ["SbomFormat", "PythonEntry", "DebEntry", "SbomInput", "serial_uuid"]

SbomFormat = Literal["cyclonedx", "spdx"]


@frozen
class PythonEntry:
    package: LockedPackage
    env: str  # the env of the chain whose lock adds it
    # From the wheel the lock pins (None for a package built from source: there is no pinned wheel to read).
    metadata: WheelMetadata | None


@frozen
class DebEntry:
    name: str
    version: str
    architecture: str | None  # None for the base's own packages: its lock records name and version only
    sha256: str | None
    env: str | None  # None: part of the base


@frozen
class SbomInput:
    env: str
    drv: str
    image_digest: str | None  # the built image's manifest digest, None when not built
    python: tuple[PythonEntry, ...]
    debian: tuple[DebEntry, ...]
    base: BaseLock | None
    suite: str | None  # the Debian suite of the base (for purls)
    tool_version: str
    # Canonical package name -> the canonical names it requires (Requires-Dist for the target)
    requires: dict[str, tuple[str, ...]]
    # Canonical names of the packages the env and its ancestors declare
    roots: tuple[str, ...]


def serial_uuid(data: SbomInput) -> uuid.UUID:
    """Deterministic: the same env identity (and image) gives the same serial number on every machine."""
    return uuid.uuid5(uuid.NAMESPACE_URL, f"envgraph:sbom:{data.env}:{data.drv}:{data.image_digest or ''}")
