"""`push` attaches each image's SBOM as an OCI 1.1 referrer; found again through the referrers tag schema."""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from pathlib import Path

import pytest

from envgraph._hashing import canonical_json, sha256_digest
from envgraph.errors import EnvgraphError, RegistryError
from envgraph.identity import (
    EMPTY_JSON,
    MEDIA_TYPE_CYCLONEDX,
    MEDIA_TYPE_EMPTY,
    MEDIA_TYPE_INDEX,
    MEDIA_TYPE_MANIFEST,
    referrers_tag,
)
from envgraph.lock import read_lock
from envgraph.registry._client import RegistryClient
from envgraph.registry._referrers import attach, referrers
from envgraph.sbom import validate_cyclonedx
from envgraph.workspace import Workspace
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def test_pushed_image_carries_its_sbom_found_by_the_referrers_tag(
    locked: Workspace, registry: RunningRegistry
) -> None:
    assert locked.build(jobs=2).ok
    repo = f"sbom/{uuid.uuid4().hex[:8]}"
    pushed = {p.env: p for p in locked.push(["app"], [], f"{registry.host}/{repo}", insecure=True)}
    assert set(pushed) == {"app"} and pushed["app"].sbom is not None
    image = locked.image("app")[1]
    with RegistryClient(registry.host, insecure=True) as client:
        assert client.get_referrers(repo, image.digest) is None  # docker-registry 2.8: no referrers API
        body, media_type, _ = client.get_manifest(
            repo, referrers_tag(image.digest), accept=[MEDIA_TYPE_INDEX]
        )
        assert media_type == MEDIA_TYPE_INDEX
        found = referrers(client, repo, image.digest, MEDIA_TYPE_CYCLONEDX)
        assert [d["digest"] for d in found] == [pushed["app"].sbom]
        assert found[0]["artifactType"] == MEDIA_TYPE_CYCLONEDX
        manifest = json.loads(client.get_manifest(repo, found[0]["digest"])[0])
        assert manifest["artifactType"] == MEDIA_TYPE_CYCLONEDX
        assert manifest["config"]["mediaType"] == MEDIA_TYPE_EMPTY and manifest["config"]["size"] == 2
        assert manifest["subject"] == {
            "mediaType": image.media_type,
            "digest": image.digest,
            "size": image.size,
        }
        [layer] = manifest["layers"]
        assert layer["mediaType"] == MEDIA_TYPE_CYCLONEDX
        sbom = io.BytesIO()
        client.get_blob(repo, layer["digest"], sbom)  # verifies the digest
    text = sbom.getvalue().decode()
    validate_cyclonedx(text)
    doc = json.loads(text)
    assert doc["metadata"]["component"]["version"] == image.digest
    expected = {
        p.name: p.wheel.sha256
        for e in ("core", "app")
        for p in read_lock(locked.lockdir, e).packages  # type: ignore[union-attr]
        if p.wheel is not None
    }
    assert {c["name"]: c["hashes"][0]["content"] for c in doc["components"]} == expected
    # A second push adds no second entry; --no-sbom attaches nothing.
    again = locked.push(["app"], [], f"{registry.host}/{repo}", insecure=True)
    assert again[0].sbom == pushed["app"].sbom
    with RegistryClient(registry.host, insecure=True) as client:
        assert len(referrers(client, repo, image.digest)) == 1
    plain = locked.push(["core"], [], f"{registry.host}/{repo}-plain", insecure=True, sbom=False)
    assert plain[0].sbom is None
    with RegistryClient(registry.host, insecure=True) as client:
        assert referrers(client, f"{repo}-plain", locked.image("core")[1].digest) == []


def test_export_includes_the_sbom_as_a_referrer_in_the_oci_layout(locked: Workspace, tmp_path: Path) -> None:
    assert locked.build(["core"], jobs=2).ok
    out = tmp_path / "core.tar"
    locked.export("core", out, "oci-archive", sbom=True)
    image = locked.image("core")[1]
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
        index = json.loads(tf.extractfile("index.json").read())  # type: ignore[union-attr]
        [ref] = [m for m in index["manifests"] if m.get("artifactType") == MEDIA_TYPE_CYCLONEDX]
        manifest = json.loads(tf.extractfile(f"blobs/sha256/{ref['digest'][7:]}").read())  # type: ignore[union-attr]
        assert manifest["subject"]["digest"] == image.digest
        doc = tf.extractfile(f"blobs/sha256/{manifest['layers'][0]['digest'][7:]}").read()  # type: ignore[union-attr]
    validate_cyclonedx(doc.decode())
    assert f"blobs/sha256/{manifest['config']['digest'][7:]}" in names
    assert [m["digest"] for m in index["manifests"] if "artifactType" not in m] == [image.digest]
    with pytest.raises(EnvgraphError, match="docker-archive has no place for an SBOM"):
        locked.export("core", tmp_path / "d.tar", "docker-archive", sbom=True)


def test_a_referrers_tag_holding_something_else_is_an_error_and_other_entries_are_kept(
    locked: Workspace, registry: RunningRegistry
) -> None:
    assert locked.build(["core"], jobs=2).ok
    image = locked.image("core")[1]
    art = locked.sbom_artifact("core", image)
    with RegistryClient(registry.host, insecure=True) as client:
        repo = f"sbom/{uuid.uuid4().hex[:8]}"
        locked.push(["core"], [], f"{registry.host}/{repo}", insecure=True, sbom=False)
        client.push_blob(repo, sha256_digest(EMPTY_JSON), 2, lambda: io.BytesIO(EMPTY_JSON))
        other = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_TYPE_MANIFEST,
                "config": {"mediaType": MEDIA_TYPE_EMPTY, "digest": sha256_digest(EMPTY_JSON), "size": 2},
                "layers": [],
            }
        )
        client.put_manifest(repo, referrers_tag(image.digest), other, MEDIA_TYPE_MANIFEST)
        with pytest.raises(RegistryError, match="something other than an OCI image index"):
            attach(client, repo, art)
        # An index another tool wrote: its entry stays, ours is added once.
        theirs = {"mediaType": MEDIA_TYPE_MANIFEST, "digest": sha256_digest(other), "size": len(other),
                  "artifactType": "application/vnd.dev.sigstore.bundle.v0.3+json"}  # fmt: skip
        index = canonical_json({"schemaVersion": 2, "mediaType": MEDIA_TYPE_INDEX, "manifests": [theirs]})
        client.put_manifest(repo, referrers_tag(image.digest), index, MEDIA_TYPE_INDEX)
        attach(client, repo, art)
        attach(client, repo, art)
        found = referrers(client, repo, image.digest)
        assert [m["digest"] for m in found] == [theirs["digest"], art.descriptor.digest]
