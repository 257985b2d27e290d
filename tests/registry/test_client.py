"""The registry client against the real CNCF distribution registry (no mocks)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import tracemalloc
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

import pytest

from envgraph._hashing import canonical_json, file_sha256, sha256_digest
from envgraph.errors import RegistryError
from envgraph.identity import MEDIA_TYPE_MANIFEST
from envgraph.registry._auth import ENV_PASSWORD, ENV_USERNAME, Credentials
from envgraph.registry._client import RegistryClient

if TYPE_CHECKING:
    from tests.support.registry import RunningRegistry

# The fixtures (registry, registry_basic_auth, registry_token_auth); also listed in tests/conftest.py.
pytest_plugins = ["tests.support.registry"]

pytestmark = pytest.mark.registry

MiB = 1 << 20


def _repo(prefix: str = "t") -> str:
    return f"envgraph-test/{prefix}-{uuid.uuid4().hex[:10]}"


def _blob(size: int = 4096) -> tuple[bytes, str]:
    data = os.urandom(size)
    return data, sha256_digest(data)


def _opener(path: Path) -> Callable[[], BinaryIO]:
    """A stream factory reading the file afresh each time (the client closes what it opens)."""
    return lambda: open(path, "rb")  # noqa: SIM115


def _download(client: RegistryClient, repo: str, digest: str) -> bytes:
    out = io.BytesIO()
    client.get_blob(repo, digest, out)
    return out.getvalue()


@pytest.fixture
def no_ambient_credentials(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No env credentials and an empty DOCKER_CONFIG directory: tests see only what they set."""
    monkeypatch.delenv(ENV_USERNAME, raising=False)
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    config_dir = tmp_path / "docker-config"
    config_dir.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(config_dir))
    return config_dir


@pytest.fixture
def client(registry: RunningRegistry, no_ambient_credentials: Path) -> Iterator[RegistryClient]:
    with RegistryClient(registry.host, insecure=True) as c:
        yield c


# --- blobs ----------------------------------------------------------------------------------------


def test_upload_then_download_identical(client: RegistryClient) -> None:
    repo = _repo()
    data, digest = _blob(300_000)
    assert client.blob_exists(repo, digest) is False
    client.upload_blob(repo, digest, len(data), lambda: io.BytesIO(data))
    assert client.blob_exists(repo, digest) is True
    got = _download(client, repo, digest)
    assert got == data and sha256_digest(got) == digest
    assert client.stats.blobs_uploaded == 1
    assert client.stats.bytes_uploaded == len(data)
    assert client.stats.bytes_downloaded == len(data)


def test_empty_blob(client: RegistryClient) -> None:
    repo = _repo()
    digest = sha256_digest(b"")
    client.upload_blob(repo, digest, 0, lambda: io.BytesIO(b""))
    assert client.blob_exists(repo, digest)
    assert _download(client, repo, digest) == b""


def test_second_upload_is_skipped(client: RegistryClient) -> None:
    repo = _repo()
    data, digest = _blob()
    assert client.push_blob(repo, digest, len(data), lambda: io.BytesIO(data)) == "uploaded"
    assert client.push_blob(repo, digest, len(data), lambda: io.BytesIO(data)) == "skipped"
    # A caller doing the check itself never uploads again either.
    if not client.blob_exists(repo, digest):
        client.upload_blob(repo, digest, len(data), lambda: io.BytesIO(data))
    assert client.stats.blobs_uploaded == 1
    assert client.stats.blobs_skipped == 1
    assert client.stats.bytes_uploaded == len(data)


def test_chunked_upload_streams_from_file(client: RegistryClient, tmp_path: Path) -> None:
    repo = _repo("chunked")
    path = tmp_path / "layer.bin"
    size = 5 * MiB + 12345
    with open(path, "wb") as f:
        for _ in range(5):
            f.write(os.urandom(MiB))
        f.write(os.urandom(12345))
    hexd, _ = file_sha256(path)
    digest = "sha256:" + hexd
    before = client.stats.requests
    client.upload_blob(repo, digest, size, _opener(path), chunk_size=MiB)
    # POST + 6 PATCH + PUT
    assert client.stats.requests - before == 8
    assert client.stats.bytes_uploaded == size
    out = tmp_path / "out.bin"
    with open(out, "wb") as f:
        assert client.get_blob(repo, digest, f) == size
    assert file_sha256(out) == (hexd, size)


