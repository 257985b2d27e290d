"""The one hasher: canonical JSON and sha256 digests.

Everything envgraph hashes (lock inputs, derivations, layer keys) goes through
:func:`canonical_json` so that dict order, whitespace and locale never change a digest.
"""

from __future__ import annotations

import errno
import fnmatch
import hashlib
import json
import re
import stat
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "CHUNK",
    "canonical_json",
    "sha256_hex",
    "sha256_digest",
    "digest_of",
    "file_sha256",
    "stream_sha256",
    "DIGEST_RE",
    "is_digest",
    "digest_hex",
    "tree_sha256",
]

CHUNK = 1 << 20


def canonical_json(value: Any) -> bytes:
    """Sorted keys, no insignificant whitespace, UTF-8: the same value always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_digest(data: bytes) -> str:
    """An OCI-style digest string ``sha256:<hex>``."""
    return "sha256:" + sha256_hex(data)


def digest_of(value: Any) -> str:
    """Digest of a JSON-able value's canonical encoding."""
    return sha256_digest(canonical_json(value))


DIGEST_RE = re.compile(r"^sha256:[0-9a-f]{64}\Z")
"""The only digests envgraph accepts anywhere (store, registry, lockfiles, keys): sha256, lowercase hex."""


def is_digest(value: object) -> bool:
    return isinstance(value, str) and DIGEST_RE.match(value) is not None


def digest_hex(digest: str) -> str:
    """``sha256:<64 hex>`` -> the hex part; ValueError for anything else (callers turn it into their error).

    Hex parts become file names (blobs, key records, locks): this check is what makes that safe."""
    if not is_digest(digest):
        raise ValueError(f"invalid digest {digest!r}: expected sha256:<64 lowercase hex>")
    return digest[7:]


def stream_sha256(stream: IO[bytes]) -> tuple[str, int]:
    """Hash a stream in chunks; returns (hex, size)."""
    h = hashlib.sha256()
    size = 0
    while chunk := stream.read(CHUNK):
        h.update(chunk)
        size += len(chunk)
    return h.hexdigest(), size


def file_sha256(path: Path) -> tuple[str, int]:
    with open(path, "rb") as f:
        return stream_sha256(f)


def tree_sha256(root: Path, paths: Iterable[Path] | None = None) -> str:
    """Content hash of a file or directory tree: relative paths, file contents, executable bits, symlink targets.

    Independent of mtimes, owners and absolute location.
    """
    root = Path(root)
    if not root.is_dir() or root.is_symlink():
        entries = [_entry(root, ".")]
    else:
        selected = sorted(paths) if paths is not None else sorted(p for p in root.rglob("*"))
        entries = [_entry(p, p.relative_to(root).as_posix()) for p in selected]
    return digest_of(entries)


def _entry(path: Path, rel: str) -> list[str]:
    if path.is_symlink():
        return [rel, "symlink", str(path.readlink())]
    if path.is_dir():
        return [rel, "dir"]
    mode = path.stat().st_mode
    if not stat.S_ISREG(mode):  # a FIFO would block the read forever; devices and sockets have no content
        raise OSError(errno.EINVAL, "not a regular file, directory or symbolic link", str(path))
    hexd, _ = file_sha256(path)
    return [rel, "exec" if mode & 0o111 else "file", hexd]


# Never part of an env's files: what running the code locally leaves behind (and would otherwise be shipped).
DEFAULT_EXCLUDE = ("__pycache__", "*.pyc")
IGNORE_FILE = ".envgraphignore"


def exclude_patterns(root: Path, exclude: Iterable[str] = ()) -> tuple[str, ...]:
    """The defaults, the declared ``exclude`` globs, and the lines of ``root/.envgraphignore`` (and that file)."""
    patterns = [*DEFAULT_EXCLUDE, *exclude]
    ignore = Path(root) / IGNORE_FILE
    if Path(root).is_dir() and ignore.is_file():
        patterns.append(IGNORE_FILE)
        for line in ignore.read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                patterns.append(line)
    return tuple(patterns)


def is_excluded(rel: str, patterns: Iterable[str]) -> bool:
    """Whether the relative path ``rel`` (posix) is excluded: a pattern without '/' matches any path component
    (``__pycache__``, ``*.pyc``, ``.git``); one with '/' matches the path from the root (``data/*.csv``), and a
    directory that matches excludes everything below it."""
    parts = rel.strip("/").split("/")
    for pat in patterns:
        pat = pat.strip().rstrip("/")
        if not pat:
            continue
        if "/" in pat.lstrip("/"):
            pat = pat.lstrip("/")
            if any(fnmatch.fnmatchcase("/".join(parts[: i + 1]), pat) for i in range(len(parts))):
                return True
        elif any(fnmatch.fnmatchcase(part, pat.lstrip("/")) for part in parts):
            return True
    return False


def files_content(src: Path, exclude: Iterable[str] = ()) -> str:
    """The content hash of an env's ``files`` entry: the tree under ``src`` without what is excluded (the
    defaults, the declared globs, ``.envgraphignore``), or the one file ``src``. Hashed at build time, never
    pinned (code is not a dependency)."""
    if src.is_dir():
        return tree_sha256(src, tree_paths(src, exclude_patterns(src, exclude)))
    return tree_sha256(src)


def tree_paths(root: Path, patterns: Iterable[str]) -> list[Path]:
    """Every path under ``root`` that is not excluded (nothing below an excluded directory)."""
    root = Path(root)
    pats = tuple(patterns)
    return sorted(p for p in root.rglob("*") if not is_excluded(p.relative_to(root).as_posix(), pats))
