"""The local content-addressed store: an OCI image layout plus an index of layer keys.

Layout under ``root``::

    oci-layout                 {"imageLayoutVersion":"1.0.0"}
    index.json                 OCI image index; tags are the org.opencontainers.image.ref.name annotation
    blobs/sha256/<hex>         every blob, read-only, named by its sha256
    keys/<hex[:2]>/<hex>.json  one LayerRecord per layer key
    tmp/                       temp files being written (nothing else ever is a temp file)
    lock                       flock(2) file

Crash safety (kill -9 at any point): everything is written to a temp file in ``tmp/`` and moved into
place with ``os.replace``, so a visible file is always complete; a crash only leaves temp files, which
:meth:`Store.verify` and :meth:`Store.gc` delete once an hour old. Blobs are hashed while written and
checked against the expected digest before they become visible.

Locking: ``index.json`` read-modify-write and :meth:`Store.gc` hold an exclusive ``flock`` on ``lock``;
committing a blob and writing a key record hold it shared, so a gc never interleaves with them. gc
still only knows what the caller keeps and what tags reference: do not gc while builds run.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Collection, Iterator
from pathlib import Path
from typing import IO, BinaryIO

import attrs

from envgraph._convert import structure, unstructure
from envgraph._fs import atomic_write
from envgraph._hashing import CHUNK, canonical_json, digest_hex, file_sha256
from envgraph.errors import HashMismatchError, StoreError
from envgraph.identity import ANNOTATION_REF_NAME, INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES
from envgraph.oci._known_blobs import KnownBlobs
from envgraph.oci._model import Descriptor, Index, Manifest, from_json, to_json

__all__ = ["BlobWriter", "GcResult", "LayerRecord", "Store", "STALE_TEMP_SECONDS"]

STALE_TEMP_SECONDS = 3600
_LAYOUT = b'{"imageLayoutVersion":"1.0.0"}'
_STORE_NAMES = {"oci-layout", "index.json", "blobs", "keys", "tmp", "lock"}
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
class GcResult:
    freed: int  # bytes
    dropped: tuple[str, ...]  # tags removed


class BlobWriter:
    """Writes one blob through a temp file; ``digest`` and ``size`` are set once committed."""

    def __init__(self, store: Store, expected_digest: str | None) -> None:
        if expected_digest is not None:
            _check_digest(expected_digest)
        self._store = store
        self._expected = expected_digest
        fd, name = tempfile.mkstemp(dir=store.tmp_dir, prefix="blob-", suffix=".tmp")
        self._tmp = Path(name)
        self._file = os.fdopen(fd, "wb")
        self._hash = hashlib.sha256()
        self._size = 0
        self.digest: str | None = None
        self.size: int | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._file.write(data)
        self._hash.update(data)
        n = len(data)
        self._size += n
        return n

    def _abort(self) -> None:
        with contextlib.suppress(OSError):
            self._file.close()
        with contextlib.suppress(FileNotFoundError):
            self._tmp.unlink()

    def _commit(self) -> tuple[str, int]:
        try:
            self._file.flush()
            os.fsync(self._file.fileno())
            self._file.close()
            digest = "sha256:" + self._hash.hexdigest()
            if self._expected is not None and digest != self._expected:
                raise HashMismatchError(
                    f"blob should be {self._expected} but its content ({self._size} bytes) is {digest}"
                )
            os.chmod(self._tmp, 0o444)
            dest = self._store.blob_path(digest)
            with self._store._locked(exclusive=False):
                try:
                    same = dest.stat().st_size == self._size
                except FileNotFoundError:
                    same = False
                if same:
                    self._tmp.unlink()  # already stored: a blob is never stored twice
                else:
                    os.replace(self._tmp, dest)
        except BaseException:
            self._abort()
            raise
        self.digest, self.size = digest, self._size
        return digest, self._size


class Store:
    """A local OCI image layout with a layer-key index. Use :meth:`open`."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs_dir = root / "blobs" / "sha256"
        self.keys_dir = root / "keys"
        self.tmp_dir = root / "tmp"
        self.index_path = root / "index.json"
        self.lock_path = root / "lock"

    # --- opening ---------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: Path) -> Store:
        """Open the store at ``root``, creating the layout if absent."""
        root = Path(root).absolute()
        if root.exists() and not root.is_dir():
            raise StoreError(f"{root} exists and is not a directory, so it cannot be a store")
        layout = root / "oci-layout"
        if root.is_dir() and not layout.exists():
            foreign = sorted(p.name for p in root.iterdir() if p.name not in _STORE_NAMES)
            if foreign:
                raise StoreError(
                    f"{root} is not an envgraph store (no oci-layout; contains {', '.join(foreign[:3])})"
                )
        store = cls(root)
        try:
            store.blobs_dir.mkdir(parents=True, exist_ok=True)
            store.keys_dir.mkdir(exist_ok=True)
            store.tmp_dir.mkdir(exist_ok=True)
            if not layout.exists():
                store._write_atomic(layout, _LAYOUT)
            with store._locked(exclusive=True):
                if not store.index_path.exists():
                    store._write_atomic(store.index_path, to_json(Index()))
        except OSError as err:
            raise StoreError(f"cannot create a store at {root}: {err.strerror or err}") from err
        try:
            doc = json.loads(layout.read_bytes())
        except ValueError:
            doc = None
        version = doc.get("imageLayoutVersion") if isinstance(doc, dict) else None
        if version != "1.0.0":
            raise StoreError(f"{layout}: unsupported OCI layout version {version!r}")
        return store

    # --- internals ---------------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self, *, exclusive: bool) -> Iterator[None]:
        """flock on ``lock``. Not re-entrant: never nest within one process."""
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
        atomic_write(dest, data, tmp_dir=self.tmp_dir, mode=mode)

    # --- blobs ---------------------------------------------------------------------------------------

    def blob_path(self, digest: str) -> Path:
        return self.blobs_dir / _check_digest(digest)

    def has_blob(self, digest: str) -> bool:
        return self.blob_path(digest).is_file()

    def open_blob(self, digest: str) -> BinaryIO:
        try:
            return open(self.blob_path(digest), "rb")
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is not in the store {self.root}") from None

    def read_blob(self, digest: str) -> bytes:
        """The whole blob: for small blobs (manifests, configs, path lists) only."""
        with self.open_blob(digest) as f:
            return f.read()

    def blob_size(self, digest: str) -> int:
        try:
            return self.blob_path(digest).stat().st_size
        except FileNotFoundError:
            raise StoreError(f"blob {digest} is not in the store {self.root}") from None

    @contextlib.contextmanager
    def blob_writer(self, expected_digest: str | None = None) -> Iterator[BlobWriter]:
        """Yields a writer; on normal exit the blob is verified and moved into place, on an exception
        (or a digest mismatch) the temp file is removed."""
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
        if self.has_blob(digest) and self.blob_path(digest).stat().st_size == len(data):
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
        paths: list[str] = json.loads(self.read_blob(record.paths_digest))
        return paths

    # --- layer keys ----------------------------------------------------------------------------------

    def _key_path(self, key: str) -> Path:
        h = _key_hex(key)
        return self.keys_dir / h[:2] / f"{h}.json"

    def _read_record(self, path: Path) -> LayerRecord:
        record: LayerRecord = structure(json.loads(path.read_bytes()), LayerRecord)
        return record

    def get_key(self, key: str) -> LayerRecord | None:
        """The record for ``key``, or None when absent or when its blobs are gone (rebuild then)."""
        path = self._key_path(key)
        try:
            record = self._read_record(path)
        except FileNotFoundError:
            return None
        except Exception:  # unreadable record: treat as absent, the next put_key replaces it
            return None
        try:
            if self.blob_path(record.digest).stat().st_size != record.size:
                return None
        except (FileNotFoundError, StoreError):
            return None
        if record.paths_digest is not None and not self.has_blob(record.paths_digest):
            return None
        return record

    def put_key(self, record: LayerRecord) -> None:
        path = self._key_path(record.key)
        _check_digest(record.digest)
        data = canonical_json(unstructure(record))
        with self._locked(exclusive=False):
            path.parent.mkdir(exist_ok=True)
            self._write_atomic(path, data)

    def records(self) -> list[LayerRecord]:
        """Every readable key record (unreadable ones are reported by :meth:`verify`)."""
        out = []
        for path in sorted(self.keys_dir.glob("*/*.json")):
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
        refs = (ref, *more)
        for r in refs:
            if not _REF_RE.match(r):
                raise StoreError(f"invalid tag {r!r}: letters, digits and ._:@/+- only")
        _check_digest(descriptor.digest)
        entries = []
        for r in refs:
            annotations = {**(descriptor.annotations or {}), ANNOTATION_REF_NAME: r}
            entries.append(descriptor.evolve(annotations=dict(sorted(annotations.items()))))
        with self._locked(exclusive=True):
            index = self.read_index()
            if all(e in index.manifests for e in entries):
                return
            kept = [d for d in index.manifests if (d.annotations or {}).get(ANNOTATION_REF_NAME) not in refs]
            self._write_index(attrs.evolve(index, manifests=(*kept, *entries)))

    def untag(self, ref: str) -> bool:
        """Remove ``ref``; True when it existed."""
        with self._locked(exclusive=True):
            index = self.read_index()
            kept = [d for d in index.manifests if (d.annotations or {}).get(ANNOTATION_REF_NAME) != ref]
            if len(kept) == len(index.manifests):
                return False
            self._write_index(attrs.evolve(index, manifests=tuple(kept)))
            return True

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

    # --- reachability, verify, gc ------------------------------------------------------------------

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
                if problems is not None and self.has_blob(d.digest):
                    problems.append(f"{d.digest}: {err}")
        return seen

    def clean_tmp(self, max_age: float = STALE_TEMP_SECONDS, *, dry_run: bool = False) -> int:
        """Delete temp files older than ``max_age`` seconds (left by killed writers); bytes freed."""
        freed = 0
        now = time.time()
        for p in self.tmp_dir.iterdir():
            with contextlib.suppress(FileNotFoundError):
                st = p.lstat()
                if now - st.st_mtime <= max_age:
                    continue
                if p.is_dir() and not p.is_symlink():
                    # Staging directories of killed layer builds.
                    freed += sum(f.stat().st_size for f in p.rglob("*") if f.is_file() and not f.is_symlink())
                    if not dry_run:
                        shutil.rmtree(p, ignore_errors=True)
                else:
                    if not dry_run:
                        p.unlink()
                    freed += st.st_size
        return freed

    def verify(self) -> list[str]:
        """Rehash every blob referenced by tags (recursively) and by key records; list the problems."""
        problems: list[str] = []
        self.clean_tmp()
        try:
            roots = list(self.read_index().manifests)
        except StoreError as err:
            problems.append(f"index.json: {err}")
            roots = []
        expected = self.reachable(roots, problems)
        for path in sorted(self.keys_dir.glob("*/*.json")):
            try:
                record = self._read_record(path)
            except Exception as err:
                problems.append(f"key record {path.relative_to(self.root)} is unreadable: {err}")
                continue
            expected.setdefault(record.digest, record.size)
            if record.paths_digest is not None:
                expected.setdefault(record.paths_digest, -1)
        for digest, size in sorted(expected.items()):
            try:
                path = self.blob_path(digest)
            except StoreError as err:
                problems.append(str(err))
                continue
            if not path.is_file():
                problems.append(f"missing blob {digest}")
                continue
            hexd, actual_size = file_sha256(path)
            if "sha256:" + hexd != digest:
                problems.append(f"corrupt blob {digest}: its content hashes to sha256:{hexd}")
            elif size >= 0 and actual_size != size:
                problems.append(f"blob {digest} has {actual_size} bytes, descriptors say {size}")
        return problems

    def collect_garbage(
        self, *, current_tags: set[str], current_keys: set[str], keep_last: int = 1, dry_run: bool = False
    ) -> GcResult:
        """The gc policy: untag images beyond the ``keep_last`` newest per env (besides ``current_tags`` and
        ``<env>:latest``), then delete every blob nothing kept refers to. Kept: what the remaining tags reach and
        the layers (and path lists) of ``current_keys``. A dry run computes exactly what a real run would free.
        Refused while a build uses the store."""
        with self.in_use(exclusive=True):
            tags = self.tags()
            by_env: dict[str, list[tuple[float, str]]] = {}
            for ref, desc in tags.items():
                env, _, name = ref.partition(":")
                if name == "latest" or ref in current_tags:
                    continue
                try:
                    when = self.blob_path(desc.digest).stat().st_mtime
                except (OSError, StoreError):
                    when = 0.0
                by_env.setdefault(env, []).append((when, ref))
            drop: list[str] = []
            for items in by_env.values():
                items.sort(reverse=True)
                drop += [ref for _, ref in items[keep_last:]]
            keep: set[str] = set()
            for record in self.records():
                if record.key in current_keys:
                    keep.add(record.digest)
            if not dry_run:
                for ref in drop:
                    self.untag(ref)
            freed = self.gc(keep, untag=set(drop), dry_run=dry_run)
            return GcResult(freed, tuple(sorted(drop)))

    def gc(self, keep: set[str], *, untag: Collection[str] = (), dry_run: bool = False) -> int:
        """Delete every blob not in ``keep``, not reachable from a tag (other than those in ``untag``), and not
        the path list of a kept layer record; drop the key records whose layer blob went, and stale temp files.
        Returns the bytes freed (with ``dry_run``, that would be freed; nothing is touched)."""
        freed = 0
        with self._locked(exclusive=True):
            roots = [
                d
                for d in self.read_index().manifests
                if (d.annotations or {}).get(ANNOTATION_REF_NAME) not in untag
            ]
            live = set(keep) | set(self.reachable(roots))
            records = []
            for path in self.keys_dir.glob("*/*.json"):
                try:
                    records.append((path, self._read_record(path)))
                except Exception:
                    if not dry_run:
                        path.unlink(missing_ok=True)
            for _, record in records:
                if record.digest in live and record.paths_digest:
                    live.add(record.paths_digest)
            for blob in self.blobs_dir.iterdir():
                if "sha256:" + blob.name not in live:
                    with contextlib.suppress(FileNotFoundError):
                        size = blob.lstat().st_size
                        if not dry_run:
                            blob.unlink()
                        freed += size
            if not dry_run:
                for path, record in records:
                    if record.digest not in live:
                        path.unlink(missing_ok=True)
            freed += self.clean_tmp(dry_run=dry_run)
        return freed

    def disk_usage(self) -> int:
        """Bytes used by all files of the store."""
        total = 0
        for dirpath, _, files in os.walk(self.root):
            for name in files:
                with contextlib.suppress(FileNotFoundError):
                    total += os.lstat(os.path.join(dirpath, name)).st_size
        return total
