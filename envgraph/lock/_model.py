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
    "BaseRef",
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
class BaseRef:
    name: str
    # The base lock's identity when this lock was made (a re-pinned base makes the env lock stale).
    identity: str


@frozen
class DebianPin:
    suite: str
    packages: tuple[str, ...]
    mirror: str
    # Every package installed in the root filesystem, name -> version.
    versions: dict[str, str]
    # The root filesystem's content (sha256 of the uncompressed tar): a rebuild must reproduce it.
    diff_id: str = field(metadata={"key": "diff-id"})


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
    # What the base's interpreter was found to be (ELF machine, version): None for scratch.
    architecture: str | None = None
    python_version: str | None = field(default=None, metadata={"key": "python-version"})


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
    bytecode: bool
    base: BaseRef | None
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
