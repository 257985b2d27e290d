"""Deterministic layer compression (which compressor and its id are :mod:`envgraph.identity`'s rules).

Compressed bytes depend on the library and its version as well as on the level, so every compression
has a :attr:`~envgraph.identity.Compression.compressor_id` (e.g. ``gzip-2-isal2.32.1-x86_64-feed1048576``)
that goes into layer keys.

- gzip: ISA-L (``isal``, which bundles its own copy) at level 2, the gzip wrapper written by it (mtime 0,
  no file name, no comment); about four times faster than zlib's level 1 for slightly smaller output.
  Its bytes depend on the ISA-L version and, through its CPU dispatch, on the architecture family, so both
  are in the id; other gzip streams (pulled, imported) are only ever decompressed;
- zstd: ``zstandard`` with level 3, single-threaded, content checksum on, content size off;
- none: the tar as-is.

Input is fed to the compressor in fixed 1 MiB chunks whatever the caller's write sizes, so the output
never depends on how a producer happened to split its writes.
"""

from __future__ import annotations

from typing import Any, BinaryIO, Protocol, cast

import zstandard
from isal import igzip, isal_zlib

from envgraph._hashing import CHUNK
from envgraph.identity import GZIP_LEVEL, ZSTD_LEVEL, Compression

__all__ = [
    "Compressor",
    "Decompressor",
    "Sink",
    "open_decompressed",
    "sniff_compression",
]

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


class Sink(Protocol):
    def write(self, data: bytes, /) -> object: ...


class Compressor:
    """Streams compressed bytes into ``sink``; call :meth:`finish` once at the end (``sink`` stays open)."""

    def __init__(self, compression: Compression, sink: Sink) -> None:
        self.compression = compression
        self._sink = sink
        self._buf = bytearray()
        self._z: isal_zlib.Compress | zstandard.ZstdCompressionObj | None
        if compression is Compression.GZIP:
            self._z = isal_zlib.compressobj(GZIP_LEVEL, isal_zlib.DEFLATED, 16 + isal_zlib.MAX_WBITS)
        elif compression is Compression.ZSTD:
            zc = zstandard.ZstdCompressor(
                level=ZSTD_LEVEL, write_checksum=True, write_content_size=False, threads=0
            )
            self._z = zc.compressobj()
        else:
            self._z = None
        self._finished = False

    def _feed(self, chunk: bytes) -> None:
        out = chunk if self._z is None else self._z.compress(chunk)
        if out:
            self._sink.write(out)

    def write(self, data: bytes | bytearray | memoryview) -> int:
        if self._finished:
            raise ValueError("compressor already finished")
        self._buf += data
        if len(self._buf) >= CHUNK:
            view = memoryview(self._buf)
            end = len(self._buf) - len(self._buf) % CHUNK
            for start in range(0, end, CHUNK):
                self._feed(bytes(view[start : start + CHUNK]))
            view.release()
            del self._buf[:end]
        return len(data)

    def finish(self) -> None:
        if self._finished:
            return
        self._finished = True
        if self._buf:
            self._feed(bytes(self._buf))
            self._buf.clear()
        if self._z is not None:
            tail = self._z.flush()
            if tail:
                self._sink.write(tail)


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
