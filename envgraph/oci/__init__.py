"""OCI images from deterministic, content-addressed layers: the tar writer, compression, layer blobs, the
local store (an OCI image layout with a layer-key index), image documents, and archives in and out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.oci._archive import export_docker_archive as export_docker_archive
    from envgraph.oci._archive import export_oci_archive as export_oci_archive
    from envgraph.oci._archive import import_docker_archive as import_docker_archive
    from envgraph.oci._archive import import_oci_archive as import_oci_archive
    from envgraph.oci._archive import import_oci_layout as import_oci_layout
    from envgraph.oci._gc import GcResult as GcResult
    from envgraph.oci._gc import collect_garbage as collect_garbage
    from envgraph.oci._image import ImageConfigSpec as ImageConfigSpec
    from envgraph.oci._image import ImageLayer as ImageLayer
    from envgraph.oci._image import read_config as read_config
    from envgraph.oci._image import read_index as read_index
    from envgraph.oci._image import read_manifest as read_manifest
    from envgraph.oci._image import write_image as write_image
    from envgraph.oci._layer import LayerBlob as LayerBlob
    from envgraph.oci._layer import record_layer as record_layer
    from envgraph.oci._layer import write_layer as write_layer
    from envgraph.oci._model import Descriptor as Descriptor
    from envgraph.oci._model import ImageConfig as ImageConfig
    from envgraph.oci._model import Index as Index
    from envgraph.oci._model import Manifest as Manifest
    from envgraph.oci._model import Platform as Platform
    from envgraph.oci._store import LayerRecord as LayerRecord
    from envgraph.oci._store import Store as Store
    from envgraph.oci._tar import LayerEntry as LayerEntry
    from envgraph.oci._tar import TarStream as TarStream
    from envgraph.oci._tar import write_tar as write_tar
    from envgraph.oci._verify import VerifyReport as VerifyReport
    from envgraph.oci._verify import verify_store as verify_store

_EXPORTS = {
    "Descriptor": "envgraph.oci._model",
    "GcResult": "envgraph.oci._gc",
    "VerifyReport": "envgraph.oci._verify",
    "collect_garbage": "envgraph.oci._gc",
    "verify_store": "envgraph.oci._verify",
    "ImageConfig": "envgraph.oci._model",
    "ImageConfigSpec": "envgraph.oci._image",
    "ImageLayer": "envgraph.oci._image",
    "Index": "envgraph.oci._model",
    "LayerBlob": "envgraph.oci._layer",
    "LayerEntry": "envgraph.oci._tar",
    "LayerRecord": "envgraph.oci._store",
    "Manifest": "envgraph.oci._model",
    "Platform": "envgraph.oci._model",
    "Store": "envgraph.oci._store",
    "TarStream": "envgraph.oci._tar",
    "export_docker_archive": "envgraph.oci._archive",
    "export_oci_archive": "envgraph.oci._archive",
    "import_docker_archive": "envgraph.oci._archive",
    "import_oci_archive": "envgraph.oci._archive",
    "import_oci_layout": "envgraph.oci._archive",
    "read_config": "envgraph.oci._image",
    "read_index": "envgraph.oci._image",
    "read_manifest": "envgraph.oci._image",
    "record_layer": "envgraph.oci._layer",
    "write_image": "envgraph.oci._image",
    "write_layer": "envgraph.oci._layer",
    "write_tar": "envgraph.oci._tar",
}
__all__ = [
    "Descriptor",
    "GcResult",
    "VerifyReport",
    "collect_garbage",
    "verify_store",
    "ImageConfig",
    "ImageConfigSpec",
    "ImageLayer",
    "Index",
    "LayerBlob",
    "LayerEntry",
    "LayerRecord",
    "Manifest",
    "Platform",
    "Store",
    "TarStream",
    "export_docker_archive",
    "export_oci_archive",
    "import_docker_archive",
    "import_oci_archive",
    "import_oci_layout",
    "read_config",
    "read_index",
    "read_manifest",
    "record_layer",
    "write_image",
    "write_layer",
    "write_tar",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
