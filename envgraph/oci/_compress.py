"""Deterministic layer compression (which compressor, its format and its id are :mod:`envgraph.identity`'s
rules: every compression has a :attr:`~envgraph.identity.Compression.compressor_id`, e.g.
``gzip-2-isal2.32.1-x86_64-members2097152``, that goes into layer keys).

- gzip: ISA-L (``isal``, which bundles its own copy) at level 2, as **independent gzip members of
  :data:`~envgraph.identity.GZIP_MEMBER_SIZE` uncompressed bytes each** (the last one shorter), concatenated in order.
  Concatenated members are one valid gzip stream (RFC 1952; Go's reader, hence Docker, containerd and
  registries, and Python's read them as one), and members are independent, so they are compressed on
  several cores at once. Each member is one ISA-L compressor fed the whole member at once, with its
  gzip wrapper written by ISA-L (mtime 0, no file name, no comment): its bytes depend only on the
  member's bytes, the ISA-L version and (through its CPU dispatch) the architecture family, never on the
  thread count or on how a producer split its writes. Other gzip streams (pulled, imported) are only
  ever decompressed;
- zstd: ``zstandard`` with level 3, content checksum on, content size off, in libzstd's multi-threaded
  mode with at least one worker: that output is the same for any worker count (but differs from the
  single-threaded mode's, hence ``-mt`` in the id);
- none: the tar as-is.

Gzip members are compressed on one process-wide thread pool (:func:`compression_threads` workers)
shared by every layer being built at once; ISA-L releases the GIL while it compresses. A layer's own
thread hashes its input and writes the members in order, so the producer (unzipping, tar framing) only
buffers; at most ``threads + 1`` members wait, so memory stays bounded whatever the layer's size. A layer
of one member never leaves the caller's thread.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import os
import queue
import threading
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, BinaryIO, Protocol, cast

import zstandard
from isal import igzip, isal_zlib

from envgraph import identity
from envgraph._hashing import CHUNK
from envgraph.identity import GZIP_LEVEL, ZSTD_LEVEL, Compression

__all__ = [
    "THREADS_ENV",
    "Compressor",
    "Decompressor",
    "Sink",
    "compression_threads",
    "open_decompressed",
    "sniff_compression",
]

THREADS_ENV = "ENVGRAPH_COMPRESS_THREADS"
"""Overrides the number of compression threads (default: the CPUs this process may run on)."""

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Sink(Protocol):
    def write(self, data: bytes | bytearray, /) -> object: ...


def compression_threads() -> int:
    """Threads that compress gzip members: ``$ENVGRAPH_COMPRESS_THREADS``, else the CPUs this process may use."""
    raw = os.environ.get(THREADS_ENV, "").strip()
    if raw.isdigit() and int(raw) > 0:
        return int(raw)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(threads: int) -> ThreadPoolExecutor:
    """The process-wide pool of ``threads`` workers, shared by every layer compressed at once."""
    with _pools_lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="envgraph-gzip")
        return pool


def _gzip_member(data: bytes | bytearray) -> bytes:
    """One gzip member of ``data``, given to ISA-L in one call: its output depends on where its input is
    split (not on how its output is buffered), so the member is never fed in pieces.

    A compressor object rather than ``isal_zlib.compress``, whose output buffer, grown by doubling from
    16 KiB, left the allocator holding much more memory at peak (two 600 MB layers at once on two
    threads, 4 MiB members: 196 MB peak RSS instead of 139 MB). Their bytes differ only where ``compress``, seeing the
    end of the input, stores small incompressible inputs uncompressed."""
    z = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
    return z.compress(data) + z.flush()


class _InOrder:
    """A layer's in-order tail, on its own thread: hashes each member's input (the diff_id) and writes
    its compressed bytes to the sink as soon as the pool has them, so the producer only buffers.

    Started for a layer's first full member; at most ``limit`` members wait for it.
    """

    def __init__(self, sink: Sink, input_hash: Any, limit: int) -> None:
        self._sink = sink
        self._hash = input_hash
        self._queue: queue.Queue[tuple[bytearray, Future[bytes]] | None] = queue.Queue(limit)
        self._outstanding: collections.deque[Future[bytes]] = collections.deque()  # not written yet
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="envgraph-gzip-writer", daemon=True)
        self._thread.start()

    def put(self, unit: bytearray, member: Future[bytes]) -> None:
        if self.error is not None:
            member.cancel()
            raise self.error
        self._outstanding.append(member)
        self._queue.put((unit, member))  # blocks while ``limit`` wait: memory stays bounded

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            unit, member = item
            try:
                if self.error is None:  # else keep draining, so the producer never blocks on a dead writer
                    self._hash.update(unit)
                    out = member.result()
                    if self.error is None:  # not cancelled meanwhile
                        self._sink.write(out)
            except BaseException as e:  # the sink's error (disk full) or a cancelled member
                self.error = e
            finally:
                self._outstanding.popleft()

    def cancel(self) -> None:
        """Stop: members not started yet are dropped, the others' output is discarded."""
        self.error = self.error or RuntimeError("compression aborted")
        for member in list(self._outstanding):
            member.cancel()
        with contextlib.suppress(BaseException):
            self.close()

    def close(self) -> None:
        """Wait until every queued member is written; raise the first error."""
        self._queue.put(None)
        self._thread.join()
        if self.error is not None:
            raise self.error


