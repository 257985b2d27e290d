"""Declarations: the models of ``envgraph.toml`` and how to load them.

Everything here is a frozen attrs class structured by the shared cattrs converter; a JSON
Schema of the format is generated from these classes (:mod:`envgraph._spec_schema`).
"""

from __future__ import annotations

import math
import re
import tomllib
from pathlib import Path, PurePosixPath
from typing import Any

import cattrs
from attrs import evolve, field, frozen

from envgraph._convert import describe_error, key_path, quote, structure
from envgraph._fs import path_problem
from envgraph.errors import SpecError
from envgraph.platforms import check_platforms

__all__ = [
    "DECLARATION_FILE",
    "DEFAULT_BUILD_APT",
    "Project",
    "DebianBase",
    "Base",
    "FileSpec",
    "Env",
    "Pipeline",
    "Spec",
    "find_declaration",
    "parse_spec",
    "read_spec",
    "libc_of",
    "NAME_RE",
    "MAX_NAME",
    "check_name",
    "apt_request_problem",
    "DEBIAN_PACKAGE_RE",
    "DEBIAN_VERSION_RE",
    "DEBIAN_SUITE_RE",
    "MIRROR_RE",
]

DECLARATION_FILE = "envgraph.toml"
# \Z, not $: "$" also matches before a trailing newline, and names become file names.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*\Z")
# Names end up in file names (lockfiles/<env>.lock.json) and registry tags (<env>-<id12>, at most 128).
MAX_NAME = 100
PYTHON_RE = re.compile(r"^3\.[0-9]+\Z")
PLATFORM_RE = re.compile(r"^linux/(amd64|arm64)\Z")
LIBC_RE = re.compile(r"^(glibc|musl)-([0-9]+)\.([0-9]+)\Z")
# Debian policy 5.6.1 (names) and 5.6.12 (versions); anything else would break mmdebstrap's --include syntax.
DEBIAN_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?\Z")
DEBIAN_VERSION_RE = re.compile(r"^[A-Za-z0-9.+~:-]+\Z")
DEBIAN_SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*\Z")
# http://, https://, file:/, copy://, mirror+http://...: a URL scheme, then no white space or control characters.
MIRROR_RE = re.compile(r"^[a-z][a-z0-9+.-]*:[^\s\x00-\x1f\x7f]+\Z")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?\Z")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)\Z")
PORT_RE = re.compile(r"^[0-9]{1,5}(/(tcp|udp|sctp))?\Z")
# The pre-defined annotation keys of the OCI image spec, usable as `labels` keys without their prefix.
OCI_LABEL_PREFIX = "org.opencontainers.image."
OCI_LABELS = ("created", "authors", "url", "documentation", "source", "version", "revision", "vendor",
              "licenses", "ref.name", "title", "description", "base.digest", "base.name")  # fmt: skip


def label_key_ok(key: str) -> bool:
    """An OCI short name, or a reverse-DNS style key (``com.example.team``)."""
    if key.startswith("dev.envgraph."):  # envgraph's own (env, drv)
        return False
    return key in OCI_LABELS or bool(re.match(r"^[a-z0-9]+(\.[a-z0-9-]+)+(\.[A-Za-z0-9_-]+)*$", key))


def label_name(key: str) -> str:
    """``source`` -> ``org.opencontainers.image.source``; full keys are kept."""
    return OCI_LABEL_PREFIX + key if key in OCI_LABELS else key


IMAGE_TRANSPORTS = ("docker://", "oci:", "oci-archive:", "docker-archive:", "docker-daemon:")

# glibc shipped by each Debian suite: decides which manylinux wheels fit a Debian base.
DEBIAN_GLIBC = {
    "buster": "glibc-2.28",
    "bullseye": "glibc-2.31",
    "bookworm": "glibc-2.36",
    "trixie": "glibc-2.41",
}
# What packages without a wheel are built with, unless [project] build-apt says otherwise.
DEFAULT_BUILD_APT = ("build-essential", "python3-dev")
# An image base without a declared libc gets the manylinux2014 floor: wheels built for it run nearly everywhere.
DEFAULT_IMAGE_LIBC = "glibc-2.17"


