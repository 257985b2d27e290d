"""Push and pull against a real registry (docker-registry on 127.0.0.1, see tests/registry_fixture.py)."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph._ui import PlainPushProgress, RichPushProgress, push_progress
from envgraph.errors import EnvgraphError, RegistryError
from envgraph.identity import MEDIA_TYPE_INDEX
from envgraph.oci._known_blobs import KNOWN_BLOBS_FILE
from envgraph.oci._model import DEFAULT_PLATFORM, Index, Manifest, Platform, from_json, to_json
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from envgraph.registry._auth import ENV_PASSWORD, ENV_USERNAME
from envgraph.registry._client import RegistryClient
from envgraph.registry._push import BlobEvent
from envgraph.registry._transfer import pull_image
from envgraph.workspace import Workspace
from tests.conftest import BUILD_HEADER as HEADER
from tests.support.images import fake_python_base
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.registry


BODY = """
[env.core]
base = "none"
requirements = ["alpha"]

[env.app]
parent = "core"
requirements = ["gamma"]
"""


def unique(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def built(make_project: Callable[..., Path]) -> Workspace:
    """A locked and built two-env project (core, app on core) in its own store."""
    ws = envgraph.load(make_project(BODY, header=HEADER))
    ws.lock()
    result = ws.build(jobs=2)
    assert result.ok, result.failures
    return ws


def image_tags(ws: Workspace) -> dict[str, str]:
    """env -> manifest digest of its built image."""
    plan = ws.plan()
    tags = ws.open_store().tags()
    return {img.env: tags[img.tag].digest for img in plan.images}


def test_push_then_pull_back_gives_identical_digests(
    built: Workspace, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = unique("push/roundtrip")
    pushed = built.push([], [], f"{registry.host}/{repo}", insecure=True, jobs=4)
    expected = image_tags(built)
    assert {p.env: p.digest for p in pushed} == expected
    drv12 = {img.env: img.drv.removeprefix("sha256:")[:12] for img in built.plan().images}
    assert {p.reference for p in pushed} == {f"{registry.host}/{repo}:{e}-{drv12[e]}" for e in expected}
    assert all(p.bytes_uploaded >= 0 for p in pushed)
    assert sum(p.blobs_uploaded for p in pushed) > 0

    client = RegistryClient(registry.host, insecure=True)
    tags = set(client.list_tags(repo))
    sbom_tags = {f"sha256-{d.removeprefix('sha256:')}" for d in expected.values()}  # referrers (the SBOMs)
    assert tags == {f"{e}-{drv12[e]}" for e in expected} | set(expected) | sbom_tags

    fresh = Store.open(tmp_path / "fresh-store")
    for env, digest in expected.items():
        desc = pull_image(fresh, f"{registry.host}/{repo}:{env}", DEFAULT_PLATFORM, insecure=True)
        assert desc.digest == digest
        assert desc.platform == DEFAULT_PLATFORM
        by_digest = pull_image(fresh, f"{registry.host}/{repo}@{digest}", DEFAULT_PLATFORM, insecure=True)
        assert by_digest.digest == digest
    assert verify_store(fresh).problems == ()
    # Every blob of every image arrived, byte-identical to the built store's.
    src = built.open_store()
    for env in expected:
        root = [src.tags()[f"{env}:latest"]]
        blobs = src.reachable(root)
        assert all(fresh.has_blob(d) and fresh.blob_size(d) == size for d, size in blobs.items())


def test_second_push_uploads_nothing(built: Workspace, registry: RunningRegistry) -> None:
    repo = unique("push/again")
    first_client = RegistryClient(registry.host, insecure=True)
    first = built.push(
        [], [], f"{registry.host}/{repo}", insecure=True, jobs=2, client=first_client, sbom=False
    )
    assert first_client.stats.bytes_uploaded == sum(p.bytes_uploaded for p in first) > 0

    client = RegistryClient(registry.host, insecure=True)
    second = built.push([], [], f"{registry.host}/{repo}", insecure=True, jobs=2, client=client, sbom=False)
    assert [p.digest for p in second] == [p.digest for p in first]
    assert client.stats.bytes_uploaded == 0
    assert client.stats.blobs_uploaded == 0
    assert client.stats.blobs_mounted == 0
    assert sum(p.bytes_uploaded for p in second) == 0
    assert sum(p.blobs_skipped for p in second) == sum(
        p.blobs_uploaded + p.blobs_skipped + p.blobs_mounted for p in first
    )


def test_interrupted_push_completes_without_reuploading(built: Workspace, registry: RunningRegistry) -> None:
    """Blobs that arrived before an interruption are not uploaded again."""
    repo = unique("push/interrupted")
    store = built.open_store()
    desc = store.tags()["app:latest"]
    manifest = from_json(store.read_blob(desc.digest), Manifest)
    client = RegistryClient(registry.host, insecure=True)
    # "The first run" got the config and the first layer up, then died.
    arrived = [manifest.config, manifest.layers[0]]
    for d in arrived:
        client.upload_blob(repo, d.digest, d.size, lambda d=d: store.open_blob(d.digest))
    assert client.manifest_exists(repo, "app") is None

    resumed = RegistryClient(registry.host, insecure=True)
    built.push(["app"], [], f"{registry.host}/{repo}", insecure=True, jobs=2, client=resumed, sbom=False)
    assert resumed.stats.blobs_uploaded == len(manifest.layers) - 1
    assert resumed.stats.bytes_uploaded == sum(d.size for d in manifest.layers[1:])
    assert resumed.manifest_exists(repo, "app") == desc.digest


def test_cross_repository_mount(built: Workspace, registry: RunningRegistry) -> None:
    first_repo, second_repo = unique("push/first"), unique("push/second")
    built.push([], [], f"{registry.host}/{first_repo}", insecure=True, jobs=2, sbom=False)
    known = json.loads((built.store_path / KNOWN_BLOBS_FILE).read_text())
    assert first_repo in set(known[registry.host].values())

    client = RegistryClient(registry.host, insecure=True)
    second = built.push(
        [], [], f"{registry.host}/{second_repo}", insecure=True, jobs=2, client=client, sbom=False
    )
    assert client.stats.bytes_uploaded == 0
    assert client.stats.blobs_mounted > 0
    assert sum(p.blobs_mounted for p in second) == client.stats.blobs_mounted
    for p in second:
        assert client.manifest_exists(second_repo, p.env) == p.digest


def test_mount_from_named_repository_without_history(built: Workspace, registry: RunningRegistry) -> None:
    """Without the local record, repositories the caller names are tried for mounts."""
    first_repo, second_repo = unique("push/named-a"), unique("push/named-b")
    built.push(["core"], [], f"{registry.host}/{first_repo}", insecure=True, sbom=False)
    (built.store_path / KNOWN_BLOBS_FILE).unlink()
    client = RegistryClient(registry.host, insecure=True)
    built.push(
        ["core"],
        [],
        f"{registry.host}/{second_repo}",
        insecure=True,
        client=client,
        mount_from=[first_repo],
        sbom=False,
    )
    assert client.stats.bytes_uploaded == 0
    assert client.stats.blobs_mounted > 0


def test_push_unbuilt_env_is_one_line_error(
    make_project: Callable[..., Path], registry: RunningRegistry
) -> None:
    ws = envgraph.load(make_project(BODY, header=HEADER))
    ws.lock()
    with pytest.raises(EnvgraphError, match=r"^env core is not built: run `envgraph build`$"):
        ws.push(["core"], [], f"{registry.host}/{unique('push/unbuilt')}", insecure=True)


def test_push_rejects_a_tagged_target(built: Workspace, registry: RunningRegistry) -> None:
    with pytest.raises(RegistryError, match="without a tag"):
        built.push([], [], f"{registry.host}/repo:v1", insecure=True)


def test_unreachable_registry_is_one_line_error(built: Workspace) -> None:
    with pytest.raises(RegistryError) as info:
        built.push([], [], "127.0.0.1:9/nothing", insecure=True)
    message = str(info.value)
    assert "\n" not in message
    assert "127.0.0.1:9" in message and "not reachable" in message


def test_basic_auth_push_with_environment_credentials(
    built: Workspace, registry_basic_auth: RunningRegistry, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    reg = registry_basic_auth
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    monkeypatch.setenv(ENV_USERNAME, reg.username or "")
    monkeypatch.setenv(ENV_PASSWORD, reg.password or "")
    repo = unique("push/auth")
    pushed = built.push(["core"], [], f"{reg.host}/{repo}", insecure=True)
    fresh = Store.open(tmp_path / "fresh")
    assert (
        pull_image(fresh, f"{reg.host}/{repo}:core", DEFAULT_PLATFORM, insecure=True).digest
        == pushed[0].digest
    )

    monkeypatch.setenv(ENV_PASSWORD, "wrong")
    with pytest.raises(RegistryError, match="authentication to .* failed") as info:
        built.push(["core"], [], f"{reg.host}/{repo}", insecure=True)
    assert "\n" not in str(info.value)


def test_pull_resolves_an_index_to_the_platform(
    built: Workspace, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = unique("pull/index")
    pushed = {p.env: p for p in built.push([], [], f"{registry.host}/{repo}", insecure=True)}
    store = built.open_store()
    core, app = store.tags()["core:latest"], store.tags()["app:latest"]
    index = Index(
        manifests=(
            core.evolve(platform=Platform("amd64", "linux")),
            app.evolve(platform=Platform("arm64", "linux", variant="v8")),
        )
    )
    client = RegistryClient(registry.host, insecure=True)
    client.put_manifest(repo, "multi", to_json(index), MEDIA_TYPE_INDEX)

    fresh = Store.open(tmp_path / "fresh")
    amd = pull_image(fresh, f"{registry.host}/{repo}:multi", Platform("amd64", "linux"), insecure=True)
    assert amd.digest == pushed["core"].digest
    arm = pull_image(fresh, f"{registry.host}/{repo}:multi", Platform("arm64", "linux"), insecure=True)
    assert arm.digest == pushed["app"].digest
    assert fresh.has_blob(client.manifest_exists(repo, "multi") or "")
    with pytest.raises(
        RegistryError, match=r"has no image for linux/s390x \(it has linux/amd64, linux/arm64\)"
    ):
        pull_image(fresh, f"{registry.host}/{repo}:multi", Platform("s390x", "linux"), insecure=True)
    # A single-platform image for another platform is refused, not silently used.
    with pytest.raises(RegistryError, match="is an image for linux/amd64, the target is linux/arm64"):
        pull_image(fresh, f"{registry.host}/{repo}:core", Platform("arm64", "linux"), insecure=True)


def test_pull_digest_mismatch_leaves_nothing(
    built: Workspace, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = unique("pull/corrupt")
    (pushed,) = built.push(["core"], [], f"{registry.host}/{repo}", insecure=True)
    store = built.open_store()
    manifest = from_json(store.read_blob(pushed.digest), Manifest)
    victim = max(manifest.layers, key=lambda d: d.size)
    data_path = registry.blob_data_path(victim.digest)
    original = data_path.read_bytes()
    try:
        data_path.write_bytes(original[:-1] + bytes([original[-1] ^ 0xFF]))
        fresh = Store.open(tmp_path / "fresh")
        with pytest.raises(RegistryError, match="failed verification") as info:
            pull_image(fresh, f"{registry.host}/{repo}:core", DEFAULT_PLATFORM, insecure=True)
        assert "\n" not in str(info.value)
        assert not fresh.has_blob(victim.digest)
        assert not fresh.has_blob(pushed.digest)  # no manifest without its blobs
        assert list(fresh.tmp_dir.iterdir()) == []
    finally:
        data_path.write_bytes(original)


def test_pull_unknown_tag(registry: RunningRegistry, tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="not found"):
        pull_image(
            Store.open(tmp_path / "s"), f"{registry.host}/pull/none:nope", DEFAULT_PLATFORM, insecure=True
        )


def test_pull_local_registry_without_insecure_falls_back_to_http(
    built: Workspace, registry: RunningRegistry, tmp_path: Path
) -> None:
    """Like Docker, a loopback registry is reached over plain HTTP when it does not speak HTTPS."""
    repo = unique("pull/local")
    (pushed,) = built.push(["core"], [], f"{registry.host}/{repo}", insecure=True)
    desc = pull_image(Store.open(tmp_path / "s"), f"docker://{registry.host}/{repo}:core", DEFAULT_PLATFORM)
    assert desc.digest == pushed.digest


def test_push_command(built: Workspace, registry: RunningRegistry) -> None:
    from envgraph.cli import main

    repo = unique("push/cli")
    args = [
        "-f",
        str(built.path),
        "--store",
        str(built.store_path),
        "push",
        "--registry",
        f"{registry.host}/{repo}",
    ]
    result = CliRunner().invoke(main, [*args, "--insecure", "-j", "3"])
    assert result.exit_code == 0, result.output
    digests = image_tags(built)
    lines = [line for line in result.stdout.splitlines() if line.startswith("pushed ")]
    assert len(lines) == 2
    for line in lines:
        _, ref, digest = line.split(" ")
        env = ref.rsplit(":", 1)[1].rsplit("-", 1)[0]
        assert ref.startswith(f"{registry.host}/{repo}:") and digests[env] == digest
    assert "uploaded" in result.stdout

    again = CliRunner().invoke(main, [*args, "--insecure", "-q", "core"])
    assert again.exit_code == 0, again.output
    (core_line,) = again.stdout.splitlines()
    assert core_line.startswith(f"pushed {registry.host}/{repo}:core-") and core_line.endswith(
        digests["core"]
    )

    bad = CliRunner().invoke(main, [*args[:-1], "127.0.0.1:9/x", "--insecure"])
    assert bad.exit_code == 1
    assert bad.stderr.strip().startswith("envgraph: error: ") and len(bad.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed")
def test_skopeo_reads_pushed_image(built: Workspace, registry: RunningRegistry) -> None:
    repo = unique("push/skopeo")
    pushed = {p.env: p for p in built.push([], [], f"{registry.host}/{repo}", insecure=True)}
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/{repo}:app"],
        capture_output=True,
        text=True,
        check=True,
    )
    info = json.loads(out.stdout)
    assert info["Digest"] == pushed["app"].digest
    assert info["Labels"]["dev.envgraph.env"] == "app"
    raw = subprocess.run(
        ["skopeo", "inspect", "--raw", "--tls-verify=false", f"docker://{pushed['core'].reference}"],
        capture_output=True,
        check=True,
    )
    assert raw.stdout == built.open_store().read_blob(pushed["core"].digest)


@pytest.mark.docker
def test_docker_pulls_and_runs_pushed_image(
    built: Workspace, registry: RunningRegistry, docker_client: object
) -> None:
    import docker

    client: docker.DockerClient = docker_client  # type: ignore[assignment]
    repo = unique("push/docker")
    pushed = {p.env: p for p in built.push([], [], f"{registry.host}/{repo}", insecure=True)}
    ref = f"{registry.host}/{repo}"
    try:
        image = client.images.pull(ref, tag="app")
    except docker.errors.APIError as err:  # pragma: no cover - depends on the daemon's configuration
        pytest.skip(f"the Docker daemon cannot pull from {registry.host}: {err}")
    try:
        assert pushed["app"].digest in " ".join(image.attrs.get("RepoDigests", []))
        assert image.labels["dev.envgraph.env"] == "app"
        # The scratch base has no interpreter: lend it the host's (bind mounts) to run the venv's script.
        mounts = {"/usr": {"bind": "/usr", "mode": "ro"}, "/usr/lib": {"bind": "/lib", "mode": "ro"}}
        if Path("/usr/lib64").is_dir():
            mounts["/usr/lib64"] = {"bind": "/lib64", "mode": "ro"}
        try:
            out = client.containers.run(
                f"{ref}:app", ["gamma-hello"], volumes=mounts, network_mode="none", remove=True
            )
        except docker.errors.ContainerError as err:  # pragma: no cover - a daemon on another host
            pytest.skip(f"cannot lend the host's interpreter to the container: {err}")
        assert out.strip() == b"hello from gamma"
    finally:
        client.images.remove(f"{ref}:app", force=True)


def test_docker_base_from_a_registry(
    built: Workspace, registry: RunningRegistry, tmp_path: Path, wheelhouse: Path
) -> None:
    """A ``docker://`` base is pulled (verified) at lock time, pinned by digest, and built on."""
    repo = unique("pull/base")
    # A base with an interpreter (lock checks its ELF header): an image of its own, pushed with the client.
    layout = Store.open(tmp_path / "base-layout")
    base = fake_python_base(layout.root, tag="core")
    client = RegistryClient(registry.host, insecure=True)
    manifest = from_json(layout.read_blob(base.digest), Manifest)
    for blob in (manifest.config, *manifest.layers):
        client.push_blob(repo, blob.digest, blob.size, lambda d=blob.digest: layout.open_blob(d))
    client.put_manifest(repo, "core", layout.read_blob(base.digest), base.media_type)
    project = tmp_path / "on-base"
    project.mkdir()
    shutil.copytree(wheelhouse, project / "wheels")
    (project / "envgraph.toml").write_text(
        HEADER.replace('image = "scratch"', f'image = "docker://{registry.host}/{repo}:core"')
        + '\n[env.extra]\nbase = "none"\nrequirements = ["delta"]\n'
    )
    ws = envgraph.load(project / "envgraph.toml", store=tmp_path / "on-base-store")
    ws.lock()
    result = ws.build()
    assert result.ok, result.failures
    (image,) = result.images
    assert image.base_layers  # the pulled image's layers come first
    store = ws.open_store()
    manifest = from_json(store.read_blob(image.descriptor.digest), Manifest)  # type: ignore[union-attr]
    base_manifest = from_json(store.read_blob(base.digest), Manifest)
    assert manifest.layers[: len(base_manifest.layers)] == base_manifest.layers
    assert verify_store(store).problems == ()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_push_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    events = [BlobEvent("", 0, "planned", 0, 3), BlobEvent("sha256:" + "a" * 64, 2_000_000, "uploaded", 1, 3),
              BlobEvent("sha256:" + "b" * 64, 10, "skipped", 2, 3), BlobEvent("sha256:" + "c" * 64, 5, "mounted", 3, 3)]  # fmt: skip
    term = _Terminal()
    bar = push_progress(term)
    assert isinstance(bar, RichPushProgress)
    for ev in events:
        bar(ev)
    assert bar.uploaded == 2_000_000
    assert bar.progress.tasks[0].completed == 3
    bar.close()

    pipe = io.StringIO()
    lines = push_progress(pipe)
    assert isinstance(lines, PlainPushProgress)
    for ev in events:
        lines(ev)
    lines.close()
    assert pipe.getvalue().splitlines() == [
        "[1/3] uploaded sha256:aaaaaaaaaaaa 2.0 MB",
        "[3/3] mounted sha256:cccccccccccc 5 B",
    ]
