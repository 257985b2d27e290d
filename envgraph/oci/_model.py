"""OCI document models: descriptor, platform, image config, manifest, index; canonical JSON in and out.

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
from typing import Any, TypeVar

import attrs

from envgraph._convert import structure, unstructure
from envgraph._hashing import canonical_json
from envgraph.errors import StoreError
from envgraph.identity import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST

__all__ = [
    "DEFAULT_PLATFORM",
    "DOCKER_MAX_LAYERS",
    "ContainerConfig",
    "Descriptor",
    "History",
    "ImageConfig",
    "Index",
    "Manifest",
    "Platform",
    "RootFS",
    "from_json",
    "to_json",
]

DOCKER_MAX_LAYERS = 125
"""Docker's layer store refuses deeper images (moby ``maxLayerDepth``); planners should stay well below."""

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

    @classmethod
    def parse(cls, platform: str) -> Platform:
        """``linux/amd64`` -> Platform(architecture="amd64", os="linux")."""
        os_, _, arch = platform.partition("/")
        return cls(architecture=arch, os=os_)


DEFAULT_PLATFORM = Platform("amd64", "linux")


@attrs.frozen
class Descriptor:
    media_type: str = attrs.field(metadata=_key("mediaType"))
    digest: str
    size: int
    annotations: dict[str, str] | None = _opt()
    platform: Platform | None = _opt()
    artifact_type: str | None = _opt("artifactType")  # OCI 1.1: a referrer's type, in an index

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
