"""OCI image models (descriptor, platform, image config, manifest, index) and writing images.

JSON keys are exactly the OCI image-spec's (``mediaType``, ``schemaVersion``, ``diff_ids``, ``Env``...):
fields are renamed with the shared converter's ``{"key": ...}`` metadata and optional fields are left out
when unset (``omit_if_default``). Documents are serialised with :func:`envgraph._hashing.canonical_json`,
so the same image always has the same digests. Our configs carry no ``created`` timestamp.

Reading tolerates keys we do not model (documents written by Docker, skopeo, registries): unknown keys
are dropped before structuring, so the strict converter still rejects wrong types.
"""

from __future__ import annotations

import functools
import json
import types
import typing
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import attrs

from envgraph._convert import structure, unstructure
from envgraph._hashing import canonical_json, sha256_digest
from envgraph.errors import BuildError, StoreError
from envgraph.oci._compress import (
    DOCKER_MEDIA_TYPE_MANIFEST,
    DOCKER_MEDIA_TYPE_MANIFEST_LIST,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    compression_of_media_type,
)

if TYPE_CHECKING:
    from envgraph.oci._store import Store

__all__ = [
    "ANNOTATION_REF_NAME",
    "DEFAULT_PLATFORM",
    "DOCKER_MAX_LAYERS",
    "ContainerConfig",
    "Descriptor",
    "History",
    "ImageConfig",
    "ImageConfigSpec",
    "ImageLayer",
    "INDEX_MEDIA_TYPES",
    "MANIFEST_MEDIA_TYPES",
    "Index",
    "Manifest",
    "Platform",
    "RootFS",
    "build_image",
    "chain_ids",
    "from_json",
    "read_config",
    "read_index",
    "read_manifest",
    "to_json",
    "write_image",
]

ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
DOCKER_MAX_LAYERS = 125
"""Docker's layer store refuses deeper images (moby ``maxLayerDepth``); planners should stay well below."""

MANIFEST_MEDIA_TYPES = (MEDIA_TYPE_MANIFEST, DOCKER_MEDIA_TYPE_MANIFEST)
INDEX_MEDIA_TYPES = (MEDIA_TYPE_INDEX, DOCKER_MEDIA_TYPE_MANIFEST_LIST)

T = TypeVar("T")


def _opt(key: str | None = None) -> Any:
    """An optional field left out of the JSON when unset."""
    meta: dict[str, Any] = {"omit_if_default": True}
    if key:
        meta["key"] = key
    return attrs.field(default=None, metadata=meta)


def _key(key: str) -> dict[str, str]:
    return {"key": key}


@attrs.frozen
class Platform:
    architecture: str
    os: str
    variant: str | None = _opt()
    os_version: str | None = _opt("os.version")
    os_features: tuple[str, ...] | None = _opt("os.features")


DEFAULT_PLATFORM = Platform("amd64", "linux")


@attrs.frozen
class Descriptor:
    media_type: str = attrs.field(metadata=_key("mediaType"))
    digest: str
    size: int
    annotations: dict[str, str] | None = _opt()
    platform: Platform | None = _opt()

    def evolve(self, **changes: Any) -> Descriptor:
        return attrs.evolve(self, **changes)


@attrs.frozen
class ContainerConfig:
    """The ``config`` object of an image config (what ``docker run`` uses)."""

    User: str | None = _opt()
    ExposedPorts: dict[str, dict[str, Any]] | None = _opt()
    Env: tuple[str, ...] | None = _opt()
    Entrypoint: tuple[str, ...] | None = _opt()
    Cmd: tuple[str, ...] | None = _opt()
    Volumes: dict[str, dict[str, Any]] | None = _opt()
    WorkingDir: str | None = _opt()
    Labels: dict[str, str] | None = _opt()
    StopSignal: str | None = _opt()


@attrs.frozen
class RootFS:
    diff_ids: tuple[str, ...]
    type: str = "layers"


@attrs.frozen
class History:
    created: str | None = _opt()
    created_by: str | None = _opt()
    author: str | None = _opt()
    comment: str | None = _opt()
    empty_layer: bool | None = _opt()


