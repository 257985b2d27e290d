"""`envgraph load` through the store's registry endpoint, and `docker pull` from `envgraph serve`: a real daemon."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.errors import DockerError, StoreError
from envgraph.images import LoadResult, LoadVia
from envgraph.oci._image import read_manifest
from envgraph.oci._model import Manifest
from envgraph.oci._store import Store
from envgraph.server import BackgroundServer
from tests.support.cli import cli
from tests.support.project import BUILD_HEADER, lock
from tests.support.server import flip_byte, serving
from tests.support.wheels import make_wheel, standard_wheels

pytestmark = pytest.mark.docker

LEAF = """
[env.core]
base = "none"
requirements = ["alpha<2", "delta"]

[env.leaf]
parent = "core"
requirements = ["zeta==1.0"]
"""


def make_zeta(wheels: Path, version: str) -> None:
    # Fresh random bytes each session: no layer of an earlier run can already be in a long-lived daemon.
    payload = os.urandom(300_000)
    make_wheel(
        wheels, "zeta", version, files={"zeta/__init__.py": f"V = {version!r}\n", "zeta/blob.bin": payload}
    )


@pytest.fixture(scope="module")
def leaf_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Locked once per module (locking is the slow part); tests build copies. Each test's cleanup removes
    its images, so the next test's daemon lacks the leaf image again."""
    root = tmp_path_factory.mktemp("leaf-template")
    standard_wheels(root / "wheels")
    make_zeta(root / "wheels", "1.0")
    make_zeta(root / "wheels", "1.1")
    (root / "envgraph.toml").write_text(BUILD_HEADER + LEAF)
    lock(root / "envgraph.toml")
    return root


@pytest.fixture
def leaf_project(leaf_template: Path, tmp_path: Path) -> Path:
    root = shutil.copytree(leaf_template, tmp_path / "leafproj")
    cli(root, "build", "-q")
    return root


@pytest.fixture
def cleanup(docker_client: Any) -> Iterator[list[str]]:
    """Repositories whose images are removed from the daemon after the test."""
    repos: list[str] = []
    yield repos
    for repo in repos:
        for image in docker_client.images.list(name=repo):
            for t in image.tags:
                docker_client.images.remove(t, force=True)


def manifest_of(project: Path, env: str) -> Manifest:
    store = Store.open(project / ".envgraph", readonly=True)
    return read_manifest(store, store.tags()[f"{env}:latest"].digest)


def load_env(ws: envgraph.Workspace, env: str, *, via: LoadVia = "auto") -> LoadResult:
    return ws.load_into_docker(env, via=via)


def no_port_names(docker_client: Any) -> bool:
    """No image keeps a name of the temporary endpoint (127.0.0.1:PORT/...)."""
    for image in docker_client.images.list():
        names = [*image.tags, *image.attrs.get("RepoDigests", [])]
        if any(n.startswith(("127.0.0.1:", "127.0.0.2:")) for n in names):
            return False
    return True


def test_a_one_package_change_moves_one_layer(
    leaf_project: Path, docker_client: Any, cleanup: list[str]
) -> None:
    cleanup += ["envgraph/core", "envgraph/leaf"]
    ws = envgraph.load(leaf_project / "envgraph.toml")
    core = load_env(ws, "core", via="serve")
    # venv, alpha, delta: deterministic, so an earlier test may have loaded this very image already.
    assert core.via in ("serve", "present") and core.layers == 3
    # leaf extends core's layer list: the daemon has that prefix and fetches only zeta.
    first = load_env(ws, "leaf", via="serve")
    manifest = manifest_of(leaf_project, "leaf")
    assert first.layers == 4 and first.layers_sent == 1
    assert set(first.blobs_sent) == {manifest.config.digest, manifest.layers[3].digest}
    image = docker_client.images.get(first.tags[0])
    assert image.id == manifest.config.digest
    assert set(image.tags) == {first.tags[0], "envgraph/leaf:latest"}

    toml = leaf_project / "envgraph.toml"
    toml.write_text(toml.read_text().replace('"zeta==1.0"', '"zeta==1.1"'))
    lock(toml)
    cli(leaf_project, "build", "-q")
    ws = envgraph.load(toml)
    second = load_env(ws, "leaf", via="serve")
    changed = manifest_of(leaf_project, "leaf")
    assert changed.layers[:3] == manifest.layers[:3] and changed.layers[3] != manifest.layers[3]
    # Exactly the changed layer and the new config crossed, byte for byte (plus the manifest).
    assert second.layers_sent == 1
    assert set(second.blobs_sent) == {changed.config.digest, changed.layers[3].digest}
    assert second.bytes_sent == changed.config.size + changed.layers[3].size
    assert changed.layers[3].size > 250_000  # the random payload: a real layer, not an empty one
    assert docker_client.images.get("envgraph/leaf:latest").id == changed.config.digest
    assert no_port_names(docker_client)
    # Loading it again (as `envgraph run` does) moves nothing: the daemon has that image.
    third = load_env(ws, "leaf", via="serve")
    assert (third.via, third.layers_sent, third.bytes_sent) == ("present", 0, 0)
    assert third.tags == second.tags


