"""Lockfile models: what ``lockfiles/<env>.lock.json`` and ``lockfiles/bases/<base>.lock.json`` hold.

The builder reads only these: it never resolves again. A lockfile is input like any other (it may have been
edited, merged badly or damaged), so every field is checked when it is read, through the one converter:
the checks below run on structuring only, never on the values the locker builds itself, and a refusal is a
one-line error naming the key. Valid files keep exactly their format.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Sequence
from pathlib import PurePosixPath
from typing import Any

from attrs import evolve, field, frozen
from packaging.utils import InvalidWheelFilename, canonicalize_name, is_normalized_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from envgraph import identity
from envgraph._convert import Invalid, invalid_item, quote, register_check
from envgraph._fs import path_problem
from envgraph._hashing import is_digest
from envgraph.debian._resolve import DebPin
from envgraph.debian._rootfs import MERGED_USR
from envgraph.errors import StaleLockError
from envgraph.spec import (
    DEBIAN_PACKAGE_RE,
    DEBIAN_SUITE_RE,
    DEBIAN_VERSION_RE,
    IMAGE_TRANSPORTS,
    LIBC_RE,
    MIRROR_RE,
    PLATFORM_RE,
    PORT_RE,
    PYTHON_RE,
    RFC3339_RE,
    USER_RE,
    apt_request_problem,
    check_name,
    label_key_ok,
)

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
    "image_ident",
]

_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")
# PEP 427 file names: the escaped name, version (a local version may hold '+', an epoch '!'), tags.
_WHEEL_CHARS = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._+!-]*\.whl\Z")
_HTTP_URL = re.compile(r"^https?://[^/\s\x00-\x1f\x7f]+(/[^\s\x00-\x1f\x7f]*)?\Z")
_MAX_SIZE = 2**63 - 1  # OCI descriptors and HTTP lengths are int64
_MAX_LAYERS = 125  # Docker's limit


def _check(rule: Callable[[Any], str | None]) -> dict[str, Any]:
    """Field metadata running ``rule(value)``: a returned reason refuses the value."""

    def check(value: Any) -> None:
        if isinstance(value, tuple):
            for i, v in enumerate(value):
                reason = rule(v)
                if reason:
                    raise invalid_item(i, f"{reason}, got {quote(v)}")
        elif value is not None:
            reason = rule(value)
            if reason:
                raise Invalid(f"{reason}, got {quote(value)}")

    return {"check": check}


def _hex64(v: str) -> str | None:
    return None if _HEX64.match(v) else "must be 64 lowercase hex digits"


def _digest(v: str) -> str | None:
    return None if is_digest(v) else "must be sha256:<64 lowercase hex digits>"


def _size(v: int) -> str | None:
    return None if 0 <= v <= _MAX_SIZE else "must be a size in bytes (a non-negative integer)"


def _name(v: str) -> str | None:
    return check_name(v)


def _package(v: str) -> str | None:
    return None if is_normalized_name(v) else "must be a normalized package name (PEP 503)"


# The rules below are pure functions of strings, and a thousand lockfiles repeat the same wheels and versions:
# each distinct value is checked once per process (parsing wheel names was most of reading a lockfile).
_memo = functools.lru_cache(maxsize=1 << 14)


@_memo
def _version(v: str) -> str | None:
    try:
        Version(v)
    except InvalidVersion:
        return "must be a PEP 440 version"
    return None


@_memo
def _wheel_filename(v: str) -> str | None:
    if not _WHEEL_CHARS.match(v) or ".." in v:
        return "must be a wheel file name (PEP 427), not a path"
    problem = path_problem(v)
    if problem:
        return f"must be a wheel file name a file system can hold (this one {problem})"
    try:
        parse_wheel_filename(v)
    except (InvalidWheelFilename, InvalidVersion):
        return "must be a wheel file name (PEP 427)"
    return None


def _image_path(v: str) -> str | None:
    if not v.startswith("/") or ".." in v.split("/"):
        return "must be an absolute path in the image (without '..')"
    return path_problem(v)


def _project_path(v: str) -> str | None:
    if v == "" or v.startswith("/") or ".." in v.split("/"):
        return "must be a path inside the project directory"
    return path_problem(v)


def _no_nul(v: str) -> str | None:
    return "must not contain a NUL character" if "\x00" in v else None


def _python(v: str) -> str | None:
    return None if PYTHON_RE.match(v) else 'must be a major.minor version such as "3.11"'


def _platform(v: str) -> str | None:
    return None if PLATFORM_RE.match(v) else 'must be "linux/amd64" or "linux/arm64"'


def _libc(v: str) -> str | None:
    return None if LIBC_RE.match(v) else 'must look like "glibc-2.36" or "musl-1.2"'


def _image_reference(v: str) -> str | None:
    if v != "scratch" and not v.startswith(IMAGE_TRANSPORTS):
        return (
            "must be scratch or start with docker://, oci:, oci-archive:, docker-archive: or docker-daemon:"
        )
    if v.startswith(("oci:", "oci-archive:", "docker-archive:")):
        return path_problem(v.partition(":")[2].partition(":")[0])
    return _no_nul(v)


@_memo
def _wheel_url(url: str, filename: str, what: str = "wheel") -> str | None:
    """An http(s) URL, or a find-links file's POSIX path relative to the declaration ending in the filename.

    Leading '..' components are allowed (a find-links directory beside the project, as the benchmarks use);
    any other '..', '.', empty component, backslash or absolute path is not. ``file:`` URLs are refused:
    envgraph writes local wheels as relative paths, which stay valid when the project moves.
    """
    if "://" in url or url.startswith("file:"):
        return None if _HTTP_URL.match(url) else "must be an http(s):// URL or a relative path"
    if url.startswith("/") or "\\" in url or path_problem(url):
        return "must be an http(s):// URL or a relative path"
    parts = url.split("/")
    while parts and parts[0] == "..":
        parts.pop(0)
    if not parts or any(p in ("", ".", "..") for p in parts):
        return "must be a plain relative path (no '.', '..' or empty components after the leading '..')"
    if parts[-1] != filename:
        return f"must end with the {what}'s file name {quote(filename)}"
    return None


@frozen
class Wheel:
    filename: str = field(metadata=_check(_wheel_filename))
    sha256: str = field(metadata=_check(_hex64))
    size: int = field(metadata=_check(_size))
    # An https URL, or for find-links wheels a path relative to the declaration file.
    url: str


def _check_wheel(w: Wheel) -> None:
    reason = _wheel_url(w.url, w.filename)
    if reason:
        raise Invalid(f"url {reason}, got {quote(w.url)}")


register_check(Wheel, _check_wheel)


_OMIT = {"omit_if_default": True}
_COMMIT = re.compile(r"^[0-9a-f]{40}\Z|^[0-9a-f]{64}\Z")
_SDIST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+!-]*\.(tar\.gz|zip)\Z")
_BACKEND = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]*(:[A-Za-z_][A-Za-z0-9_.]*)?\Z")
# A git repository as a requirement names it after ``git+`` (lock._requirements), without commit or fragment.
_GIT_URL = re.compile(r"^(https|http|ssh|file)://[^\s@#\x00-\x1f\x7f]+\Z")
_SOURCE_KINDS = ("sdist", "directory", "git")


def _inside(path: str) -> bool:
    """A relative path that stays inside the directory it is relative to."""
    pp = PurePosixPath(path)
    return bool(path) and not pp.is_absolute() and ".." not in pp.parts and "\\" not in path


def _source_problem(s: Source) -> str | None:
    """Why a source cannot be used (paths and URLs are made from it), or None."""
    if s.kind not in _SOURCE_KINDS:
        return f"kind must be one of {', '.join(_SOURCE_KINDS)}, got {quote(s.kind)}"
    digest = s.sha256 if s.kind == "sdist" else s.sha256.removeprefix("sha256:")
    if not _HEX64.match(digest):
        return f"sha256 must be 64 lowercase hex digits, got {quote(s.sha256)}"
    if s.kind == "sdist":
        if s.filename is None or s.size is None:
            return "an sdist needs a filename and a size"
        if not _SDIST_NAME.match(s.filename) or ".." in s.filename or path_problem(s.filename):
            return f"filename must be a plain .tar.gz or .zip file name, got {quote(s.filename)}"
        reason = _wheel_url(s.url, s.filename, "sdist")
        if reason:
            return f"url {reason}, got {quote(s.url)}"
    if s.kind == "directory" and (not _inside(s.url) or path_problem(s.url)):
        return f"url of a directory must be a path inside the project, got {quote(s.url)}"
    if s.kind == "git":
        if not _GIT_URL.match(s.url):
            return f"url of a git source must be an http(s), ssh or file URL, got {quote(s.url)}"
        if s.commit is None or not _COMMIT.match(s.commit):
            return f"commit of a git source must be a full commit id, got {quote(s.commit)}"
    if s.subdirectory is not None and (not _inside(s.subdirectory) or path_problem(s.subdirectory)):
        return f"subdirectory must be a path inside the repository, got {quote(s.subdirectory)}"
    return None


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
    size: int | None = field(default=None, metadata={**_OMIT, **_check(_size)})  # sdist
    commit: str | None = field(default=None, metadata=_OMIT)  # git: the full commit id
    # git: where the project is in the repository
    subdirectory: str | None = field(default=None, metadata=_OMIT)

    def __attrs_post_init__(self) -> None:
        # Checked whenever one is made, not only on input: the locker makes them from an index's answers.
        problem = _source_problem(self)
        if problem:
            raise Invalid(problem)


@_memo
def _is_wheel_of(filename: str, name: str, version: str) -> bool:
    wheel_name, wheel_version, _, _ = parse_wheel_filename(filename)
    return canonicalize_name(wheel_name) == name and wheel_version == Version(version)


def _check_pinned(what: str, name: str, version: str, wheel: Wheel) -> None:
    if not _is_wheel_of(wheel.filename, name, version):
        raise Invalid(f"wheel filename {quote(wheel.filename)} is not a wheel of {name} {version}")


@frozen
class BuildDep:
    """One pinned wheel of a build's ``[build-system] requires``."""

    name: str = field(metadata=_check(_package))
    version: str = field(metadata=_check(_version))
    wheel: Wheel