@attrs.frozen
class ImageConfig:
    architecture: str
    os: str
    rootfs: RootFS
    config: ContainerConfig | None = _opt()
    history: tuple[History, ...] | None = _opt()
    variant: str | None = _opt()
    os_version: str | None = _opt("os.version")
    created: str | None = _opt()
    author: str | None = _opt()


@attrs.frozen
class Manifest:
    config: Descriptor
    layers: tuple[Descriptor, ...]
    schema_version: int = attrs.field(default=2, metadata=_key("schemaVersion"))
    media_type: str = attrs.field(default=MEDIA_TYPE_MANIFEST, metadata=_key("mediaType"))
    annotations: dict[str, str] | None = _opt()


@attrs.frozen
class Index:
    manifests: tuple[Descriptor, ...] = ()
    schema_version: int = attrs.field(default=2, metadata=_key("schemaVersion"))
    media_type: str = attrs.field(default=MEDIA_TYPE_INDEX, metadata=_key("mediaType"))
    annotations: dict[str, str] | None = _opt()


# --- JSON --------------------------------------------------------------------------------------------


def to_json(obj: Any) -> bytes:
    """Canonical JSON of a model: the bytes whose sha256 is its digest."""
    return canonical_json(unstructure(obj))


def _prune_value(value: Any, tp: Any) -> Any:
    if isinstance(tp, type) and attrs.has(tp):
        return _prune(value, tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if isinstance(arg, type) and attrs.has(arg) and isinstance(value, dict):
                return _prune(value, arg)
            if typing.get_origin(arg) is tuple and isinstance(value, list):
                return _prune_value(value, arg)
        return value
    if origin is tuple and isinstance(value, list) and args:
        return [_prune_value(v, args[0]) for v in value]
    return value


@functools.cache
def _type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)  # slow (evaluates every annotation): once per class


def _prune(data: Any, cls: type) -> Any:
    """Drop keys ``cls`` does not model, recursively (documents written by other tools carry more)."""
    if not isinstance(data, dict):
        return data
    hints = _type_hints(cls)
    out = {}
    for a in attrs.fields(cls):
        key = a.metadata.get("key", a.name)
        if key in data and not (data[key] is None and a.default is None):
            out[key] = _prune_value(data[key], hints[a.name])
    return out


def from_json(data: bytes | str, cls: type[T]) -> T:
    """Parse a document into ``cls``, ignoring keys we do not model. Raises StoreError when malformed."""
    try:
        obj: T = structure(_prune(json.loads(data), cls), cls)
    except Exception as err:  # json and cattrs errors alike: the document is not what it claims
        raise StoreError(f"malformed {cls.__name__} document: {err}") from err
    return obj


# --- reading from a store --------------------------------------------------------------------------


def read_manifest(store: Store, digest: str) -> Manifest:
    m = from_json(store.read_blob(digest), Manifest)
    if m.media_type not in MANIFEST_MEDIA_TYPES:
        raise StoreError(f"blob {digest} is a {m.media_type!r}, not an image manifest")
    return m


def read_index(store: Store, digest: str) -> Index:
    return from_json(store.read_blob(digest), Index)


def read_config(store: Store, digest: str) -> ImageConfig:
    return from_json(store.read_blob(digest), ImageConfig)


# --- writing images --------------------------------------------------------------------------------


def _env_tuple(value: Mapping[str, str] | Iterable[str]) -> tuple[str, ...]:
    items = [f"{k}={v}" for k, v in value.items()] if isinstance(value, Mapping) else list(value)
    for item in items:
        if not isinstance(item, str) or "=" not in item or item.startswith("="):
            raise BuildError(f"environment entry {item!r} is not NAME=value")
    return tuple(items)


def _opt_tuple(value: Iterable[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        raise BuildError(f"expected a list of arguments, got the string {value!r}")
    return tuple(value)


@attrs.frozen
class ImageConfigSpec:
    """What an envgraph image sets in its config; ``env`` takes a mapping or ``NAME=value`` strings."""

    env: tuple[str, ...] = attrs.field(default=(), converter=_env_tuple)
    working_dir: str | None = None
    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tuple)
    cmd: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tuple)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=lambda m: dict(sorted(m.items())))
    user: str | None = None
    exposed_ports: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    created: str | None = None
    created_by: str = "envgraph"


