"""Registry credentials come from the Docker SDK's ``docker.auth`` (config, credHelpers, credsStore)."""

from __future__ import annotations

import base64
import io
import json
import os
import stat
import uuid
from pathlib import Path

import pytest

from envgraph._hashing import sha256_digest
from envgraph.errors import RegistryError
from envgraph.registry._auth import ENV_PASSWORD, ENV_USERNAME, IDENTITY_TOKEN_USER, find_credentials
from envgraph.registry._client import RegistryClient
from tests.support.registry import RunningRegistry


@pytest.fixture
def docker_config(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty DOCKER_CONFIG directory and no env credentials: tests see only the config they write."""
    monkeypatch.delenv(ENV_USERNAME, raising=False)
    monkeypatch.delenv(ENV_PASSWORD, raising=False)
    d = tmp_path / "docker-config"
    d.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(d))
    return d


def write_config(d: Path, config: dict[str, object]) -> None:
    (d / "config.json").write_text(json.dumps(config))


def install_helper(
    monkeypatch: pytest.MonkeyPatch, bindir: Path, host: str, user: str, secret: str, name: str = "test"
) -> Path:
    """``docker-credential-<name>``: answers ``get`` for ``host`` only, logs each server it was asked about."""
    bindir.mkdir(exist_ok=True)
    log = bindir / f"{name}.log"
    answer = json.dumps({"ServerURL": host, "Username": user, "Secret": secret})
    helper = bindir / f"docker-credential-{name}"
    helper.write_text(
        "#!/bin/sh\n"
        '[ "$1" = get ] || exit 1\n'
        "read server\n"
        f'echo "$server" >> "{log}"\n'
        f'[ "$server" = "{host}" ] || {{ echo "credentials not found in native keychain"; exit 1; }}\n'
        f"echo '{answer}'\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IXUSR)
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    return log


def round_trip(host: str) -> None:
    client = RegistryClient(host, insecure=True)
    data = uuid.uuid4().bytes * 10
    digest = sha256_digest(data)
    assert (
        client.push_blob(f"creds/{uuid.uuid4().hex[:8]}", digest, len(data), lambda: io.BytesIO(data))
        == "uploaded"
    )


@pytest.mark.registry
def test_creds_store_helper_against_a_basic_auth_registry(
    registry_basic_auth: RunningRegistry, docker_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reg = registry_basic_auth
    log = install_helper(monkeypatch, tmp_path / "bin", reg.host, reg.username or "", reg.password or "")
    write_config(docker_config, {"credsStore": "test"})
    round_trip(reg.host)
    assert log.read_text().split() == [reg.host]  # asked once per client, for this host
    creds = find_credentials(reg.host)
    assert creds is not None and creds.source == "credential helper docker-credential-test"
    assert reg.password not in repr(creds)


@pytest.mark.registry
def test_wrong_helper_password_is_refused_without_printing_it(
    registry_basic_auth: RunningRegistry, docker_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reg = registry_basic_auth
    install_helper(monkeypatch, tmp_path / "bin", reg.host, reg.username or "", "not-the-password-42")
    write_config(docker_config, {"credHelpers": {reg.host: "test"}})
    with pytest.raises(RegistryError) as err:
        RegistryClient(reg.host, insecure=True).blob_exists("team/envs", sha256_digest(b"x"))
    message = str(err.value)
    assert "check credentials from credential helper docker-credential-test" in message
    assert "not-the-password-42" not in message and "\n" not in message


def test_helper_missing_or_failing_is_one_line(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    write_config(docker_config, {"credHelpers": {"reg.example:5000": "absent"}})
    with pytest.raises(
        RegistryError, match=r"cannot use the Docker config .*docker-credential-absent not installed"
    ):
        find_credentials("reg.example:5000")
    # A helper that knows nothing about the host: no credentials (anonymous), not an error.
    install_helper(monkeypatch, tmp_path / "bin", "other.example", "u", "p")
    write_config(docker_config, {"credHelpers": {"reg.example:5000": "test"}})
    assert find_credentials("reg.example:5000") is None


def test_auths_matched_like_the_docker_cli(docker_config: Path) -> None:
    auth = base64.b64encode(b"alice:pa:ss").decode()
    write_config(docker_config, {"auths": {"https://reg.example:5000/v1/": {"auth": auth}}})
    creds = find_credentials("reg.example:5000")
    assert creds is not None and (creds.username, creds.password) == ("alice", "pa:ss")
    assert creds.source == f"Docker config {docker_config / 'config.json'}"
    assert find_credentials("other.example") is None


def test_docker_hub_and_identity_tokens(docker_config: Path) -> None:
    write_config(docker_config, {"auths": {"https://index.docker.io/v1/": {"identitytoken": "refresh-me"}}})
    for host in ("docker.io", "index.docker.io", "registry-1.docker.io"):
        creds = find_credentials(host)
        assert (
            creds is not None
            and creds.username == IDENTITY_TOKEN_USER
            and creds.identity_token == "refresh-me"
        )


def test_environment_wins_and_no_config_means_anonymous(
    docker_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert find_credentials("reg.example") is None
    write_config(docker_config, {"auths": {"reg.example": {"auth": base64.b64encode(b"a:b").decode()}}})
    monkeypatch.setenv(ENV_USERNAME, "env-user")
    monkeypatch.setenv(ENV_PASSWORD, "env-pass")
    creds = find_credentials("reg.example")
    assert creds is not None and creds.username == "env-user"


def test_a_broken_auth_entry_is_one_line(docker_config: Path) -> None:
    write_config(docker_config, {"auths": {"reg.example": "not-an-object"}})
    with pytest.raises(RegistryError, match="cannot use the Docker config"):
        find_credentials("reg.example")
