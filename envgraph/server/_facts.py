"""What the dashboard shows about a project, read once per change: envs, their lockfiles and built images.

Reading is cached: the facts are re-read only when the store's ``index.json`` or a lockfile changes (stat
calls only), so a page for 1,000 envs does not reread 2,000 documents. Nothing here writes.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from pathlib import Path

from attrs import frozen

from envgraph.errors import EnvgraphError
from envgraph.graph import EnvGraph
from envgraph.history._collect import read_lock_facts
from envgraph.identity import image_tag
from envgraph.lock import FilesRef, chain_ident
from envgraph.oci._image import read_config, read_manifest
from envgraph.oci._store import Store

__all__ = ["EnvFacts", "FactsSource", "ImageFacts", "LayerFacts", "ProjectFacts", "PackageFacts"]


@frozen
class LayerFacts:
    digest: str
    size: int
    label: str  # what the layer holds ("alpha 1.0", "merged a, b", "venv", ...)


@frozen
class ImageFacts:
    tag: str  # store tag <env>:<id12>
    digest: str  # manifest digest
    size: int  # manifest + config + layers
    layers: tuple[LayerFacts, ...]


@frozen
class PackageFacts:
    name: str  # Debian packages as deb:NAME
    version: str
    layer: LayerFacts | None  # None when not built yet


@frozen
class EnvFacts:
    name: str
    parent: str | None
    base: str  # the root base
    drv: str | None  # None: no lockfile
    ident: str | None  # what names its current image (identity.image_id); None: no lockfile or files gone
    lock_digest: str | None
    packages: tuple[PackageFacts, ...]
    image: ImageFacts | None  # the image of the current lockfile, when built
    tags: tuple[tuple[str, str], ...]  # every store tag of this env (older builds too): (tag, digest)


@frozen(eq=False)  # compared (and cached on) by identity: one per change of the project
class ProjectFacts:
    name: str
    graph: EnvGraph
    envs: Mapping[str, EnvFacts]


def _layer_for(name: str, version: str, layers: Mapping[str, LayerFacts]) -> LayerFacts | None:
    direct = layers.get(f"{name} {version}")
    if direct is not None:
        return direct
    for label, layer in layers.items():  # beyond max-layers: one merged tail layer
        if label.startswith("merged ") and name in label.removeprefix("merged ").split(", "):
            return layer
    return None


def read_image_facts(store: Store, tag: str, digest: str, manifest_size: int) -> ImageFacts | None:
    try:
        manifest = read_manifest(store, digest)
        config = read_config(store, manifest.config.digest)
    except (EnvgraphError, OSError, ValueError):
        return None  # damaged or missing: shown as not built
    comments = [h.comment or h.created_by or "" for h in config.history or () if not h.empty_layer]
    if len(comments) != len(manifest.layers):
        comments = [""] * len(manifest.layers)
    layers = tuple(
        LayerFacts(d.digest, d.size, c.removeprefix("envgraph: "))
        for d, c in zip(manifest.layers, comments, strict=True)
    )
    size = manifest_size + manifest.config.size + sum(d.size for d in manifest.layers)
    return ImageFacts(tag, digest, size, layers)


def read_facts(graph: EnvGraph, lockdir: Path, store: Store | None) -> ProjectFacts:
    envs = graph.envs()
    locks = read_lock_facts(graph, lockdir, envs)
    tags = store.tags() if store is not None else {}
    by_env: dict[str, list[tuple[str, str]]] = {}
    for ref, desc in tags.items():
        by_env.setdefault(ref.partition(":")[0], []).append((ref, desc.digest))
    out: dict[str, EnvFacts] = {}
    known: dict[FilesRef, str] = {}
    for env in envs:
        lock = locks.locks.get(env)
        ident = None
        if lock is not None and all(a in locks.locks for a in graph.chain(env)):
            with contextlib.suppress(EnvgraphError):  # its files are gone: no current image to name
                ident = chain_ident(graph.spec.root, [locks.locks[a] for a in graph.chain(env)], known)
        image = None
        if ident is not None and store is not None:
            tag = image_tag(env, ident)
            found = tags.get(tag)
            if found is not None:
                image = read_image_facts(store, tag, found.digest, found.size)
        layers = {layer.label: layer for layer in image.layers} if image else {}
        packages = tuple(
            PackageFacts(n, v, _layer_for(n, v, layers))
            for n, v in sorted(locks.packages(env).items(), key=lambda nv: (nv[0].startswith("deb:"), nv[0]))
        )
        out[env] = EnvFacts(
            name=env,
            parent=graph.parent(env),
            base=graph.root_base(env),
            drv=lock.drv if lock is not None else None,
            ident=ident,
            lock_digest=locks.digests.get(env),
            packages=packages if lock is not None else (),
            image=image,
            tags=tuple(sorted(by_env.get(env, ()))),
        )
    return ProjectFacts(graph.spec.project.name, graph, out)


class FactsSource:
    """:class:`ProjectFacts` of a project, re-read when its store index or lockfiles change. Thread-safe."""

    def __init__(self, graph: EnvGraph, lockdir: Path, store: Store | None) -> None:
        self.graph = graph
        self.lockdir = lockdir
        self.store = store
        self._lock = threading.Lock()
        self._signature: tuple[object, ...] | None = None
        self._facts: ProjectFacts | None = None

    def _stamp(self, path: Path) -> tuple[int, int, int] | None:
        try:
            st = os.stat(path)
        except OSError:
            return None
        return (st.st_ino, st.st_size, st.st_mtime_ns)

    def signature(self) -> tuple[object, ...]:
        index = self._stamp(self.store.index_path) if self.store is not None else None
        try:
            with os.scandir(self.lockdir) as it:
                locks = tuple(
                    sorted((e.name, e.stat().st_mtime_ns, e.stat().st_size) for e in it if e.is_file())
                )
        except OSError:
            locks = ()
        return (index, locks)

    def facts(self) -> ProjectFacts:
        with self._lock:
            signature = self.signature()
            if self._facts is None or signature != self._signature:
                self._facts = read_facts(self.graph, self.lockdir, self.store)
                self._signature = signature
            return self._facts