@pytest.mark.parametrize("chunk_size", [None, 4 * MiB])
def test_upload_and_download_never_hold_the_blob_in_memory(
    client: RegistryClient, tmp_path: Path, chunk_size: int | None
) -> None:
    repo = _repo("big")
    path = tmp_path / "big.bin"
    size = 16 * MiB
    with open(path, "wb") as f:
        for _ in range(16):
            f.write(os.urandom(MiB))
    hexd, _ = file_sha256(path)
    digest = "sha256:" + hexd
    tracemalloc.start()
    try:
        client.upload_blob(repo, digest, size, _opener(path), chunk_size=chunk_size)
        with open(tmp_path / "back.bin", "wb") as f:
            client.get_blob(repo, digest, f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 8 * MiB, f"peak traced memory {peak} bytes for a {size}-byte blob"
    assert file_sha256(tmp_path / "back.bin") == (hexd, size)


def test_upload_with_wrong_digest_is_refused(client: RegistryClient) -> None:
    repo = _repo()
    data, _ = _blob()
    wrong = sha256_digest(b"something else")
    with pytest.raises(RegistryError, match="DIGEST_INVALID") as err:
        client.upload_blob(repo, wrong, len(data), lambda: io.BytesIO(data))
    assert "\n" not in str(err.value)
    assert not client.blob_exists(repo, wrong)


def test_short_stream_is_an_error(client: RegistryClient) -> None:
    data, digest = _blob()
    with pytest.raises(RegistryError, match="stream ended"):
        client.upload_blob(_repo(), digest, len(data) + 10, lambda: io.BytesIO(data))


def test_cross_repo_mount(client: RegistryClient) -> None:
    source, target, other = _repo("src"), _repo("dst"), _repo("dst2")
    data, digest = _blob()
    client.upload_blob(source, digest, len(data), lambda: io.BytesIO(data))
    assert client.blob_exists(target, digest) is False
    assert client.mount_blob(target, digest, source) is True
    assert client.blob_exists(target, digest) is True
    assert _download(client, target, digest) == data
    assert client.stats.blobs_mounted == 1
    # push_blob prefers a mount over an upload.
    assert (
        client.push_blob(other, digest, len(data), lambda: io.BytesIO(data), mount_from=source) == "mounted"
    )
    assert client.stats.blobs_uploaded == 1


def test_mount_of_missing_blob_falls_back(client: RegistryClient) -> None:
    source, target = _repo("src"), _repo("dst")
    data, digest = _blob()
    assert client.mount_blob(target, digest, source) is False
    assert client.blob_exists(target, digest) is False
    # push_blob continues with the upload session the registry opened instead.
    assert (
        client.push_blob(target, digest, len(data), lambda: io.BytesIO(data), mount_from=source) == "uploaded"
    )
    assert client.blob_exists(target, digest)
    assert client.stats.blobs_mounted == 0


def test_get_blob_detects_corruption(client: RegistryClient, registry: RunningRegistry) -> None:
    repo = _repo()
    data, digest = _blob(10_000)
    client.upload_blob(repo, digest, len(data), lambda: io.BytesIO(data))
    # The registry serves whatever its storage holds: flip bytes behind its back.
    registry.blob_data_path(digest).write_bytes(bytes(b ^ 0xFF for b in data))
    out = io.BytesIO()
    with pytest.raises(RegistryError) as err:
        client.get_blob(repo, digest, out)
    message = str(err.value)
    assert digest in message and "failed verification" in message and "\n" not in message
    assert out.getvalue() == b""


def test_get_missing_blob(client: RegistryClient) -> None:
    _, digest = _blob()
    with pytest.raises(RegistryError, match=f"blob {digest} not found"):
        client.get_blob(_repo(), digest, io.BytesIO())


# --- manifests --------------------------------------------------------------------------------------


def _image(client: RegistryClient, repo: str) -> tuple[bytes, dict[str, object]]:
    config = canonical_json(
        {"architecture": "amd64", "os": "linux", "rootfs": {"type": "layers", "diff_ids": []}}
    )
    layer, layer_digest = _blob(2048)
    client.upload_blob(repo, sha256_digest(config), len(config), lambda: io.BytesIO(config))
    client.upload_blob(repo, layer_digest, len(layer), lambda: io.BytesIO(layer))
    manifest: dict[str, object] = {
        "schemaVersion": 2,
        "mediaType": MEDIA_TYPE_MANIFEST,
        "config": {
            "mediaType": "application/vnd.oci.image.config.v1+json",
            "digest": sha256_digest(config),
            "size": len(config),
        },
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar",
                "digest": layer_digest,
                "size": len(layer),
            }
        ],
    }
    return canonical_json(manifest), manifest


