"""Image bases by reference, skopeo-style: ``oci:DIR[:TAG]``, ``oci-archive:FILE``, ``docker-archive:FILE``,
``docker-daemon:NAME:TAG`` and ``docker://REF``. Locking pins the manifest digest; building imports exactly it."""

from __future__ import annotations

from pathlib import Path

from envgraph.errors import BuildError, EnvgraphError
from envgraph.lock._model import ImagePin
from envgraph.oci._archive import import_docker_archive, import_oci_archive, import_oci_layout
from envgraph.oci._image import read_manifest
from envgraph.oci._model import Descriptor, Platform
from envgraph.oci._store import Store

__all__ = ["pin_image_base", "ensure_image_base"]


def _import(
    store: Store, reference: str, root: Path, platform: Platform, insecure: bool = False
) -> Descriptor:
    transport, _, rest = reference.partition(":")
    try:
        if transport == "oci":
            path, _, tag = rest.partition(":")
            return import_oci_layout(root / path, store, tag or None, platform)
        if transport == "oci-archive":
            path, _, tag = rest.partition(":")
            return import_oci_archive(root / path, store, tag or None, platform)
        if transport == "docker-archive":
            path, _, tag = rest.partition(":")
            return import_docker_archive(root / path, store, tag or None)
        if transport == "docker-daemon":
            from envgraph._docker import connect, save_image

            client = connect()
            with store.temp_dir("daemon-image-") as tmp:
                out = Path(tmp) / "image.tar"
                save_image(client, rest, out)
                return import_docker_archive(out, store, rest)
        if transport == "docker":
            from envgraph.registry._transfer import pull_image

            return pull_image(store, rest.removeprefix("//"), platform, insecure=insecure)
    except FileNotFoundError as e:
        raise BuildError(f"{reference}: {e.strerror}: {e.filename}") from None
    except EnvgraphError as e:
        raise BuildError(f"{reference}: {e}") from None
    raise BuildError(f"unknown transport in {reference!r}")


def pin_image_base(store: Store, reference: str, root: Path, platform: str) -> ImagePin:
    desc = _import(store, reference, root, Platform.parse(platform))
    layers = len(read_manifest(store, desc.digest).layers)
    return ImagePin(reference=reference, digest=desc.digest, layers=layers)


def ensure_image_base(store: Store, pin: ImagePin, root: Path, platform: str) -> Descriptor:
    """The pinned image's manifest in the store (imported again when missing). A moved tag is an error."""
    assert pin.digest is not None
    if store.verified(pin.digest):
        manifest = read_manifest(store, pin.digest)
        if all(store.verified(layer.digest) for layer in manifest.layers) and store.verified(
            manifest.config.digest
        ):
            return Descriptor(media_type=manifest.media_type or "application/vnd.oci.image.manifest.v1+json",
                              digest=pin.digest, size=store.blob_size(pin.digest))  # fmt: skip
    desc = _import(store, pin.reference, root, Platform.parse(platform))
    if desc.digest != pin.digest:
        raise BuildError(
            f"{pin.reference} now resolves to {desc.digest}, not the locked {pin.digest}: "
            "run `envgraph lock --upgrade` to move the pin"
        )
    return desc
