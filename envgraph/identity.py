"""Identity: every rule that names a lockfile, a layer or an image, each written once.

envgraph is content-addressed twice over: an env's **drv** names its image before anything is built (like a
Nix derivation), and each layer's **key** names the layer before its bytes exist. Both are sha256 digests of
canonical JSON (:func:`envgraph._hashing.digest_of`) over exactly the inputs that decide the result, so they
never depend on dict order, the project's location, timestamps or locale. Everything that could change the
bytes without changing the inputs (the tar format, the mtime, the compressor and its version, installer's
version) is a *format id* inside the keys. Change any rule here and digests move: bump the relevant version
and update the pinned identities (``tests/test_identity_snapshot.py``) and the README's digests.

This module takes plain values (strings, tuples), not models, so that everything above it may use it:

- hash kinds: :func:`resolution_inputs`, :func:`base_inputs`, :func:`derivation`, :func:`base_identity` (for
  lockfiles); :func:`venv_key`, :func:`package_key`, :func:`files_key`, :func:`debian_key`,
  :func:`deb_package_key` (for layers);
- format ids: :data:`LOCK_VERSION`, :data:`LAYOUT_VERSION`, :data:`LAYER_FORMAT`, :data:`TAR_FORMAT`, :data:`DEB_FORMAT`,
  :func:`layer_mtime`, :attr:`Compression.compressor_id`, :func:`layer_format`;
- names: :func:`image_id` (what names an image: its drv, or with ``files`` the drv and the files' content),
  :func:`image_tag` (``<env>:<id12>`` in the store), :func:`registry_tag` (``<env>-<id12>`` in a registry),
  :func:`cache_tag` (``key-<hex>``), labels and annotations;
- media types, and :data:`DEFAULT_COMPRESSION`, the compressor every layer is written with.
"""

from __future__ import annotations

import enum
import functools
import os
import platform
from collections.abc import Collection, Mapping, Sequence

from attrs import frozen

from envgraph._hashing import digest_hex, digest_of
from envgraph.errors import BuildError

__all__ = [
    "LOCK_VERSION",
    "MULTI_PLATFORM_LOCK_VERSION",
    "LAYOUT_VERSION",
    "LAYER_FORMAT",
    "TAR_FORMAT",
    "DEB_FORMAT",
    "BUILD_FORMAT",
    "DEFAULT_MTIME",
    "VENV",
    "LABEL_ENV",
    "LABEL_DRV",
    "LABEL_IMAGE",
    "ANNOTATION_REF_NAME",
    "MEDIA_TYPE_LAYER_TAR",
    "MEDIA_TYPE_LAYER_GZIP",
    "MEDIA_TYPE_LAYER_ZSTD",
    "MEDIA_TYPE_MANIFEST",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_INDEX",
    "DOCKER_MEDIA_TYPE_MANIFEST",
    "DOCKER_MEDIA_TYPE_MANIFEST_LIST",
    "DOCKER_MEDIA_TYPE_LAYER_GZIP",
    "MANIFEST_MEDIA_TYPES",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_ACCEPT",
    "LAYER_ARTIFACT_TYPE",
    "PATHS_MEDIA_TYPE",
    "MEDIA_TYPE_CYCLONEDX",
    "MEDIA_TYPE_SPDX",
    "MEDIA_TYPE_EMPTY",
    "EMPTY_JSON",
    "ANNOTATION_TITLE",
    "referrers_tag",
    "ANNOTATION_LAYER_KEY",
    "GZIP_LEVEL",
    "GZIP_MEMBER_SIZE",
    "ZSTD_LEVEL",
    "Compression",
    "DEFAULT_COMPRESSION",
    "compression_of_media_type",
    "InstallTarget",
    "drv12",
    "image_id",
    "image_tag",
    "registry_tag",
    "cache_tag",
    "layer_mtime",
    "layer_format",
    "resolution_inputs",
    "base_inputs",
    "derivation",
    "index_derivation",
    "base_identity",
    "apt_inputs",
    "wheel_build_key",
    "built_wheel_id",
    "venv_key",
    "package_key",
    "files_key",
    "debian_key",
    "deb_package_key",
]

# --- versions and format ids ---------------------------------------------------------------------------

