"""Pinned .deb files by hash: what builds use (they never read the archive's index).

A .deb is cached at ``<cache>/debian/debs/<hex[:2]>/<hex>.deb``, a path made from its sha256 alone
(never from the pool path or package name). A download becomes visible only after its size and
sha256 matched the pin; a stamp beside it then records its size, mtime and inode, and a cached file is
reused only while its stamp matches, else rehashed (and downloaded again when its bytes no longer match),
as the wheel cache does (:func:`envgraph._fs.cached_file_ok`).
"""

from __future__ import annotations

import re
from pathlib import Path

from envgraph._fs import cache_dir, cached_file_ok, stamp_file
from envgraph.debian._download import check_mirror, download
from envgraph.debian._packages import check_filename
from envgraph.debian._resolve import DebPin
from envgraph.debian._rootfs import default_mirror
from envgraph.errors import BuildError, DebianError, HashMismatchError

__all__ = ["deb_cache_path", "fetch_deb"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")


def _cache_root(cache: Path | None) -> Path:
    if cache is not None:
        return Path(cache)
    return cache_dir() / "debian"


def deb_cache_path(sha256: str, cache: Path | None = None) -> Path:
    if not _SHA256_RE.match(sha256):
        raise BuildError(f"invalid sha256 {sha256!r} for a Debian package")
    return _cache_root(cache) / "debs" / sha256[:2] / f"{sha256}.deb"


def fetch_deb(pin: DebPin, *, mirror: str | None = None, cache: Path | None = None) -> Path:
    """The verified .deb of ``pin``: from the cache, else downloaded from ``mirror``/``pin.filename``."""
    dest = deb_cache_path(pin.sha256, cache)
    if cached_file_ok(dest, pin.sha256, pin.size):
        return dest
    try:
        filename = check_filename(pin.filename)
        base = check_mirror(mirror or default_mirror(), BuildError)
    except DebianError as err:
        raise BuildError(str(err)) from None
    url = f"{base}/{filename}"
    try:
        download(
            url,
            dest,
            sha256=pin.sha256,
            size=pin.size,
            what=f"Debian package {pin}",
            error=BuildError,
            mismatch=HashMismatchError,
        )
    except FileNotFoundError:
        raise BuildError(
            f"Debian package {pin} is no longer at {url}: relock, or set ENVGRAPH_DEBIAN_MIRROR "
            "to an archive snapshot that has it"
        ) from None
    stamp_file(dest)
    return dest