def test_manifest_round_trip(client: RegistryClient) -> None:
    repo = _repo("img")
    body, _ = _image(client, repo)
    assert client.manifest_exists(repo, "v1") is None
    digest = client.put_manifest(repo, "v1", body, MEDIA_TYPE_MANIFEST)
    assert digest == sha256_digest(body)
    assert client.get_manifest(repo, "v1") == (body, MEDIA_TYPE_MANIFEST, digest)
    assert client.get_manifest(repo, digest, accept=[MEDIA_TYPE_MANIFEST]) == (
        body,
        MEDIA_TYPE_MANIFEST,
        digest,
    )
    assert client.manifest_exists(repo, "v1") == digest
    assert client.manifest_exists(repo, digest) == digest
    assert client.put_manifest(repo, "v2", body, MEDIA_TYPE_MANIFEST) == digest
    assert sorted(client.list_tags(repo)) == ["v1", "v2"]
    assert client.list_tags(_repo("none")) == []


def test_manifest_rejected_names_the_registry_error(client: RegistryClient) -> None:
    repo = _repo("img")
    _, manifest = _image(client, repo)
    missing = sha256_digest(b"never uploaded")
    manifest["layers"] = [
        {"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": missing, "size": 3}
    ]
    with pytest.raises(RegistryError) as err:
        client.put_manifest(repo, "broken", canonical_json(manifest), MEDIA_TYPE_MANIFEST)
    message = str(err.value)
    assert "rejected manifest" in message and "MANIFEST_BLOB_UNKNOWN" in message and "\n" not in message
    assert client.manifest_exists(repo, "broken") is None


# --- errors -----------------------------------------------------------------------------------------


