"""The local content-addressed store: an OCI image layout plus an index of layer keys.

Layout under ``root``::

    oci-layout                 {"imageLayoutVersion":"1.0.0"}
    index.json                 OCI image index; tags are the org.opencontainers.image.ref.name annotation
    blobs/sha256/<hex>         every blob, read-only, named by its sha256
    stamps/<hex[:2]>/<hex>     when a blob was last verified: its size, mtime_ns and inode then (and, for a
                               layer, the diff_id its decompressed bytes hash to)
    keys/<hex[:2]>/<hex>.json  one LayerRecord per layer key
    corrupt/<hex>              blobs found damaged, moved aside (never used again)
    roots/<id>.json            the images and layer keys each project that builds into this store still uses
    logs/                      the output of wheels built from source (one log per build key)
    build-roots/               assembled build roots (base + Debian packages) wheels are built in, kept for reuse
    building/<hex>.lock        per-key build locks
    tmp/                       temp files being written (nothing else ever is a temp file)
    lock, in-use               flock(2) files

Trust (see the README's "Trust model"): the store is not trusted. A blob is used (reused by a build, exported,
loaded, pushed, read) only when it is **known good**: its bytes hashed to its name when it was written (or the
last time they were checked) and its stamp still matches the file (same size, mtime and inode), or it hashes
to its name now. A blob that does not is moved to ``corrupt/`` and treated as absent, so the next build
rebuilds or re-pulls it. Small documents (manifests, configs, path lists) are rehashed at every read. A key
record is used only when its key matches its file name and its blob is known good with exactly the record's
size and diff_id.

Crash safety (kill -9 at any point): everything is written to a temp file in ``tmp/`` and moved into place
with ``os.replace``, so a visible file is always complete. Writers hold an flock on their temp file, so the
next build's :meth:`Store.clean_tmp` removes exactly the leftovers of writers that died.

Locking: ``index.json`` read-modify-write and gc hold an exclusive ``flock`` on ``lock``; committing a blob
and writing a key record hold it shared, so a gc never interleaves with them. Builds hold ``in-use`` shared
for their whole run and gc takes it exclusively. A read-only store (``readonly=True``) takes no locks: every
file it reads was renamed into place whole.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, BinaryIO

import attrs

from envgraph._convert import structure, unstructure
from envgraph._fs import atomic_write, locked_temp_dir, new_temp_file, sweep_dead
from envgraph._hashing import CHUNK, canonical_json, digest_hex, file_sha256
from envgraph.errors import HashMismatchError, StoreError
from envgraph.identity import (
    ANNOTATION_REF_NAME,
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    compression_of_media_type,
)
from envgraph.oci._compress import Decompressor
from envgraph.oci._known_blobs import KnownBlobs
from envgraph.oci._model import Descriptor, Index, Manifest, from_json, to_json

__all__ = ["BlobWriter", "LayerRecord", "Store"]
_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_STORE_NAMES = {
    "oci-layout", "index.json", "blobs", "keys", "tmp", "lock", "in-use", "building", "stamps", "corrupt",
    "roots", "registry-blobs.json", "logs", "build-roots",
    # The build history (envgraph.history): SQLite and its journal files.
    "history.sqlite", "history.sqlite-journal", "history.sqlite-wal", "history.sqlite-shm",
}  # fmt: skip
_REF_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]*$")


def _check_digest(digest: str) -> str:
    """The hex part of a valid digest (it names a file), else a one-line StoreError."""
    try:
        return digest_hex(digest)
    except ValueError as err:
        raise StoreError(str(err)) from None


def _key_hex(key: str) -> str:
    try:
        return digest_hex(key)
    except ValueError:
        raise StoreError(f"invalid layer key {key!r}: expected a sha256 digest") from None


@attrs.frozen
class LayerRecord:
    """What a layer key built: the layer blob and, in a separate blob, the JSON list of its file paths."""

    key: str
    diff_id: str
    digest: str
    size: int
    media_type: str
    paths_digest: str | None = None

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


@attrs.frozen
class _Stamp:
    size: int
    mtime_ns: int
    inode: int
    diff_id: str | None

    @classmethod
    def of(cls, st: os.stat_result, diff_id: str | None) -> _Stamp:
        return cls(st.st_size, st.st_mtime_ns, st.st_ino, diff_id)

    def matches(self, st: os.stat_result) -> bool:
        return (self.size, self.mtime_ns, self.inode) == (st.st_size, st.st_mtime_ns, st.st_ino)

    def encode(self) -> bytes:
        return f"{self.size} {self.mtime_ns} {self.inode} {self.diff_id or '-'}\n".encode()

    @classmethod
    def decode(cls, data: bytes) -> _Stamp | None:
        parts = data.decode("ascii", "replace").split()
        if len(parts) != 4 or not all(p.isdigit() for p in parts[:3]):
            return None
        diff_id = None if parts[3] == "-" else parts[3]
        return cls(int(parts[0]), int(parts[1]), int(parts[2]), diff_id)


class BlobWriter:
    """Writes one blob through a locked temp file; ``digest`` and ``size`` are set once committed.

    A layer writer sets :attr:`diff_id` (the sha256 of the uncompressed tar it streamed) before the commit, so
    the stamp records it as verified."""

    def __init__(self, store: Store, expected_digest: str | None) -> None:
        if expected_digest is not None:
            _check_digest(expected_digest)
        self._store = store
        self._expected = expected_digest
        # Locked until commit or abort: clean_tmp never takes a live writer's file.
        fd, self._tmp = new_temp_file(store.tmp_dir, "blob-")
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0
        self.diff_id: str | None = None
        self.digest: str | None = None
        self.size: int | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file.write(data)
        self._hash.update(data)
        n = len(data)
        self._size += n
        return n

    def _abort(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()
        with contextlib.suppress(OSError):
            self._file.close()

    def _commit(self) -> tuple[str, int]:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            digest = "sha256:" + self._hash.hexdigest()
            if self._expected is not None and digest != self._expected:
                raise HashMismatchError(
                    f"blob should be {self._expected} but its content ({self._size} bytes) is {digest}"
                )
            os.chmod(self._tmp, 0o444)
            dest = self._store.blob_path(digest)
            with self._store._locked(exclusive=False):
                if self._store.verified(digest, size=self._size):
                    self._tmp.unlink()  # already stored and good: a blob is never stored twice
                else:
                    os.replace(self._tmp, dest)  # new, or replacing one that was moved aside as corrupt
                self._store._stamp(digest, self.diff_id)
            self._file.close()  # releases the lock, after the rename
        except BaseException:
            self._abort()
            raise
        self.digest, self.size = digest, self._size
        return digest, self._size


class Store:
    """A local OCI image layout with a layer-key index. Use :meth:`open`."""

    def __init__(self, root: Path, *, readonly: bool = False) -> None:
        self.root = root
        self.readonly = readonly
        self.blobs_dir = root / "blobs" / "sha256"
        self.keys_dir = root / "keys"
        self.tmp_dir = root / "tmp"
        self.stamps_dir = root / "stamps"
        self.corrupt_dir = root / "corrupt"
        self.roots_dir = root / "roots"
        self.index_path = root / "index.json"
        self.lock_path = root / "lock"

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path, *, readonly: bool = False) -> Store:
        """Open the store at ``root``, creating the layout if absent (unless ``readonly``: then it must exist,
        and nothing is ever written, locked or moved)."""
        root = Path(root).absolute()
        try:
            return cls._open(root, readonly)
        except OSError as err:
            raise StoreError(f"cannot open the store {root}: {err.strerror or err}") from None

    @classmethod
    def _open(cls, root: Path, readonly: bool) -> Store:
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} exists and is not a directory, so it cannot be a store")
        layout = root / "oci-layout"
        if readonly:
            if not layout.is_file():
                raise StoreError(f"{root} is not an envgraph store (no oci-layout): build something first")
        elif root.is_dir() and not layout.exists():
            foreign = sorted(p.name for p in root.iterdir() if p.name not in _STORE_NAMES)
            if foreign:
                raise StoreError(
                    f"{root} is not an envgraph store (no oci-layout; contains {', '.join(foreign[:3])})"
                )
        store = cls(root, readonly=readonly)
        if not readonly:
            for d in (store.blobs_dir, store.keys_dir, store.tmp_dir, store.stamps_dir):
                d.mkdir(parents=True, exist_ok=True)
            if not layout.exists():
                store._write_atomic(layout, _LAYOUT)
            if not store.index_path.exists():
                with store._locked(exclusive=True):
                    if not store.index_path.exists():
                        store._write_atomic(store.index_path, to_json(Index()))
        try:
            doc = json.loads(layout.read_bytes())
        except ValueError:
            doc = None
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if version != "1.0.0":
            raise StoreError(f"{layout}: unsupported OCI layout version {version!r}")
        return store

    def _writable(self, what: str) -> None:
        if self.readonly:
            raise StoreError(f"cannot {what}: the store {self.root} is open read-only")

    # --- locks ---------------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """flock on ``lock``. Not re-entrant: never nest within one process. No-op on a read-only store."""
        if self.readonly:
            yield
            return
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
            yield
        finally:
            os.close(fd)  # closing releases the lock

    @contextlib.contextmanager
    def in_use(self, *, exclusive: bool = False) -> Iterator[None]:
        """Builds hold this shared for their whole run; garbage collection holds it exclusively, so it never
        removes what a running build has written but not yet tagged. Exclusive use does not wait."""
        self._writable("build or collect garbage")
        fd = os.open(self.root / "in-use", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB if exclusive else fcntl.LOCK_SH)
            except BlockingIOError:
                raise StoreError(f"a build is using {self.root}: run gc when it has finished") from None
            yield
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def building(self, key: str) -> Iterator[None]:
        """Held while a process builds layer ``key``, so concurrent builds on one store wait instead of
        building it twice (the waiter then finds the record). The lock file is never deleted while in use."""
        locks = self.root / "building"
        locks.mkdir(exist_ok=True)
        fd = os.open(locks / f"{_key_hex(key)}.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _write_atomic(self, dest: Path, data: bytes, mode: int = 0o644) -> None:
        self._writable(f"write {dest.name}")
        atomic_write(dest, data, tmp_dir=self.tmp_dir, mode=mode)

    def temp_dir(self, prefix: str) -> contextlib.AbstractContextManager[Path]:
        """A private directory under ``tmp/``, locked while in use (so clean_tmp leaves it alone) and removed
        afterwards."""
        return locked_temp_dir(self.tmp_dir, prefix)

    def clean_tmp(self, *, dry_run: bool = False) -> int:
        """Remove what killed writers left in ``tmp/`` (what no live process holds locked); bytes freed."""
        return sweep_dead(self.tmp_dir, dry_run=dry_run)

    # --- blobs ---------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / _check_digest(digest)

    def has_blob(self, digest: str) -> bool:
        """Whether a file of that name exists (says nothing of its bytes: see :meth:`verified`)."""
        return self.blob_path(digest).is_file()

    def _stamp_path(self, hexd: str) -> Path:
        return self.stamps_dir / hexd[:2] / hexd

    def _read_stamp(self, hexd: str) -> _Stamp | None:
        try:
            return _Stamp.decode(self._stamp_path(hexd).read_bytes())
        except OSError:
            return None

    def _stamp(self, digest: str, diff_id: str | None = None) -> None:
        """Record that the blob's bytes were just verified (keeping a diff_id verified earlier)."""
        if self.readonly:
            return
        hexd = _check_digest(digest)
        st = self.blob_path(digest).stat()
        old = self._read_stamp(hexd)
        if diff_id is None and old is not None and old.matches(st):
            diff_id = old.diff_id
        stamp = _Stamp.of(st, diff_id)
        if stamp == old:
            return
        path = self._stamp_path(hexd)
        path.parent.mkdir(exist_ok=True)
        atomic_write(path, stamp.encode(), tmp_dir=self.tmp_dir)

    def _move_aside(self, digest: str) -> None:
        """A damaged blob is never used again: out of ``blobs/`` (kept in ``corrupt/`` for inspection)."""
        if self.readonly:
            return
        hexd = _check_digest(digest)
        self.corrupt_dir.mkdir(exist_ok=True)
        with contextlib.suppress(FileNotFoundError):
            os.replace(self.blob_path(digest), self.corrupt_dir / hexd)
        self._stamp_path(hexd).unlink(missing_ok=True)

    def verified(self, digest: str, *, size: int | None = None) -> bool:
        """Whether the blob is present and known good (of ``size`` bytes, when given).

        Known good: its stamp matches the file, or its bytes hash to its name now (it is then stamped). A blob
        whose bytes do not is moved aside and reported absent: the caller rebuilds or re-fetches it."""
        hexd = _check_digest(digest)
        try:
            st = self.blob_path(digest).stat()
        except FileNotFoundError:
            return False
        if size is not None and st.st_size != size:
            return False
        stamp = self._read_stamp(hexd)
        if stamp is not None and stamp.matches(st):
            return True
        actual, _ = file_sha256(self.blob_path(digest))
        if actual != hexd:
            self._move_aside(digest)
            return False
        self._stamp(digest)
        return True

    def diff_id_of(self, digest: str, media_type: str) -> str:
        """The sha256 of the layer blob's uncompressed bytes, from its stamp or computed (and stamped) now.
        The blob must be known good."""
        hexd = _check_digest(digest)
        stamp = self._read_stamp(hexd)
        st = self.blob_path(digest).stat()
        if stamp is not None and stamp.matches(st) and stamp.diff_id is not None:
            return stamp.diff_id
        try:
            decompressor = Decompressor(compression_of_media_type(media_type))
        except ValueError as err:
            raise StoreError(f"blob {digest}: {err}") from None
        h = hashlib.sha256()
        try:
            with open(self.blob_path(digest), "rb") as f:
                while chunk := f.read(CHUNK):
                    h.update(decompressor.feed(chunk))
                h.update(decompressor.flush())
        except Exception as err:  # isal/zstd errors: the bytes are not what the media type says
            raise StoreError(f"blob {digest} does not decompress as {media_type}: {err}") from None
        diff_id = "sha256:" + h.hexdigest()
        self._stamp(digest, diff_id)
        return diff_id

    def _missing(self, digest: str) -> StoreError:
        return StoreError(
            f"blob {digest} is missing or damaged in the store {self.root}: run `envgraph build` to rebuild it"
        )

    def open_blob(self, digest: str) -> BinaryIO:
        """A known-good blob, for streaming (export, push, decompression)."""
        if not self.verified(digest):
            raise self._missing(digest)
        return open(self.blob_path(digest), "rb")

    def read_blob(self, digest: str) -> bytes:
        """The whole blob, rehashed: for small blobs (manifests, configs, path lists) only."""
        try:
            data = self.blob_path(digest).read_bytes()
        except FileNotFoundError:
            raise self._missing(digest) from None
        if "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            self._move_aside(digest)
            raise self._missing(digest)
        return data

    def blob_size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise self._missing(digest) from None

    @contextlib.contextmanager
    def blob_writer(self, expected_digest: str | None = None) -> Iterator[BlobWriter]:
        """Yields a writer; on normal exit the blob is verified and moved into place, on an exception
        (or a digest mismatch) the temp file is removed."""
        self._writable("write blobs")
        writer = BlobWriter(self, expected_digest)
        try:
            yield writer
        except BaseException:
            writer._abort()
            raise
        writer._commit()

    def add_bytes(self, data: bytes, expected_digest: str | None = None) -> tuple[str, int]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        if expected_digest is not None and _check_digest(expected_digest) and digest != expected_digest:
            raise HashMismatchError(
                f"blob should be {expected_digest} but its content ({len(data)} bytes) is {digest}"
            )
        if self.verified(digest, size=len(data)):
            return digest, len(data)
        with self.blob_writer(digest) as w:
            w.write(data)
        return digest, len(data)

    def add_stream(self, stream: IO[bytes], expected_digest: str | None = None) -> tuple[str, int]:
        with self.blob_writer(expected_digest) as w:
            while chunk := stream.read(CHUNK):
                w.write(chunk)
        assert w.digest is not None and w.size is not None
        return w.digest, w.size

    def add_json(self, value: object) -> tuple[str, int]:
        """Store ``canonical_json(value)`` as a blob (e.g. a layer's path list)."""
        return self.add_bytes(canonical_json(value))

    def read_paths(self, record: LayerRecord) -> list[str]:
        """The path list of a layer record (empty when it has none)."""
        if record.paths_digest is None:
            return []
        try:
            paths = json.loads(self.read_blob(record.paths_digest))
        except ValueError:
            paths = None
        if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
            raise StoreError(
                f"the path list {record.paths_digest} of layer {record.key} is not a list of paths"
            )
        return paths

    # --- layer keys ----------------------------------------------------------------------------------

    def _key_path(self, key: str) -> Path:
        h = _key_hex(key)
        return self.keys_dir / h[:2] / f"{h}.json"

    def _read_record(self, path: Path) -> LayerRecord:
        record: LayerRecord = structure(json.loads(path.read_bytes()), LayerRecord)
        if path.name != f"{_key_hex(record.key)}.json":
            raise StoreError(f"the record in {path.name} is for another key ({record.key})")
        _check_digest(record.digest)
        _check_digest(record.diff_id)
        if record.paths_digest is not None:
            _check_digest(record.paths_digest)
        return record

    def get_key(self, key: str) -> LayerRecord | None:
        """The record for ``key`` when it checks out: its key is the one asked for, its blob is known good with
        exactly the record's size and diff_id, and so is its path list. None otherwise (rebuild then)."""
        path = self._key_path(key)
        try:
            record = self._read_record(path)
        except FileNotFoundError:
            return None
        except Exception:  # unreadable or foreign record: treat as absent, the next put_key replaces it
            return None
        if not self.verified(record.digest, size=record.size):
            return None
        if record.paths_digest is not None and not self.verified(record.paths_digest):
            return None
        try:
            if self.diff_id_of(record.digest, record.media_type) != record.diff_id:
                return None
        except StoreError:
            self._move_aside(record.digest)
            return None
        return record

    def put_key(self, record: LayerRecord) -> None:
        path = self._key_path(record.key)
        _check_digest(record.digest)
        data = canonical_json(unstructure(record))
        with self._locked(exclusive=False):
            path.parent.mkdir(exist_ok=True)
            self._write_atomic(path, data)

    def drop_key(self, key: str) -> None:
        self._writable("drop a key record")
        self._key_path(key).unlink(missing_ok=True)

    def record_paths(self) -> list[Path]:
        return sorted(self.keys_dir.glob("*/*.json"))

    def records(self) -> list[LayerRecord]:
        """Every readable key record (unreadable ones are reported by :meth:`verify`)."""
        out = []
        for path in self.record_paths():
            with contextlib.suppress(Exception):
                out.append(self._read_record(path))
        return out

    # --- tags (index.json) ---------------------------------------------------------------------------

    def read_index(self) -> Index:
        try:
            return from_json(self.index_path.read_bytes(), Index)
        except FileNotFoundError:
            return Index()

    def tag(self, ref: str, descriptor: Descriptor, *more: str) -> None:
        """Point ``ref`` (and the refs in ``more``) at ``descriptor``, replacing what they pointed at.

        Nothing is written when every ref already points there: a no-op build writes nothing.
        """
        self.update_tags({r: descriptor for r in (ref, *more)})

    def update_tags(self, set_refs: Mapping[str, Descriptor], remove: tuple[str, ...] = ()) -> None:
        """Several tag changes in one atomic update of ``index.json`` (nothing written when nothing changes)."""
        for r in (*set_refs, *remove):
            if not _REF_RE.match(r):
                raise StoreError(f"invalid tag {r!r}: letters, digits and ._:@/+- only")
        for d in set_refs.values():
            _check_digest(d.digest)
        entries = []
        for r, descriptor in set_refs.items():
            annotations = {**(descriptor.annotations or {}), ANNOTATION_REF_NAME: r}
            entries.append(descriptor.evolve(annotations=dict(sorted(annotations.items()))))
        if not entries and not remove:
            return
        changed = set(set_refs) | set(remove)
        with self._locked(exclusive=True):
            index = self.read_index()
            if all(e in index.manifests for e in entries) and not any(
                (d.annotations or {}).get(ANNOTATION_REF_NAME) in remove for d in index.manifests
            ):
                return
            kept = [
                d for d in index.manifests if (d.annotations or {}).get(ANNOTATION_REF_NAME) not in changed
            ]
            self._write_index(attrs.evolve(index, manifests=(*kept, *entries)))

    def untag(self, ref: str) -> bool:
        """Remove ``ref``; True when it existed."""
        existed = ref in self.tags()
        self.update_tags({}, (ref,))
        return existed

    def tags(self) -> dict[str, Descriptor]:
        """ref -> descriptor as it was tagged (without the ref-name annotation)."""
        out: dict[str, Descriptor] = {}
        for d in self.read_index().manifests:
            ann = dict(d.annotations or {})
            ref = ann.pop(ANNOTATION_REF_NAME, None)
            if ref is not None:
                out[ref] = d.evolve(annotations=ann or None)
        return dict(sorted(out.items()))

    def _write_index(self, index: Index) -> None:
        def order(d: Descriptor) -> tuple[str, str]:
            return ((d.annotations or {}).get(ANNOTATION_REF_NAME, ""), d.digest)

        index = attrs.evolve(index, manifests=tuple(sorted(index.manifests, key=order)))
        self._write_atomic(self.index_path, to_json(index))

    # --- registries --------------------------------------------------------------------------------------

    def known_blobs(self) -> KnownBlobs:
        """Which registry repositories were seen holding which blobs (for cross-repository mounts)."""
        return KnownBlobs(self.root, self.tmp_dir)

    # --- reachability --------------------------------------------------------------------------------------

    def reachable(self, roots: list[Descriptor], problems: list[str] | None = None) -> dict[str, int]:
        """Digests (with their descriptor sizes) reachable from ``roots`` through manifests and indexes.

        Unreadable manifests are skipped (and described in ``problems`` when given)."""
        seen: dict[str, int] = {}
        stack = list(roots)
        while stack:
            d = stack.pop()
            if d.digest in seen:
                continue
            seen[d.digest] = d.size
            if d.media_type not in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
                continue
            try:
                data = self.read_blob(d.digest)
                if d.media_type in MANIFEST_MEDIA_TYPES:
                    m = from_json(data, Manifest)
                    stack += [m.config, *m.layers]
                else:
                    stack += list(from_json(data, Index).manifests)
            except StoreError as err:
                if problems is not None:
                    problems.append(f"image document {d.digest}: {err}")
        return seen

    def disk_usage(self) -> int:
        """Bytes used by all files of the store."""
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total