register_check(BuildDep, lambda d: _check_pinned("build dependency", d.name, d.version, d.wheel))


def _build_problem(b: BuildPin) -> str | None:
    if not _BACKEND.match(b.backend):
        return f"backend must be a PEP 517 backend (module[:object]), got {quote(b.backend)}"
    for p in b.backend_path:
        if p != "." and (not _inside(p) or path_problem(p)):
            return f"backend-path must stay inside the project, got {quote(p)}"
    return None


@frozen
class BuildPin:
    """How a wheel is built: the PEP 517 backend and its pinned requirements (wheels only)."""

    backend: str  # "setuptools.build_meta:__legacy__" when the project declares none
    requires: tuple[str, ...] = field(metadata=_check(_no_nul))  # [build-system] requires, as declared
    packages: tuple[BuildDep, ...]  # those requirements resolved and pinned, sorted by name
    backend_path: tuple[str, ...] = field(
        default=(), metadata={"key": "backend-path", "omit_if_default": True}
    )

    def __attrs_post_init__(self) -> None:
        # Checked whenever one is made: the backend and its path come from a project's pyproject.toml.
        problem = _build_problem(self)
        if problem:
            raise Invalid(problem)


@frozen
class LockedPackage:
    name: str = field(metadata=_check(_package))
    version: str = field(metadata=_check(_version))
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


