"""What a server has sent: bytes per blob, manifests, damaged blobs it refused to pass on."""

from __future__ import annotations

import threading
from collections import Counter

from attrs import frozen

__all__ = ["ServeStats", "StatsSnapshot"]


@frozen
class StatsSnapshot:
    requests: int
    blob_bytes: dict[str, int]  # digest -> body bytes sent (all requests for it together)
    blob_requests: dict[str, int]  # digest -> GET requests with a body
    manifest_requests: dict[str, int]  # digest -> GET requests with a body
    damaged: tuple[str, ...]  # digests cut off or refused because their bytes do not match

    @property
    def bytes_sent(self) -> int:
        return sum(self.blob_bytes.values())


class ServeStats:
    """Counters shared by the request handlers (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests = 0
        self._blob_bytes: Counter[str] = Counter()
        self._blob_requests: Counter[str] = Counter()
        self._manifest_requests: Counter[str] = Counter()
        self._damaged: list[str] = []

    def request(self) -> None:
        with self._lock:
            self._requests += 1

    def blob_started(self, digest: str) -> None:
        with self._lock:
            self._blob_requests[digest] += 1

    def blob_sent(self, digest: str, n: int) -> None:
        with self._lock:
            self._blob_bytes[digest] += n

    def manifest_sent(self, digest: str) -> None:
        with self._lock:
            self._manifest_requests[digest] += 1

    def damaged(self, digest: str) -> None:
        with self._lock:
            if digest not in self._damaged:
                self._damaged.append(digest)

    def snapshot(self) -> StatsSnapshot:
        with self._lock:
            return StatsSnapshot(
                self._requests,
                dict(self._blob_bytes),
                dict(self._blob_requests),
                dict(self._manifest_requests),
                tuple(self._damaged),
            )
