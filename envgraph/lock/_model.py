"""Lockfile models: what ``lockfiles/<env>.lock.json`` and ``lockfiles/bases/<base>.lock.json`` hold.

The builder reads only these: it never resolves again.
"""

from __future__ import annotations

from attrs import field, frozen

from envgraph.debian._resolve import DebPin
from envgraph.debian._rootfs import MERGED_USR

__all__ = [
    "Wheel",
    "Source",
    "BuildDep",
    "BuildPin",
    "LockedPackage",
    "AptLock",
    "DebPin",
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


_OMIT = {"omit_if_default": True}


@frozen
class Source:
    """What a package without a wheel for the target is built from."""

    kind: str  # "sdist", "directory" (a project of the team's own) or "git"
    # sdist: its https URL (or find-links path, relative to the declaration); directory: its path relative to the
    # declaration; git: the repository URL (without the commit)
    url: str
    # sdist: the file's sha256; directory and git: the content hash of the source tree (envgraph._hashing.tree_sha256)
    sha256: str
    filename: str | None = field(default=None, metadata=_OMIT)  # sdist
    size: int | None = field(default=None, metadata=_OMIT)  # sdist
    commit: str | None = field(default=None, metadata=_OMIT)  # git: the full commit id
    subdirectory: str | None = field(
        default=None, metadata=_OMIT
    )  # git: where the project is in the repository


@frozen
class BuildDep:
    """One pinned wheel of a build's ``[build-system] requires``."""

    name: str
    version: str
    wheel: Wheel


@frozen
class BuildPin:
    """How a wheel is built: the PEP 517 backend and its pinned requirements (wheels only)."""

    backend: str  # "setuptools.build_meta:__legacy__" when the project declares none
    requires: tuple[str, ...]  # [build-system] requires, as declared
    packages: tuple[BuildDep, ...]  # those requirements resolved and pinned, sorted by name
    backend_path: tuple[str, ...] = field(
        default=(), metadata={"key": "backend-path", "omit_if_default": True}
    )


@frozen
class LockedPackage:
    name: str
    version: str
    # The wheel that is installed; None when the package is built from `source` (there is no wheel for the target).
    wheel: Wheel | None = field(default=None, metadata=_OMIT)
    source: Source | None = field(default=None, metadata=_OMIT)
    build: BuildPin | None = field(default=None, metadata=_OMIT)

    @property
    def built(self) -> bool:
        return self.wheel is None


@frozen
class AptLock:
    """Debian packages, each its own layer: what was asked for and the pins it resolved to."""

    requested: tuple[str, ...]
    # What the resolution depended on (identity.apt_inputs): re-resolved only when this changes.
    inputs: str
    packages: tuple[DebPin, ...]  # sorted by name


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
    # The top-level directories the root filesystem links into /usr (where Debian package layers put files);
    # written only when not the usual merged-/usr layout, so existing base locks keep their identity.
    merged_usr: tuple[str, ...] = field(
        default=MERGED_USR, metadata={"key": "merged-usr", "omit_if_default": True}
    )


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
    # Packages merged into one shared tail layer because the env exceeds project.max-layers (Debian packages as
    # "deb:NAME").
    merged: tuple[str, ...]
    resolver: Resolver
    inputs: str
    drv: str
    # Constraint lines from `-c` files of a requirements-file.
    constraints: tuple[str, ...] = field(default=(), metadata=_OMIT)
    # Debian packages this env adds to its base's and ancestors' (env.apt, and the base's apt for a root env).
    apt: AptLock | None = field(default=None, metadata=_OMIT)
    # The Debian packages of the environment this env's packages without a wheel are built in, on top of the
    # base (the whole set, not only what the parent's build environment lacks).
    build_apt: AptLock | None = field(default=None, metadata={"key": "build-apt", "omit_if_default": True})