LOCK_VERSION = 3
"""The lockfile schema. Bump when it changes (old lockfiles are then stale).
2: base locks pin the root filesystem's diff_id only and record the interpreter found; env locks record
``bytecode``.
3: env locks may pin Debian packages (``apt``, ``build-apt``), packages built from an sdist, a directory or a
git commit (``source``, ``build``; ``wheel`` is then absent) and ``constraints``; Debian base locks may record
``merged-usr``. Lockfiles without any of these hold the same fields as in 2 (and the same drvs): only their
``version`` and ``inputs`` move, and ``envgraph lock`` rewrites them keeping every pin."""

MULTI_PLATFORM_LOCK_VERSION = 4
"""Env lockfiles of a multi-platform project (``[project] platforms``): format 3 plus, per package, the wheel of
each further platform whose wheel differs (``platforms``; a pure-Python wheel stays one shared entry) and, per
lock, each further platform's drv and sources (``platforms``). One-platform lockfiles stay format 3 byte for byte
(and keep their inputs and drvs); an envgraph that reads only format 3 refuses these instead of misreading them."""

LAYOUT_VERSION = 2
"""The image layout (venv layer, layer order, config fields) and what the drv covers. Part of every drv.
2: the drv covers each wheel's file name, size and URL, and the base identity every pinned field."""

LAYER_FORMAT = 2
"""What goes into package and venv layers (install scheme, pyc policy, venv contents); 2: streamed from the
wheel in its member order."""

TAR_FORMAT = "pax-sorted-v1"
"""The byte format of :mod:`envgraph.oci._tar`'s writer; bump whenever its output changes for the same input."""

DEB_FORMAT = "deb-layer-v1"
"""How :mod:`envgraph.builder._deb_layer` turns a .deb into a layer (paths, kept modes, merged /usr, the status.d
entry); bump whenever a layer's bytes change for the same .deb and the same options."""

BUILD_FORMAT = "pep517-chroot-v1"
"""How envgraph builds a wheel from source (:mod:`envgraph.builder._sdist`: the build root, the frontend, the
environment variables); part of every built wheel's key. Bump whenever a build could give other bytes."""

DEFAULT_MTIME = 0
"""mtime of every tar entry when ``SOURCE_DATE_EPOCH`` is unset (the Unix epoch, like nixpkgs)."""

VENV = "/opt/venv"
"""Where every env's packages are installed in the image."""

# --- labels, annotations, media types -------------------------------------------------------------------

LABEL_ENV = "dev.envgraph.env"
LABEL_DRV = "dev.envgraph.drv"
LABEL_IMAGE = "dev.envgraph.image"
"""The image id (:func:`image_id`), set only where it is not the drv (an env with ``files``)."""
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

MEDIA_TYPE_LAYER_TAR = "application/vnd.oci.image.layer.v1.tar"
MEDIA_TYPE_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
MEDIA_TYPE_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
MEDIA_TYPE_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_TYPE_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_TYPE_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MEDIA_TYPE_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MEDIA_TYPE_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_MEDIA_TYPE_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"

MANIFEST_MEDIA_TYPES = (MEDIA_TYPE_MANIFEST, DOCKER_MEDIA_TYPE_MANIFEST)
"""Image manifests (one platform)."""
INDEX_MEDIA_TYPES = (MEDIA_TYPE_INDEX, DOCKER_MEDIA_TYPE_MANIFEST_LIST)
"""Image indexes (several platforms)."""
MANIFEST_ACCEPT = (
    MEDIA_TYPE_MANIFEST,
    MEDIA_TYPE_INDEX,
    DOCKER_MEDIA_TYPE_MANIFEST,
    DOCKER_MEDIA_TYPE_MANIFEST_LIST,
)
"""What envgraph asks registries for, in order of preference."""

# The registry cache's entries (one small OCI artifact per layer key).
LAYER_ARTIFACT_TYPE = "application/vnd.envgraph.layer.v1+json"
PATHS_MEDIA_TYPE = "application/vnd.envgraph.layer.paths.v1+json"
# OCI 1.1 referrers: an SBOM is an image manifest with this artifactType, the empty config and the SBOM as its
# one layer, whose `subject` is the image it describes.
MEDIA_TYPE_CYCLONEDX = "application/vnd.cyclonedx+json"
MEDIA_TYPE_SPDX = "application/spdx+json"
MEDIA_TYPE_EMPTY = "application/vnd.oci.empty.v1+json"
EMPTY_JSON = b"{}"
ANNOTATION_TITLE = "org.opencontainers.image.title"
ANNOTATION_LAYER_KEY = "dev.envgraph.layer.key"

