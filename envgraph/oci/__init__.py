"""OCI images built from deterministic, content-addressed layers.

``tar`` writes deterministic tars, ``compress`` compresses them deterministically, ``layer`` turns a tar
producer into a stored layer blob in one pass, ``store`` is the local OCI layout with the layer-key
index, ``image`` holds the config/manifest models and writes images, ``archive`` exports and imports
OCI and docker archives. (``registry`` and ``auth`` talk to registries.)
"""

from __future__ import annotations

from envgraph.oci._archive import (
    export_docker_archive,
    export_oci_archive,
    import_docker_archive,
    import_oci_archive,
    import_oci_layout,
)
from envgraph.oci._compress import (
    MEDIA_TYPE_CONFIG,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_LAYER_GZIP,
    MEDIA_TYPE_LAYER_TAR,
    MEDIA_TYPE_LAYER_ZSTD,
    MEDIA_TYPE_MANIFEST,
    Compression,
    Compressor,
    open_decompressed,
    sniff_compression,
)
from envgraph.oci._image import (
    ANNOTATION_REF_NAME,
    DEFAULT_PLATFORM,
    DOCKER_MAX_LAYERS,
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    ImageConfigSpec,
    ImageLayer,
    Index,
    Manifest,
    Platform,
    RootFS,
    build_image,
    chain_ids,
    read_config,
    read_index,
    read_manifest,
    write_image,
)
from envgraph.oci._layer import (
    LayerBlob,
    layer_format,
    layer_from_directory,
    layer_from_tarstream,
    record_layer,
    write_layer,
)
from envgraph.oci._store import BlobWriter, LayerRecord, Store
from envgraph.oci._tar import DEFAULT_MTIME, FORMAT_ID, LayerEntry, layer_mtime, tar_directory, write_tar

__all__ = [
    "ANNOTATION_REF_NAME",
    "DEFAULT_MTIME",
    "DEFAULT_PLATFORM",
    "DOCKER_MAX_LAYERS",
    "FORMAT_ID",
    "MEDIA_TYPE_CONFIG",
    "MEDIA_TYPE_INDEX",
    "MEDIA_TYPE_LAYER_GZIP",
    "MEDIA_TYPE_LAYER_TAR",
    "MEDIA_TYPE_LAYER_ZSTD",
    "MEDIA_TYPE_MANIFEST",
    "BlobWriter",
    "Compression",
    "Compressor",
    "ContainerConfig",
    "Descriptor",
    "History",
    "ImageConfig",
    "ImageConfigSpec",
    "ImageLayer",
    "Index",
    "LayerBlob",
    "LayerEntry",
    "LayerRecord",
    "Manifest",
    "Platform",
    "RootFS",
    "Store",
    "build_image",
    "chain_ids",
    "export_docker_archive",
    "export_oci_archive",
    "import_docker_archive",
    "import_oci_archive",
    "import_oci_layout",
    "layer_format",
    "layer_from_directory",
    "layer_from_tarstream",
    "layer_mtime",
    "open_decompressed",
    "read_config",
    "read_index",
    "read_manifest",
    "record_layer",
    "sniff_compression",
    "tar_directory",
    "write_image",
    "write_layer",
    "write_tar",
]
