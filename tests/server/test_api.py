"""The read-only distribution API over a real store, through Starlette's test client (no sockets)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from envgraph.errors import StoreError
from envgraph.identity import DOCKER_MEDIA_TYPE_MANIFEST, MEDIA_TYPE_MANIFEST
from envgraph.oci._image import read_manifest
from envgraph.oci._store import Store
from envgraph.server import ServeStats, create_app
from envgraph.server._blobs import RangeNotSatisfiable, parse_range
from tests.support.server import flip_byte, snapshot


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def errors(response: Any) -> list[str]:
    return [e["code"] for e in response.json()["errors"]]


def store_of(project: Path) -> Store:
    return Store.open(project / ".envgraph", readonly=True)


def layer_digests(store: Store, env: str) -> list[str]:
    return [d.digest for d in read_manifest(store, store.tags()[f"{env}:latest"].digest).layers]


# --- base, catalog, tags --------------------------------------------------------------------------------


def test_version_check_answers_with_the_api_version(client: TestClient) -> None:
    r = client.get("/v2/")
    assert r.status_code == 200
    assert r.headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert r.json() == {}


def test_catalog_lists_every_env_and_paginates(client: TestClient) -> None:
    assert client.get("/v2/_catalog").json() == {"repositories": ["batch", "core", "serve", "train"]}
    first = client.get("/v2/_catalog?n=2")
    assert first.json() == {"repositories": ["batch", "core"]}
    assert first.headers["Link"] == '</v2/_catalog?last=core&n=2>; rel="next"'
    second = client.get("/v2/_catalog?last=core&n=2")
    assert second.json() == {"repositories": ["serve", "train"]}
    assert "Link" not in second.headers
    assert client.get("/v2/_catalog?last=train").json() == {"repositories": []}
    for bad in ("-1", "x", "1e3"):
        r = client.get(f"/v2/_catalog?n={bad}")
        assert r.status_code == 400 and errors(r) == ["PAGINATION_NUMBER_INVALID"]


def test_tags_list_has_the_drv_tag_and_latest(client: TestClient, built_project: Path) -> None:
    drv = json.loads((built_project / "lockfiles" / "core.lock.json").read_text())["drv"]
    r = client.get("/v2/core/tags/list")
    assert r.status_code == 200
    assert r.json() == {"name": "core", "tags": sorted([drv.removeprefix("sha256:")[:12], "latest"])}
    page = client.get("/v2/core/tags/list?n=1")
    assert len(page.json()["tags"]) == 1 and page.headers["Link"].startswith("</v2/core/tags/list?last=")


def test_unknown_and_invalid_repository_names(client: TestClient) -> None:
    r = client.get("/v2/nothere/tags/list")
    assert r.status_code == 404 and errors(r) == ["NAME_UNKNOWN"]
    for bad in ("Core", "core_", "-core", "a..b"):
        r = client.get(f"/v2/{bad}/tags/list")
        assert r.status_code == 400 and errors(r) == ["NAME_INVALID"], bad
    r = client.get("/v2/not/an/endpoint")
    assert r.status_code == 404 and errors(r) == ["NAME_UNKNOWN"]


# --- manifests --------------------------------------------------------------------------------------------


def test_manifest_by_tag_and_by_digest_is_the_stored_bytes(client: TestClient, built_project: Path) -> None:
    store = store_of(built_project)
    desc = store.tags()["serve:latest"]
    stored = store.read_blob(desc.digest)
    for ref in ("latest", desc.digest):
        r = client.get(f"/v2/serve/manifests/{ref}")
        assert r.status_code == 200
        assert r.content == stored and sha256(r.content) == desc.digest
        assert r.headers["Content-Type"] == MEDIA_TYPE_MANIFEST
        assert r.headers["Docker-Content-Digest"] == desc.digest
        assert r.headers["Content-Length"] == str(len(stored))
    head = client.head("/v2/serve/manifests/latest")
    assert head.status_code == 200 and head.content == b""
    assert head.headers["Content-Length"] == str(len(stored))
    assert head.headers["Docker-Content-Digest"] == desc.digest


def test_manifest_accept_header_is_honoured(client: TestClient) -> None:
    oci = client.get(
        "/v2/core/manifests/latest",
        headers={"Accept": f"{DOCKER_MEDIA_TYPE_MANIFEST}, {MEDIA_TYPE_MANIFEST}"},
    )
    assert oci.status_code == 200
    # Docker sends one Accept header per media type.
    several = client.get(
        "/v2/core/manifests/latest",
        headers=[("Accept", DOCKER_MEDIA_TYPE_MANIFEST), ("Accept", MEDIA_TYPE_MANIFEST)],
    )
    assert several.status_code == 200
    assert client.get("/v2/core/manifests/latest", headers={"Accept": "*/*"}).status_code == 200
    refused = client.get("/v2/core/manifests/latest", headers={"Accept": DOCKER_MEDIA_TYPE_MANIFEST})
    assert refused.status_code == 404 and errors(refused) == ["MANIFEST_UNKNOWN"]
    assert MEDIA_TYPE_MANIFEST in refused.json()["errors"][0]["message"]


def test_manifest_errors(client: TestClient, built_project: Path) -> None:
    store = store_of(built_project)
    r = client.get("/v2/core/manifests/nosuchtag")
    assert r.status_code == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    # Another repository's manifest is not this one's, though the store holds it.
    r = client.get(f"/v2/core/manifests/{store.tags()['batch:latest'].digest}")
    assert r.status_code == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    # A layer is not a manifest.
    r = client.get(f"/v2/core/manifests/{layer_digests(store, 'core')[0]}")
    assert r.status_code == 404 and errors(r) == ["MANIFEST_UNKNOWN"]
    for bad in ("sha256:abc", "sha512:" + "0" * 128, "sha256:" + "A" * 64):
        r = client.get(f"/v2/core/manifests/{bad}")
        assert r.status_code == 400 and errors(r) == ["DIGEST_INVALID"], bad
    r = client.get("/v2/core/manifests/.hidden")
    assert r.status_code == 400 and errors(r) == ["TAG_INVALID"]


# --- blobs --------------------------------------------------------------------------------------------------


def test_blob_get_head_and_ranges(client: TestClient, built_project: Path) -> None:
    store = store_of(built_project)
    digest = layer_digests(store, "train")[2]  # gamma: has a console script, some hundred bytes
    data = store.read_blob(digest)
    size = len(data)
    r = client.get(f"/v2/train/blobs/{digest}")
    assert r.status_code == 200 and r.content == data
    assert r.headers["Docker-Content-Digest"] == digest
    assert r.headers["Content-Length"] == str(size) and r.headers["Accept-Ranges"] == "bytes"
    head = client.head(f"/v2/train/blobs/{digest}")
    assert head.status_code == 200 and head.content == b"" and head.headers["Content-Length"] == str(size)
    cases = {
        "bytes=0-9": (0, 9),
        "bytes=10-": (10, size - 1),
        "bytes=-7": (size - 7, size - 1),
        f"bytes=5-{size + 100}": (5, size - 1),
        f"bytes={size - 1}-{size - 1}": (size - 1, size - 1),
    }
    for header, (first, last) in cases.items():
        r = client.get(f"/v2/train/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 206, header
        assert r.content == data[first : last + 1], header
        assert r.headers["Content-Range"] == f"bytes {first}-{last}/{size}"
        assert r.headers["Content-Length"] == str(last - first + 1)
    for header in (f"bytes={size}-", f"bytes={size + 5}-{size + 9}", "bytes=-0"):
        r = client.get(f"/v2/train/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 416, header
        assert r.headers["Content-Range"] == f"bytes */{size}"
    # Several ranges, other units and malformed ranges are ignored: the whole blob.
    for header in ("bytes=0-1,5-6", "items=0-3", "bytes=9-2", "bytes=a-b"):
        r = client.get(f"/v2/train/blobs/{digest}", headers={"Range": header})
        assert r.status_code == 200 and r.content == data, header


def test_parse_range_edges() -> None:
    assert parse_range(None, 10) is None
    assert parse_range("bytes=0-", 10) == (0, 9)
    assert parse_range("bytes=-20", 10) == (0, 9)
    assert parse_range(" bytes = 2 - 3 ", 10) == (2, 3)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=0-", 0)
    with pytest.raises(RangeNotSatisfiable):
        parse_range("bytes=-1", 0)


def test_only_blobs_the_repository_reaches_are_served(client: TestClient, built_project: Path) -> None:
    store = store_of(built_project)
    gamma = layer_digests(store, "train")[2]
    assert gamma not in layer_digests(store, "core")
    assert client.get(f"/v2/train/blobs/{gamma}").status_code == 200
    r = client.get(f"/v2/core/blobs/{gamma}")
    assert r.status_code == 404 and errors(r) == ["BLOB_UNKNOWN"]
    # A layer's path list is a blob of the store that no manifest names: never served.
    paths = next(rec.paths_digest for rec in store.records() if rec.paths_digest)
    assert paths is not None and store.has_blob(paths)
    for repo in ("core", "train", "serve", "batch"):
        assert client.get(f"/v2/{repo}/blobs/{paths}").status_code == 404
    # The config and the manifest itself are blobs of the repository.
    manifest = read_manifest(store, store.tags()["core:latest"].digest)
    assert client.get(f"/v2/core/blobs/{manifest.config.digest}").content == store.read_blob(
        manifest.config.digest
    )
    assert client.get(f"/v2/core/blobs/{store.tags()['core:latest'].digest}").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/v2/core/blobs/sha256:abc",
        "/v2/core/blobs/..%2F..%2Findex.json",
        "/v2/core/blobs/sha256:..%2F..%2F..%2Findex.json",
        "/v2/core/blobs/%2Fetc%2Fpasswd",
        "/v2/..%2F..%2Fetc/blobs/sha256:" + "0" * 64,
        "/v2/core%2F..%2F..%2Findex.json/tags/list",
        "/v2/core/manifests/..%2F..%2Findex.json",
        "/v2/core/blobs/sha256%3A" + "0" * 63 + "%00",
    ],
)
def test_bad_digests_and_traversal_attempts_are_refused(client: TestClient, path: str) -> None:
    r = client.get(path)
    assert r.status_code in (400, 404), r.text
    assert errors(r)[0] in {"DIGEST_INVALID", "NAME_INVALID", "NAME_UNKNOWN", "TAG_INVALID", "BLOB_UNKNOWN"}


@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
def test_writes_are_unsupported(client: TestClient, method: str) -> None:
    for path in ("/v2/core/blobs/uploads/", "/v2/core/manifests/latest", "/v2/core/blobs/sha256:" + "0" * 64):
        r = client.request(method, path, content=b"{}")
        assert r.status_code == 405 and errors(r) == ["UNSUPPORTED"], path
        assert r.headers["Allow"] == "GET, HEAD"


# --- integrity -------------------------------------------------------------------------------------------------


def test_a_damaged_blob_is_cut_off_not_served_as_good(store_copy: Path) -> None:
    store = Store.open(store_copy, readonly=True)
    digest = layer_digests(store, "train")[2]
    good = store.read_blob(digest)
    flip_byte(store.blob_path(digest))
    stats = ServeStats()
    with TestClient(create_app(store, stats=stats)) as c:
        r = c.get(f"/v2/train/blobs/{digest}")
        # Headers promised the whole blob; the body stops short of it, and what came is not the blob.
        assert int(r.headers["Content-Length"]) == len(good)
        assert len(r.content) < len(good)
        assert stats.snapshot().damaged == (digest,)
        # A range of a blob never seen whole is checked too (the whole file is hashed on the way).
        ranged = c.get(f"/v2/train/blobs/{digest}", headers={"Range": "bytes=0-9"})
        assert ranged.status_code == 206 and ranged.content == b""
        # Other blobs are fine.
        other = layer_digests(store, "train")[1]
        assert c.get(f"/v2/train/blobs/{other}").content == store.read_blob(other)


def test_a_verified_blob_serves_ranges_directly_until_its_file_changes(store_copy: Path) -> None:
    store = Store.open(store_copy, readonly=True)
    digest = layer_digests(store, "train")[2]
    stats = ServeStats()
    with TestClient(create_app(store, stats=stats)) as c:
        assert c.get(f"/v2/train/blobs/{digest}", headers={"Range": "bytes=0-9"}).status_code == 206
        assert len(c.get(f"/v2/train/blobs/{digest}").content) == store.blob_size(digest)
        flip_byte(store.blob_path(digest), offset=5)  # rewriting the file changes its ctime
        assert c.get(f"/v2/train/blobs/{digest}", headers={"Range": "bytes=0-9"}).content == b""
        assert stats.snapshot().damaged == (digest,)


def test_a_blob_of_the_wrong_size_is_an_error(store_copy: Path) -> None:
    store = Store.open(store_copy, readonly=True)
    digest = layer_digests(store, "core")[1]
    path = store.blob_path(digest)
    os.chmod(path, 0o644)
    with open(path, "ab") as f:
        f.write(b"tail")
    with TestClient(create_app(store)) as c:
        r = c.get(f"/v2/core/blobs/{digest}")
        assert r.status_code == 500 and errors(r) == ["UNKNOWN"] and "damaged" in r.text
        assert c.head(f"/v2/core/blobs/{digest}").status_code == 500
        path.unlink()
        r = c.get(f"/v2/core/blobs/{digest}")
        assert r.status_code == 404 and errors(r) == ["BLOB_UNKNOWN"]


def test_a_damaged_manifest_is_not_served_nor_its_layers(store_copy: Path) -> None:
    store = Store.open(store_copy, readonly=True)
    desc = store.tags()["train:latest"]
    gamma = layer_digests(store, "train")[2]
    flip_byte(store.blob_path(desc.digest), offset=-3)
    stats = ServeStats()
    with TestClient(create_app(store, stats=stats)) as c:
        for ref in ("latest", desc.digest):
            r = c.get(f"/v2/train/manifests/{ref}")
            assert r.status_code == 500 and errors(r) == ["UNKNOWN"]
        assert stats.snapshot().damaged == (desc.digest,)
        assert stats.snapshot().manifest_requests == {}
        assert c.get(f"/v2/train/blobs/{gamma}").status_code == 404  # reachable only through it
        assert c.get("/v2/core/manifests/latest").status_code == 200


def test_a_running_server_follows_new_tags(store_copy: Path) -> None:
    writable = Store.open(store_copy)
    with TestClient(create_app(Store.open(store_copy, readonly=True))) as c:
        assert "extra" not in c.get("/v2/_catalog").json()["repositories"]
        writable.tag("extra:v1", writable.tags()["core:latest"])
        assert "extra" in c.get("/v2/_catalog").json()["repositories"]
        assert c.get("/v2/extra/manifests/v1").status_code == 200


def test_tags_that_are_not_registry_references_are_not_served(store_copy: Path) -> None:
    writable = Store.open(store_copy)
    writable.tag("Upper:latest", writable.tags()["core:latest"])
    writable.tag("core:bad+tag", writable.tags()["core:latest"])
    with TestClient(create_app(Store.open(store_copy, readonly=True))) as c:
        assert c.get("/v2/_catalog").json()["repositories"] == ["batch", "core", "serve", "train"]
        assert "bad+tag" not in c.get("/v2/core/tags/list").json()["tags"]


# --- read-only ---------------------------------------------------------------------------------------------


def test_serving_writes_nothing_into_the_store(store_copy: Path) -> None:
    # A store without the directories and lock files a writer would create.
    for name in ("tmp", "lock", "in-use", "building"):
        path = store_copy / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    before = snapshot(store_copy)
    store = Store.open(store_copy, readonly=True)
    with TestClient(create_app(store)) as c:
        for repo in c.get("/v2/_catalog").json()["repositories"]:
            for tag in c.get(f"/v2/{repo}/tags/list").json()["tags"]:
                manifest = c.get(f"/v2/{repo}/manifests/{tag}").json()
                for d in [manifest["config"], *manifest["layers"]]:
                    assert sha256(c.get(f"/v2/{repo}/blobs/{d['digest']}").content) == d["digest"]
    assert snapshot(store_copy) == before


def test_a_read_only_store_refuses_writes_and_needs_a_store(store_copy: Path, tmp_path: Path) -> None:
    store = Store.open(store_copy, readonly=True)
    with pytest.raises(StoreError, match="read-only"):
        store.tag("core:x", store.tags()["core:latest"])
    with pytest.raises(StoreError, match="read-only"):
        store.add_bytes(b"new")
    with pytest.raises(StoreError, match="is not an envgraph store"):
        Store.open(tmp_path / "absent", readonly=True)
    assert not (tmp_path / "absent").exists()


def test_more_routes_can_sit_beside_the_registry(built_project: Path) -> None:
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    def hello(request: Any) -> PlainTextResponse:
        return PlainTextResponse("dashboard")

    app = create_app(store_of(built_project), routes=[Route("/", hello)])
    with TestClient(app) as c:
        assert c.get("/").text == "dashboard"
        assert c.get("/v2/core/tags/list").status_code == 200
        assert app.state.stats.snapshot().requests == 1  # the registry counts only its own requests