@attrs.frozen
class ImageLayer:
    diff_id: str
    descriptor: Descriptor
    history_comment: str | None = None


def _merge_env(base: Sequence[str], ours: Sequence[str]) -> tuple[str, ...]:
    merged: dict[str, str] = {}
    for item in (*base, *ours):
        name, _, _ = item.partition("=")
        merged[name] = item
    return tuple(merged.values())


def chain_ids(diff_ids: Sequence[str]) -> list[str]:
    """ChainID of every prefix (OCI config.md): what the Docker daemon keys stored layers by."""
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else sha256_digest(f"{out[-1]} {d}".encode()))
    return out


def write_image(
    store: Store,
    layers: Sequence[ImageLayer],
    config: ImageConfigSpec,
    platform: Platform = DEFAULT_PLATFORM,
    *,
    base: ImageConfig | None = None,
    annotations: Mapping[str, str] | None = None,
) -> Descriptor:
    """Write the config and manifest blobs of an image; returns the manifest descriptor (with platform).

    ``layers`` are in image order (base layers first) and must already be in ``store``. With ``base`` (the
    base image's config), its diff_ids must be the first of ``layers``; its config (user, ports, env...)
    is inherited, ``config`` overriding it, and its history kept.
    """
    diff_ids = tuple(layer.diff_id for layer in layers)
    for layer in layers:
        compression_of_media_type(layer.descriptor.media_type)  # raises on a non-layer descriptor
        if not store.has_blob(layer.descriptor.digest):
            raise BuildError(f"layer {layer.descriptor.digest} ({layer.history_comment}) is not in the store")

    base_cfg = ContainerConfig()
    history: list[History] = []
    if base is not None:
        base_ids = base.rootfs.diff_ids
        if diff_ids[: len(base_ids)] != base_ids:
            raise BuildError("the image's first layers are not the base image's layers")
        if (base.architecture, base.os) != (platform.architecture, platform.os):
            raise BuildError(
                f"base image is {base.os}/{base.architecture}, target is {platform.os}/{platform.architecture}"
            )
        base_cfg = base.config or ContainerConfig()
        base_history = list(base.history or ())
        if sum(1 for h in base_history if not h.empty_layer) != len(base_ids):
            base_history = [History(created_by="base image layer") for _ in base_ids]
        history = base_history
        new_layers = layers[len(base_ids) :]
    else:
        new_layers = layers
    history += [
        History(created=config.created, created_by=config.created_by, comment=layer.history_comment)
        for layer in new_layers
    ]

    env = _merge_env(base_cfg.Env or (), config.env)
    labels = {**(base_cfg.Labels or {}), **config.labels}
    ports = {**(base_cfg.ExposedPorts or {}), **{p: {} for p in config.exposed_ports}}
    container = ContainerConfig(
        User=config.user if config.user is not None else base_cfg.User,
        ExposedPorts=ports or None,
        Env=env or None,
        Entrypoint=config.entrypoint if config.entrypoint is not None else base_cfg.Entrypoint,
        Cmd=config.cmd if config.cmd is not None else base_cfg.Cmd,
        Volumes=base_cfg.Volumes,
        WorkingDir=config.working_dir if config.working_dir is not None else base_cfg.WorkingDir,
        Labels=labels or None,
        StopSignal=base_cfg.StopSignal,
    )
    image_config = ImageConfig(
        architecture=platform.architecture,
        os=platform.os,
        variant=platform.variant,
        rootfs=RootFS(diff_ids=diff_ids),
        config=container,
        history=tuple(history),
        created=config.created,
    )
    cfg_bytes = to_json(image_config)
    cfg_digest, cfg_size = store.add_bytes(cfg_bytes)
    manifest = Manifest(
        config=Descriptor(MEDIA_TYPE_CONFIG, cfg_digest, cfg_size),
        layers=tuple(layer.descriptor for layer in layers),
        annotations=dict(sorted(annotations.items())) if annotations else None,
    )
    m_digest, m_size = store.add_bytes(to_json(manifest))
    return Descriptor(MEDIA_TYPE_MANIFEST, m_digest, m_size, platform=platform)


build_image = write_image
"""Alias: docs/ARCHITECTURE.md names it ``build_image``."""
