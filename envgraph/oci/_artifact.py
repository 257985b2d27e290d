"""OCI 1.1 artifacts that refer to an image (an env's SBOM): the manifest and the blobs it names.

An image manifest with ``artifactType``, the empty config (``{}``), the document as its one layer and
``subject`` = the image's manifest descriptor, written canonically so the same document gives the same digest.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from attrs import frozen

from envgraph._hashing import canonical_json, sha256_digest
from envgraph.identity import ANNOTATION_TITLE, EMPTY_JSON, MEDIA_TYPE_EMPTY, MEDIA_TYPE_MANIFEST
from envgraph.oci._model import Descriptor

__all__ = ["Artifact", "make_artifact"]


@frozen
class Artifact:
    manifest: bytes
    descriptor: (
        Descriptor  # of the manifest, with artifactType and annotations (as a referrers index lists it)
    )
    blobs: dict[str, bytes]  # digest -> bytes: the empty config and the document

    def all_blobs(self) -> dict[str, bytes]:
        return {**self.blobs, self.descriptor.digest: self.manifest}


def _desc(media_type: str, data: bytes, **extra: Any) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": sha256_digest(data), "size": len(data), **extra}


def make_artifact(
    document: bytes,
    media_type: str,
    subject: Descriptor,
    *,
    title: str,
    annotations: Mapping[str, str] | None = None,
) -> Artifact:
    """The artifact whose one layer is ``document`` (of ``media_type``, also its artifactType), about ``subject``."""
    doc: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "artifactType": media_type,
        "config": _desc(MEDIA_TYPE_EMPTY, EMPTY_JSON),
        "layers": [_desc(media_type, document, annotations={ANNOTATION_TITLE: title})],
        "subject": {"mediaType": subject.media_type, "digest": subject.digest, "size": subject.size},
    }
    ann = dict(sorted(annotations.items())) if annotations else None
    if ann:
        doc["annotations"] = ann
    body = canonical_json(doc)
    descriptor = Descriptor(
        media_type=MEDIA_TYPE_MANIFEST,
        digest=sha256_digest(body),
        size=len(body),
        annotations=ann,
        artifact_type=media_type,
    )
    return Artifact(
        body, descriptor, {sha256_digest(EMPTY_JSON): EMPTY_JSON, sha256_digest(document): document}
    )