# --- the compressor ---------------------------------------------------------------------------------------

GZIP_LEVEL = 2
"""ISA-L level 2: as fast as its level 1 and as small as zlib's level 2; building is the hot path."""
GZIP_MEMBER_SIZE = 2 << 20
"""Uncompressed bytes per gzip member: a layer is independent members compressed on several cores, and the
bytes depend on the member size (never on the thread count). Chosen by measurement on real layers (cuBLAS:
610 MB of tar, mostly binaries; torch: 1.16 GB, much Python source): ISA-L's speed is the same from 256 KiB
to 16 MiB members; restarting the window costs on torch +0.39% (256 KiB), +0.10% (1 MiB), +0.05% (2 MiB),
+0.03% (4 MiB) in size and nothing measurable on cuBLAS; peak RSS with two such layers built at once on two
threads is 86, 105 and 128 MB at 1, 2 and 4 MiB. 2 MiB is the middle ground."""
ZSTD_LEVEL = 3


@functools.cache
def _isal_version() -> str:
    from isal import ISAL_VERSION  # the bundled C library's version, which decides the bytes

    return str(ISAL_VERSION)


@functools.cache
def _zstd_version() -> str:
    import zstandard

    return ".".join(map(str, zstandard.ZSTD_VERSION))


class Compression(enum.Enum):
    """How a layer blob is compressed; :attr:`compressor_id` names everything its bytes depend on."""

    GZIP = "gzip"
    ZSTD = "zstd"
    NONE = "none"

    @property
    def media_type(self) -> str:
        return {
            Compression.GZIP: MEDIA_TYPE_LAYER_GZIP,
            Compression.ZSTD: MEDIA_TYPE_LAYER_ZSTD,
            Compression.NONE: MEDIA_TYPE_LAYER_TAR,
        }[self]

    @property
    def compressor_id(self) -> str:
        """Goes into every layer key: the library, its version, the level and (for ISA-L, whose output depends
        on CPU dispatch and on where the input is split) the architecture family and the member size; zstd's
        multi-threaded mode (``-mt``) gives the same bytes for any worker count, but not the single-threaded
        mode's."""
        if self is Compression.GZIP:
            return f"gzip-{GZIP_LEVEL}-isal{_isal_version()}-{platform.machine()}-members{GZIP_MEMBER_SIZE}"
        if self is Compression.ZSTD:
            return f"zstd-{ZSTD_LEVEL}-libzstd{_zstd_version()}-check-mt"
        return "none"


DEFAULT_COMPRESSION = Compression.GZIP
"""Every layer envgraph writes: gzip is what Docker Engine 20.10 (Debian bookworm) can pull."""


def compression_of_media_type(media_type: str) -> Compression:
    """The compression a layer media type (OCI or Docker) says; ValueError for a non-layer type."""
    if media_type.endswith("+gzip") or media_type.endswith(".tar.gzip"):
        return Compression.GZIP
    if media_type.endswith("+zstd") or media_type.endswith(".tar.zstd"):
        return Compression.ZSTD
    if media_type.endswith(".tar") or media_type.endswith(".diff.tar"):
        return Compression.NONE
    raise ValueError(f"not a layer media type: {media_type!r}")


def layer_mtime() -> int:
    """``int(SOURCE_DATE_EPOCH)`` when set (and non-empty), else :data:`DEFAULT_MTIME`."""
    raw = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    if not raw:
        return DEFAULT_MTIME
    try:
        value = int(raw)
    except ValueError:
        raise BuildError(f"SOURCE_DATE_EPOCH must be an integer number of seconds, got {raw!r}") from None
    if value < 0:
        raise BuildError(f"SOURCE_DATE_EPOCH must not be negative, got {raw!r}")
    return value


def layer_format(compression: Compression) -> str:
    """Everything besides the content that a layer's bytes depend on (tar format, mtime, compressor)."""
    return f"{TAR_FORMAT};mtime={layer_mtime()};{compression.compressor_id}"


# --- names ------------------------------------------------------------------------------------------------


def drv12(drv: str) -> str:
    """The first 12 hex digits of a drv or an image id: what tags carry."""
    return digest_hex(drv)[:12]


