"""Where blobs were seen in registries: ``<store>/registry-blobs.json`` (host -> digest -> repository).

Written by pushes and by the registry cache, so that pushing to a new repository mounts the layers a cache
repository of the same registry already holds instead of uploading them. Only a hint for cross-repository
mounts: a wrong entry costs one mount attempt that falls back to an upload.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import threading
from pathlib import Path

from envgraph._fs import atomic_write

__all__ = ["KNOWN_BLOBS_FILE", "KnownBlobs"]

KNOWN_BLOBS_FILE = "registry-blobs.json"
MAX_KNOWN_PER_HOST = 200_000


class KnownBlobs:
    """``<store>/registry-blobs.json``: for each registry host, which repository holds which blob.

    Only a hint for cross-repository mounts: a wrong entry costs one mount attempt that falls back to an
    upload. Updates merge with what other processes wrote (read-modify-write under a file lock)."""

    def __init__(self, root: Path, tmp_dir: Path) -> None:
        self.path = root / KNOWN_BLOBS_FILE
        self._lock_path = tmp_dir / (KNOWN_BLOBS_FILE + ".lock")
        self._tmp_dir = tmp_dir
        self._mutex = threading.Lock()
        self._data: dict[str, dict[str, str]] = self._read()
        self._new: dict[str, dict[str, str]] = {}

    def _read(self) -> dict[str, dict[str, str]]:
        try:
            data = json.loads(self.path.read_bytes())
        except (FileNotFoundError, ValueError, OSError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {
            str(h): {str(d): str(r) for d, r in m.items()} for h, m in data.items() if isinstance(m, dict)
        }

    def where(self, host: str, digest: str) -> str | None:
        with self._mutex:
            return self._data.get(host, {}).get(digest)

    def anywhere(self, digest: str) -> str | None:
        """``HOST/REPO`` of a registry repository known to hold ``digest``, on any host."""
        with self._mutex:
            for host, blobs in sorted(self._data.items()):
                if digest in blobs:
                    return f"{host}/{blobs[digest]}"
        return None

    def saw(self, host: str, digest: str, repo: str) -> None:
        with self._mutex:
            if self._data.get(host, {}).get(digest) == repo:
                return
            self._data.setdefault(host, {})[digest] = repo
            self._new.setdefault(host, {})[digest] = repo

    def save(self) -> None:
        """Merge what this process learnt into the file (atomically); errors here never fail a push."""
        with self._mutex:
            new, self._new = self._new, {}
        if not new:
            return
        with contextlib.suppress(OSError):
            fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                merged = self._read()
                for host, blobs in new.items():
                    entry = merged.setdefault(host, {})
                    entry.update(blobs)
                    if len(entry) > MAX_KNOWN_PER_HOST:  # oldest first in insertion order
                        for digest in list(entry)[: len(entry) - MAX_KNOWN_PER_HOST]:
                            del entry[digest]
                data = json.dumps(merged, sort_keys=True, separators=(",", ":"))
                atomic_write(self.path, data, tmp_dir=self._tmp_dir)
                with self._mutex:
                    for host, blobs in merged.items():
                        self._data.setdefault(host, {}).update(blobs)
            finally:
                os.close(fd)