def _check_package(p: LockedPackage) -> None:
    if p.wheel is not None:
        if p.source is not None or p.build is not None:
            raise Invalid(f"{p.name}: a package has either a wheel or a source and build, not both")
        _check_pinned("package", p.name, p.version, p.wheel)
    elif p.source is None or p.build is None:
        raise Invalid(f"{p.name}: a package needs a wheel, or a source and a build to make one")


register_check(LockedPackage, _check_package)


def _debian_package(v: str) -> str | None:
    return None if DEBIAN_PACKAGE_RE.match(v) else "must be a Debian package name"


def _apt_request(v: str) -> str | None:
    return "must be one Debian package request" if apt_request_problem(v) else None


@frozen
class AptLock:
    """Debian packages, each its own layer: what was asked for and the pins it resolved to."""

    requested: tuple[str, ...] = field(metadata=_check(_apt_request))
    # What the resolution depended on (identity.apt_inputs): re-resolved only when this changes.
    inputs: str = field(metadata=_check(_digest))
    packages: tuple[DebPin, ...]  # sorted by name; DebPin checks its own fields (debian._resolve)


def _check_apt(a: AptLock) -> None:
    names = [p.name for p in a.packages]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise Invalid(f"packages: {dup} is listed twice")


register_check(AptLock, _check_apt)


@frozen
class FilePin:
    """An env's ``files`` entry as locked: what it is, not its content (hashed at build time: code is not a
    dependency, see :func:`envgraph.identity.image_id`)."""

    src: str = field(metadata=_check(_project_path))
    dest: str = field(metadata=_check(_image_path))
    exclude: tuple[str, ...] = field(default=(), metadata={"omit_if_default": True})


