"""Counters that several threads may update: what registry transfers and the layer cache did."""

from __future__ import annotations

import threading

import attrs

__all__ = ["Counters", "RegistryStats", "CacheStats"]


@attrs.define
class Counters:
    """Integer counters that several threads may update; subclasses declare the fields."""

    _lock: threading.Lock = attrs.field(factory=threading.Lock, repr=False, eq=False)

    def add(self, **counts: int) -> None:
        with self._lock:
            for name, n in counts.items():
                setattr(self, name, getattr(self, name) + n)


@attrs.define
class RegistryStats(Counters):
    """Counters for tests and push summaries."""

    bytes_uploaded: int = 0
    blobs_uploaded: int = 0
    blobs_mounted: int = 0
    blobs_skipped: int = 0
    bytes_downloaded: int = 0
    requests: int = 0


@attrs.define
class CacheStats(Counters):
    hits: int = 0
    misses: int = 0
    published: int = 0
    already_published: int = 0
    bytes_fetched: int = 0