def _key(name: str, **kw: Any) -> dict[str, Any]:
    return {"key": name, **kw}


@frozen
class Project:
    name: str
    python: str
    platform: str = "linux/amd64"
    # Several platforms from one declaration (one image per platform under one image index); the first is the
    # primary one (its pins are the lockfile's plain fields). Set `platform` or `platforms`, not both.
    platforms: tuple[str, ...] = ()
    index_url: str = field(default="https://pypi.org/simple", metadata=_key("index-url"))
    extra_index_urls: tuple[str, ...] = field(default=(), metadata=_key("extra-index-urls"))
    find_links: tuple[str, ...] = field(default=(), metadata=_key("find-links"))
    max_layers: int = field(default=100, metadata=_key("max-layers"))
    resolve_timeout: float = field(default=120.0, metadata=_key("resolve-timeout"))
    cache: str | None = None
    # Where layer tasks run: "local" (this machine's pool) or "dask://HOST:PORT" (a Dask cluster; needs `cache`).
    executor: str | None = None
    # Ship hash-checked .pyc files, compiled by a local interpreter of the target version when there is one.
    # Off by default, as in uv: compiling doubles the cold build time; turn it on for faster container start-up.
    bytecode: bool = False
    # The Debian packages of the environment a package without a wheel is built in (on top of the env's base and
    # its `apt` packages); envs add their own with `build-apt`.
    build_apt: tuple[str, ...] = field(default=DEFAULT_BUILD_APT, metadata=_key("build-apt"))
    # What resolves the envs: "pip-tools" (pip-compile) or "uv" (uv pip compile); the same lockfile either way.
    resolver: str = "pip-tools"
    # The build-history database (sqlite:///PATH or postgresql://USER@HOST/DB); default: SQLite in the store.
    # Prefer ENVGRAPH_DB or --db for a URL with a password: this file is usually committed.
    db: str | None = None
    # Image labels every env gets (OCI short names such as source, revision, version, or full label keys).
    labels: dict[str, str] = field(factory=dict)

    @property
    def targets(self) -> tuple[str, ...]:
        """Every platform built, the primary one first."""
        return self.platforms or (self.platform,)

    @property
    def multi_platform(self) -> bool:
        return len(self.targets) > 1


@frozen
class DebianBase:
    suite: str
    packages: tuple[str, ...] = ()
    mirror: str | None = None


@frozen
class Base:
    debian: DebianBase | None = None
    image: str | None = None
    python: str | None = None
    libc: str | None = None
    # Debian packages every env on this base gets, each as its own layer (see Env.apt); only for Debian bases.
    apt: tuple[str, ...] = ()


@frozen
class FileSpec:
    src: str
    dest: str
    # Globs left out (besides __pycache__, *.pyc and the patterns of src/.envgraphignore): "*.log", "data/raw".
    exclude: tuple[str, ...] = ()


@frozen
class Env:
    base: str | None = None
    parent: str | None = None
    requirements: tuple[str, ...] = ()
    requirements_file: str | None = field(default=None, metadata=_key("requirements-file"))
    # Debian packages (apt's syntax: "libgomp1", "jq=1.6-2.1", "libfoo (>= 2) | libbar"), each its own layer,
    # resolved against the base's installed set and the parent's; inherited by children, like requirements.
    apt: tuple[str, ...] = ()
    # More Debian packages for building this env's packages that have no wheel (added to project.build-apt).
    build_apt: tuple[str, ...] = field(default=(), metadata=_key("build-apt"))
    environment: dict[str, str] = field(factory=dict)
    files: tuple[FileSpec, ...] = ()
    workdir: str | None = None
    entrypoint: tuple[str, ...] | None = None
    cmd: tuple[str, ...] | None = None
    # Direct requirements that may resolve to a release far older than their newest (a deliberate old pin).
    allow_old: tuple[str, ...] = field(default=(), metadata=_key("allow-old"))
    # The user the image runs as ("app", "1000", "1000:1000"); inherited unless set.
    user: str | None = None
    # Ports the image exposes ("8000", "53/udp"); children add to their parent's.
    ports: tuple[str, ...] = ()
    # Image labels (OCI short names or full keys); children override their parent's, which override the project's.
    labels: dict[str, str] = field(factory=dict)


