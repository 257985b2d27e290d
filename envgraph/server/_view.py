"""The store seen as registry repositories: which tags, manifests and blobs each one may serve.

A store tag ``<env>:<tag>`` is tag ``<tag>`` of repository ``<env>``. A repository serves only what its
tags reach: the tagged manifests (and the manifests of tagged indexes) and their configs and layers.
The view is recomputed when ``index.json`` changes (a build finished), so a running server follows
the store; manifests are content-addressed, so parsed ones are kept across recomputations.
Nothing here writes: the store may be opened read-only.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Mapping

from attrs import frozen

from envgraph._hashing import is_digest
from envgraph.errors import StoreError
from envgraph.identity import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES
from envgraph.oci._model import Descriptor, Index, Manifest, from_json
from envgraph.oci._store import Store
from envgraph.server._names import split_ref

__all__ = ["MAX_MANIFEST_BYTES", "BlobDamaged", "BlobMissing", "Repository", "StoreView"]

MAX_MANIFEST_BYTES = 4 << 20
"""Manifests larger than this are refused (the CNCF registry's limit too): they are read into memory."""


class BlobMissing(Exception):
    """The store has no file for a digest its tags reach."""


class BlobDamaged(Exception):
    """A blob's file does not hold what its digest and descriptor say; never served as good."""


@frozen
class Repository:
    name: str
    tags: Mapping[str, Descriptor]
    manifests: Mapping[
        str, Descriptor
    ]  # digest -> descriptor: tagged manifests and children of tagged indexes
    blobs: Mapping[str, Descriptor]  # digest -> descriptor: everything reachable (configs, layers, manifests)


def read_verified(store: Store, desc: Descriptor) -> bytes:
    """The bytes of a small blob (a manifest or index): of the descriptor's size, then rehashed by the store's
    ``read_blob`` (which, on a writable store, also moves a damaged blob aside)."""
    if desc.size > MAX_MANIFEST_BYTES:
        raise BlobDamaged(f"{desc.digest} is {desc.size} bytes, more than a manifest may be")
    try:
        size = store.blob_size(desc.digest)
    except StoreError:
        raise BlobMissing(f"{desc.digest} is not in the store") from None
    if size != desc.size:  # checked before reading: a damaged file may be of any size
        raise BlobDamaged(
            f"{desc.digest} is damaged in the store: {size} bytes, its descriptor says {desc.size}"
        )
    try:
        return store.read_blob(desc.digest)
    except StoreError:
        raise BlobDamaged(
            f"{desc.digest} is damaged in the store: its content does not hash to its name"
        ) from None


def document_media_type(data: bytes, desc: Descriptor) -> str:
    """A manifest's own ``mediaType`` (what clients dispatch on), else the descriptor's."""
    try:
        doc = json.loads(data)
    except ValueError:
        return desc.media_type
    media_type = doc.get("mediaType") if isinstance(doc, dict) else None
    return media_type if isinstance(media_type, str) else desc.media_type


class StoreView:
    """Repositories of a store, recomputed when its ``index.json`` changes. Thread-safe."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._signature: tuple[int, ...] | None = None
        self._repos: dict[str, Repository] = {}
        self._children: dict[str, tuple[list[Descriptor], list[Descriptor]]] = {}

    def repositories(self) -> Mapping[str, Repository]:
        with self._lock:
            signature = self._index_signature()
            if signature != self._signature:
                self._repos = self._compute()
                self._signature = signature
            return self._repos

    def _index_signature(self) -> tuple[int, ...]:
        try:
            st = os.stat(self.store.index_path)
        except FileNotFoundError:
            return ()
        except OSError as err:
            raise StoreError(f"cannot read {self.store.index_path}: {err.strerror or err}") from err
        return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)

    def _compute(self) -> dict[str, Repository]:
        by_repo: dict[str, dict[str, Descriptor]] = {}
        for ref, desc in self.store.tags().items():
            parts = split_ref(ref)
            if parts is None or not is_digest(desc.digest):
                continue  # not expressible as a registry reference: not served
            by_repo.setdefault(parts[0], {})[parts[1]] = desc
        repos = {}
        for name, tags in sorted(by_repo.items()):
            manifests: dict[str, Descriptor] = {}
            blobs: dict[str, Descriptor] = {}
            stack = list(tags.values())
            while stack:
                desc = stack.pop()
                if desc.digest in blobs or desc.media_type not in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
                    continue
                manifests.setdefault(desc.digest, desc)
                blobs[desc.digest] = desc
                submanifests, leaves = self._children_of(desc)
                stack += submanifests
                for leaf in leaves:
                    blobs.setdefault(leaf.digest, leaf)
            repos[name] = Repository(name, dict(sorted(tags.items())), manifests, blobs)
        return repos

    def _children_of(self, desc: Descriptor) -> tuple[list[Descriptor], list[Descriptor]]:
        """(sub-manifests, config and layers) of a manifest or index; nothing when it is missing or damaged."""
        if desc.digest in self._children:
            return self._children[desc.digest]
        try:
            data = read_verified(self.store, desc)
            if desc.media_type in MANIFEST_MEDIA_TYPES:
                m = from_json(data, Manifest)
                result: tuple[list[Descriptor], list[Descriptor]] = ([], [m.config, *m.layers])
            else:
                result = (list(from_json(data, Index).manifests), [])
        except (BlobMissing, BlobDamaged, StoreError):
            return [], []  # not cached: a repaired store is seen at the next index change
        result = (
            [d for d in result[0] if is_digest(d.digest)],
            [d for d in result[1] if is_digest(d.digest)],
        )
        self._children[desc.digest] = result
        return result
