"""The scheduler's remote-cache path, offline: a fake ``RemoteCache`` (another local store) in place of a registry.

The registry cache itself is tested against a real registry in tests/registry/test_cache.py; here the thing
under test is what the scheduler does with any cache: ask before building, pull on a hit, publish what it
built (and what the store already had), keep building when publishing fails, fail only the layer whose
fetch fails.
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

import envgraph
from envgraph.errors import RegistryError
from envgraph.oci._store import LayerRecord, Store
from envgraph.workspace import Workspace
from tests.support.project import copy_project
from tests.support.store import assert_store_clean


class StoreCache:
    """A RemoteCache over another local store: records by key, blobs copied and checked on the way."""

    def __init__(self, root: Path) -> None:
        self.remote = Store.open(root)
        self.lock = threading.Lock()
        self.fetched: list[str] = []
        self.published: list[str] = []
        self.fail_publish = False
        self.fail_fetch: set[str] = set()

    def fetch(self, key: str, store: Store) -> LayerRecord | None:
        with self.lock:
            self.fetched.append(key)
        if key in self.fail_fetch:
            raise RegistryError(f"cache test: {key} is unreadable")
        record = self.remote.get_key(key)
        if record is None:
            return None
        for digest in (record.digest, record.paths_digest):
            if digest is not None:
                with self.remote.open_blob(digest) as f:
                    store.add_stream(f, expected_digest=digest)
        store.put_key(record)
        return record

    def publish(self, record: LayerRecord, store: Store) -> None:
        if self.fail_publish:
            raise RegistryError("cache test: the registry said no")
        for digest in (record.digest, record.paths_digest):
            if digest is not None:
                with store.open_blob(digest) as f:
                    self.remote.add_stream(f, expected_digest=digest)
        self.remote.put_key(record)
        with self.lock:
            self.published.append(record.key)


def workspace(template: Path, root: Path) -> Workspace:
    return envgraph.load(copy_project(template, root) / "envgraph.toml", store=root / "store")


def digests(ws: Workspace) -> dict[str, str]:
    tags = ws.open_store().tags()
    return {img.env: tags[img.tag].digest for img in ws.plan().images}


@pytest.fixture
def cache(tmp_path: Path) -> StoreCache:
    return StoreCache(tmp_path / "remote")


def test_misses_are_built_and_published_then_a_fresh_store_pulls_everything(
    pipelines_template: Path, tmp_path: Path, cache: StoreCache
) -> None:
    first_ws = workspace(pipelines_template, tmp_path / "a")
    first = first_ws.build(jobs=2, cache=cache)
    assert first.ok, first.failures
    keys = set(first.layers)
    assert {r.status for r in first.layers.values()} == {"built"}
    assert set(cache.fetched) == keys and sorted(cache.published) == sorted(
        keys
    )  # each asked, each shared once

    second_ws = workspace(pipelines_template, tmp_path / "b")
    second = second_ws.build(jobs=2, cache=cache)
    assert second.ok, second.failures
    assert {r.status for r in second.layers.values()} == {"pulled"}
    assert second.bytes_written == 0
    assert digests(second_ws) == digests(first_ws)
    assert_store_clean(second_ws.open_store())
    assert sorted(cache.published) == sorted(keys)  # pulled layers are not published again


def test_layers_the_store_already_had_are_published_without_asking(
    pipelines_template: Path, tmp_path: Path, cache: StoreCache
) -> None:
    ws = workspace(pipelines_template, tmp_path / "a")
    assert ws.build(jobs=2).ok  # before the cache was used
    again = ws.build(jobs=2, cache=cache)
    assert {r.status for r in again.layers.values()} == {"reused"}
    assert cache.fetched == []
    assert sorted(cache.published) == sorted(again.layers)


def test_a_failing_publish_is_a_warning_and_the_build_goes_on(
    pipelines_template: Path, tmp_path: Path, cache: StoreCache
) -> None:
    cache.fail_publish = True
    ws = workspace(pipelines_template, tmp_path / "a")
    result = ws.build(jobs=2, cache=cache)
    assert result.ok and {r.status for r in result.layers.values()} == {"built"}
    assert sorted(result.warnings) == sorted(
        f"layer {r.label}: not published to the cache: cache test: the registry said no"
        for r in result.layers.values()
    )
    assert len(ws.open_store().tags()) == 12  # six envs, each <env>:<drv12> and <env>:latest


def test_a_failing_fetch_fails_that_layer_and_its_images_only(
    pipelines_template: Path, tmp_path: Path, cache: StoreCache
) -> None:
    ws = workspace(pipelines_template, tmp_path / "a")
    plan = ws.plan()
    train = next(i for i in plan.images if i.env == "train")
    gamma = next(k for k in train.layers if plan.layers[k].label == "gamma 1.0")
    cache.fail_fetch = {gamma}
    result = ws.build(jobs=2, cache=cache)
    assert not result.ok
    assert result.layers[gamma].status == "failed"
    assert {r.status for k, r in result.layers.items() if k != gamma} == {"built"}
    statuses = {i.env: i.status for i in result.images}
    assert statuses == {"core": "built", "train": "failed", "serve": "built", "api": "built", "batch": "built",
                        "report": "failed"}  # fmt: skip
    assert result.failures == (f"layer gamma 1.0: cache test: {gamma} is unreadable",)
    assert gamma not in cache.published
    assert_store_clean(ws.open_store())