def image_id(drv: str, files: Sequence[tuple[str, str]]) -> str:
    """What names an env's image: its drv when nothing of the image comes from the project's own files, else
    the drv together with the content hash of each ``files`` entry of the env and its ancestors ((dest,
    content) in image order).

    Code is not a dependency: the lock pins what the files are (src, dest, excludes, in the drv), not their
    content, which is hashed at build time. Editing code leaves the lockfile (and ``lock --check``) as they
    are and gives another image id, hence another tag and image. Envs without files keep tag = drv."""
    if not files:
        return drv
    return digest_of(
        {"kind": "envgraph-image", "layout": LAYOUT_VERSION, "drv": drv, "files": [list(f) for f in files]}
    )


def image_tag(env: str, ident: str) -> str:
    """An env's image in the store: ``<env>:<id12>``, ``ident`` its :func:`image_id` (or the image index's
    :func:`index_derivation`); ``<env>:latest`` points at the newest build."""
    return f"{env}:{drv12(ident)}"


def registry_tag(env: str, ident: str) -> str:
    """An env's image in a registry repository: ``<env>-<id12>`` (and ``<env>``)."""
    return f"{env}-{drv12(ident)}"


def referrers_tag(digest: str) -> str:
    """The OCI referrers tag schema: ``<alg>-<ref>`` (alg truncated to 32, ref to 64 characters), where a registry
    without the referrers API keeps the image index of the manifests whose subject is ``digest``."""
    alg, sep, ref = digest.partition(":")
    if not sep or not alg or not ref:
        raise ValueError(f"not a digest: {digest!r}")
    return f"{alg[:32]}-{ref[:64]}"


def cache_tag(key: str) -> str:
    """A layer key's entry in a registry cache: ``key-<64 hex>``."""
    return "key-" + digest_hex(key)


# --- lockfile hashes --------------------------------------------------------------------------------------


def resolution_inputs(
    *,
    env: str,
    requirements: Sequence[str],
    python: str,
    platform: str,
    libc: str,
    indexes: Sequence[str],
    find_links: Mapping[str, Sequence[str]],
    parent_pins: Mapping[str, str],
    resolver: Mapping[str, str],
    constraints: Sequence[str] = (),
    sources: Mapping[str, str] | None = None,
) -> str:
    """What resolving an env depends on; a lock is re-resolved only when this changes.

    ``find_links`` maps each relative directory to the wheel and sdist names in it; ``resolver`` the resolver's
    versions; ``constraints`` the lines of ``-c`` files; ``sources`` the content hash of each local directory
    a requirement names (its metadata may change with it). The last two are hashed only when present."""
    doc: dict[str, object] = {
        "kind": "envgraph-resolution",
        "lock-version": LOCK_VERSION,
        "env": env,
        "requirements": list(requirements),
        "python": python,
        "platform": platform,
        "libc": libc,
        "indexes": list(indexes),
        "find-links": {k: sorted(v) for k, v in find_links.items()},
        "parent-pins": dict(parent_pins),
        "resolver": dict(resolver),
    }
    if constraints:
        doc["constraints"] = list(constraints)
    if sources:
        doc["sources"] = dict(sorted(sources.items()))
    return digest_of(doc)


def apt_inputs(
    *,
    requested: Sequence[str],
    base: str,
    have: Mapping[str, str],
    architecture: str,
) -> str:
    """What resolving an env's Debian packages depends on: the requests, the base's identity (its installed set,
    suite and mirror) and the Debian packages its ancestors already pin (name -> version)."""
    return digest_of(
        {
            "kind": "envgraph-apt",
            "lock-version": LOCK_VERSION,
            "requested": sorted(requested),
            "base": base,
            "have": dict(sorted(have.items())),
            "architecture": architecture,
        }
    )


def base_inputs(
    *,
    debian: tuple[str, Sequence[str], str | None] | None,
    image: str | None,
    python: str | None,
    libc: str,
    platform: str,
) -> str:
    """What pinning a base depends on. ``debian`` is (suite, packages, mirror).

    Not the compressor: the lock pins the base's content (diff_id); how it is compressed is the builder's
    business and part of the layer key, so a faster compressor does not re-pin bases."""
    return digest_of(
        {
            "kind": "envgraph-base-inputs",
            "lock-version": LOCK_VERSION,
            "debian": None
            if debian is None
            else {"suite": debian[0], "packages": sorted(debian[1]), "mirror": debian[2]},
            "image": image,
            "python": python,
            "libc": libc,
            "platform": platform,
        }
    )