@frozen
class Pipeline:
    steps: dict[str, str] = field(factory=dict)


@frozen
class Spec:
    project: Project
    bases: dict[str, Base] = field(factory=dict)
    env: dict[str, Env] = field(factory=dict)
    pipeline: dict[str, Pipeline] = field(factory=dict)
    # Directory holding the declaration file; relative paths (files, find-links) are resolved against it.
    root: Path = field(default=Path("."), metadata={"schema": False})


def find_declaration(start: Path | None = None) -> Path:
    """Search upward from ``start`` (default: the working directory) for ``envgraph.toml``."""
    here = (start or Path.cwd()).resolve()
    for d in (here, *here.parents):
        candidate = d / DECLARATION_FILE
        if candidate.is_file():
            return candidate
    raise SpecError(f"no {DECLARATION_FILE} found in {here} or any parent directory (use -f FILE)")


def read_spec(path: Path) -> Spec:
    """Read and validate a declaration file. Raises :class:`SpecError` with one clear line."""
    path = Path(path)
    problem = path_problem(path)
    if problem:
        raise SpecError(f"{quote(str(path))}: the path {problem}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except OSError as e:
        raise SpecError(f"{path}: cannot read: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SpecError(f"{path}: not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})") from None
    return parse_spec(text, root=path.resolve().parent, origin=path.name)


def parse_spec(text: str, *, root: Path, origin: str = DECLARATION_FILE) -> Spec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{origin}: invalid TOML: {e}") from None
    except RecursionError:  # tomllib recurses per nested array or inline table
        raise SpecError(f"{origin}: invalid TOML: arrays or tables nested too deeply") from None
    if "project" not in data:
        raise SpecError(f"{origin}: missing [project] table")
    if isinstance(data["project"], dict) and {"platform", "platforms"} <= data["project"].keys():
        raise SpecError(
            f"{origin}: set project.platform (one platform) or project.platforms (several), not both"
        )
    nul = _find_nul(data, [])
    if nul is not None:
        raise SpecError(f"{origin}: {key_path(nul) or 'a key'}: contains a NUL character")
    try:
        spec: Spec = structure({**data, "root": str(root)}, Spec)
    except cattrs.BaseValidationError as e:
        raise SpecError(f"{origin}: {describe_error(e, 'toml')}") from None
    _validate(spec, origin, declared=data["project"])
    if spec.project.platforms:
        # Everything that builds one platform reads `platform`: the primary one.
        spec = evolve(spec, project=evolve(spec.project, platform=spec.project.platforms[0]))
    return spec


