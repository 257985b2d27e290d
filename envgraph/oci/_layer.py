"""Writing layer blobs in one pass: tar -> compressor (diff_id hash) -> store (digest hash).

The uncompressed tar is never stored: a producer writes it into a sink that feeds the compressor,
which hashes it (the diff_id) and compresses it on the fly into a store blob writer (which hashes the
compressed bytes, the digest, and moves the finished blob into ``blobs/sha256/``). If the producer
raises, nothing becomes visible.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO, TypeVar, cast

import attrs

from envgraph._hashing import CHUNK
from envgraph.identity import DEFAULT_COMPRESSION, Compression
from envgraph.oci._compress import Compressor
from envgraph.oci._image import ImageLayer
from envgraph.oci._model import Descriptor
from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._tar import tar_directory

__all__ = [
    "LayerBlob",
    "layer_from_directory",
    "layer_from_tarstream",
    "record_layer",
    "write_layer",
]

T = TypeVar("T")


@attrs.frozen
class LayerBlob:
    diff_id: str
    digest: str
    size: int
    media_type: str

    def descriptor(self, annotations: dict[str, str] | None = None) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size, annotations=annotations)

    def image_layer(self, history_comment: str | None = None) -> ImageLayer:
        return ImageLayer(self.diff_id, self.descriptor(), history_comment)

    def record(self, key: str, paths_digest: str | None = None) -> LayerRecord:
        return LayerRecord(key, self.diff_id, self.digest, self.size, self.media_type, paths_digest)


def record_layer(store: Store, key: str, blob: LayerBlob, paths: list[str]) -> LayerRecord:
    """Store ``paths`` as a JSON blob and record ``key`` -> ``blob``; returns the record."""
    paths_digest, _ = store.add_json(paths)
    record = blob.record(key, paths_digest)
    store.put_key(record)
    return record


class _TarSink(io.RawIOBase):
    """Write-only stream into the compressor (which hashes the tar: the diff_id)."""

    def __init__(self, compressor: Compressor) -> None:
        super().__init__()
        self._compressor = compressor

    def writable(self) -> bool:
        return True

    def write(self, b: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        return self._compressor.write(b)  # it copies what it keeps before returning


def write_layer(
    store: Store, produce: Callable[[BinaryIO], T], compression: Compression = DEFAULT_COMPRESSION
) -> tuple[LayerBlob, T]:
    """Call ``produce(sink)``, which writes an uncompressed tar into ``sink``; store the compressed blob.

    Returns the blob and whatever ``produce`` returned.
    """
    with store.blob_writer() as writer:
        compressor = Compressor(compression, writer)
        sink = _TarSink(compressor)
        try:
            result = produce(cast(BinaryIO, sink))
            compressor.finish()
        except BaseException:
            compressor.abort()  # members still queued for the pool are dropped
            raise
        writer.diff_id = compressor.input_digest  # stamped as verified when the blob commits
    assert writer.digest is not None and writer.size is not None and writer.diff_id is not None
    blob = LayerBlob(
        diff_id=writer.diff_id,
        digest=writer.digest,
        size=writer.size,
        media_type=compression.media_type,
    )
    return blob, result


def layer_from_directory(
    store: Store,
    root: Path,
    prefix: str = "",
    compression: Compression = DEFAULT_COMPRESSION,
    *,
    skip: Callable[[str], bool] | None = None,
) -> tuple[LayerBlob, list[str]]:
    """A layer holding the tree under ``root`` at ``prefix`` (without the relative paths ``skip`` names); also
    returns its non-directory paths."""
    return write_layer(store, lambda sink: tar_directory(root, sink, prefix=prefix, skip=skip), compression)


def layer_from_tarstream(
    store: Store, stream: BinaryIO, compression: Compression = DEFAULT_COMPRESSION
) -> LayerBlob:
    """A layer from an existing (already deterministic) uncompressed tar, such as mmdebstrap's output."""

    def copy(sink: BinaryIO) -> None:
        while chunk := stream.read(CHUNK):
            sink.write(chunk)

    blob, _ = write_layer(store, copy, compression)
    return blob
