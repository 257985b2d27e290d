"""Lockfile models: what ``lockfiles/<env>.lock.json`` and ``lockfiles/bases/<base>.lock.json`` hold.

The builder reads only these: it never resolves again.
"""

from __future__ import annotations

from attrs import field, frozen

__all__ = [
    "Wheel",
    "LockedPackage",
    "FilePin",
    "ParentRef",
    "LayerPin",
    "DebianPin",
    "ImagePin",
    "BaseLock",
    "Resolver",
    "Lockfile",
]


@frozen
class Wheel:
    filename: str
    sha256: str
    size: int
    # An https URL, or for find-links wheels a path relative to the declaration file.
    url: str


@frozen
class LockedPackage:
    name: str
    version: str
    wheel: Wheel


@frozen
class FilePin:
    src: str
    dest: str
    sha256: str


@frozen
class ParentRef:
    env: str
    drv: str


@frozen
class LayerPin:
    diff_id: str
    digest: str
    size: int
    media_type: str = field(metadata={"key": "media-type"})


@frozen
class DebianPin:
    suite: str
    packages: tuple[str, ...]
    mirror: str
    # Every package installed in the root filesystem, name -> version.
    versions: dict[str, str]
    layer: LayerPin | None = None


@frozen
class ImagePin:
    reference: str
    # The manifest digest the reference resolved to; a locked build never follows a moved tag.
    digest: str | None = None
    layers: int = 0


@frozen
class BaseLock:
    version: int
    name: str
    python: str | None
    libc: str
    inputs: str
    identity: str
    debian: DebianPin | None = None
    image: ImagePin | None = None


@frozen
class Resolver:
    pip: str
    pip_tools: str = field(metadata={"key": "pip-tools"})


@frozen
class Lockfile:
    version: int
    env: str
    python: str
    platform: str
    base: str | None
    parent: ParentRef | None
    requirements: tuple[str, ...]
    # Only the packages this env adds to its parent's; the image holds those of every ancestor too.
    packages: tuple[LockedPackage, ...]
    environment: dict[str, str]
    files: tuple[FilePin, ...]
    workdir: str | None
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    # Packages merged into one shared tail layer because the env exceeds project.max-layers.
    merged: tuple[str, ...]
    resolver: Resolver
    inputs: str
    drv: str