@frozen
class ParentRef:
    env: str = field(metadata=_check(_name))
    drv: str = field(metadata=_check(_digest))


@frozen
class BaseRef:
    name: str = field(metadata=_check(_name))
    # The base lock's identity when this lock was made (a re-pinned base makes the env lock stale).
    identity: str = field(metadata=_check(_digest))


def _check_debian(d: DebianPin) -> None:
    for name, version in d.versions.items():
        if not DEBIAN_PACKAGE_RE.match(name):
            raise Invalid(f"versions: not a Debian package name: {quote(name)}")
        if not DEBIAN_VERSION_RE.match(version):
            raise Invalid(f"versions: not a Debian version for {name}: {quote(version)}")


_TOP_DIR = re.compile(r"^[a-z0-9][a-z0-9_.+-]*\Z")


def _top_dir(v: str) -> str | None:
    # Layers put files under these (and /usr/<dir>): one plain directory name each.
    return None if _TOP_DIR.match(v) and ".." not in v else "must be a top-level directory name"


@frozen
class PlatformPin:
    """What differs for a further platform of a multi-platform env lock, besides the wheels: its own drv and
    what it derives from (the platform's base lock, or the parent's image for that platform)."""

    drv: str = field(metadata=_check(_digest))
    base: BaseRef | None = field(default=None, metadata=_OMIT)
    parent: ParentRef | None = field(default=None, metadata=_OMIT)


