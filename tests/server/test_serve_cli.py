"""`envgraph serve` as a real process on a real socket: clients, signals, damaged blobs, read-only mounts."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from envgraph.oci._image import read_manifest
from envgraph.oci._store import Store
from tests.support.cli import cli_env
from tests.support.server import serving, snapshot

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (CI installs it)")


def store_of(project: Path) -> Store:
    return Store.open(project / ".envgraph", readonly=True)


def test_serve_prints_the_address_and_stops_cleanly_on_sigterm_and_ctrl_c(built_project: Path) -> None:
    for sig in (signal.SIGTERM, signal.SIGINT):
        with serving(built_project) as server:
            assert requests.get(f"{server.url}/v2/_catalog", timeout=10).json()["repositories"] == [
                "batch",
                "core",
                "serve",
                "train",
            ]
            started = time.monotonic()
            code, err = server.stop(sig)
            assert code == 0, err
            assert time.monotonic() - started < 10
            assert err.strip() == "envgraph: stopped" and "Traceback" not in err


def test_serve_logs_one_debug_line_per_request(built_project: Path) -> None:
    with serving(built_project, debug=True) as server:
        requests.get(f"{server.url}/v2/core/manifests/latest", timeout=10)
        requests.delete(f"{server.url}/v2/core/manifests/latest", timeout=10)
        _, err = server.stop()
    lines = [line for line in err.splitlines() if "/v2/core/manifests/latest" in line]
    assert len(lines) == 2
    assert re.match(r"envgraph: debug: GET /v2/core/manifests/latest 200 \d+ bytes", lines[0])
    assert re.match(r"envgraph: debug: DELETE /v2/core/manifests/latest 405 \d+ bytes", lines[1])


def test_serve_needs_only_a_store_and_says_when_there_is_none(built_project: Path, tmp_path: Path) -> None:
    with serving(tmp_path, "--store", str(built_project / ".envgraph")) as server:
        assert requests.get(f"{server.url}/v2/core/tags/list", timeout=10).status_code == 200
        assert server.stop()[0] == 0
    proc = subprocess.run(
        [sys.executable, "-m", "envgraph.cli", "--store", str(tmp_path / "none"), "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=60,
    )
    assert proc.returncode == 1
    assert proc.stderr.strip() == (
        f"envgraph: error: {tmp_path / 'none'} is not an envgraph store (no oci-layout): build something first"
    )
    assert not (tmp_path / "none").exists()


def test_a_port_in_use_is_a_one_line_error(built_project: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.run(
            [sys.executable, "-m", "envgraph.cli", "serve", "--port", str(port)],
            cwd=built_project,
            capture_output=True,
            text=True,
            env=cli_env(),
            timeout=60,
        )
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"envgraph: error: cannot listen on 127.0.0.1:{port}: ")
    assert len(proc.stderr.strip().splitlines()) == 1


@skopeo
def test_skopeo_inspects_and_copies_from_envgraph_serve(built_project: Path, tmp_path: Path) -> None:
    store = store_of(built_project)
    with serving(built_project) as server:
        for tag, desc in store.tags().items():
            raw = subprocess.run(
                ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{server.address}/{tag}"],
                capture_output=True,
                check=True,
            ).stdout
            assert "sha256:" + hashlib.sha256(raw).hexdigest() == desc.digest
        info = json.loads(
            subprocess.run(
                ["skopeo", "inspect", "--tls-verify=false", f"docker://{server.address}/train:latest"],
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        assert info["Labels"]["dev.envgraph.env"] == "train"
        assert sorted(info["RepoTags"]) == sorted(
            t.split(":")[1] for t in store.tags() if t.startswith("train:")
        )
        dest = tmp_path / "copy"
        subprocess.run(
            [
                "skopeo",
                "copy",
                "--src-tls-verify=false",
                f"docker://{server.address}/serve:latest",
                f"oci:{dest}:serve",
            ],
            capture_output=True,
            check=True,
        )
        assert server.stop()[0] == 0
    # Same manifest, same blobs: nothing was recompressed or rewritten on the way.
    copied = json.loads((dest / "index.json").read_text())["manifests"][0]["digest"]
    assert copied == store.tags()["serve:latest"].digest
    for layer in read_manifest(store, copied).layers:
        assert (dest / "blobs" / "sha256" / layer.digest.split(":")[1]).read_bytes() == store.read_blob(
            layer.digest
        )


def test_a_damaged_blob_breaks_the_connection(built_project: Path, tmp_path: Path) -> None:
    copy = tmp_path / "store"
    shutil.copytree(built_project / ".envgraph", copy)
    store = Store.open(copy, readonly=True)
    layer = read_manifest(store, store.tags()["train:latest"].digest).layers[2]
    path = store.blob_path(layer.digest)
    os.chmod(path, 0o644)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    with serving(tmp_path, "--store", str(copy)) as server:
        with pytest.raises(requests.exceptions.ChunkedEncodingError):
            requests.get(f"{server.url}/v2/train/blobs/{layer.digest}", timeout=10).raise_for_status()
        # The server goes on serving good blobs.
        good = read_manifest(store, store.tags()["train:latest"].digest).layers[1]
        assert requests.get(
            f"{server.url}/v2/train/blobs/{good.digest}", timeout=10
        ).content == store.read_blob(good.digest)
        _, err = server.stop()
    assert f"envgraph: error: blob {layer.digest} is damaged in the store" in err


def raw_get(address: str, target: str) -> tuple[int, bytes]:
    """A request line sent as is (clients normalise ``..`` away; an attacker does not)."""
    host, port = address.split(":")
    with socket.create_connection((host, int(port)), timeout=10) as s:
        s.sendall(f"GET {target} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n".encode())
        reply = b""
        while chunk := s.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


def test_traversal_in_the_raw_request_line_is_refused(built_project: Path) -> None:
    index = (built_project / ".envgraph" / "index.json").read_bytes()
    targets = [
        "/v2/../../../../etc/passwd",
        "/v2/core/blobs/../../index.json",
        "/v2/core/blobs/sha256:../../../index.json",
        "/v2/core/../../index.json",
        "/v2/core/manifests/../../../index.json",
        "/v2/../index.json/tags/list",
        "/v2/core/blobs//etc/passwd",
        "/v2/%2e%2e/%2e%2e/index.json",
    ]
    with serving(built_project) as server:
        for target in targets:
            status, body = raw_get(server.address, target)
            assert status in (400, 404), (target, status)
            assert b"root:" not in body and index not in body, target
        assert server.stop()[0] == 0


def try_read_only_bind_mount(source: Path, target: Path) -> bool:
    target.mkdir()
    if shutil.which("mount") is None or os.geteuid() != 0:
        return False
    if subprocess.run(["mount", "--bind", str(source), str(target)], capture_output=True).returncode != 0:
        return False
    if subprocess.run(["mount", "-o", "remount,ro,bind", str(target)], capture_output=True).returncode != 0:
        subprocess.run(["umount", str(target)], capture_output=True)
        return False
    return True


def test_serving_a_read_only_bind_mount(built_project: Path, tmp_path: Path) -> None:
    source = tmp_path / "store"
    shutil.copytree(built_project / ".envgraph", source)
    for name in ("tmp", "building"):
        shutil.rmtree(source / name, ignore_errors=True)
    before = snapshot(source)
    mounted = tmp_path / "ro"
    if not try_read_only_bind_mount(source, mounted):
        pytest.skip("bind-mounting read-only is not permitted here")
    try:
        with pytest.raises(OSError):
            (mounted / "probe").write_text("x")
        store = Store.open(mounted, readonly=True)
        with serving(tmp_path, "--store", str(mounted)) as server:
            for tag, desc in store.tags().items():
                env, _, name = tag.partition(":")
                r = requests.get(f"{server.url}/v2/{env}/manifests/{name}", timeout=10)
                assert r.status_code == 200 and r.headers["Docker-Content-Digest"] == desc.digest
                for layer in read_manifest(store, desc.digest).layers:
                    body = requests.get(f"{server.url}/v2/{env}/blobs/{layer.digest}", timeout=10).content
                    assert "sha256:" + hashlib.sha256(body).hexdigest() == layer.digest
            code, err = server.stop()
        assert code == 0 and "error" not in err
    finally:
        subprocess.run(["umount", str(mounted)], capture_output=True, check=True)
    assert snapshot(source) == before


def test_build_and_the_cli_never_import_the_server(built_project: Path) -> None:
    code = (
        "import sys, envgraph, envgraph.cli, envgraph.images\n"
        "result = envgraph.load('envgraph.toml').build()\n"
        "assert result.ok\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('starlette', 'uvicorn') or m.startswith('envgraph.server')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=built_project,
        capture_output=True,
        text=True,
        env=cli_env(),
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"