def test_load_prints_what_crossed(leaf_project: Path, docker_client: Any, cleanup: list[str]) -> None:
    cleanup += ["envgraph/core", "envgraph/leaf"]
    cli(leaf_project, "load", "core")
    proc = cli(leaf_project, "load", "leaf")
    drv12 = next(
        t
        for t in Store.open(leaf_project / ".envgraph").tags()
        if t.startswith("leaf:") and "latest" not in t
    )
    assert proc.stdout.splitlines() == [f"loaded envgraph/{drv12}", "loaded envgraph/leaf:latest"]
    assert proc.stderr.startswith("leaf: 1 of 4 layers pulled from the store (0.3 MB)")
    archive = cli(leaf_project, "load", "--via", "archive", "leaf")
    assert archive.stderr.startswith("leaf: 4 layers sent as an archive (")
    assert cli(leaf_project, "load", "leaf").stderr.startswith(
        "leaf: already in the daemon, tagged (nothing sent)"
    )


def test_a_daemon_that_cannot_reach_the_endpoint_gets_an_archive(
    leaf_project: Path, docker_client: Any, cleanup: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    cleanup += ["envgraph/leaf"]
    # As if the daemon lived in another network namespace: it is told an address nobody listens on.
    monkeypatch.setattr(BackgroundServer, "address", property(lambda s: f"127.0.0.2:{s.port}"))
    ws = envgraph.load(leaf_project / "envgraph.toml")
    with pytest.raises(
        DockerError,
        match="cannot load leaf through the store's registry endpoint: the Docker daemon did not reach",
    ):
        load_env(ws, "leaf", via="serve")
    result = load_env(ws, "leaf")
    assert result.via == "archive" and result.layers_sent == 4
    assert (
        docker_client.images.get("envgraph/leaf:latest").id == manifest_of(leaf_project, "leaf").config.digest
    )
    assert no_port_names(docker_client)


def test_damage_fails_the_load_with_one_line(
    leaf_project: Path, docker_client: Any, cleanup: list[str]
) -> None:
    cleanup += ["envgraph/leaf"]
    store = Store.open(leaf_project / ".envgraph")
    desc = store.tags()["leaf:latest"]
    config = read_manifest(store, desc.digest).config.digest
    ws = envgraph.load(leaf_project / "envgraph.toml")
    # A damaged config is found before the daemon is asked (every blob of the image is checked first; the
    # server's own cut-off of a blob damaged while it is being served is tested in test_api).
    flip_byte(store.blob_path(config))
    with pytest.raises(StoreError, match=f"blob {config} of image {desc.digest} is missing or damaged"):
        load_env(ws, "leaf", via="serve")
    assert docker_client.images.list(name="envgraph/leaf") == []
    assert no_port_names(docker_client)
    # The store's rule: a blob found damaged is moved aside, so the next build writes it again.
    assert not store.has_blob(config) and (store.corrupt_dir / config.removeprefix("sha256:")).is_file()
    # A damaged manifest is found before the daemon is asked; the CLI says so in one line.
    flip_byte(store.blob_path(desc.digest))
    proc = cli(leaf_project, "load", "leaf", check=False)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"envgraph: error: blob {desc.digest} is missing or damaged in the store")
    assert len(proc.stderr.strip().splitlines()) == 1
    # As the message says, a build repairs both; the load then goes through.
    cli(leaf_project, "build", "-q")
    result = load_env(ws, "leaf", via="serve")
    assert result.via == "serve" and config in result.blobs_sent
    assert docker_client.images.get("envgraph/leaf:latest").id == config


@pytest.mark.debian
@pytest.mark.timeout(900)
@pytest.mark.skipif(shutil.which("docker") is None, reason="the docker command line is not installed")
def test_docker_pull_from_envgraph_serve_runs(run_project: Path, docker_client: Any) -> None:
    with serving(run_project) as server:
        ref = f"{server.address}/core:latest"
        try:
            pull = subprocess.run(["docker", "pull", ref], capture_output=True, text=True, timeout=600)
            assert pull.returncode == 0, pull.stderr
            run = subprocess.run(
                ["docker", "run", "--rm", "--network", "none", ref, "gamma-hello"],
                capture_output=True,
                text=True,
                timeout=120,
            )
            assert run.returncode == 0, run.stderr
            assert run.stdout == "hello from gamma\n"
            # A second pull finds everything in place.
            again = subprocess.run(["docker", "pull", ref], capture_output=True, text=True, timeout=120)
            assert "Image is up to date" in again.stdout
        finally:
            subprocess.run(["docker", "rmi", ref], capture_output=True)
        assert server.stop()[0] == 0
