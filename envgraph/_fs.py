"""The one way envgraph writes a file: into a temp file beside it (or in a given temp dir on the same file
system), flushed and fsynced, then renamed over the final name, so a reader or a crash never sees half a file.

Also the one check of a path the user gave (:func:`path_problem`) and the one wording of an OS error
(:func:`os_error_text`), so that neither reaches the user as a traceback.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = [
    "atomic_output",
    "atomic_write",
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
    directory = tmp_dir if tmp_dir is not None else path.parent
    try:
        fd, name = tempfile.mkstemp(dir=directory, prefix=f".{path.name[:64]}.", suffix=".tmp")
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
