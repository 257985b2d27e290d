"""Streaming a blob from its file: ranges, and a sha256 over the bytes so damage is never served as good.

A whole-blob GET hashes every byte on the way out and holds the last chunk back until the digest is
checked: a blob whose bytes do not match its name loses its end (the connection is closed short of
Content-Length) instead of arriving complete. A range of a blob not yet seen whole is served in the
same single pass over the file (hashing all of it, sending only the range); a blob that hashed right
is remembered by its file's identity (inode, size, mtime, ctime: any write changes ctime), so later
ranges are read directly.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
from collections.abc import AsyncIterator, Mapping
from typing import BinaryIO

import anyio.to_thread
from starlette.responses import StreamingResponse
from starlette.types import Receive, Scope, Send

from envgraph._hashing import CHUNK
from envgraph.server._stats import ServeStats

__all__ = ["RangeNotSatisfiable", "VerifiedBlobs", "BlobResponse", "parse_range"]

log = logging.getLogger("envgraph.server")

FileIdentity = tuple[int, int, int, int]


class RangeNotSatisfiable(Exception):
    """The Range header asks for bytes the blob does not have (416)."""


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The one byte range (first, last inclusive) a ``Range`` header asks for; None for the whole blob.

    Headers we do not understand (other units, several ranges, bad syntax) are ignored, as RFC 9110
    allows: the whole blob is sent with 200. A well-formed range outside the blob raises
    :class:`RangeNotSatisfiable`."""
    if header is None:
        return None
    unit, _, spec = header.strip().partition("=")
    if unit.strip().lower() != "bytes" or "," in spec:
        return None
    first_s, dash, last_s = spec.strip().partition("-")
    first_s, last_s = first_s.strip(), last_s.strip()
    if not dash or not (first_s.isdigit() or first_s == "") or not (last_s.isdigit() or last_s == ""):
        return None
    if first_s == "":
        if last_s == "":
            return None
        suffix = int(last_s)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(0, size - suffix), size - 1
    first = int(first_s)
    if last_s and int(last_s) < first:
        return None  # syntactically invalid: ignored
    if first >= size:
        raise RangeNotSatisfiable
    return first, min(int(last_s), size - 1) if last_s else size - 1


def file_identity(st: os.stat_result) -> FileIdentity:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


class VerifiedBlobs:
    """Digests whose file hashed right, by file identity (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._good: dict[str, FileIdentity] = {}

    def is_good(self, digest: str, identity: FileIdentity) -> bool:
        with self._lock:
            return self._good.get(digest) == identity

    def remember(self, digest: str, identity: FileIdentity) -> None:
        with self._lock:
            self._good[digest] = identity

    def forget(self, digest: str) -> None:
        with self._lock:
            self._good.pop(digest, None)


async def _nothing() -> AsyncIterator[bytes]:
    return
    yield b""  # pragma: no cover - makes this an async generator


def _read(f: BinaryIO, n: int, hasher: hashlib._Hash | None) -> bytes:
    data = f.read(n)
    if hasher is not None:
        hasher.update(data)  # hashlib releases the GIL for large buffers
    return data


class BlobResponse(StreamingResponse):
    """The bytes of one blob file (or one range of them), checked against ``digest`` on the way."""

    def __init__(
        self,
        file: BinaryIO,
        digest: str,
        identity: FileIdentity,
        byte_range: tuple[int, int] | None,
        *,
        headers: Mapping[str, str],
        verified: VerifiedBlobs,
        stats: ServeStats,
    ) -> None:
        super().__init__(
            _nothing(),
            status_code=206 if byte_range is not None else 200,
            headers=headers,
            media_type="application/octet-stream",
        )
        self.file = file  # opened by the handler (a vanished file is a 404 there); closed here
        self.digest = digest
        self.identity = identity
        self.size = identity[1]
        self.byte_range = byte_range
        self.verified = verified
        self.stats = stats

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            await anyio.to_thread.run_sync(self.file.close)

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        first, last = self.byte_range if self.byte_range is not None else (0, self.size - 1)
        check = self.byte_range is None or not self.verified.is_good(self.digest, self.identity)
        hasher = hashlib.sha256() if check else None
        self.stats.blob_started(self.digest)
        f = self.file
        pos = 0 if check else first
        end = self.size if check else last + 1
        pending = b""
        try:
            if pos:
                await anyio.to_thread.run_sync(f.seek, pos)
            while pos < end:
                data = await anyio.to_thread.run_sync(_read, f, min(CHUNK, end - pos), hasher)
                if not data:
                    break  # the file is shorter than it was: the digest check below fails
                lo, hi = max(first - pos, 0), min(last + 1 - pos, len(data))
                pos += len(data)
                if lo < hi:
                    if pending:
                        await self._send(send, pending, more=True)
                    pending = data[lo:hi]
            extra = await anyio.to_thread.run_sync(_read, f, 1, hasher) if hasher is not None else b""
        except OSError as err:
            log.error("reading blob %s failed: %s: cut off", self.digest, err.strerror or err)
            return
        if hasher is not None:
            actual = "sha256:" + hasher.hexdigest()
            if actual != self.digest or pos != self.size or extra:  # extra: the file grew
                self.verified.forget(self.digest)
                self.stats.damaged(self.digest)
                log.error(
                    "blob %s is damaged in the store (its content hashes to %s): cut off, not served; "
                    "run `envgraph verify`",
                    self.digest,
                    actual,
                )
                return  # without the final chunk and end of body: the client sees a short read
            self.verified.remember(self.digest, self.identity)
        await self._send(send, pending, more=False)

    async def _send(self, send: Send, data: bytes, *, more: bool) -> None:
        await send({"type": "http.response.body", "body": data, "more_body": more})
        self.stats.blob_sent(self.digest, len(data))
