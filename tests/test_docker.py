"""Docker daemon access against a real daemon (started for the session if none runs)."""

from __future__ import annotations

import io
import json
import tarfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest

from envgraph._docker import connect, load_archive, run, tag
from envgraph._hashing import canonical_json
from envgraph.debian._rootfs import DebianRootfs
from envgraph.errors import DockerError
from tests.support.docker import remove_images, write_docker_archive

pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

PYTHON = "/usr/bin/python3.11"
# Containers here cannot reach the internet anyway, and a daemon started with `--bridge none`
# (or whose docker0 bridge went missing) cannot attach one: the tests need no network.
NET = "none"


def _add_bytes(tf: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    tf.addfile(info, io.BytesIO(data))


@pytest.fixture(scope="module")
def base_image(
    docker_client: docker.DockerClient,
    debian_rootfs: DebianRootfs,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    ref = f"envgraph-test/debian-base:{uuid.uuid4().hex[:12]}"
    archive = tmp_path_factory.mktemp("archive") / "base.tar"
    write_docker_archive(debian_rootfs.tar_path, archive, ref)
    started = time.monotonic()
    loaded = load_archive(docker_client, archive)
    print(f"docker load of {archive.stat().st_size} bytes took {time.monotonic() - started:.1f} s")
    assert loaded == [ref]
    yield ref
    remove_images(docker_client, ref)


def test_run_streams_output_and_returns_zero(
    docker_client: docker.DockerClient,
    base_image: str,
) -> None:
    out = io.StringIO()
    code = run(docker_client, base_image, [PYTHON, "-c", "print('hi')"], stream_to=out, network=NET)
    assert code == 0
    assert out.getvalue() == "hi\n"


def test_run_passes_environment_and_stderr(
    docker_client: docker.DockerClient,
    base_image: str,
) -> None:
    out = io.StringIO()
    script = "import os, sys; print(os.environ['GREETING']); print('ünïcode on stderr', file=sys.stderr)"
    code = run(
        docker_client,
        base_image,
        [PYTHON, "-c", script],
        environment={"GREETING": "hello"},
        stream_to=out,
        network=NET,
    )
    assert code == 0
    assert "hello\n" in out.getvalue()
    assert "ünïcode on stderr\n" in out.getvalue()


def test_run_returns_the_exit_code_and_removes_the_container(
    docker_client: docker.DockerClient,
    base_image: str,
) -> None:
    before = {c.id for c in docker_client.containers.list(all=True)}
    code = run(
        docker_client,
        base_image,
        [PYTHON, "-c", "import sys; sys.exit(3)"],
        stream_to=io.StringIO(),
        network=NET,
    )
    assert code == 3
    assert {c.id for c in docker_client.containers.list(all=True)} == before


def test_run_defaults_to_the_current_stdout(
    docker_client: docker.DockerClient,
    base_image: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert run(docker_client, base_image, ["/bin/sh", "-c", "echo from-sh"], network=NET) == 0
    assert capsys.readouterr().out == "from-sh\n"


def test_run_of_an_unknown_image_is_one_line_error(docker_client: docker.DockerClient) -> None:
    with pytest.raises(DockerError, match="no such image") as info:
        run(docker_client, "envgraph-test/does-not-exist:nope", ["true"])
    assert "\n" not in str(info.value)


def test_tag_adds_a_reference(docker_client: docker.DockerClient, base_image: str) -> None:
    ref = tag(docker_client, base_image, "envgraph-test/retagged", "t1")
    try:
        assert ref == "envgraph-test/retagged:t1"
        assert docker_client.images.get(ref).id == docker_client.images.get(base_image).id
    finally:
        remove_images(docker_client, ref)
    with pytest.raises(DockerError, match="has no image"):
        tag(docker_client, "envgraph-test/does-not-exist:nope", "envgraph-test/x", "y")


def test_load_error_inside_the_stream_is_a_docker_error(
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    # A manifest whose layer is missing: the daemon answers with an error object.
    archive = tmp_path / "broken.tar"
    config = canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    with tarfile.open(archive, "w") as tf:
        _add_bytes(tf, "c.json", config)
        manifest = [
            {"Config": "c.json", "RepoTags": ["envgraph-test/broken:x"], "Layers": ["missing/layer.tar"]}
        ]
        _add_bytes(tf, "manifest.json", json.dumps(manifest).encode())
    with pytest.raises(DockerError, match="docker load of .* failed") as info:
        load_archive(docker_client, archive)
    assert "\n" not in str(info.value)


def test_load_of_a_missing_file_is_a_docker_error(
    docker_client: docker.DockerClient,
    tmp_path: Path,
) -> None:
    with pytest.raises(DockerError, match="No such file"):
        load_archive(docker_client, tmp_path / "nope.tar")


def test_connect_to_a_dead_socket_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sock = tmp_path / "dead.sock"
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    for var in ("DOCKER_TLS_VERIFY", "DOCKER_CERT_PATH"):
        monkeypatch.delenv(var, raising=False)
    with pytest.raises(DockerError) as info:
        connect()
    assert str(info.value) == f"no Docker daemon answers at unix://{sock}: start dockerd or set DOCKER_HOST"
