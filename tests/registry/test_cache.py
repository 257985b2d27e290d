"""The registry as a shared layer cache, against a real registry (tests/registry_fixture.py)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest

import envgraph
from envgraph.errors import RegistryError
from envgraph.identity import LAYER_ARTIFACT_TYPE, MEDIA_TYPE_MANIFEST
from envgraph.oci._known_blobs import KNOWN_BLOBS_FILE
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from envgraph.registry._cache import RegistryCache, cache_tag
from envgraph.registry._client import RegistryClient
from envgraph.workspace import Workspace
from tests.registry.test_push import BODY, HEADER
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def project(make_project: Callable[..., Path]) -> Path:
    path = make_project(BODY, header=HEADER)
    envgraph.load(path).lock()
    return path


def image_digests(ws: Workspace) -> dict[str, str]:
    tags = ws.open_store().tags()
    return {img.env: tags[img.tag].digest for img in ws.plan().images}


def test_layers_built_before_the_cache_was_used_are_shared_too(
    project: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    ref = f"{registry.host}/{unique('cache/late')}"
    ws_a = envgraph.load(project, store=tmp_path / "store-a")
    assert ws_a.build(jobs=2).ok  # no cache yet
    cache_a = RegistryCache.from_reference(ref, mode="readwrite", insecure=True)
    again = ws_a.build(jobs=2, cache=cache_a)
    assert {r.status for r in again.layers.values()} == {"reused"}
    assert cache_a.stats.published == len(again.layers)

    ws_b = envgraph.load(project, store=tmp_path / "store-b")
    second = ws_b.build(jobs=2, cache=RegistryCache.from_reference(ref, mode="read", insecure=True))
    assert {r.status for r in second.layers.values()} == {"pulled"}
    assert image_digests(ws_b) == image_digests(ws_a)


def test_fresh_store_builds_nothing_with_the_cache(
    project: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    ref = f"{registry.host}/{unique('cache/shared')}"
    ws_a = envgraph.load(project, store=tmp_path / "store-a")
    cache_a = RegistryCache.from_reference(ref, mode="readwrite", insecure=True)
    first = ws_a.build(jobs=2, cache=cache_a)
    assert first.ok, first.failures
    statuses_a = {r.label: r.status for r in first.layers.values()}
    assert set(statuses_a.values()) == {"built"}
    assert cache_a.stats.published == len(first.layers)
    assert cache_a.stats.misses == len(first.layers)

    # "A second machine": an empty store, the same lockfiles, the cache read-only.
    ws_b = envgraph.load(project, store=tmp_path / "store-b")
    cache_b = RegistryCache.from_reference(ref, mode="read", insecure=True)
    second = ws_b.build(jobs=2, cache=cache_b)
    assert second.ok, second.failures
    assert {r.status for r in second.layers.values()} == {"pulled"}
    assert cache_b.stats.hits == len(second.layers)
    assert cache_b.stats.published == 0
    assert second.bytes_written == 0
    assert image_digests(ws_b) == image_digests(ws_a)
    store_b = ws_b.open_store()
    assert verify_store(store_b).problems == ()
    records_a = ws_a.open_store().records()
    assert len(records_a) == len(first.layers)
    for record in records_a:
        assert store_b.get_key(record.key) == record

    # A third build with the records now local needs no cache at all.
    third = ws_b.build(jobs=2, cache=cache_b)
    assert {r.status for r in third.layers.values()} == {"reused"}


def test_entry_format(project: Path, registry: RunningRegistry, tmp_path: Path) -> None:
    repo = unique("cache/format")
    ws = envgraph.load(project, store=tmp_path / "store")
    cache = RegistryCache.from_reference(f"{registry.host}/{repo}", insecure=True)
    assert ws.build(cache=cache).ok
    record = ws.open_store().records()[0]
    client = RegistryClient(registry.host, insecure=True)
    body, media_type, _ = client.get_manifest(repo, cache_tag(record.key), [MEDIA_TYPE_MANIFEST])
    doc = json.loads(body)
    assert media_type == MEDIA_TYPE_MANIFEST
    assert doc["artifactType"] == LAYER_ARTIFACT_TYPE
    assert doc["config"]["mediaType"] == LAYER_ARTIFACT_TYPE
    assert doc["layers"][0] == {"mediaType": record.media_type, "digest": record.digest, "size": record.size}
    assert cache_tag(record.key) == "key-" + record.key.removeprefix("sha256:")
    assert len(cache_tag(record.key)) <= 128


def test_readwrite_publish_is_idempotent_and_thread_safe(
    project: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    ref = f"{registry.host}/{unique('cache/threads')}"
    ws = envgraph.load(project, store=tmp_path / "store")
    assert ws.build().ok
    store = ws.open_store()
    records = store.records()
    cache = RegistryCache.from_reference(ref, insecure=True)
    errors: list[BaseException] = []

    def publish_all() -> None:
        try:
            for r in records:
                cache.publish(r, store)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=publish_all) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert cache.stats.published + cache.stats.already_published == 4 * len(records)
    assert cache.stats.published >= len(records)
    before = cache.client.stats.bytes_uploaded
    for r in records:
        cache.publish(r, store)
    assert cache.client.stats.bytes_uploaded == before

    fresh = Store.open(tmp_path / "fresh")
    reader = RegistryCache.from_reference(ref, mode="read", insecure=True)
    results: dict[str, object] = {}

    def fetch(key: str) -> None:
        results[key] = reader.fetch(key, fresh)

    threads = [threading.Thread(target=fetch, args=(r.key,)) for r in records]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == {r.key: r for r in records}
    assert reader.stats.hits == len(records)
    assert verify_store(fresh).problems == ()
    assert reader.fetch("sha256:" + "0" * 64, fresh) is None
    assert reader.stats.misses == 1


def test_read_mode_never_publishes(project: Path, registry: RunningRegistry, tmp_path: Path) -> None:
    repo = unique("cache/readonly")
    ws = envgraph.load(project, store=tmp_path / "store")
    cache = RegistryCache.from_reference(f"{registry.host}/{repo}", mode="read", insecure=True)
    result = ws.build(cache=cache)
    assert {r.status for r in result.layers.values()} == {"built"}
    assert cache.stats.published == 0
    assert RegistryClient(registry.host, insecure=True).list_tags(repo) == []


def test_corrupt_entry_is_a_clear_error_and_leaves_nothing(
    project: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    ref = f"{registry.host}/{unique('cache/corrupt')}"
    ws = envgraph.load(project, store=tmp_path / "store")
    assert ws.build(cache=RegistryCache.from_reference(ref, insecure=True)).ok
    record = max(ws.open_store().records(), key=lambda r: r.size)
    data_path = registry.blob_data_path(record.digest)
    original = data_path.read_bytes()
    try:
        data_path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        fresh = Store.open(tmp_path / "fresh")
        reader = RegistryCache.from_reference(ref, mode="read", insecure=True)
        with pytest.raises(RegistryError, match="failed verification") as info:
            reader.fetch(record.key, fresh)
        assert "\n" not in str(info.value) and str(info.value).startswith(f"cache {ref}: ")
        assert not fresh.has_blob(record.digest)
        assert fresh.get_key(record.key) is None
        assert list(fresh.tmp_dir.iterdir()) == []
    finally:
        data_path.write_bytes(original)


def test_lying_record_is_refused(project: Path, registry: RunningRegistry, tmp_path: Path) -> None:
    """An entry whose record claims another diff_id is refused while downloading (diff_id checked)."""
    import attrs

    repo = unique("cache/liar")
    ws = envgraph.load(project, store=tmp_path / "store")
    assert ws.build().ok
    store = ws.open_store()
    record = store.records()[0]
    liar = attrs.evolve(record, diff_id="sha256:" + "1" * 64)
    cache = RegistryCache.from_reference(f"{registry.host}/{repo}", insecure=True)
    cache.publish(liar, store)
    fresh = Store.open(tmp_path / "fresh")
    with pytest.raises(RegistryError, match="decompresses to"):
        RegistryCache.from_reference(f"{registry.host}/{repo}", mode="read", insecure=True).fetch(
            record.key, fresh
        )
    assert not fresh.has_blob(record.digest) and fresh.get_key(record.key) is None


def test_push_mounts_layers_from_the_cache_repository(
    project: Path, registry: RunningRegistry, tmp_path: Path
) -> None:
    """Layers a build published to the cache are mounted, not uploaded, when pushing to the same registry."""
    ws = envgraph.load(project, store=tmp_path / "store")
    cache_repo = unique("cache/mount-src")
    assert ws.build(cache=RegistryCache.from_reference(f"{registry.host}/{cache_repo}", insecure=True)).ok
    known = json.loads((ws.store_path / KNOWN_BLOBS_FILE).read_text())
    assert cache_repo in set(known[registry.host].values())
    client = RegistryClient(registry.host, insecure=True)
    # sbom=False: the SBOM referrer's own blobs would count as uploads (tests/inspect covers it)
    pushed = ws.push(
        [], [], f"{registry.host}/{unique('push/from-cache')}", insecure=True, client=client, sbom=False
    )
    n_layers = len({k for img in ws.plan().images for k in img.layers})
    assert client.stats.blobs_mounted == n_layers
    assert client.stats.blobs_uploaded == len(pushed)  # only the image configs are new


def test_unreachable_cache_fails_before_the_build() -> None:
    with pytest.raises(RegistryError) as info:
        RegistryCache.from_reference("127.0.0.1:9/cache", mode="read", insecure=True)
    message = str(info.value)
    assert message.startswith("cache 127.0.0.1:9/cache: registry 127.0.0.1:9 is not reachable")
    assert "\n" not in message


def test_bad_references_and_modes() -> None:
    with pytest.raises(RegistryError, match="without a tag"):
        RegistryCache.from_reference("127.0.0.1:9/cache:latest", insecure=True)
    with pytest.raises(RegistryError, match="cache mode"):
        RegistryCache.from_reference("127.0.0.1:9/cache", mode="write", insecure=True)


def test_basic_auth_cache(
    project: Path, registry_basic_auth: RunningRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reg = registry_basic_auth
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv("ENVGRAPH_REGISTRY_USERNAME", reg.username or "")
    monkeypatch.setenv("ENVGRAPH_REGISTRY_PASSWORD", reg.password or "")
    ref = f"{reg.host}/{unique('cache/auth')}"
    ws_a = envgraph.load(project, store=tmp_path / "a")
    assert ws_a.build(cache=RegistryCache.from_reference(ref, insecure=True)).ok
    ws_b = envgraph.load(project, store=tmp_path / "b")
    result = ws_b.build(cache=RegistryCache.from_reference(ref, mode="read", insecure=True))
    assert {r.status for r in result.layers.values()} == {"pulled"}

    monkeypatch.setenv("ENVGRAPH_REGISTRY_PASSWORD", "wrong")
    with pytest.raises(RegistryError, match="authentication to"):
        RegistryCache.from_reference(ref, mode="read", insecure=True)
