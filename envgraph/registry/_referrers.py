"""OCI 1.1 referrers: attach an artifact (an env's SBOM) to a pushed image, and find it again.

The artifact is an image manifest with ``artifactType``, the empty config (``{}``), the document as its one layer
and ``subject`` = the image's manifest descriptor. A registry with the referrers API says so with the
``OCI-Subject`` header when the manifest is put; otherwise (Debian's docker-registry 2.8) the client keeps the list
itself, as the distribution spec's referrers tag schema says: the image index tagged ``<alg>-<hex>`` of the
subject is pulled (a new one on 404; anything other than an image index is an error), the descriptor of the new
manifest (with its ``artifactType`` and annotations) appended unless already there, and the index put back.
Entries other tools put there (signatures, attestations) are kept as they are.
"""

from __future__ import annotations

import io
import json
from typing import Any

from attrs import frozen

from envgraph._convert import unstructure
from envgraph._hashing import canonical_json, is_digest, sha256_digest
from envgraph.errors import RegistryError
from envgraph.identity import MEDIA_TYPE_INDEX, MEDIA_TYPE_MANIFEST, referrers_tag
from envgraph.oci._artifact import Artifact
from envgraph.registry._client import RegistryClient

__all__ = ["Attached", "attach", "referrers"]


@frozen
class Attached:
    digest: str  # the artifact manifest's
    tag: str | None  # the referrers tag written, None when the registry has the referrers API


def _upload(client: RegistryClient, repo: str, data: bytes) -> None:
    client.push_blob(repo, sha256_digest(data), len(data), lambda: io.BytesIO(data))


def attach(client: RegistryClient, repo: str, art: Artifact) -> Attached:
    """Push the artifact (whose subject is already in ``repo``) and record it as a referrer of its subject.
    Pushing the same artifact again changes nothing."""
    subject = json.loads(art.manifest)["subject"]["digest"]
    for data in art.blobs.values():
        _upload(client, repo, data)
    digest, indexed = client.put_manifest_subject(
        repo, art.descriptor.digest, art.manifest, MEDIA_TYPE_MANIFEST
    )
    if indexed == subject:
        return Attached(digest, None)
    tag = referrers_tag(subject)
    index = _tag_index(client, repo, tag)
    if not any(m.get("digest") == digest for m in index["manifests"]):
        index["manifests"].append(unstructure(art.descriptor))
        client.put_manifest(repo, tag, canonical_json(index), MEDIA_TYPE_INDEX)
    return Attached(digest, tag)


def _tag_index(client: RegistryClient, repo: str, tag: str) -> dict[str, Any]:
    # Asked for with every manifest type: something else under the tag must be seen (and refused), not
    # answered with 404 and overwritten.
    if client.manifest_exists(repo, tag) is None:
        return {"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": []}
    body, media_type, _ = client.get_manifest(repo, tag)
    return _parse_index(body, media_type, f"{repo}:{tag}")


def _parse_index(body: bytes, media_type: str, what: str) -> dict[str, Any]:
    try:
        index = json.loads(body)
    except ValueError:
        raise RegistryError(f"referrers list {what} is not JSON") from None
    if (
        media_type != MEDIA_TYPE_INDEX
        or not isinstance(index, dict)
        or index.get("mediaType", MEDIA_TYPE_INDEX) != MEDIA_TYPE_INDEX
        or not isinstance(index.get("manifests", []), list)
        or not all(
            isinstance(m, dict) and is_digest(str(m.get("digest"))) for m in index.get("manifests", [])
        )
    ):
        raise RegistryError(f"{what} holds something other than an OCI image index of referrers")
    index.setdefault("manifests", [])
    return index


def referrers(
    client: RegistryClient, repo: str, subject: str, artifact_type: str | None = None
) -> list[dict[str, Any]]:
    """Descriptors of the manifests referring to ``subject`` (the referrers API, else the referrers tag),
    optionally only those of ``artifact_type``."""
    body = client.get_referrers(repo, subject)
    if body is not None:
        found = _parse_index(body, MEDIA_TYPE_INDEX, f"referrers of {repo}@{subject}")["manifests"]
    else:
        tag = referrers_tag(subject)
        found = _tag_index(client, repo, tag)["manifests"]
    return [m for m in found if artifact_type is None or m.get("artifactType") == artifact_type]
