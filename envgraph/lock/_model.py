"""Lockfile models: what ``lockfiles/<env>.lock.json`` and ``lockfiles/bases/<base>.lock.json`` hold.

The builder reads only these: it never resolves again.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from attrs import evolve, field, frozen

from envgraph import identity
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
    "PlatformPin",
    "DebianPin",
    "ImagePin",
    "BaseLock",
    "Resolver",
    "Lockfile",
    "for_platform",
    "image_drv",
]


@frozen
class Wheel:
    filename: str
    sha256: str
    size: int
    # An https URL, or for find-links wheels a path relative to the declaration file.
    url: str


_OMIT = {"omit_if_default": True}
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_COMMIT = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_SDIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.(tar\.gz|zip)$")
_BACKEND = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?$")


def _inside(path: str) -> bool:
    """A relative path that stays inside the directory it is relative to."""
    pp = PurePosixPath(path)
    return bool(path) and not pp.is_absolute() and ".." not in pp.parts and "\\" not in path


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
    # git: where the project is in the repository
    subdirectory: str | None = field(default=None, metadata=_OMIT)

    def __attrs_post_init__(self) -> None:
        # Sources come back from lockfiles, which are input like any other: paths are made from these.
        if self.kind not in ("sdist", "directory", "git"):
            raise ValueError(f"unknown source kind {self.kind!r}")
        digest = self.sha256 if self.kind == "sdist" else self.sha256.removeprefix("sha256:")
        if not _HEX64.match(digest):
            raise ValueError(f"invalid sha256 {self.sha256!r}")
        if self.kind == "sdist" and (
            self.filename is None or self.size is None or not _SDIST_NAME.match(self.filename)
        ):
            raise ValueError(
                f"an sdist needs a plain .tar.gz or .zip file name and a size, not {self.filename!r}"
            )
        if self.kind == "directory" and not _inside(self.url):
            raise ValueError(f"a source directory must be a path inside the project, not {self.url!r}")
        if self.kind == "git" and (self.commit is None or not _COMMIT.match(self.commit)):
            raise ValueError(f"a git source needs a full commit id, not {self.commit!r}")
        if self.subdirectory is not None and not _inside(self.subdirectory):
            raise ValueError(f"invalid subdirectory {self.subdirectory!r}")


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

    def __attrs_post_init__(self) -> None:
        if not _BACKEND.match(self.backend):
            raise ValueError(f"invalid build backend {self.backend!r}")
        for p in self.backend_path:
            if p != "." and not _inside(p):
                raise ValueError(f"backend-path {p!r} must stay inside the project")


@frozen
class LockedPackage:
    name: str
    version: str
    # The wheel that is installed; None when the package is built from `source` (there is no wheel for the target).
    wheel: Wheel | None = field(default=None, metadata=_OMIT)
    source: Source | None = field(default=None, metadata=_OMIT)
    build: BuildPin | None = field(default=None, metadata=_OMIT)
    # Multi-platform projects: the wheel of each further platform whose wheel differs from `wheel` (a binary
    # package); a pure-Python wheel fits every platform and is the one `wheel` entry, shared.
    platforms: dict[str, Wheel] = field(factory=dict, metadata=_OMIT)

    @property
    def built(self) -> bool:
        return self.wheel is None

    def wheel_for(self, platform: str) -> Wheel | None:
        return self.platforms.get(platform, self.wheel)


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
    sha256: str  # over what is not excluded (envgraph._hashing.exclude_patterns)
    exclude: tuple[str, ...] = field(default=(), metadata={"omit_if_default": True})


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
class PlatformPin:
    """What differs for a further platform of a multi-platform env lock, besides the wheels: its own drv and
    what it derives from (the platform's base lock, or the parent's image for that platform)."""

    drv: str
    base: BaseRef | None = field(default=None, metadata=_OMIT)
    parent: ParentRef | None = field(default=None, metadata=_OMIT)


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
    # Debian's architecture name, written only when not amd64 (so existing base locks keep their identity).
    architecture: str | None = field(default=None, metadata=_OMIT)
    # "extract" for a foreign architecture's root filesystem: its packages unpacked, no maintainer script run.
    variant: str | None = field(default=None, metadata=_OMIT)

    def __attrs_post_init__(self) -> None:
        if self.variant not in (None, "extract"):
            raise ValueError(f"unknown root filesystem variant {self.variant!r}")
        if self.architecture is not None and not re.match(r"^[a-z0-9][a-z0-9-]*$", self.architecture):
            raise ValueError(f"invalid Debian architecture {self.architecture!r}")


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
    # Set when uv resolved the env (pip and pip-tools still read directories' and sdists' metadata).
    uv: str | None = field(default=None, metadata={"omit_if_default": True})


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
    # Image settings of this env (children inherit user, add ports, override labels); labels by full key, the
    # project's labels recorded in root envs' lockfiles.
    user: str | None = field(default=None, metadata=_OMIT)
    ports: tuple[str, ...] = field(default=(), metadata=_OMIT)
    labels: dict[str, str] = field(factory=dict, metadata=_OMIT)
    # Multi-platform projects (lockfile format 4): each further platform's own drv and sources; the plain fields
    # above are those of the primary platform (`platform`).
    platforms: dict[str, PlatformPin] = field(factory=dict, metadata=_OMIT)


def for_platform(lock: Lockfile, platform: str) -> Lockfile:
    """The lock as a one-platform lock of ``platform``: that platform's wheels, drv, base and parent. The
    planner and the builder see only such locks."""
    if platform == lock.platform:
        return lock if not lock.platforms else evolve(lock, platforms={}, packages=_strip(lock.packages))
    pin = lock.platforms.get(platform)
    if pin is None:
        raise KeyError(platform)
    packages = tuple(
        evolve(q, wheel=q.wheel_for(platform), platforms={}) if q.platforms else q for q in lock.packages
    )
    return evolve(
        lock,
        platform=platform,
        base=pin.base,
        parent=pin.parent,
        packages=packages,
        drv=pin.drv,
        platforms={},
    )


def _strip(packages: tuple[LockedPackage, ...]) -> tuple[LockedPackage, ...]:
    return tuple(evolve(q, platforms={}) if q.platforms else q for q in packages)


def image_drv(lock: Lockfile) -> str:
    """What names the env's image in the store and in registries: its drv, or for a multi-platform lock the drv
    of the image index over every platform's image."""
    if not lock.platforms:
        return lock.drv
    drvs = {lock.platform: lock.drv, **{p: pin.drv for p, pin in lock.platforms.items()}}
    return identity.index_derivation(drvs)