def base_identity(
    *,
    python: str | None,
    libc: str,
    architecture: str | None,
    python_version: str | None,
    debian: Mapping[str, object] | None,
    image: Mapping[str, object] | None,
) -> str:
    """What a base contributes to its envs' drvs: every field of its pin (for a Debian base the suite, the
    requested packages, the mirror, every installed package's version and the root filesystem's diff_id; for
    an image base the reference, the pinned manifest digest and its layer count), so that no edit of a base
    lock goes unnoticed by ``lock --check``."""
    return digest_of(
        {
            "kind": "envgraph-base",
            "python": python,
            "libc": libc,
            "architecture": architecture,
            "python-version": python_version,
            "debian": None if debian is None else dict(debian),
            "image": None if image is None else dict(image),
        }
    )


def derivation(
    *,
    env: str,
    source: str,
    packages: Sequence[tuple[str, str, str, str, int, str]],
    merged: Sequence[str],
    environment: Mapping[str, str],
    files: Sequence[tuple[str, str, Sequence[str]]],
    workdir: str | None,
    entrypoint: Sequence[str] | None,
    cmd: Sequence[str] | None,
    python: str,
    platform: str,
    bytecode: bool,
    debian: Sequence[tuple[str, str, str, str, int, str]] = (),
    built: Sequence[Mapping[str, object]] = (),
    build_debian: Sequence[tuple[str, str, str, str, int, str]] = (),
    user: str | None = None,
    ports: Sequence[str] = (),
    labels: Mapping[str, str] | None = None,
) -> str:
    """The drv: everything that determines an env's image, and everything its lockfile pins. ``source`` is the
    parent's drv or the base's identity; ``packages`` are (name, version, wheel file name, sha256, size, url);
    ``files`` (dest, src, declared excludes): what the files are, not their content (see :func:`image_id`). ``debian`` are the Debian packages the env adds and ``build_debian`` those
    of its build environment, each (name, version, architecture, sha256, size, pool path); ``built`` the packages
    built from source, each every field its lockfile pins. ``user``, ``ports`` and ``labels`` (full label keys,
    an explicit ``org.opencontainers.image.created`` included) are the env's own image settings. These six are
    hashed only when present, so envs without them keep their drvs."""
    doc: dict[str, object] = {
        "kind": "envgraph-derivation",
        "layout": LAYOUT_VERSION,
        "env": env,
        "from": source,
        "packages": [list(p) for p in sorted(packages)],
        "merged": sorted(merged),
        "environment": dict(environment),
        "files": [[dest, src, list(exclude)] for dest, src, exclude in files],
        "workdir": workdir,
        "entrypoint": list(entrypoint) if entrypoint is not None else None,
        "cmd": list(cmd) if cmd is not None else None,
        "python": python,
        "platform": platform,
        "bytecode": bytecode,
    }
    if debian:
        doc["debian"] = [list(d) for d in sorted(debian)]
    if built:
        doc["built"] = sorted((dict(b) for b in built), key=lambda b: str(b.get("name")))
    if build_debian:
        doc["build-debian"] = [list(d) for d in sorted(build_debian)]
    if user is not None:
        doc["user"] = user
    if ports:
        doc["ports"] = sorted(ports)
    if labels:
        doc["labels"] = dict(labels)
    return digest_of(doc)


def index_derivation(drvs: Mapping[str, str]) -> str:
    """The id of a multi-platform env's image index (what its store tag and registry tag name): the
    :func:`image_id` of each platform's image, by platform name."""
    return digest_of(
        {"kind": "envgraph-image-index", "layout": LAYOUT_VERSION, "platforms": dict(sorted(drvs.items()))}
    )


# --- layer keys -------------------------------------------------------------------------------------------


@functools.cache
def _installer_version() -> str:
    """installer's version, as ``importlib.metadata.version`` gives it. Every build plans with it, and
    importlib.metadata costs 20-40 ms (e-mail and zip parsers, a scan of every path entry): the ``Version``
    of the one ``installer-*.dist-info`` beside the package is read instead when it is there."""
    import importlib.util  # not `import installer`: a no-op build need not load it

    spec = importlib.util.find_spec("installer")
    if spec is not None and spec.origin is not None:
        site = os.path.dirname(os.path.dirname(spec.origin))
        infos = [n for n in os.listdir(site) if n.startswith("installer-") and n.endswith(".dist-info")]
        if len(infos) == 1:
            try:
                with open(os.path.join(site, infos[0], "METADATA"), encoding="utf-8") as f:
                    for line in f:
                        if line.startswith("Version:"):
                            return line.partition(":")[2].strip()
                        if not line.strip():  # the end of the headers
                            break
            except OSError:
                pass
    import importlib.metadata

    return importlib.metadata.version("installer")


