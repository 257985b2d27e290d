"""The one way envgraph writes a file: into a temp file beside it (or in a given temp dir on the same file
system), flushed and fsynced, then renamed over the final name, so a reader or a crash never sees half a file.

Also where downloads are cached (:func:`cache_dir`) and the one rule for trusting a cached download again
(:func:`cached_file_ok`): a file enters a cache only after it hashed right, a stamp beside it records its
size, mtime and inode at that moment, and it is used again only while the stamp matches (else it is
rehashed, and removed when its bytes no longer match).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from envgraph._hashing import file_sha256

__all__ = ["atomic_output", "atomic_write", "cache_dir", "cached_file_ok", "stamp_file"]


@contextlib.contextmanager
def atomic_output(path: Path, *, tmp_dir: Path | None = None, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through; it replaces ``path`` only when the block ends normally."""
    path = Path(path)
    directory = tmp_dir if tmp_dir is not None else path.parent
    fd, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name[:64]}.", suffix=".tmp")
    fcntl.flock(fd, fcntl.LOCK_EX)  # a store's clean_tmp never removes a temp file a live writer holds
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, mode)
        os.replace(name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        raise


def atomic_write(
    path: Path,
    data: bytes | str,
    *,
    tmp_dir: Path | None = None,
    mode: int = 0o644,
    only_if_changed: bool = False,
) -> bool:
    """Write ``data`` (text is UTF-8) to ``path`` atomically; returns whether it wrote.

    With ``only_if_changed``, an identical file is left alone, so mtimes and diffs stay quiet."""
    raw = data.encode("utf-8") if isinstance(data, str) else data
    if only_if_changed:
        try:
            if Path(path).read_bytes() == raw:
                return False
        except FileNotFoundError:
            pass
    with atomic_output(path, tmp_dir=tmp_dir, mode=mode) as f:
        f.write(raw)
    return True


def cache_dir() -> Path:
    """envgraph's download cache: ``$ENVGRAPH_CACHE``, else ``$XDG_CACHE_HOME/envgraph`` (``~/.cache/envgraph``)."""
    base = os.environ.get("ENVGRAPH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "envgraph"
    )
    return Path(base)


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".stamp")


def _stamp_of(path: Path) -> bytes:
    st = path.stat()
    return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}\n".encode()


def stamp_file(path: Path) -> None:
    """Record that ``path`` was just verified (call it right after the file hashed right)."""
    atomic_write(_stamp_path(path), _stamp_of(path), only_if_changed=True)


def cached_file_ok(path: Path, sha256: str, size: int) -> bool:
    """Whether the cached ``path`` holds exactly the bytes of ``sha256`` and ``size``: its stamp matches, or it
    hashes right now (then restamped). A damaged file is removed (the caller fetches it again)."""
    try:
        current = _stamp_of(path)
    except FileNotFoundError:
        return False
    try:
        if _stamp_path(path).read_bytes() == current:
            return True
    except OSError:
        pass
    hexd, actual = file_sha256(path)
    if hexd != sha256 or actual != size:
        path.unlink(missing_ok=True)
        _stamp_path(path).unlink(missing_ok=True)
        return False
    atomic_write(_stamp_path(path), current)
    return True
