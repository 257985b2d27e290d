"""The one way envgraph writes a file: into a temp file beside it (or in a given temp dir on the same file
system), flushed and fsynced, then renamed over the final name, so a reader or a crash never sees half a file.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["atomic_output", "atomic_write"]


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
