"""A registry repository as a shared layer cache (``envgraph build --cache HOST[:PORT]/REPO``).

One cache entry per layer key: the tag ``key-<64 hex of the key>`` names a small OCI artifact manifest

    mediaType     application/vnd.oci.image.manifest.v1+json
    artifactType  application/vnd.envgraph.layer.v1+json
    config        the LayerRecord as canonical JSON (media type application/vnd.envgraph.layer.v1+json)
    layers        [the layer blob (its own media type), the JSON list of its paths (when it has one)]

so the registry keeps the layer blob (it is referenced) and a client that knows the key (every client
does, from the lockfile, before building anything) finds it with one HEAD. ``fetch`` downloads and
verifies the record, the layer (digest, size, and diff_id while streaming) and its path list into the
store; ``publish`` (mode ``readwrite``) uploads what the registry lacks and puts the manifest.

Failures are never silent: an unreachable cache is a one-line :class:`RegistryError` before the build
starts (:meth:`RegistryCache.from_reference` pings it), and a failure during the build fails the layer
with the registry's one-line message.
"""

from __future__ import annotations

import hashlib
import io
import json
import threading
from typing import Any, Literal

from envgraph._convert import structure, unstructure
from envgraph._hashing import canonical_json, sha256_digest
from envgraph.errors import EnvgraphError, RegistryError
from envgraph.identity import (
    ANNOTATION_LAYER_KEY,
    LAYER_ARTIFACT_TYPE,
    MEDIA_TYPE_MANIFEST,
    PATHS_MEDIA_TYPE,
    Compression,
    compression_of_media_type,
)
from envgraph.identity import cache_tag as _cache_tag
from envgraph.oci._compress import Decompressor
from envgraph.oci._known_blobs import KnownBlobs
from envgraph.oci._model import Descriptor
from envgraph.oci._store import LayerRecord, Store
from envgraph.registry._client import RegistryClient
from envgraph.registry._push import parse_repository
from envgraph.registry._stats import CacheStats
from envgraph.registry._transfer import fetch_blob, open_client, push_blob

__all__ = ["RegistryCache", "entry_manifest"]

MAX_RECORD_BYTES = 64 << 10

Mode = Literal["read", "readwrite"]


def cache_tag(key: str) -> str:
    try:
        return _cache_tag(key)
    except ValueError:
        raise RegistryError(f"invalid layer key {key!r}") from None


def _descriptor_json(d: Descriptor) -> dict[str, Any]:
    return {"mediaType": d.media_type, "digest": d.digest, "size": d.size}


def entry_manifest(record: LayerRecord, record_blob: bytes, paths_size: int | None) -> bytes:
    """The canonical manifest of a cache entry."""
    layers = [_descriptor_json(record.descriptor())]
    if record.paths_digest is not None:
        assert paths_size is not None
        layers.append({"mediaType": PATHS_MEDIA_TYPE, "digest": record.paths_digest, "size": paths_size})
    doc = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": LAYER_ARTIFACT_TYPE,
        "config": {
            "mediaType": LAYER_ARTIFACT_TYPE,
            "digest": sha256_digest(record_blob),
            "size": len(record_blob),
        },
        "layers": layers,
        "annotations": {ANNOTATION_LAYER_KEY: record.key},
    }
    return canonical_json(doc)


class _DiffIdWriter:
    """Writes a layer blob to the store while hashing its decompressed bytes (the diff_id)."""

    def __init__(self, sink: Any, compression: Compression) -> None:
        self._sink = sink
        self._hash = hashlib.sha256()
        self._decompressor = Decompressor(compression)
        self.error: str | None = None

    def write(self, data: bytes) -> int:
        n = len(data)
        self._sink.write(data)
        if self.error is not None:
            return n  # keep writing: the digest check (which comes first) decides what to report
        try:
            self._feed(data)
        except Exception as err:  # isal_zlib.error, zstandard.ZstdError
            self.error = str(err)
        return n

    def _feed(self, data: bytes) -> None:
        self._hash.update(self._decompressor.feed(data))

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return 0

    @property
    def diff_id(self) -> str:
        self._hash.update(self._decompressor.flush())
        return "sha256:" + self._hash.hexdigest()


