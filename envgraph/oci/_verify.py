"""``envgraph verify [--repair]``: rehash everything the store refers to, ignoring stamps (like
``nix-store --verify --check-contents``), and with ``repair`` put the store back into a state a build can
complete: damaged blobs moved aside, records that do not check out dropped, images with a damaged or missing
part untagged. The next build then rebuilds or re-pulls exactly what was lost (``nix-store --verify --repair``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import attrs

from envgraph._hashing import CHUNK, file_sha256
from envgraph.errors import StoreError
from envgraph.identity import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES, compression_of_media_type
from envgraph.oci._compress import Decompressor
from envgraph.oci._known_blobs import KnownBlobs
from envgraph.oci._model import Descriptor, Index, Manifest, from_json
from envgraph.oci._store import LayerRecord, Store

__all__ = ["VerifyReport", "verify_store"]


@attrs.frozen
class VerifyReport:
    problems: tuple[str, ...]
    repaired: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.problems


def verify_store(store: Store, *, repair: bool = False) -> VerifyReport:
    if repair:
        store._writable("repair")
    problems: list[str] = []
    actions: list[str] = []
    checked: dict[str, str | None] = {}

    def blob_problem(digest: str, size: int | None = None) -> str | None:
        """Rehash now (stamps ignored): None when good (it is restamped), else what is wrong (a corrupt blob is
        moved aside on repair)."""
        if digest not in checked:
            checked[digest] = _rehash(digest)
        why = checked[digest]
        if why is None and size is not None and size >= 0 and store.blob_size(digest) != size:
            return f"blob {digest} has {store.blob_size(digest)} bytes, its descriptor says {size}"
        return why

    def _rehash(digest: str) -> str | None:
        try:
            path = store.blob_path(digest)
        except StoreError as err:
            return str(err)
        if not path.is_file():
            return f"blob {digest} is missing"
        hexd, _ = file_sha256(path)
        if "sha256:" + hexd != digest:
            if repair:
                store._move_aside(digest)
                actions.append(f"moved corrupt blob {digest} to {store.corrupt_dir}")
            return f"blob {digest} is corrupt: its content hashes to sha256:{hexd}"
        if not store.readonly:
            store._stamp(digest)
        return None

    # Images: every part of every tagged image must be there and good, except layers a registry repository
    # keeps for this store (an image built on a Dask cluster: its layers are in the cache, see envgraph._dask).
    known = store.known_blobs()
    for ref, desc in store.tags().items():
        why = _image_problem(store, desc, blob_problem, known)
        if why is not None:
            problems.append(f"image {ref}: {why}")
            if repair:
                store.untag(ref)
                actions.append(f"untagged {ref} (the next build writes it again)")

    # Key records: each must check itself against its blobs, the diff_id included.
    for path in store.record_paths():
        try:
            record = store._read_record(path)
        except Exception as err:
            problems.append(f"key record {path.relative_to(store.root)} is unreadable: {err}")
            if repair:
                path.unlink(missing_ok=True)
                actions.append(f"removed unreadable key record {path.relative_to(store.root)}")
            continue
        why = _record_problem(store, record, blob_problem)
        if why is not None:
            problems.append(f"key record {record.key}: {why}")
            if repair:
                store.drop_key(record.key)
                actions.append(f"dropped key record {record.key} (the next build rebuilds its layer)")
    return VerifyReport(tuple(problems), tuple(actions))


def _image_problem(
    store: Store, desc: Descriptor, blob_problem: Callable[..., str | None], known: KnownBlobs
) -> str | None:
    stack = [desc]
    layers: set[str] = set()
    while stack:
        d = stack.pop()
        if d.digest in layers and not store.has_blob(d.digest) and known.anywhere(d.digest) is not None:
            continue
        why = blob_problem(d.digest, d.size)
        if why is not None:
            return why
        if d.media_type in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
            try:
                data = store.blob_path(d.digest).read_bytes()
                if d.media_type in MANIFEST_MEDIA_TYPES:
                    m = from_json(data, Manifest)
                    stack += [m.config, *m.layers]
                    layers.update(layer.digest for layer in m.layers)
                else:
                    stack += list(from_json(data, Index).manifests)
            except (OSError, StoreError) as err:
                return f"document {d.digest} is unreadable: {err}"
    return None


def _record_problem(store: Store, record: LayerRecord, blob_problem: Callable[..., str | None]) -> str | None:
    why = blob_problem(record.digest, record.size) or (
        blob_problem(record.paths_digest) if record.paths_digest is not None else None
    )
    if why is not None:
        return why
    try:
        decompressor = Decompressor(compression_of_media_type(record.media_type))
        h = hashlib.sha256()
        with open(store.blob_path(record.digest), "rb") as f:
            while chunk := f.read(CHUNK):
                h.update(decompressor.feed(chunk))
            h.update(decompressor.flush())
    except Exception as err:  # bad media type, isal/zstd errors
        return f"its layer blob {record.digest} does not decompress as {record.media_type}: {err}"
    diff_id = "sha256:" + h.hexdigest()
    if diff_id != record.diff_id:
        return f"it says diff_id {record.diff_id} but its layer decompresses to {diff_id}"
    if not store.readonly:
        store._stamp(record.digest, diff_id)
    return None
