"""``envgraph build --executor dask://...`` against a real Dask cluster (a scheduler and two workers on 127.0.0.1,
each with its own store and wheel cache) and the real docker-registry as the layer cache."""

from __future__ import annotations

import json
import os
import shutil
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph.builder import BuildResult
from envgraph.cli import main
from envgraph.errors import BuildError
from envgraph.oci._store import Store
from envgraph.registry._cache import RegistryCache
from envgraph.registry._client import RegistryClient
from envgraph.workspace import Workspace
from tests.conftest import BUILD_HEADER
from tests.support.dask import Cluster, start_cluster
from tests.support.registry import RunningRegistry
from tests.support.wheels import make_wheel, standard_wheels

# The module takes 43 s on the 2-core machine when it is quiet (up to 110 s under load): mostly locking and start-up.
pytestmark = [pytest.mark.dask, pytest.mark.registry, pytest.mark.timeout(300)]

# The offline test project of tests/test_identity_snapshot.py (core, train and serve on core, a files layer),
# plus an independent env.
PROJECT = """
[env.core]
base = "none"
requirements = ["alpha<2"]
environment = { GREETING = "hola" }

[env.train]
parent = "core"
requirements = ["gamma"]

[env.serve]
parent = "core"
requirements = ["delta"]
files = [{ src = "app/", dest = "/app" }]
workdir = "/app"
entrypoint = ["python", "-m", "app"]

[env.solo]
base = "none"
requirements = ["beta<2", "bulk"]

[env.broken]
base = "none"
requirements = ["epsilon"]
"""
# What the tests build; "broken" is for the user-error test alone (so no worker has its layer before that test).
GOOD = ["core", "train", "serve", "solo"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with start_cluster(tmp_path_factory.mktemp("dask"), 2) as c:
        yield c


@pytest.fixture(scope="module")
def locked_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project, locked once per module (pip-compile takes seconds); tests get copies."""
    root = tmp_path_factory.mktemp("project")
    wheelhouse = standard_wheels(root / "wheels")
    # A package big enough that building its layer takes a moment (random bytes do not compress).
    make_wheel(wheelhouse, "bulk", "1.0", files={"bulk/data.bin": os.urandom(16 << 20)})
    # New content at every run: a layer key no worker store has.
    make_wheel(wheelhouse, "epsilon", "1.0", files={"epsilon/__init__.py": f"seed = {uuid.uuid4().hex!r}\n"})
    (root / "app").mkdir()
    (root / "app" / "__main__.py").write_text("print('serving')\n")
    path = root / "envgraph.toml"
    path.write_text(textwrap.dedent(BUILD_HEADER) + textwrap.dedent(PROJECT), encoding="utf-8")
    envgraph.load(path).lock()
    return path


@pytest.fixture
def project(locked_project: Path, tmp_path: Path) -> Path:
    shutil.copytree(locked_project.parent, tmp_path / "project")
    return tmp_path / "project" / "envgraph.toml"


def cache_ref(registry: RunningRegistry) -> str:
    return f"{registry.host}/cache/dask-{uuid.uuid4().hex[:8]}"


def image_digests(ws: Workspace) -> dict[str, str]:
    tags = ws.open_store(readonly=True).tags()
    return {img.env: tags[img.tag].digest for img in ws.plan().images if img.tag in tags}


def layer_digests(ws: Workspace) -> set[str]:
    """Every layer blob the local build of ``ws`` wrote."""
    return {r.digest for r in ws.open_store(readonly=True).records()}


def blob_files(store: Path) -> dict[str, int]:
    return {
        f"sha256:{p.name}": p.stat().st_size
        for p in (store / "blobs" / "sha256").glob("*")
        if "." not in p.name
    }


def test_a_worker_killed_mid_build_still_ends_in_a_complete_build(
    project: Path, cluster: Cluster, registry: RunningRegistry, tmp_path: Path
) -> None:
    local = envgraph.load(project, store=tmp_path / "local")
    assert local.build(GOOD, jobs=2).ok
    bulk_key = next(t.key for t in local.plan().layers.values() if "bulk" in t.label)
    # First in this module, so no worker has the big layer yet and its task really runs (and can be killed).
    assert all(
        not (w.store / "keys").exists() or Store.open(w.store).get_key(bulk_key) is None
        for w in cluster.workers
    )

    from distributed import Client

    remote = envgraph.load(project, store=tmp_path / "client")
    out: dict[str, BuildResult] = {}
    cache = RegistryCache.from_reference(cache_ref(registry), insecure=True)
    build = threading.Thread(
        target=lambda: out.update(result=remote.build(GOOD, cache=cache, executor=cluster.executor))
    )
    with Client(cluster.address, set_as_default=False) as watcher:
        build.start()
        # Kill the worker the moment it runs the big layer's task.
        victim = None
        deadline = time.monotonic() + 60
        while victim is None and time.monotonic() < deadline and build.is_alive():
            for address, keys in watcher.processing().items():
                if any(bulk_key.removeprefix("sha256:")[:16] in str(k) for k in keys):
                    victim = cluster.worker(address)
                    break
            time.sleep(0.01)
        assert victim is not None, "the big layer's task was never seen running"
        victim.kill()
        build.join(90)
    assert not build.is_alive()
    cluster.add_worker()  # for the tests after this one

    result = out["result"]
    assert result.ok, result.failures
    assert image_digests(remote) == image_digests(local)
    bulk = result.layers[bulk_key]
    assert bulk.status == "built" and bulk.worker is not None and bulk.worker != victim.address


def test_cluster_build_matches_local_and_moves_no_layer_bytes_through_the_client(
    project: Path, cluster: Cluster, registry: RunningRegistry, tmp_path: Path
) -> None:
    local = envgraph.load(project, store=tmp_path / "local")
    assert local.build(GOOD, jobs=2).ok

    ref = cache_ref(registry)
    remote = envgraph.load(project, store=tmp_path / "client")
    report = tmp_path / "report.json"
    result = CliRunner().invoke(
        main,
        ["-f", str(project), "--store", str(tmp_path / "client"), "build", *GOOD, "-q", "--executor", cluster.executor,
         "--cache", ref, "--insecure", "--report", str(report)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert image_digests(remote) == image_digests(local)
    assert set(image_digests(remote)) == set(GOOD)

    # No layer blob reached the client's store: only configs, manifests and path lists (a few KiB).
    client_blobs = blob_files(tmp_path / "client")
    assert not set(client_blobs) & layer_digests(local)
    assert sum(client_blobs.values()) < 64 << 10
    # Its images check out: their layers are kept by the cache repository (verify knows it).
    assert remote.verify().ok, remote.verify().problems

    # The report names the worker that built each layer; both workers are in the cluster.
    rows = [layer for env in json.loads(report.read_text())["envs"] for layer in env["layers"]]
    # (built, or reused from a worker's own store: the workers outlive a build)
    assert {r["status"] for r in rows} <= {"built", "reused"}
    assert {r["worker"] for r in rows} <= {w.address for w in cluster.workers}
    assert all(r["worker"] for r in rows)

    # A second build finds everything in the cache: nothing is submitted, nothing changes.
    again = remote.build(
        GOOD, cache=RegistryCache.from_reference(ref, insecure=True), executor=cluster.executor
    )
    assert again.ok, again.failures
    assert {r.status for r in again.layers.values()} == {"reused"}
    assert image_digests(remote) == image_digests(local)

    # Push mounts the layers from the cache repository: no layer byte goes up from the client.
    pushed = remote.push(GOOD, [], f"{registry.host}/apps/dask-{uuid.uuid4().hex[:8]}", insecure=True)
    assert {p.env for p in pushed} == set(GOOD)
    assert sum(p.bytes_uploaded for p in pushed) < 64 << 10
    assert sum(p.blobs_mounted for p in pushed) == len({d for d in layer_digests(local)})
    client = RegistryClient(registry.host, insecure=True)
    for p in pushed:
        assert p.digest == image_digests(local)[p.env]
        repo, tag = p.reference.split("/", 1)[1].rsplit(":", 1)
        assert client.manifest_exists(repo, tag) == p.digest

    # For local use (export, load, run), a build without the executor pulls the layers from the cache.
    pulled = remote.build(GOOD, cache=RegistryCache.from_reference(ref, mode="read", insecure=True))
    assert pulled.ok and {r.status for r in pulled.layers.values()} == {"pulled"}
    assert image_digests(remote) == image_digests(local)
    remote.export("train", tmp_path / "train.tar", "oci-archive")


def test_a_user_error_fails_that_env_only_with_the_local_message(
    project: Path, cluster: Cluster, registry: RunningRegistry, tmp_path: Path
) -> None:
    # epsilon's wheel (only env broken has it) changes after locking: its hash no longer matches the lockfile.
    make_wheel(project.parent / "wheels", "epsilon", "1.0", files={"epsilon/__init__.py": "changed = True\n"})

    local = envgraph.load(project, store=tmp_path / "local").build(jobs=2)
    remote = envgraph.load(project, store=tmp_path / "client").build(
        cache=RegistryCache.from_reference(cache_ref(registry), insecure=True), executor=cluster.executor
    )
    statuses = {i.env: i.status for i in remote.images}
    assert statuses == {
        "core": "built",
        "train": "built",
        "serve": "built",
        "solo": "built",
        "broken": "failed",
    }
    assert remote.failures == local.failures
    assert len(remote.failures) == 1 and "epsilon" in remote.failures[0] and "\n" not in remote.failures[0]
    failed = [r for r in remote.layers.values() if r.status == "failed"]
    assert len(failed) == 1 and failed[0].worker is not None  # failed once, on a worker: not retried


def test_the_executor_needs_a_cache(project: Path, cluster: Cluster) -> None:
    ws = envgraph.load(project)
    with pytest.raises(BuildError, match="needs a registry cache"):
        ws.build(executor=cluster.executor)
    with pytest.raises(BuildError, match="expected local or dask://HOST:PORT"):
        ws.build(executor="dask:/nowhere")
