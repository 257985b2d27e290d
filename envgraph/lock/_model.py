"""Lockfile models: what ``lockfiles/<env>.lock.json`` and ``lockfiles/bases/<base>.lock.json`` hold.

The builder reads only these: it never resolves again. A lockfile is input like any other (it may have been
edited, merged badly or damaged), so every field is checked when it is read, through the one converter:
the checks below run on structuring only, never on the values the locker builds itself, and a refusal is a
one-line error naming the key. Valid files keep exactly their format.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from attrs import field, frozen
from packaging.utils import InvalidWheelFilename, canonicalize_name, is_normalized_name, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from envgraph._convert import Invalid, invalid_item, quote, register_check
from envgraph._fs import path_problem
from envgraph._hashing import is_digest
from envgraph.identity import MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_ZSTD
from envgraph.spec import (
    DEBIAN_PACKAGE_RE,
    DEBIAN_SUITE_RE,
    DEBIAN_VERSION_RE,
    IMAGE_TRANSPORTS,
    LIBC_RE,
    MIRROR_RE,
    PLATFORM_RE,
    PYTHON_RE,
    check_name,
)

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


def _version(v: str) -> str | None:
    try:
        Version(v)
    except InvalidVersion:
        return "must be a PEP 440 version"
    return None


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


def _layer_media_type(v: str) -> str | None:
    known = (MEDIA_TYPE_LAYER_TAR, MEDIA_TYPE_LAYER_GZIP, MEDIA_TYPE_LAYER_ZSTD)
    return None if v in known else "must be an OCI layer media type"


def _image_reference(v: str) -> str | None:
    if v != "scratch" and not v.startswith(IMAGE_TRANSPORTS):
        return (
            "must be scratch or start with docker://, oci:, oci-archive:, docker-archive: or docker-daemon:"
        )
    if v.startswith(("oci:", "oci-archive:", "docker-archive:")):
        return path_problem(v.partition(":")[2].partition(":")[0])
    return _no_nul(v)


def _wheel_url(url: str, filename: str) -> str | None:
    """An http(s) URL, or a find-links wheel's POSIX path relative to the declaration ending in the filename.

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
        return f"must end with the wheel's file name {quote(filename)}"
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


@frozen
class LockedPackage:
    name: str = field(metadata=_check(_package))
    version: str = field(metadata=_check(_version))
    wheel: Wheel


def _check_package(p: LockedPackage) -> None:
    name, version, _, _ = parse_wheel_filename(p.wheel.filename)
    if canonicalize_name(name) != p.name or version != Version(p.version):
        raise Invalid(f"wheel filename {quote(p.wheel.filename)} is not a wheel of {p.name} {p.version}")


register_check(LockedPackage, _check_package)


@frozen
class FilePin:
    src: str = field(metadata=_check(_project_path))
    dest: str = field(metadata=_check(_image_path))
    sha256: str = field(metadata=_check(_digest))


@frozen
class ParentRef:
    env: str = field(metadata=_check(_name))
    drv: str = field(metadata=_check(_digest))


@frozen
class LayerPin:
    diff_id: str = field(metadata=_check(_digest))
    digest: str = field(metadata=_check(_digest))
    size: int = field(metadata=_check(_size))
    media_type: str = field(metadata={"key": "media-type", **_check(_layer_media_type)})


def _debian_package(v: str) -> str | None:
    return None if DEBIAN_PACKAGE_RE.match(v) else "must be a Debian package name"


def _check_debian(d: DebianPin) -> None:
    for name, version in d.versions.items():
        if not DEBIAN_PACKAGE_RE.match(name):
            raise Invalid(f"versions: not a Debian package name: {quote(name)}")
        if not DEBIAN_VERSION_RE.match(version):
            raise Invalid(f"versions: not a Debian version for {name}: {quote(version)}")


@frozen
class DebianPin:
    suite: str = field(
        metadata=_check(lambda v: None if DEBIAN_SUITE_RE.match(v) else "must be a Debian suite name")
    )
    packages: tuple[str, ...] = field(metadata=_check(_debian_package))
    mirror: str = field(metadata=_check(lambda v: None if MIRROR_RE.match(v) else "must be a URL"))
    # Every package installed in the root filesystem, name -> version.
    versions: dict[str, str]
    layer: LayerPin | None = None


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


def _check_base(b: BaseLock) -> None:
    if (b.debian is None) == (b.image is None):
        raise Invalid("a base lock holds exactly one of 'debian' or 'image'")


register_check(BaseLock, _check_base)


@frozen
class Resolver:
    pip: str = field(metadata=_check(_version))
    pip_tools: str = field(metadata={"key": "pip-tools", **_check(_version)})


def _environment_entry(item: tuple[str, str]) -> str | None:
    key, value = item
    if not key or "=" in key or "\x00" in key or "\x00" in value:
        return "must be NAME = value (a non-empty name without '=', no NUL characters)"
    return None


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


@frozen
class Lockfile:
    version: int
    env: str = field(metadata=_check(_name))
    python: str = field(metadata=_check(_python))
    platform: str = field(metadata=_check(_platform))
    base: str | None = field(metadata=_check(_name))
    parent: ParentRef | None
    requirements: tuple[str, ...] = field(metadata=_check(_no_nul))
    # Only the packages this env adds to its parent's; the image holds those of every ancestor too.
    packages: tuple[LockedPackage, ...]
    environment: dict[str, str]
    files: tuple[FilePin, ...]
    workdir: str | None = field(metadata=_check(_image_path))
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    # Packages merged into one shared tail layer because the env exceeds project.max-layers.
    merged: tuple[str, ...] = field(metadata=_check(_package))
    resolver: Resolver
    inputs: str = field(metadata=_check(_digest))
    drv: str = field(metadata=_check(_digest))


register_check(Lockfile, _check_lockfile)