class RegistryCache:
    """The scheduler's :class:`~envgraph.builder._scheduler.RemoteCache` over one registry repository."""

    def __init__(self, client: RegistryClient, repo: str, mode: Mode = "readwrite") -> None:
        if mode not in ("read", "readwrite"):
            raise RegistryError(f"cache mode must be read or readwrite, not {mode!r}")
        self.client = client
        self.repo = repo
        self.mode: Mode = mode
        self.stats = CacheStats()
        self._known_lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._key_locks_guard = threading.Lock()
        self._known: dict[str, KnownBlobs] = {}

    def __repr__(self) -> str:
        return f"RegistryCache({self.client.host}/{self.repo}, mode={self.mode})"

    @property
    def reference(self) -> str:
        return f"{self.client.host}/{self.repo}"

    @classmethod
    def from_reference(cls, ref: str, *, mode: str = "readwrite", insecure: bool = False) -> RegistryCache:
        """``HOST[:PORT]/REPO``; pings the registry so an unreachable cache fails before the build starts."""
        if mode not in ("read", "readwrite"):
            raise RegistryError(f"cache mode must be read or readwrite, not {mode!r}")
        target = parse_repository(ref, "the cache")
        client = open_client(target.host, insecure=insecure)
        try:
            client.ping()
        except RegistryError as err:
            client.close()
            raise RegistryError(f"cache {ref}: {err}") from None
        return cls(client, target.repository, mode)  # type: ignore[arg-type]

    def close(self) -> None:
        self.client.close()

    def _known_for(self, store: Store) -> KnownBlobs:
        with self._known_lock:
            known = self._known.get(str(store.root))
            if known is None:
                known = self._known[str(store.root)] = store.known_blobs()
            return known

    def _fail(self, what: str, err: EnvgraphError | str) -> RegistryError:
        return RegistryError(f"cache {self.reference}: {what}: {err}")

    # --- fetch -----------------------------------------------------------------------------------

    def fetch(self, key: str, store: Store) -> LayerRecord | None:
        """The layer for ``key`` from the cache into ``store`` (verified), or None on a miss."""
        tag = cache_tag(key)
        try:
            digest = self.client.manifest_exists(self.repo, tag, [MEDIA_TYPE_MANIFEST])
            if digest is None:
                self.stats.add(misses=1)
                return None
            body, _, _ = self.client.get_manifest(self.repo, digest, [MEDIA_TYPE_MANIFEST])
            record, layer, paths = self._parse_entry(key, body)
            self._download_layer(layer, record, store)
            if paths is not None:
                self._download_small(paths, store)
        except RegistryError as err:
            raise self._fail(f"fetching layer {key[:19]}", err) from None
        known = self._known_for(store)
        known.saw(self.client.host, record.digest, self.repo)
        known.save()
        store.put_key(record)
        self.stats.add(hits=1)
        return record

    def lookup(self, key: str, store: Store) -> LayerRecord | None:
        """The record for ``key`` when the cache holds it, without downloading the layer (a remote executor's
        client writes images from descriptors); its small path list comes into ``store``. None on a miss."""
        tag = cache_tag(key)
        try:
            digest = self.client.manifest_exists(self.repo, tag, [MEDIA_TYPE_MANIFEST])
            if digest is None:
                self.stats.add(misses=1)
                return None
            body, _, _ = self.client.get_manifest(self.repo, digest, [MEDIA_TYPE_MANIFEST])
            record, _, paths = self._parse_entry(key, body)
            if paths is not None:
                self._download_small(paths, store)
        except RegistryError as err:
            raise self._fail(f"looking up layer {key[:19]}", err) from None
        self.saw(record.digest, store)
        self.stats.add(hits=1)
        return record

    def saw(self, digest: str, store: Store) -> None:
        """Remember that this cache's repository holds ``digest`` (so a push mounts it from there)."""
        known = self._known_for(store)
        known.saw(self.client.host, digest, self.repo)
        known.save()

    def _parse_entry(self, key: str, body: bytes) -> tuple[LayerRecord, Descriptor, Descriptor | None]:
        try:
            doc = json.loads(body)
            config = doc["config"]
            layers = doc["layers"]
            if config["mediaType"] != LAYER_ARTIFACT_TYPE:
                raise ValueError(f"config media type {config['mediaType']!r}")
            if int(config["size"]) > MAX_RECORD_BYTES:
                raise ValueError("record too large")
            buf = io.BytesIO()
            self.client.get_blob(self.repo, str(config["digest"]), buf)
            record = structure(json.loads(buf.getvalue()), LayerRecord)
            layer = Descriptor(str(layers[0]["mediaType"]), str(layers[0]["digest"]), int(layers[0]["size"]))
            paths = None
            if len(layers) > 1:
                paths = Descriptor(
                    str(layers[1]["mediaType"]), str(layers[1]["digest"]), int(layers[1]["size"])
                )
        except RegistryError:
            raise
        except Exception as err:  # json, KeyError, cattrs: not an entry we wrote
            raise RegistryError(f"entry {cache_tag(key)} is not an envgraph layer entry ({err})") from None
        if record.key != key:
            raise RegistryError(f"entry {cache_tag(key)} describes layer {record.key}, not {key}")
        if (layer.digest, layer.size, layer.media_type) != (record.digest, record.size, record.media_type):
            raise RegistryError(f"entry {cache_tag(key)}: its layer descriptor does not match its record")
        if (paths.digest if paths else None) != record.paths_digest:
            raise RegistryError(f"entry {cache_tag(key)}: its path list does not match its record")
        return record, layer, paths

    def _download_layer(self, layer: Descriptor, record: LayerRecord, store: Store) -> None:
        if store.verified(layer.digest, size=layer.size):
            if store.diff_id_of(layer.digest, layer.media_type) != record.diff_id:
                raise RegistryError(f"entry for layer {record.key} names a diff_id its blob does not have")
            return
        try:
            compression = compression_of_media_type(layer.media_type)
        except ValueError as err:
            raise RegistryError(str(err)) from None
        try:
            with store.blob_writer(layer.digest) as writer:
                tee = _DiffIdWriter(writer, compression)
                size = self.client.get_blob(self.repo, layer.digest, tee)  # type: ignore[arg-type]
                if size != layer.size:
                    raise RegistryError(
                        f"layer {layer.digest} has {size} bytes, its record says {layer.size}"
                    )
                if tee.error is not None:
                    raise RegistryError(f"layer {layer.digest} does not decompress: {tee.error}")
                if tee.diff_id != record.diff_id:
                    raise RegistryError(
                        f"layer {layer.digest} decompresses to {tee.diff_id}, its record says {record.diff_id}"
                    )
                writer.diff_id = record.diff_id
        except EnvgraphError as err:
            if isinstance(err, RegistryError):
                raise
            raise RegistryError(str(err)) from None
        self.stats.add(bytes_fetched=layer.size)

    def _download_small(self, desc: Descriptor, store: Store) -> None:
        if fetch_blob(self.client, self.repo, desc, store):
            self.stats.add(bytes_fetched=desc.size)

    # --- publish ---------------------------------------------------------------------------------

    def publish(self, record: LayerRecord, store: Store) -> None:
        """Upload the layer, its path list and its record, then the entry manifest (readwrite only)."""
        if self.mode != "readwrite":
            return
        tag = cache_tag(record.key)
        # One publisher per key in this process: concurrent uploads of the same blobs make registries fail.
        with self._key_locks_guard:
            key_lock = self._key_locks.setdefault(tag, threading.Lock())
        with key_lock:
            self._publish(record, store, tag)

    def _publish(self, record: LayerRecord, store: Store, tag: str) -> None:
        record_blob = canonical_json(unstructure(record))
        paths_size = store.blob_size(record.paths_digest) if record.paths_digest else None
        body = entry_manifest(record, record_blob, paths_size)
        known = self._known_for(store)
        try:
            if self.client.manifest_exists(self.repo, tag, [MEDIA_TYPE_MANIFEST]) == sha256_digest(body):
                self.stats.add(already_published=1)
                return
            push_blob(self.client, self.repo, record.descriptor(), store, known)
            if record.paths_digest is not None:
                assert paths_size is not None
                push_blob(
                    self.client,
                    self.repo,
                    Descriptor(PATHS_MEDIA_TYPE, record.paths_digest, paths_size),
                    store,
                    known,
                )
            record_digest = sha256_digest(record_blob)
            if not self.client.blob_exists(self.repo, record_digest):
                self.client.upload_blob(
                    self.repo, record_digest, len(record_blob), lambda: io.BytesIO(record_blob)
                )
            self.client.put_manifest(self.repo, tag, body, MEDIA_TYPE_MANIFEST)
        except RegistryError as err:
            raise self._fail(f"publishing layer {record.key[:19]}", err) from None
        finally:
            known.save()
        self.stats.add(published=1)
