"""The one way envgraph writes a file: into a temp file beside it (or in a given temp dir on the same file
system), flushed and fsynced, then renamed over the final name, so a reader or a crash never sees half a file.

Temp files and scratch directories are flocked by their writer for as long as it lives, so whoever comes next
(:func:`sweep_dead`) removes exactly what writers that were killed left behind.

Also where downloads are cached (:func:`cache_dir`) and the one rule for trusting a cached download again
(:func:`cached_file_ok`): a file enters a cache only after it hashed right, a stamp beside it records its
size, mtime and inode at that moment, and it is used again only while the stamp matches (else it is
rehashed, and removed when its bytes no longer match).

Also the one check of a path the user gave (:func:`path_problem`) and the one wording of an OS error
(:func:`os_error_text`), so that neither reaches the user as a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from envgraph._hashing import file_sha256

__all__ = [
    "atomic_output",
    "atomic_write",
    "cache_dir",
    "cached_file_ok",
    "stamp_file",
    "is_held",
    "locked_temp_dir",
    "sweep_dead",
    "new_temp_file",
    "read_regular",
    "path_problem",
    "os_error_text",
    "NAME_MAX",
    "PATH_MAX",
]

# Linux limits: a path component (file name) of at most 255 bytes, a whole path of at most 4095.
NAME_MAX = 255
PATH_MAX = 4095


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` can never name a file here (a NUL byte, a component or the whole too long), or None."""
    text = os.fspath(path)
    if "\x00" in text:
        return "contains a NUL byte"
    try:
        raw = os.fsencode(text)
    except UnicodeEncodeError:  # a lone surrogate, possible in JSON input
        return "contains characters no file name can hold"
    if len(raw) > PATH_MAX:
        return f"is {len(raw)} bytes long (the limit is {PATH_MAX})"
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX:
        return f"has a component of {len(longest)} bytes (the limit is {NAME_MAX})"
    return None


def read_regular(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a regular file; OSError for anything else (a FIFO named in a project must not hang us)."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fspath(path))
        os.set_blocking(fd, True)
        with os.fdopen(fd, "rb", closefd=False) as f:
            return f.read()
    finally:
        os.close(fd)


def os_error_text(err: OSError) -> str:
    """``PATH: reason`` on one line (both paths for a rename), for any OSError."""
    reason = err.strerror or str(err) or type(err).__name__
    names = [n for n in (err.filename, err.filename2) if n is not None]
    where = " -> ".join(os.fsdecode(n) if isinstance(n, bytes) else str(n) for n in names)
    return f"{where}: {reason}" if where else reason


@contextlib.contextmanager
def atomic_output(path: Path, *, tmp_dir: Path | None = None, mode: int = 0o644) -> Iterator[BinaryIO]:
    """A binary file to write ``path`` through; it replaces ``path`` only when the block ends normally."""
    path = Path(path)
    try:
        if tmp_dir is not None:  # a managed temp dir that sweeps clean: create the file locked
            fd, tmp = new_temp_file(tmp_dir, f".{path.name[:64]}.", ".tmp")
            name = str(tmp)
        else:
            fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:64]}.", suffix=".tmp")
    except OSError as e:  # name the file being written, not a temp name the user never chose
        raise OSError(e.errno, e.strerror, os.fspath(path)) from None
    try:
        with os.fdopen(fd, "wb") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.chmod(name, mode)
        os.replace(name, path)
    except BaseException as e:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(name)
        if type(e) is OSError and e.filename is None:  # a failed write (ENOSPC, EIO): say which file
            raise OSError(e.errno, e.strerror, os.fspath(path)) from e
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


@contextlib.contextmanager
def _creating(root: Path, *, exclusive: bool = False) -> Iterator[None]:
    """Held shared while a writer creates and locks a temp entry under ``root``, exclusively while a sweep runs:
    a sweep never sees an entry between its creation and its lock."""
    fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)  # the directory itself: no lock file to leave behind
    try:
        fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(fd)


def new_temp_file(root: Path, prefix: str, suffix: str = ".tmp") -> tuple[int, Path]:
    """A new file under ``root``, flocked by this process for as long as the returned descriptor is open."""
    with _creating(root):
        fd, name = tempfile.mkstemp(dir=root, prefix=prefix, suffix=suffix)
        fcntl.flock(fd, fcntl.LOCK_EX)
    return fd, Path(name)


@contextlib.contextmanager
def locked_temp_dir(root: Path, prefix: str) -> Iterator[Path]:
    """A private directory under ``root``, locked while in use (so sweeps leave it alone), removed afterwards."""
    root.mkdir(parents=True, exist_ok=True)
    with _creating(root):
        path = Path(tempfile.mkdtemp(prefix=prefix, dir=root))
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
        fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield path
    finally:
        remove_tree(path)
        os.close(fd)


def is_held(path: Path) -> bool:
    """Whether a live process holds ``path`` (a temp file or directory being written) locked."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def sweep_dead(root: Path, *, dry_run: bool = False) -> int:
    """Remove the temp files and directories under ``root`` that no live process holds; bytes freed."""
    freed = 0
    if not root.is_dir():
        return 0
    with _creating(root, exclusive=True):
        for p in root.iterdir():
            freed += _sweep_one(p, dry_run)
    return freed


def _sweep_one(p: Path, dry_run: bool) -> int:
    with contextlib.suppress(FileNotFoundError):
        st = p.lstat()
        if is_held(p):
            return 0
        if p.is_dir() and not p.is_symlink():
            freed = sum(f.lstat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
            if not dry_run:
                remove_tree(p)
            return freed
        if not dry_run:
            p.unlink()
        return st.st_size
    return 0


def remove_tree(top: Path | str) -> None:
    """``rm -rf`` that never crosses into another file system (a chroot's proc or dev mounts left by a killed
    builder must not be emptied)."""
    try:
        st = os.lstat(top)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        with contextlib.suppress(OSError):
            os.unlink(top)
        return
    dev = st.st_dev
    for root, dirs, files in os.walk(top, topdown=False):
        for name in files:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(root, name))
        for name in dirs:
            path = os.path.join(root, name)
            with contextlib.suppress(OSError):
                st = os.lstat(path)
                if st.st_dev != dev:
                    continue
                if os.path.islink(path):
                    os.unlink(path)
                else:
                    os.rmdir(path)
    with contextlib.suppress(OSError):
        os.rmdir(top)


def cache_dir() -> Path:
    """envgraph's cache (wheels, resolvers, scratch): ``$ENVGRAPH_CACHE``, else ``$XDG_CACHE_HOME/envgraph``."""
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