class Compressor:
    """Streams compressed bytes into ``sink`` and hashes the uncompressed input (:attr:`input_digest`,
    a layer's diff_id); call :meth:`finish` once at the end (``sink`` stays open).

    ``threads`` (default :func:`compression_threads`) is the size of the shared pool gzip members go to;
    with 1, or for a layer of one member, everything happens in the caller's thread. Otherwise the
    sink is written, in order, by the layer's :class:`_InOrder` thread until :meth:`finish` returns.
    The output is the same for every ``threads``. After an error elsewhere, call :meth:`abort`.
    """

    def __init__(self, compression: Compression, sink: Sink, *, threads: int | None = None) -> None:
        self.compression = compression
        self._sink = sink
        self._threads = max(1, compression_threads() if threads is None else threads)
        self._hash = hashlib.sha256()
        self.input_size = 0
        self._unit = identity.GZIP_MEMBER_SIZE if compression is Compression.GZIP else CHUNK
        self._buf = bytearray()  # input not emitted yet, less than one unit
        self._in_order: _InOrder | None = None
        self._units = 0  # full units emitted so far
        self._z: zstandard.ZstdCompressionObj | None = None
        if compression is Compression.ZSTD:
            # At least one worker: multi-threaded output is the same for any number of workers.
            zc = zstandard.ZstdCompressor(
                level=ZSTD_LEVEL, write_checksum=True, write_content_size=False, threads=self._threads
            )
            self._z = zc.compressobj()
        self._finished = False

    @property
    def input_digest(self) -> str:
        """``sha256:<hex>`` of everything written; final once :meth:`finish` returned."""
        return "sha256:" + self._hash.hexdigest()

    def _emit(self, unit: bytearray) -> None:
        """One full unit of input: a gzip member to compress, or a fixed-size feed."""
        self._units += 1
        if self.compression is Compression.GZIP and self._threads > 1:
            if self._in_order is None:
                self._in_order = _InOrder(self._sink, self._hash, limit=self._threads + 1)
            self._in_order.put(unit, _pool(self._threads).submit(_gzip_member, unit))
            return
        self._hash.update(unit)
        if self.compression is Compression.GZIP:
            self._sink.write(_gzip_member(unit))
        elif self._z is not None:
            out = self._z.compress(unit)
            if out:
                self._sink.write(out)
        else:
            self._sink.write(unit)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._finished:
            raise ValueError("compressor already finished")
        view = memoryview(data).cast("B")
        n = len(view)
        self.input_size += n
        unit = self._unit
        while view:
            room = unit - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) == unit:
                # The full unit goes on as it is (no copy); a fresh buffer takes the next bytes.
                full, self._buf = self._buf, bytearray()
                self._emit(full)
        return n

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        tail, self._buf = self._buf, bytearray()
        if self.compression is Compression.GZIP:
            # The short last member in this thread while the pool finishes the others (no hand-off at
            # all for a layer of one member). An empty layer is one empty member; a layer of whole
            # members has no short one.
            out = _gzip_member(tail) if tail or not self._units else b""
            if self._in_order is not None:
                self._in_order.close()
            self._hash.update(tail)
            if out:
                self._sink.write(out)
        else:
            if tail:
                self._emit(tail)
            if self._z is not None:
                out = self._z.flush()
                if out:
                    self._sink.write(out)

    def abort(self) -> None:
        """Drop whatever is still queued (after an error elsewhere); the compressor is finished."""
        self._finished = True
        if self._in_order is not None:
            self._in_order.cancel()
        self._buf = bytearray()


def sniff_compression(head: bytes) -> Compression:
    """Compression of a layer blob from its first bytes (gzip or zstd magic, else plain tar)."""
    if head.startswith(_GZIP_MAGIC):
        return Compression.GZIP
    if head.startswith(_ZSTD_MAGIC):
        return Compression.ZSTD
    return Compression.NONE


class Decompressor:
    """Push-style decompression: :meth:`feed` compressed bytes, get the decompressed ones back.

    Gzip (by ISA-L, about three times zlib's speed) may hold several members, zstd several frames.
    Raises the library's error on corrupt input.
    """

    def __init__(self, compression: Compression) -> None:
        self.compression = compression
        self._z: Any = self._new()

    def _new(self) -> Any:
        if self.compression is Compression.GZIP:
            return isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
        if self.compression is Compression.ZSTD:
            return zstandard.ZstdDecompressor().decompressobj()
        return None

    def feed(self, data: bytes) -> bytes:
        if self._z is None:
            return data
        out = []
        while data:
            out.append(bytes(self._z.decompress(data)))
            if not self._z.eof:
                break
            data = self._z.unused_data  # the next gzip member or zstd frame
            self._z = self._new()
        return b"".join(out)

    def flush(self) -> bytes:
        """Whatever is still buffered at the end of the input."""
        return bytes(self._z.flush()) if self.compression is Compression.GZIP else b""


def open_decompressed(stream: BinaryIO, compression: Compression) -> BinaryIO:
    """A readable stream of the uncompressed tar (``stream`` is not closed by closing the result)."""
    if compression is Compression.GZIP:
        return cast(BinaryIO, igzip.IGzipFile(fileobj=stream, mode="rb"))  # type: ignore[no-untyped-call]
    if compression is Compression.ZSTD:
        reader = zstandard.ZstdDecompressor().stream_reader(stream, closefd=False, read_across_frames=True)
        return cast(BinaryIO, reader)
    return stream
