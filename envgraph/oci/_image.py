"""Reading image documents from a store and writing images (config and manifest) into it."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence

import attrs

from envgraph._hashing import sha256_digest
from envgraph.errors import BuildError, StoreError
from envgraph.identity import (
    INDEX_MEDIA_TYPES,
    MANIFEST_MEDIA_TYPES,
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    compression_of_media_type,
)
from envgraph.oci._model import (
    DEFAULT_PLATFORM,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Index,
    Manifest,
    Platform,
    RootFS,
    from_json,
    to_json,
)
from envgraph.oci._store import Store

__all__ = [
    "ImageConfigSpec",
    "ImageLayer",
    "chain_ids",
    "read_config",
    "read_image",
    "read_index",
    "read_manifest",
    "write_image",
    "write_index",
    "platform_manifests",
    "pick_platform",
]


# --- reading from a store --------------------------------------------------------------------------


def read_manifest(store: Store, digest: str) -> Manifest:
    m = from_json(store.read_blob(digest), Manifest)
    if m.media_type not in MANIFEST_MEDIA_TYPES:
        raise StoreError(f"blob {digest} is a {m.media_type!r}, not an image manifest")
    return m


def read_image(store: Store, desc: Descriptor, *, elsewhere: Callable[[str], bool] | None = None) -> Manifest:
    """The manifest a tag points at, checked against the tag's descriptor (digest, size and media type) and
    with every blob it names present and known good: what export, load and push may use. A layer for which
    ``elsewhere(digest)`` holds may be absent (a push mounts it from the registry repository that has it)."""
    data = store.read_blob(desc.digest)
    m = from_json(data, Manifest)
    if m.media_type not in MANIFEST_MEDIA_TYPES or (m.media_type, len(data)) != (desc.media_type, desc.size):
        raise StoreError(
            f"the store's index entry for {desc.digest} says {desc.media_type} of {desc.size} bytes, but the "
            f"manifest is {m.media_type} of {len(data)} bytes: run `envgraph verify --repair`"
        )
    for blob in (m.config, *m.layers):
        if (
            blob is not m.config
            and elsewhere is not None
            and elsewhere(blob.digest)
            and not store.has_blob(blob.digest)
        ):
            continue
        if not store.verified(blob.digest, size=blob.size):
            raise StoreError(
                f"blob {blob.digest} of image {desc.digest} is missing or damaged: run `envgraph build` to rebuild it"
            )
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


def _sorted_dict(m: Mapping[str, str]) -> dict[str, str]:
    return dict(sorted(m.items()))


def _str_tuple(values: Iterable[str]) -> tuple[str, ...]:
    return tuple(values)


@attrs.frozen
class ImageConfigSpec:
    """What an envgraph image sets in its config; ``env`` takes a mapping or ``NAME=value`` strings."""

    env: tuple[str, ...] = attrs.field(default=(), converter=_env_tuple)
    working_dir: str | None = None
    entrypoint: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tuple)
    cmd: tuple[str, ...] | None = attrs.field(default=None, converter=_opt_tuple)
    labels: Mapping[str, str] = attrs.field(factory=dict, converter=_sorted_dict)
    user: str | None = None
    exposed_ports: tuple[str, ...] = attrs.field(default=(), converter=_str_tuple)
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
    elsewhere: Collection[str] = (),
) -> Descriptor:
    """Write the config and manifest blobs of an image; returns the manifest descriptor (with platform).

    ``layers`` are in image order (base layers first) and must already be in ``store``. With ``base`` (the
    base image's config), its diff_ids must be the first of ``layers``; its config (user, ports, env...)
    is inherited, ``config`` overriding it, and its history kept. Layers whose digest is in ``elsewhere``
    are kept by a registry (built on a remote executor and published there): only their descriptors are used.
    """
    diff_ids = tuple(layer.diff_id for layer in layers)
    for layer in layers:
        compression_of_media_type(layer.descriptor.media_type)  # raises on a non-layer descriptor
        if layer.descriptor.digest in elsewhere:
            continue
        if not store.verified(layer.descriptor.digest, size=layer.descriptor.size):
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


# --- multi-platform images ------------------------------------------------------------------------


def write_index(
    store: Store, manifests: Sequence[Descriptor], annotations: Mapping[str, str] | None = None
) -> Descriptor:
    """Write an OCI image index over one manifest per platform (each descriptor carries its platform), in the
    order given (the primary platform first, as ``docker buildx`` lists them); returns its descriptor."""
    seen: set[tuple[str, str, str | None]] = set()
    for m in manifests:
        if m.platform is None:
            raise BuildError(f"manifest {m.digest} has no platform: an image index needs one per entry")
        p = (m.platform.os, m.platform.architecture, m.platform.variant)
        if p in seen:
            raise BuildError(
                f"two manifests for {m.platform.os}/{m.platform.architecture} in one image index"
            )
        seen.add(p)
    index = Index(
        manifests=tuple(manifests), annotations=dict(sorted(annotations.items())) if annotations else None
    )
    digest, size = store.add_bytes(to_json(index))
    return Descriptor(MEDIA_TYPE_INDEX, digest, size)


def platform_manifests(store: Store, desc: Descriptor) -> list[Descriptor]:
    """The image manifests a tag reaches: itself for a manifest, each platform's for an image index (checked:
    the index's bytes match the tag's descriptor, every entry is a manifest with a platform)."""
    if desc.media_type in MANIFEST_MEDIA_TYPES:
        return [desc]
    if desc.media_type not in INDEX_MEDIA_TYPES:
        raise StoreError(f"{desc.digest} is a {desc.media_type!r}, neither an image nor an image index")
    data = store.read_blob(desc.digest)
    if len(data) != desc.size:
        raise StoreError(f"image index {desc.digest} is {len(data)} bytes, its tag says {desc.size}")
    index = from_json(data, Index)
    out = []
    for m in index.manifests:
        if m.media_type not in MANIFEST_MEDIA_TYPES or m.platform is None:
            raise StoreError(
                f"image index {desc.digest} lists {m.digest}, which is not a platform's image manifest"
            )
        out.append(m)
    return out


def pick_platform(store: Store, desc: Descriptor, platform: Platform) -> Descriptor:
    """The manifest for ``platform`` a tag reaches (itself when it is one image); StoreError when the index has
    no image for it."""
    manifests = platform_manifests(store, desc)
    if desc.media_type in MANIFEST_MEDIA_TYPES:
        return desc
    for m in manifests:
        assert m.platform is not None
        if (m.platform.os, m.platform.architecture) == (platform.os, platform.architecture):
            return m
    have = ", ".join(f"{m.platform.os}/{m.platform.architecture}" for m in manifests if m.platform)
    raise StoreError(f"no image for {platform.os}/{platform.architecture} (this image has {have})")