@frozen
class InstallTarget:
    """Where and for what interpreter packages are installed; part of every package layer key."""

    python: str  # "3.11"
    interpreter: str  # the base's interpreter path, e.g. /usr/bin/python3.11
    bytecode: bool = True
    compression: Compression = DEFAULT_COMPRESSION

    @property
    def site_packages(self) -> str:
        return f"{VENV}/lib/python{self.python}/site-packages"

    def scheme(self) -> dict[str, str]:
        return {
            "purelib": self.site_packages,
            "platlib": self.site_packages,
            "headers": f"{VENV}/include/site/python{self.python}",
            "scripts": f"{VENV}/bin",
            "data": VENV,
        }

    def identity(self) -> dict[str, object]:
        return {
            "prefix": VENV,
            "python": self.python,
            "interpreter": self.interpreter,
            # pyc files are only deterministic with hash-based invalidation from the target's own version.
            "bytecode": f"cp{self.python.replace('.', '')}-checked-hash" if self.bytecode else "none",
            "layer": layer_format(self.compression),
            "format": LAYER_FORMAT,
            # installer writes the launchers and RECORD: its version decides bytes too.
            "installer": _installer_version(),
        }


def venv_key(target: InstallTarget) -> str:
    return digest_of({"kind": "venv", **target.identity()})


def package_key(target: InstallTarget, wheels: Sequence[tuple[str, str]]) -> str:
    """``wheels`` are (filename, sha256); several for a merged layer."""
    return digest_of({"kind": "packages", "wheels": sorted([list(w) for w in wheels]), **target.identity()})


def files_key(compression: Compression, dest: str, content: str) -> str:
    return digest_of({"kind": "files", "dest": dest, "content": content, "layer": layer_format(compression)})


def debian_key(suite: str, versions: Mapping[str, str], diff_id: str, compression: Compression) -> str:
    """A Debian base's root filesystem layer: its pinned content (not where it is fetched from)."""
    return digest_of(
        {
            "kind": "debian",
            "suite": suite,
            "versions": dict(versions),
            "diff-id": diff_id,
            "compressor": compression.compressor_id,
        }
    )


def deb_package_key(
    deb_sha256: str, merged_usr: Collection[str], path_filters: Sequence[str], compression: Compression
) -> str:
    """A Debian package's layer: the .deb's sha256, the base's directories linked into /usr (a set), dpkg's
    path filters (in order: the last match wins) and the layer format."""
    return digest_of(
        {
            "kind": "debian-package",
            "deb_sha256": deb_sha256,
            "extract": DEB_FORMAT,
            "merged_usr": sorted(merged_usr),
            "path_filters": list(path_filters),
            "layer": layer_format(compression),
        }
    )


def wheel_build_key(
    *,
    name: str,
    version: str,
    source: Mapping[str, object],
    backend: str,
    backend_path: Sequence[str],
    requires: Sequence[str],
    environment: Mapping[str, object],
    python: str,
    interpreter: str,
    platform: str,
) -> str:
    """A wheel built from source (it is stored and cached like a layer, under this key): everything that went into
    it. ``source`` is what the lockfile pins of it (kind, sha256, commit...), ``requires`` the sha256 of every build
    dependency wheel, ``environment`` the build root's content (the base's root filesystem and every Debian
    package in it); the build's own rules (:data:`BUILD_FORMAT`) and ``SOURCE_DATE_EPOCH`` are part of it too.
    The key is input-addressed: a build that is not bit-for-bit reproducible still gives one wheel per key."""
    return digest_of(
        {
            "kind": "wheel-build",
            "format": BUILD_FORMAT,
            "name": name,
            "version": version,
            "source": dict(source),
            "backend": backend,
            "backend-path": list(backend_path),
            "requires": sorted(requires),
            "environment": dict(environment),
            "python": python,
            "interpreter": interpreter,
            "platform": platform,
            "source-date-epoch": layer_mtime(),
        }
    )


def built_wheel_id(name: str, version: str, build_key: str) -> tuple[str, str]:
    """What stands for a built wheel in :func:`package_key` (which takes (file name, sha256) pairs): its name and
    version, and the hex of its build key instead of the (not yet known) wheel's sha256."""
    return (f"{name}-{version}.built", digest_hex(build_key))
