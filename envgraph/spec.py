"""Declarations: the models of ``envgraph.toml`` and how to load them.

Everything here is a frozen attrs class structured by the shared cattrs converter; a JSON
Schema of the format is generated from these classes (:mod:`envgraph._spec_schema`).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import cattrs
from attrs import evolve, field, frozen

from envgraph._convert import converter
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
]

DECLARATION_FILE = "envgraph.toml"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
PYTHON_RE = re.compile(r"^3\.\d+$")
PLATFORM_RE = re.compile(r"^linux/(amd64|arm64)$")
LIBC_RE = re.compile(r"^(glibc|musl)-(\d+)\.(\d+)$")
USER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]*)?$")
RFC3339_RE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$")
PORT_RE = re.compile(r"^\d{1,5}(/(tcp|udp|sctp))?$")
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
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read: {e}") from None
    return parse_spec(text, root=path.resolve().parent, origin=path.name)


def parse_spec(text: str, *, root: Path, origin: str = DECLARATION_FILE) -> Spec:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{origin}: invalid TOML: {e}") from None
    if "project" not in data:
        raise SpecError(f"{origin}: missing [project] table")
    if isinstance(data["project"], dict) and {"platform", "platforms"} <= data["project"].keys():
        raise SpecError(
            f"{origin}: set project.platform (one platform) or project.platforms (several), not both"
        )
    try:
        spec: Spec = converter.structure({**data, "root": str(root)}, Spec)
    except cattrs.BaseValidationError as e:
        raise SpecError(f"{origin}: {_first_error(e)}") from None
    _validate(spec, origin, declared=data["project"])
    if spec.project.platforms:
        # Everything that builds one platform reads `platform`: the primary one.
        spec = evolve(spec, project=evolve(spec.project, platform=spec.project.platforms[0]))
    return spec


def _first_error(exc: cattrs.BaseValidationError) -> str:
    messages = cattrs.transform_error(exc, path="")
    msg = messages[0] if messages else str(exc)
    # cattrs says "invalid value for type, expected int @ .project.max_layers": make the path read like TOML.
    text, _, where = msg.rpartition(" @ ")
    where = where.lstrip("$.").replace("['", ".").replace("']", "").replace("_", "-")
    if not text:
        return msg
    if text.startswith("extra fields found"):
        extra = text.partition("(")[2].rstrip(")")
        return f"unknown key(s) {extra} in {where or 'the top level'}"
    if text == "required field missing":
        return f"missing required key {where}"
    return f"{where}: {text}"


def _validate(spec: Spec, origin: str, declared: dict[str, Any] | None = None) -> None:
    def fail(msg: str) -> None:
        raise SpecError(f"{origin}: {msg}")

    p = spec.project
    declared = declared if declared is not None else {"platforms": p.platforms} if p.platforms else {}
    if not PYTHON_RE.match(p.python):
        fail(f'project.python must be a major.minor version such as "3.11", got {p.python!r}')
    if not PLATFORM_RE.match(p.platform):
        fail(f'project.platform must be "linux/amd64" or "linux/arm64", got {p.platform!r}')
    if "platforms" in declared:
        try:
            check_platforms(p.platforms)
        except ValueError as e:
            fail(f"project.platforms: {e}")
        bad = [x for x in p.platforms if not PLATFORM_RE.match(x)]
        if bad:
            fail(f'project.platforms: use "linux/amd64" and "linux/arm64", got {bad[0]!r}')
    if not 3 <= p.max_layers <= 125:
        fail(f"project.max-layers must be between 3 and 125 (Docker's limit), got {p.max_layers}")
    if p.resolve_timeout <= 0:
        fail("project.resolve-timeout must be positive")
    if p.resolver not in ("pip-tools", "uv"):
        fail(f'project.resolver must be "pip-tools" or "uv", got {p.resolver!r}')

    # Pipelines have their own namespace (a pipeline is often named after its env: the command line says which
    # with --pipeline); bases and envs share one, so an image name never reads as a base.
    seen: dict[str, str] = {}
    for kind, names in (("bases", spec.bases), ("env", spec.env), ("pipeline", spec.pipeline)):
        for name in names:
            if not NAME_RE.match(name):
                fail(f"{kind}.{name}: names may use letters, digits, '.', '_' and '-' only")
            if kind != "pipeline" and name in seen:
                fail(f"duplicate name {name!r}: used by both {seen[name]}.{name} and {kind}.{name}")
            seen[name] = kind

    for name, base in spec.bases.items():
        if (base.debian is None) == (base.image is None):
            fail(f"bases.{name}: set exactly one of 'debian' or 'image'")
        if base.image is not None and base.image != "scratch" and not base.image.startswith(IMAGE_TRANSPORTS):
            fail(
                f"bases.{name}: unknown transport in image {base.image!r} "
                "(use docker://, oci:, oci-archive:, docker-archive:, docker-daemon: or scratch)"
            )
        if base.debian is not None and base.debian.suite not in DEBIAN_GLIBC and base.libc is None:
            fail(f'bases.{name}: unknown Debian suite {base.debian.suite!r}: declare libc = "glibc-2.NN"')
        if base.libc is not None and not LIBC_RE.match(base.libc):
            fail(f'bases.{name}: libc must look like "glibc-2.36" or "musl-1.2", got {base.libc!r}')
        if base.image != "scratch" and base.python is None:
            fail(f"bases.{name}: missing 'python' (the interpreter path inside the image)")
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
        for f in env.files:
            if not f.dest.startswith("/"):
                fail(f"env.{name}: files dest {f.dest!r} must be an absolute path in the image")
            if Path(f.src).is_absolute() or ".." in Path(f.src).parts:
                fail(f"env.{name}: files src {f.src!r} must be a path inside the project directory")
        if env.workdir is not None and not env.workdir.startswith("/"):
            fail(f"env.{name}: workdir {env.workdir!r} must be an absolute path")
        if env.user is not None and not USER_RE.match(env.user):
            fail(f"env.{name}: user {env.user!r} must be NAME or UID, optionally :GROUP or :GID")
        for port in env.ports:
            if not PORT_RE.match(port) or not 0 < int(port.split("/")[0]) < 65536:
                fail(f"env.{name}: port {port!r} must be a number 1-65535, optionally /tcp, /udp or /sctp")
        for key, value in env.labels.items():
            if key in ("created", OCI_LABEL_PREFIX + "created") and not RFC3339_RE.match(value):
                fail(f"env.{name}: label {key} must be an RFC 3339 time such as 2026-01-31T12:00:00Z")
            if not label_key_ok(key):
                fail(
                    f"env.{name}: label {key!r} is neither an OCI short name ({', '.join(OCI_LABELS)}) nor a dotted key"
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


def _check_apt(fail: Any, where: str, requests: tuple[str, ...]) -> None:
    """Debian package requests are checked in full when they are resolved; here only what would never parse."""
    for r in requests:
        if not r.strip() or any(c in r for c in "\n\r,;"):
            fail(f'{where}: {r!r} is not a Debian package request (one package per entry, e.g. "libgomp1")')


def libc_of(base: Base) -> str:
    """The C library a base provides, which decides the manylinux/musllinux wheels that fit it."""
    if base.libc:
        return base.libc
    if base.debian is not None:
        return DEBIAN_GLIBC[base.debian.suite]
    return DEFAULT_IMAGE_LIBC