def test_unreachable_registry(no_ambient_credentials: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    client = RegistryClient(f"127.0.0.1:{port}", insecure=True, backoff=0.01)
    with pytest.raises(RegistryError) as err:
        client.blob_exists("a/b", sha256_digest(b""))
    assert str(err.value) == f"registry 127.0.0.1:{port} is not reachable: connection refused"


# --- authentication -----------------------------------------------------------------------------------


def _auth_round_trip(reg: RunningRegistry, **kwargs: object) -> RegistryClient:
    client = RegistryClient(reg.host, insecure=True, **kwargs)  # type: ignore[arg-type]
    repo = _repo("auth")
    data, digest = _blob()
    assert client.push_blob(repo, digest, len(data), lambda: io.BytesIO(data)) == "uploaded"
    assert _download(client, repo, digest) == data
    return client


def test_basic_auth_from_env(
    registry_basic_auth: RunningRegistry,
    no_ambient_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_USERNAME, registry_basic_auth.username or "")
    monkeypatch.setenv(ENV_PASSWORD, registry_basic_auth.password or "")
    _auth_round_trip(registry_basic_auth)


def test_basic_auth_explicit(registry_basic_auth: RunningRegistry, no_ambient_credentials: Path) -> None:
    creds = Credentials(registry_basic_auth.username or "", registry_basic_auth.password or "")
    _auth_round_trip(registry_basic_auth, auth=creds)


def test_basic_auth_from_docker_config(
    registry_basic_auth: RunningRegistry,
    no_ambient_credentials: Path,
) -> None:
    token = base64.b64encode(
        f"{registry_basic_auth.username}:{registry_basic_auth.password}".encode()
    ).decode()
    config = {"auths": {registry_basic_auth.host: {"auth": token}}}
    (no_ambient_credentials / "config.json").write_text(json.dumps(config))
    _auth_round_trip(registry_basic_auth)


def test_basic_auth_from_credential_helper(
    registry_basic_auth: RunningRegistry,
    no_ambient_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-envgraphtest"
    answer = json.dumps(
        {
            "ServerURL": registry_basic_auth.host,
            "Username": registry_basic_auth.username,
            "Secret": registry_basic_auth.password,
        }
    )
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read server\n"
        f'[ "$server" = "{registry_basic_auth.host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        f"echo '{answer}'\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    config = {"credHelpers": {registry_basic_auth.host: "envgraphtest"}}
    (no_ambient_credentials / "config.json").write_text(json.dumps(config))
    _auth_round_trip(registry_basic_auth)


def test_basic_auth_wrong_password(
    registry_basic_auth: RunningRegistry,
    no_ambient_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_USERNAME, registry_basic_auth.username or "")
    monkeypatch.setenv(ENV_PASSWORD, "wrong")
    client = RegistryClient(registry_basic_auth.host, insecure=True)
    with pytest.raises(RegistryError) as err:
        client.blob_exists("team/envs", sha256_digest(b"x"))
    message = str(err.value)
    assert message.startswith(f"authentication to {registry_basic_auth.host} failed for ")
    assert "team/envs" in message and f"check credentials from {ENV_USERNAME}" in message
    assert "\n" not in message


def test_basic_auth_without_credentials(
    registry_basic_auth: RunningRegistry,
    no_ambient_credentials: Path,
) -> None:
    client = RegistryClient(registry_basic_auth.host, insecure=True)
    with pytest.raises(RegistryError, match="no credentials found"):
        client.ping()


def test_thread_pool_shares_one_client(
    registry_basic_auth: RunningRegistry,
    no_ambient_credentials: Path,
) -> None:
    creds = Credentials(registry_basic_auth.username or "", registry_basic_auth.password or "")
    client = RegistryClient(registry_basic_auth.host, insecure=True, auth=creds)
    repo = _repo("threads")
    blobs = [_blob(20_000) for _ in range(16)]

    def push(item: tuple[bytes, str]) -> str:
        data, digest = item
        return client.push_blob(repo, digest, len(data), lambda: io.BytesIO(data))

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert set(pool.map(push, blobs)) == {"uploaded"}
        assert set(pool.map(push, blobs[:4])) == {"skipped"}
    assert client.stats.blobs_uploaded == 16
    assert client.stats.blobs_skipped == 4
    assert client.stats.bytes_uploaded == 16 * 20_000
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(lambda item: _download(client, repo, item[1]) == item[0], blobs))


def test_bearer_token_auth(
    registry_token_auth: RunningRegistry,
    no_ambient_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    tokens = registry_token_auth.token_server
    assert tokens is not None
    monkeypatch.setenv(ENV_USERNAME, tokens.username)
    monkeypatch.setenv(ENV_PASSWORD, tokens.password)
    tokens.requests.clear()
    client = _auth_round_trip(registry_token_auth)
    # One token per scope set, cached across the push and the download.
    scopes = [tuple(q.get("scope", [])) for q in tokens.requests]
    assert len(scopes) == len(set(scopes))
    assert all(q.get("service") == [tokens.service] for q in tokens.requests)
    assert any(s and s[0].endswith(":pull,push") for s in scopes)

    # A mount asks for push on the target and pull on the source in one token.
    source, target = _repo("src"), _repo("dst")
    data, digest = _blob()
    client.upload_blob(source, digest, len(data), lambda: io.BytesIO(data))
    assert client.mount_blob(target, digest, source) is True
    assert sorted(tokens.requests[-1]["scope"]) == sorted(
        [f"repository:{target}:pull,push", f"repository:{source}:pull"]
    )


def test_bearer_token_wrong_password(
    registry_token_auth: RunningRegistry,
    no_ambient_credentials: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(ENV_USERNAME, registry_token_auth.username or "")
    monkeypatch.setenv(ENV_PASSWORD, "wrong")
    client = RegistryClient(registry_token_auth.host, insecure=True)
    with pytest.raises(RegistryError) as err:
        client.blob_exists("team/envs", sha256_digest(b"x"))
    message = str(err.value)
    assert message.startswith(
        f"authentication to {registry_token_auth.host} failed for repository:team/envs:pull"
    )
    assert f"check credentials from {ENV_USERNAME}" in message and "\n" not in message