@frozen
class DebianPin:
    suite: str = field(
        metadata=_check(lambda v: None if DEBIAN_SUITE_RE.match(v) else "must be a Debian suite name")
    )
    packages: tuple[str, ...] = field(metadata=_check(_debian_package))
    mirror: str = field(metadata=_check(lambda v: None if MIRROR_RE.match(v) else "must be a URL"))
    # Every package installed in the root filesystem, name -> version.
    versions: dict[str, str]
    # The root filesystem's content (sha256 of the uncompressed tar): a rebuild must reproduce it.
    diff_id: str = field(metadata={"key": "diff-id", **_check(_digest)})
    # The top-level directories the root filesystem links into /usr (where Debian package layers put files);
    # written only when not the usual merged-/usr layout, so existing base locks keep their identity.
    merged_usr: tuple[str, ...] = field(
        default=MERGED_USR, metadata={"key": "merged-usr", "omit_if_default": True, **_check(_top_dir)}
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


register_check(DebianPin, _check_debian)


@frozen
class ImagePin:
    reference: str = field(metadata=_check(_image_reference))
    # The manifest digest the reference resolved to; a locked build never follows a moved tag.
    digest: str | None = field(default=None, metadata=_check(_digest))
    layers: int = field(
        default=0,
        metadata=_check(lambda v: None if 0 <= v <= _MAX_LAYERS else f"must be between 0 and {_MAX_LAYERS}"),
    )


_ARCHITECTURE = re.compile(r"^[a-z0-9][a-z0-9_-]*\Z")
_PYTHON_VERSION = re.compile(r"^[0-9]+\.[0-9]+(\.[0-9]+)?\Z")


@frozen
class BaseLock:
    version: int
    name: str = field(metadata=_check(_name))
    python: str | None = field(metadata=_check(_image_path))
    libc: str = field(metadata=_check(_libc))
    inputs: str = field(metadata=_check(_digest))
    identity: str = field(metadata=_check(_digest))
    debian: DebianPin | None = None
    image: ImagePin | None = None
    # What the base's interpreter was found to be (ELF machine, version): None for scratch.
    architecture: str | None = field(
        default=None,
        metadata=_check(lambda v: None if _ARCHITECTURE.match(v) else "must be an architecture name"),
    )
    python_version: str | None = field(
        default=None,
        metadata={
            "key": "python-version",
            **_check(lambda v: None if _PYTHON_VERSION.match(v) else 'must be a version such as "3.11"'),
        },
    )


def _check_base(b: BaseLock) -> None:
    if (b.debian is None) == (b.image is None):
        raise Invalid("a base lock holds exactly one of 'debian' or 'image'")


register_check(BaseLock, _check_base)


@frozen
class Resolver:
    pip: str = field(metadata=_check(_version))
    pip_tools: str = field(metadata={"key": "pip-tools", **_check(_version)})
    # Set when uv resolved the env (pip and pip-tools still read directories' and sdists' metadata).
    uv: str | None = field(default=None, metadata={"omit_if_default": True, **_check(_version)})


def _environment_entry(item: tuple[str, str]) -> str | None:
    key, value = item
    if not key or "=" in key or "\x00" in key or "\x00" in value:
        return "must be NAME = value (a non-empty name without '=', no NUL characters)"
    return None


def _merged(v: str) -> str | None:
    # Python packages by name, Debian packages as "deb:NAME".
    if v.startswith("deb:"):
        return _debian_package(v[4:])
    return _package(v)


def _check_lockfile(lock: Lockfile) -> None:
    names = [p.name for p in lock.packages]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise Invalid(f"packages: {dup} is listed twice")
    for item in lock.environment.items():
        if _environment_entry(item):
            raise Invalid(f"environment: {_environment_entry(item)}, got {quote(item[0])}")
    for what, args in (("entrypoint", lock.entrypoint), ("cmd", lock.cmd)):
        if args is not None and any("\x00" in a for a in args):
            raise Invalid(f"{what}: an argument holds a NUL character")
    if (lock.base is None) == (lock.parent is None):
        raise Invalid("a lockfile has exactly one of 'base' or 'parent'")
    # Image settings go into the image config: the same rules as the declaration's.
    if lock.user is not None and not USER_RE.match(lock.user):
        raise Invalid(f"user: must be NAME or UID, optionally :GROUP or :GID, got {quote(lock.user)}")
    for port in lock.ports:
        if not PORT_RE.match(port) or not 0 < int(port.split("/")[0]) < 65536:
            raise Invalid(
                f"ports: must be a number 1-65535, optionally /tcp, /udp or /sctp, got {quote(port)}"
            )
    for key, value in lock.labels.items():
        if not label_key_ok(key) or "\x00" in value:
            raise Invalid(f"labels: {quote(key)} is not a label key (or its value holds a NUL character)")
        if key.endswith("image.created") and not RFC3339_RE.match(value):
            raise Invalid(f"labels: {key} must be an RFC 3339 time, got {quote(value)}")
    for plat, pin in lock.platforms.items():
        if _platform(plat) or plat == lock.platform:
            raise Invalid(f"platforms: {quote(plat)} is not a further platform of this lock")
        if (pin.base is None) == (pin.parent is None):
            raise Invalid(f"platforms: {plat} has exactly one of 'base' or 'parent'")
    for q in lock.packages:
        for plat in q.platforms:
            if plat not in lock.platforms:
                raise Invalid(
                    f"packages: {q.name} has a wheel for {quote(plat)}, not a platform of this lock"
                )


@frozen
class Lockfile:
    version: int
    env: str = field(metadata=_check(_name))
    python: str = field(metadata=_check(_python))
    platform: str = field(metadata=_check(_platform))
    bytecode: bool
    base: BaseRef | None
    parent: ParentRef | None
    requirements: tuple[str, ...] = field(metadata=_check(_no_nul))
    # Only the packages this env adds to its parent's; the image holds those of every ancestor too.
    packages: tuple[LockedPackage, ...]
    environment: dict[str, str]
    files: tuple[FilePin, ...]
    workdir: str | None = field(metadata=_check(_image_path))
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    # Packages merged into one shared tail layer because the env exceeds project.max-layers (Debian packages as
    # "deb:NAME").
    merged: tuple[str, ...] = field(metadata=_check(_merged))
    resolver: Resolver
    inputs: str = field(metadata=_check(_digest))
    drv: str = field(metadata=_check(_digest))
    # Constraint lines from `-c` files of a requirements-file.
    constraints: tuple[str, ...] = field(default=(), metadata={**_OMIT, **_check(_no_nul)})
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
        raise StaleLockError(f"env {lock.env}: the lockfile has no pins for {platform}: run `envgraph lock`")
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


def image_ident(lock: Lockfile, files: Sequence[tuple[str, str]] = ()) -> str:
    """What names the env's image in the store and in registries: its :func:`~envgraph.identity.image_id` (the
    drv, with ``files`` the content of the chain's files as (dest, content hash) in image order), or for a
    multi-platform lock the id of the image index over every platform's image."""
    if not lock.platforms:
        return identity.image_id(lock.drv, files)
    drvs = {lock.platform: lock.drv, **{p: pin.drv for p, pin in lock.platforms.items()}}
    return identity.index_derivation({p: identity.image_id(d, files) for p, d in drvs.items()})


register_check(Lockfile, _check_lockfile)
