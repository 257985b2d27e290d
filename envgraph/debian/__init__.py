"""Debian: root filesystems with mmdebstrap, and Debian packages as their own content-addressed layers.

Debian packages are handled the way apko handles apk packages:

1. **Lock** (:func:`load_index`, :func:`resolve`): the suite's ``InRelease`` is checked with ``gpgv``
   against Debian's archive keyring, ``Packages`` is downloaded and checked against the signed sha256
   (and cached under it), and the requested packages are resolved against the base's installed set into
   :class:`DebPin` s (name, version, architecture, sha256, size, pool path), sorted by name. Only
   Depends and Pre-Depends are followed; Recommends and Suggests are not (like
   ``apt-get --no-install-recommends``), and what the base has is never added again.
2. **Build** (:func:`fetch_deb`, then :mod:`envgraph.builder._deb_layer`): builds never read the
   index; they fetch each pinned .deb by its sha256 and turn it into one deterministic layer.

This package is below :mod:`envgraph.lock` in the import layers (it needs nothing of envgraph but errors,
hashing and files), so the locker resolves Debian packages itself; the layer writer, which needs the
store, lives in the builder.

No maintainer script runs (no preinst/postinst, no triggers), as in apko and distroless images. What that
means in an image:

- **no ldconfig cache** for the new libraries: the dynamic loader still finds libraries in the standard
  and multiarch directories (``/usr/lib/x86_64-linux-gnu``...) by searching them after the cache, so
  ``DT_NEEDED`` links and ``dlopen("libgomp.so.1")`` work; libraries in directories that only an
  ``/etc/ld.so.conf.d`` snippet names are not found, and ``ctypes.util.find_library`` (which reads
  ``ldconfig -p``) does not list the new libraries;
- **no update-alternatives**: links such as ``/usr/bin/editor``, ``/usr/bin/java`` or the BLAS/LAPACK
  alternatives are not created; call the real path;
- no system users or groups are created, no services enabled, no caches (man-db, mime, icons, fonts,
  schemas) regenerated, no ``dpkg-divert``; dpkg's own database does not list the packages (each layer
  carries ``/var/lib/dpkg/status.d/<name>`` instead, which scanners read, as in distroless images);
- packages that need their postinst to work are **unsupported**: this is for runtime libraries and
  command line tools (``libgomp1``, ``libgl1``, ``jq``, database client libraries).

Extraction follows a merged-/usr base (``/lib -> usr/lib``...): files under the directories the base
links into ``/usr`` go under ``usr/``, where dpkg would put them on such a system; see
:mod:`envgraph.builder._deb_layer`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.debian._archive import DEFAULT_KEYRING as DEFAULT_KEYRING
    from envgraph.debian._archive import KEYRING_ENV as KEYRING_ENV
    from envgraph.debian._archive import default_keyring as default_keyring
    from envgraph.debian._archive import load_index as load_index
    from envgraph.debian._fetch import deb_cache_path as deb_cache_path
    from envgraph.debian._fetch import fetch_deb as fetch_deb
    from envgraph.debian._packages import DebPackage as DebPackage
    from envgraph.debian._packages import PackageIndex as PackageIndex
    from envgraph.debian._packages import Relation as Relation
    from envgraph.debian._resolve import DebPin as DebPin
    from envgraph.debian._resolve import resolve as resolve
    from envgraph.debian._rootfs import DEFAULT_MIRROR as DEFAULT_MIRROR
    from envgraph.debian._rootfs import MIRROR_ENV as MIRROR_ENV
    from envgraph.debian._rootfs import SLIM_DPKG_OPTIONS as SLIM_DPKG_OPTIONS
    from envgraph.debian._rootfs import DebianRootfs as DebianRootfs
    from envgraph.debian._rootfs import build_debian_rootfs as build_debian_rootfs
    from envgraph.debian._rootfs import default_mirror as default_mirror
    from envgraph.debian._version import compare_versions as compare_versions

# Lazy (PEP 562): a command loads only what it uses.
_EXPORTS = {
    "DEFAULT_KEYRING": "envgraph.debian._archive",
    "KEYRING_ENV": "envgraph.debian._archive",
    "default_keyring": "envgraph.debian._archive",
    "load_index": "envgraph.debian._archive",
    "deb_cache_path": "envgraph.debian._fetch",
    "fetch_deb": "envgraph.debian._fetch",
    "DebPackage": "envgraph.debian._packages",
    "PackageIndex": "envgraph.debian._packages",
    "Relation": "envgraph.debian._packages",
    "DebPin": "envgraph.debian._resolve",
    "resolve": "envgraph.debian._resolve",
    "DEFAULT_MIRROR": "envgraph.debian._rootfs",
    "DebianRootfs": "envgraph.debian._rootfs",
    "MIRROR_ENV": "envgraph.debian._rootfs",
    "SLIM_DPKG_OPTIONS": "envgraph.debian._rootfs",
    "build_debian_rootfs": "envgraph.debian._rootfs",
    "default_mirror": "envgraph.debian._rootfs",
    "compare_versions": "envgraph.debian._version",
}
__all__ = [
    "DEFAULT_KEYRING",
    "DEFAULT_MIRROR",
    "KEYRING_ENV",
    "MIRROR_ENV",
    "SLIM_DPKG_OPTIONS",
    "DebPackage",
    "DebPin",
    "DebianRootfs",
    "PackageIndex",
    "Relation",
    "build_debian_rootfs",
    "compare_versions",
    "deb_cache_path",
    "default_keyring",
    "default_mirror",
    "fetch_deb",
    "load_index",
    "resolve",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