def _find_nul(value: Any, path: list[str | int]) -> list[str | int] | None:
    """The path of the first key or string holding a NUL (no file name, argument or variable can hold one)."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for k, v in value.items():
            if "\x00" in k:
                return [*path, k]
            found = _find_nul(v, [*path, k])
            if found is not None:
                return found
    if isinstance(value, list):
        for i, v in enumerate(value):
            found = _find_nul(v, [*path, i])
            if found is not None:
                return found
    return None


def check_name(name: str) -> str | None:
    """Why ``name`` cannot name a base, env or pipeline, or None."""
    if len(name) > MAX_NAME:
        return f"names are at most {MAX_NAME} characters long (this one has {len(name)})"
    if not NAME_RE.match(name):
        return "names may use letters, digits, '.', '_' and '-' only, and start with a letter or digit"
    return None


def _path_in_project(value: str) -> str | None:
    """Why ``value`` is not a relative path inside the project directory, or None."""
    if value == "" or Path(value).is_absolute() or ".." in Path(value).parts:
        return "must be a path inside the project directory"
    return path_problem(value)


def _path_in_image(value: str) -> str | None:
    """Why ``value`` is not an absolute path in the image, or None."""
    if not value.startswith("/") or ".." in PurePosixPath(value).parts:
        return "must be an absolute path in the image (without '..')"
    return path_problem(value)


def _validate(spec: Spec, origin: str, declared: dict[str, Any] | None = None) -> None:
    def fail(msg: str) -> None:
        raise SpecError(f"{origin}: {msg}")

    p = spec.project
    declared = declared if declared is not None else {"platforms": p.platforms} if p.platforms else {}
    if not PYTHON_RE.match(p.python):
        fail(f'project.python must be a major.minor version such as "3.11", got {quote(p.python)}')
    if not PLATFORM_RE.match(p.platform):
        fail(f'project.platform must be "linux/amd64" or "linux/arm64", got {quote(p.platform)}')
    if "platforms" in declared:
        try:
            check_platforms(p.platforms)
        except ValueError as e:
            fail(f"project.platforms: {e}")
        bad = [x for x in p.platforms if not PLATFORM_RE.match(x)]
        if bad:
            fail(f'project.platforms: use "linux/amd64" and "linux/arm64", got {quote(bad[0])}')
    if not 3 <= p.max_layers <= 125:
        fail(f"project.max-layers must be between 3 and 125 (Docker's limit), got {p.max_layers}")
    if not (math.isfinite(p.resolve_timeout) and p.resolve_timeout > 0):
        fail(f"project.resolve-timeout must be a positive number of seconds, got {p.resolve_timeout}")
    for i, fl in enumerate(p.find_links):
        problem = path_problem(fl) if fl else "must not be empty"
        if problem:
            fail(f"project.find-links[{i}] {quote(fl)}: {problem}")
    if p.resolver not in ("pip-tools", "uv"):
        fail(f'project.resolver must be "pip-tools" or "uv", got {quote(p.resolver)}')

    # Pipelines have their own namespace (a pipeline is often named after its env: the command line says which
    # with --pipeline); bases and envs share one, so an image name never reads as a base.
    seen: dict[str, str] = {}
    for kind, names in (("bases", spec.bases), ("env", spec.env), ("pipeline", spec.pipeline)):
        for name in names:
            problem = check_name(name)
            if problem:
                fail(f"{key_path([kind, name])}: {problem}")
            if kind != "pipeline" and name in seen:
                fail(f"duplicate name {name!r}: used by both {seen[name]}.{name} and {kind}.{name}")
            seen[name] = kind

    for name, base in spec.bases.items():
        if (base.debian is None) == (base.image is None):
            fail(f"bases.{name}: set exactly one of 'debian' or 'image'")
        if base.image is not None and base.image != "scratch" and not base.image.startswith(IMAGE_TRANSPORTS):
            fail(
                f"bases.{name}: unknown transport in image {quote(base.image)} "
                "(use docker://, oci:, oci-archive:, docker-archive:, docker-daemon: or scratch)"
            )
        if base.image is not None and base.image.startswith(("oci:", "oci-archive:", "docker-archive:")):
            problem = path_problem(base.image.partition(":")[2].partition(":")[0])
            if problem:
                fail(f"bases.{name}: image {quote(base.image)}: the path {problem}")
        if base.debian is not None:
            d = base.debian
            if not DEBIAN_SUITE_RE.match(d.suite):
                fail(f"bases.{name}.debian.suite: not a Debian suite name: {quote(d.suite)}")
            for pkg in d.packages:
                if not DEBIAN_PACKAGE_RE.match(pkg):
                    fail(f"bases.{name}.debian.packages: not a Debian package name: {quote(pkg)}")
            if d.mirror is not None and not MIRROR_RE.match(d.mirror):
                fail(f"bases.{name}.debian.mirror must be a URL without white space, got {quote(d.mirror)}")
        if base.debian is not None and base.debian.suite not in DEBIAN_GLIBC and base.libc is None:
            fail(f'bases.{name}: unknown Debian suite {base.debian.suite!r}: declare libc = "glibc-2.NN"')
        if base.libc is not None and not LIBC_RE.match(base.libc):
            fail(f'bases.{name}: libc must look like "glibc-2.36" or "musl-1.2", got {quote(base.libc)}')
        if base.image != "scratch" and base.python is None:
            fail(f"bases.{name}: missing 'python' (the interpreter path inside the image)")
        if base.python is not None:
            problem = _path_in_image(base.python)
            if problem:
                fail(f"bases.{name}.python {quote(base.python)} (the interpreter in the image) {problem}")
        if base.apt and base.debian is None:
            fail(
                f"bases.{name}: 'apt' needs a Debian base (debian = {{ suite = ... }}): an image's archive is unknown"
            )
        _check_apt(fail, f"bases.{name}.apt", base.apt)

    for name, env in spec.env.items():
        if (env.base is None) == (env.parent is None):
            fail(f"env.{name}: set exactly one of 'base' or 'parent'")
        if env.requirements and env.requirements_file:
            fail(f"env.{name}: set 'requirements' or 'requirements-file', not both")
        if env.requirements_file is not None:
            problem = path_problem(env.requirements_file) if env.requirements_file else "must not be empty"
            if problem:
                fail(f"env.{name}.requirements-file {quote(env.requirements_file)} {problem}")
        for f in env.files:
            problem = _path_in_image(f.dest)
            if problem:
                fail(f"env.{name}: files dest {quote(f.dest)} {problem}")
            problem = _path_in_project(f.src)
            if problem:
                fail(f"env.{name}: files src {quote(f.src)} {problem}")
        if env.workdir is not None:
            problem = _path_in_image(env.workdir)
            if problem:
                fail(f"env.{name}: workdir {quote(env.workdir)} {problem}")
        if env.user is not None and not USER_RE.match(env.user):
            fail(f"env.{name}: user {quote(env.user)} must be NAME or UID, optionally :GROUP or :GID")
        for port in env.ports:
            if not PORT_RE.match(port) or not 0 < int(port.split("/")[0]) < 65536:
                fail(
                    f"env.{name}: port {quote(port)} must be a number 1-65535, optionally /tcp, /udp or /sctp"
                )
        for key, value in env.labels.items():
            if key in ("created", OCI_LABEL_PREFIX + "created") and not RFC3339_RE.match(value):
                fail(f"env.{name}: label {key} must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
            if not label_key_ok(key):
                fail(
                    f"env.{name}: label {quote(key)} is neither an OCI short name ({', '.join(OCI_LABELS)}) nor a dotted key"
                )
        for key in env.environment:
            if not key or "=" in key:
                fail(
                    f"{key_path(['env', name, 'environment', key])}: variable names must be non-empty, without '='"
                )
        _check_apt(fail, f"env.{name}.apt", env.apt)
        _check_apt(fail, f"env.{name}.build-apt", env.build_apt)
    _check_apt(fail, "project.build-apt", p.build_apt)
    for key, value in p.labels.items():
        if key in ("created", OCI_LABEL_PREFIX + "created") and not RFC3339_RE.match(value):
            fail(f"project.labels: {key} must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
        if not label_key_ok(key):
            fail(
                f"project.labels: {key!r} is neither an OCI short name ({', '.join(OCI_LABELS)}) nor a dotted key"
            )


def apt_request_problem(request: str) -> str | None:
    """Why ``request`` can never be a Debian package request, or None: they are checked in full when they are
    resolved; here (and in lockfiles) only what would never parse."""
    if not request.strip() or any(c in request for c in "\n\r,;\x00"):
        return 'is not a Debian package request (one package per entry, e.g. "libgomp1")'
    return None


def _check_apt(fail: Any, where: str, requests: tuple[str, ...]) -> None:
    for r in requests:
        problem = apt_request_problem(r)
        if problem:
            fail(f"{where}: {quote(r)} {problem}")


def libc_of(base: Base) -> str:
    """The C library a base provides, which decides the manylinux/musllinux wheels that fit it."""
    if base.libc:
        return base.libc
    if base.debian is not None:
        return DEBIAN_GLIBC[base.debian.suite]
    return DEFAULT_IMAGE_LIBC
