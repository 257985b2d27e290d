"""amd64 and arm64 from one declaration (issue 14): offline, with wheels the tests make (pure-Python ones and a
binary one with both a manylinux x86_64 and an aarch64 build), a scratch base, the real store, and for the push
the real loopback docker-registry read back with skopeo."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import uuid
from pathlib import Path

import pytest

import envgraph
from envgraph.debian._rootfs import DebianRootfs
from envgraph.errors import EnvgraphError, SpecError
from envgraph.identity import MEDIA_TYPE_INDEX
from envgraph.images import host_image
from envgraph.lock._model import image_ident
from envgraph.oci._image import (
    ImageConfigSpec,
    ImageLayer,
    platform_manifests,
    read_config,
    read_manifest,
    write_image,
    write_index,
)
from envgraph.oci._model import Platform
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from envgraph.platforms import host_platform, parse_platform
from tests.support.cli import cli
from tests.support.project import SCRATCH_PYTHON
from tests.support.registry import RunningRegistry
from tests.support.wheels import make_wheel, standard_wheels

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (CI installs it)")

PLATFORMS = ("linux/amd64", "linux/arm64")
BINARY = "fastmath"
HEADER = f"""
[project]
name = "multi"
python = "3.11"
platforms = ["linux/amd64", "linux/arm64"]
index-url = ""
find-links = ["wheels"]

[bases.none]
image = "scratch"
python = "{SCRATCH_PYTHON}"
"""
BODY = """
[env.core]
base = "none"
requirements = ["alpha<2", "fastmath"]

[env.app]
parent = "core"
requirements = ["gamma"]
"""


def _binary_wheels(wh: Path, arches: tuple[str, ...] = ("x86_64", "aarch64")) -> None:
    for arch in arches:
        make_wheel(
            wh,
            BINARY,
            "1.0",
            files={f"{BINARY}/__init__.py": "", f"{BINARY}/_core.so": f"ELF for {arch}".encode()},
            tag=f"cp311-cp311-manylinux_2_17_{arch}",
        )


@pytest.fixture
def project(tmp_path: Path) -> Path:
    standard_wheels(tmp_path / "wheels")
    _binary_wheels(tmp_path / "wheels")
    (tmp_path / "envgraph.toml").write_text(textwrap.dedent(HEADER) + textwrap.dedent(BODY), encoding="utf-8")
    return tmp_path


def _lockdoc(project: Path, env: str) -> dict[str, object]:
    doc: dict[str, object] = json.loads((project / "lockfiles" / f"{env}.lock.json").read_text())
    return doc


def test_platform_model() -> None:
    arm = parse_platform("linux/arm64")
    assert (arm.machine, arm.debian_arch, arm.slug, arm.oci()) == (
        "aarch64", "arm64", "linux-arm64", {"os": "linux", "architecture": "arm64"},
    )  # fmt: skip
    assert parse_platform("linux/amd64").wheel_platforms("glibc-2.17")[:2] == [
        "manylinux_2_17_x86_64", "manylinux2014_x86_64",
    ]  # fmt: skip
    assert arm.wheel_platforms("musl-1.1") == ["musllinux_1_1_aarch64", "musllinux_1_0_aarch64"]
    with pytest.raises(ValueError, match="unknown platform 'linux/s390x'"):
        parse_platform("linux/s390x")


@pytest.mark.parametrize(
    ("project_lines", "message"),
    [
        ('platform = "linux/amd64"\nplatforms = ["linux/arm64"]', "not both"),
        ('platforms = ["linux/amd64", "linux/amd64"]', "twice"),
        ('platforms = ["linux/riscv64"]', "unknown platform"),
        ("platforms = []", "at least one"),
    ],
)
def test_spec_platforms_errors(tmp_path: Path, project_lines: str, message: str) -> None:
    (tmp_path / "envgraph.toml").write_text(f'[project]\nname = "x"\npython = "3.11"\n{project_lines}\n')
    with pytest.raises(SpecError, match=message):
        envgraph.load(tmp_path / "envgraph.toml")


def test_lock_pins_each_platforms_wheel_and_shares_pure_ones(project: Path) -> None:
    ws = envgraph.load(project / "envgraph.toml")
    assert ws.spec.project.platform == "linux/amd64" and ws.platforms == PLATFORMS
    ws.lock()
    core = _lockdoc(project, "core")
    assert core["version"] == 4 and core["platform"] == "linux/amd64"
    packages = {p["name"]: p for p in core["packages"]}  # type: ignore[attr-defined]
    assert packages[BINARY]["wheel"]["filename"].endswith("manylinux_2_17_x86_64.whl")
    assert packages[BINARY]["platforms"]["linux/arm64"]["filename"].endswith("manylinux_2_17_aarch64.whl")
    assert "platforms" not in packages["alpha"]  # one pure-Python wheel for both
    arm = core["platforms"]["linux/arm64"]  # type: ignore[index]
    assert arm["drv"] != core["drv"] and arm["base"]["name"] == "none"
    app = _lockdoc(project, "app")
    assert app["platforms"]["linux/arm64"]["parent"] == {"env": "core", "drv": arm["drv"]}  # type: ignore[index]
    assert (project / "lockfiles" / "bases" / "none@linux-arm64.lock.json").is_file()
    # The requirements file carries both wheels' hashes, so pip installs it on either platform.
    reqs = (project / "lockfiles" / "core.requirements.txt").read_text()
    assert reqs.count("--hash=sha256:") == 3
    assert all(o.status == "unchanged" for o in ws.lock(check=True).outcomes)


def test_lock_says_which_package_lacks_which_platform(project: Path) -> None:
    for f in (project / "wheels").glob(f"{BINARY}-*aarch64.whl"):
        f.unlink()
    with pytest.raises(EnvgraphError, match=r"fastmath 1\.0 has no wheel for linux/arm64 .*x86_64\.whl"):
        envgraph.load(project / "envgraph.toml").lock()


def test_edited_platform_pin_is_stale(project: Path) -> None:
    ws = envgraph.load(project / "envgraph.toml")
    ws.lock()
    path = project / "lockfiles" / "core.lock.json"
    doc = json.loads(path.read_text())
    doc["platforms"]["linux/arm64"]["drv"] = "sha256:" + "0" * 64
    path.write_text(json.dumps(doc))
    stale = {o.name: o.reason for o in ws.lock(check=True).stale}
    assert "edited" in stale["core"]


def test_build_makes_an_index_over_both_platforms(project: Path) -> None:
    ws = envgraph.load(project / "envgraph.toml")
    ws.lock()
    result = ws.build()
    assert result.ok, result.failures
    assert sorted((i.env, i.platform) for i in result.images) == sorted(
        (e, p) for e in ("core", "app") for p in PLATFORMS
    )
    store = Store.open(project / ".envgraph")
    lock = envgraph.lock.read_lock(project / "lockfiles", "app")
    assert lock is not None
    tag, desc = ws.image("app")
    assert tag == f"app:{image_ident(lock).removeprefix('sha256:')[:12]}"
    assert desc.media_type == MEDIA_TYPE_INDEX and store.tags()["app:latest"] == desc
    manifests = platform_manifests(store, desc)
    assert [(m.platform.os, m.platform.architecture) for m in manifests if m.platform] == [
        ("linux", "amd64"), ("linux", "arm64"),
    ]  # fmt: skip
    layers = {}
    for m in manifests:
        manifest = read_manifest(store, m.digest)
        config = read_config(store, manifest.config.digest)
        assert config.architecture == m.platform.architecture and config.os == "linux"  # type: ignore[union-attr]
        layers[config.architecture] = {
            h.comment.removeprefix("envgraph: ").split(" ")[0]: d.digest
            for h, d in zip(
                [h for h in config.history or () if not h.empty_layer], manifest.layers, strict=True
            )
            if h.comment
        }
    amd, arm = layers["amd64"], layers["arm64"]
    assert amd.keys() == arm.keys()
    assert amd[BINARY] != arm[BINARY]  # the two builds' own bytes
    shared = [name for name in amd if name != BINARY]
    assert {"alpha", "gamma"} <= set(shared)
    assert all(
        amd[n] == arm[n] for n in shared
    )  # pure-Python layers (and the venv): one blob, both manifests
    # A second build reuses everything and gives the same index.
    again = ws.build()
    assert ws.image("app")[1] == desc
    assert all(r.status == "reused" for r in again.layers.values())


def _skopeo(*args: str) -> str:
    return subprocess.run(["skopeo", *args], capture_output=True, text=True, check=True, timeout=120).stdout


@skopeo
@pytest.mark.registry
def test_push_writes_an_index_skopeo_resolves_each_platform(project: Path, registry: RunningRegistry) -> None:
    """The command line end to end, as the README shows it: lock, build, push, then skopeo reads the index."""
    cli(project, "lock")
    cli(project, "build", "-q")
    repo = f"multi-{uuid.uuid4().hex[:8]}"
    out = cli(project, "push", "app", "--registry", f"{registry.host}/{repo}", "--insecure").stdout
    lock = envgraph.lock.read_lock(project / "lockfiles", "app")
    assert lock is not None
    drv12 = image_ident(lock).removeprefix("sha256:")[:12]
    assert f"{registry.host}/{repo}:app-{drv12}" in out
    ref = f"docker://{registry.host}/{repo}:app"
    index = json.loads(_skopeo("inspect", "--tls-verify=false", "--raw", ref))
    assert index["mediaType"] == MEDIA_TYPE_INDEX
    assert [(m["platform"]["os"], m["platform"]["architecture"]) for m in index["manifests"]] == [
        ("linux", "amd64"), ("linux", "arm64"),
    ]  # fmt: skip
    by_arch = {m["platform"]["architecture"]: m["digest"] for m in index["manifests"]}
    layers: dict[str, list[str]] = {}
    for arch in ("amd64", "arm64"):
        seen = json.loads(_skopeo("inspect", "--tls-verify=false", "--override-arch", arch, ref))
        assert seen["Architecture"] == arch and seen["Os"] == "linux"
        # skopeo's "Digest" is the index's; the layers it shows are those of this platform's manifest.
        child = json.loads(
            _skopeo("inspect", "--tls-verify=false", "--raw", f"{ref.rpartition(':')[0]}@{by_arch[arch]}")
        )
        assert seen["Layers"] == [layer["digest"] for layer in child["layers"]]
        layers[arch] = seen["Layers"]
    # Only the binary package's layer differs; every other layer is one blob in the registry, in both images.
    assert len(layers["amd64"]) == len(layers["arm64"])
    differing = [i for i, (a, b) in enumerate(zip(layers["amd64"], layers["arm64"], strict=True)) if a != b]
    assert len(differing) == 1
    # The same for the tag with the drv, and a second push uploads nothing.
    assert json.loads(_skopeo("inspect", "--tls-verify=false", "--raw", f"{ref}-{drv12}")) == index
    again = cli(project, "push", "app", "--registry", f"{registry.host}/{repo}", "--insecure").stdout
    assert "in 0 blobs" in again, again


def test_images_export_verify_and_gc_see_every_platform(project: Path, tmp_path: Path) -> None:
    ws = envgraph.load(project / "envgraph.toml")
    ws.lock()
    assert ws.build().ok
    rows = [(r.env, r.platform) for r in ws.images()]
    assert sorted(set(rows)) == sorted((e, p) for e in ("app", "core") for p in PLATFORMS)
    listing = cli(project, "images").stdout
    assert "linux/arm64" in listing and "linux/amd64" in listing
    dry = cli(project, "build", "--dry-run").stdout
    assert "platform linux/arm64:" in dry
    _, desc = ws.image("core")
    # The OCI archive holds the index with both platforms; a docker-archive holds the host's image.
    oci = tmp_path / "core.oci.tar"
    ws.export("core", oci, "oci-archive")
    imported = Store.open(tmp_path / "imported")
    from envgraph.oci._archive import import_oci_archive

    arm = import_oci_archive(oci, imported, None, Platform("arm64", "linux"))
    assert arm.digest == platform_manifests(ws.open_store(), desc)[1].digest
    docker = tmp_path / "core.docker.tar"
    ws.export("core", docker, "docker-archive")
    host = host_image(ws.open_store(), desc)
    assert (
        host.platform is not None
        and host.platform.architecture
        == parse_platform(f"linux/{'arm64' if os.uname().machine == 'aarch64' else 'amd64'}").architecture
    )
    assert verify_store(ws.open_store()).ok
    before = ws.open_store().tags()
    ws.gc(keep_last=0)
    after = ws.open_store().tags()
    assert after == before  # every platform's image and the index are current: gc keeps them
    assert verify_store(ws.open_store()).ok


@skopeo
def test_skopeo_reads_the_exported_index(project: Path, tmp_path: Path) -> None:
    ws = envgraph.load(project / "envgraph.toml")
    ws.lock()
    assert ws.build().ok
    out = tmp_path / "app.tar"
    cli(project, "export", "app", "-o", str(out), "--format", "oci-archive")
    raw = json.loads(_skopeo("inspect", "--raw", f"oci-archive:{out}"))
    assert raw["mediaType"] == MEDIA_TYPE_INDEX and len(raw["manifests"]) == 2
    seen = json.loads(_skopeo("inspect", "--override-arch", "arm64", f"oci-archive:{out}"))
    assert seen["Architecture"] == "arm64"


def _two_platform_base(root: Path) -> dict[str, str]:
    """An OCI layout tagged ``base``: an image index over a linux/amd64 and a linux/arm64 image whose
    /usr/bin/python3.11 has that architecture's ELF header; returns architecture -> manifest digest."""
    from tests.support.images import AMD64, ARM64, fake_python_base

    store = Store.open(root)
    manifests = []
    for arch, machine in (("amd64", AMD64), ("arm64", ARM64)):
        one = fake_python_base(root / f"only-{arch}", machine)
        src = Store.open(root / f"only-{arch}")
        manifest = read_manifest(src, one.digest)
        config = read_config(src, manifest.config.digest)
        for d in (manifest.config, *manifest.layers):
            with src.open_blob(d.digest) as f:
                store.add_stream(f, d.digest)
        layers = [ImageLayer(config.rootfs.diff_ids[0], manifest.layers[0], "python")]
        manifests.append(write_image(store, layers, ImageConfigSpec(), Platform(arch, "linux")))
    store.tag("base", write_index(store, manifests))
    return {m.platform.architecture: m.digest for m in manifests if m.platform}


def test_an_image_base_resolves_each_platform_from_its_index(tmp_path: Path) -> None:
    standard_wheels(tmp_path / "wheels")
    _binary_wheels(tmp_path / "wheels")
    digests = _two_platform_base(tmp_path / "base-layout")
    header = HEADER.replace('image = "scratch"', 'image = "oci:base-layout:base"').replace(
        f'python = "{SCRATCH_PYTHON}"', 'python = "/usr/bin/python3.11"'
    )
    (tmp_path / "envgraph.toml").write_text(textwrap.dedent(header) + textwrap.dedent(BODY), encoding="utf-8")
    ws = envgraph.load(tmp_path / "envgraph.toml")
    ws.lock()
    bases = tmp_path / "lockfiles" / "bases"
    amd = json.loads((bases / "none.lock.json").read_text())
    arm = json.loads((bases / "none@linux-arm64.lock.json").read_text())
    assert (amd["image"]["digest"], amd["architecture"]) == (digests["amd64"], "amd64")
    assert (arm["image"]["digest"], arm["architecture"]) == (digests["arm64"], "arm64")
    assert ws.build().ok
    store = ws.open_store()
    for m in platform_manifests(store, ws.image("core")[1]):
        assert m.platform is not None
        base = read_manifest(Store.open(tmp_path / "base-layout"), digests[m.platform.architecture])
        assert read_manifest(store, m.digest).layers[0] == base.layers[0]


def test_a_one_platform_image_base_is_refused_for_the_other_platform(tmp_path: Path) -> None:
    from tests.support.images import fake_python_base

    standard_wheels(tmp_path / "wheels")
    _binary_wheels(tmp_path / "wheels")
    fake_python_base(tmp_path / "base-layout")  # amd64 only
    header = HEADER.replace('image = "scratch"', 'image = "oci:base-layout:base"').replace(
        f'python = "{SCRATCH_PYTHON}"', 'python = "/usr/bin/python3.11"'
    )
    (tmp_path / "envgraph.toml").write_text(textwrap.dedent(header) + textwrap.dedent(BODY), encoding="utf-8")
    # The lock reads the interpreter's ELF header (a base without one fails at build: its config says amd64).
    with pytest.raises(EnvgraphError, match="built for amd64, but one of project.platforms is linux/arm64"):
        envgraph.load(tmp_path / "envgraph.toml").lock()


@pytest.mark.network
@pytest.mark.debian
@pytest.mark.timeout(900)
@pytest.mark.skipif(shutil.which("mmdebstrap") is None, reason="mmdebstrap is not installed (CI installs it)")
@pytest.mark.skipif(os.uname().machine != "x86_64", reason="the foreign architecture here is arm64")
def test_a_debian_base_per_architecture(tmp_path: Path) -> None:
    """amd64 as usual (maintainer scripts run); arm64 extract-only, pinned from the .debs apt fetched, rebuilt
    bit for bit in another store."""
    standard_wheels(tmp_path / "wheels")
    _binary_wheels(tmp_path / "wheels")
    header = HEADER.replace(
        'image = "scratch"',
        'debian = { suite = "bookworm", packages = ["python3-minimal", "libpython3.11-stdlib"] }',
    ).replace(SCRATCH_PYTHON, "/usr/bin/python3.11")
    (tmp_path / "envgraph.toml").write_text(textwrap.dedent(header) + textwrap.dedent(BODY), encoding="utf-8")
    ws = envgraph.load(tmp_path / "envgraph.toml")
    ws.lock()
    bases = tmp_path / "lockfiles" / "bases"
    amd = json.loads((bases / "none.lock.json").read_text())
    arm = json.loads((bases / "none@linux-arm64.lock.json").read_text())
    assert "architecture" not in amd["debian"] and amd["architecture"] == "amd64"
    assert (arm["debian"]["architecture"], arm["debian"]["variant"], arm["architecture"]) == (
        "arm64", "extract", "arm64",
    )  # fmt: skip
    assert arm["python-version"] == "3.11" and "python3.11-minimal" in arm["debian"]["versions"]
    assert arm["debian"]["diff-id"] != amd["debian"]["diff-id"]
    assert ws.build().ok
    store = ws.open_store()
    firsts = {
        m.platform.architecture: read_manifest(store, m.digest).layers[0].digest
        for m in platform_manifests(store, ws.image("core")[1])
        if m.platform
    }
    assert firsts["amd64"] != firsts["arm64"]
    # Another store rebuilds the arm64 root filesystem from its pins: the same content as locked.
    from envgraph.builder._debian_base import ensure_debian_layer
    from envgraph.identity import DEFAULT_COMPRESSION, debian_key
    from envgraph.lock import read_base_lock

    lock = read_base_lock(tmp_path / "lockfiles", "none", "linux-arm64")
    assert lock is not None and lock.debian is not None
    d = lock.debian
    key = debian_key(d.suite, d.versions, d.diff_id, DEFAULT_COMPRESSION)
    record = ensure_debian_layer(Store.open(tmp_path / "other"), key, lock, DEFAULT_COMPRESSION)
    assert record.diff_id == d.diff_id


def test_one_platform_locks_stay_format_3_and_adding_a_platform_relocks(project: Path) -> None:
    toml = project / "envgraph.toml"
    toml.write_text(
        toml.read_text().replace('platforms = ["linux/amd64", "linux/arm64"]', 'platform = "linux/amd64"')
    )
    ws = envgraph.load(toml)
    ws.lock()
    one = _lockdoc(project, "core")
    assert one["version"] == 3 and "platforms" not in one
    assert all("platforms" not in p for p in one["packages"])  # type: ignore[attr-defined]
    assert not (project / "lockfiles" / "bases" / "none@linux-arm64.lock.json").exists()
    toml.write_text(
        toml.read_text().replace('platform = "linux/amd64"', 'platforms = ["linux/amd64", "linux/arm64"]')
    )
    ws = envgraph.load(toml)
    stale = {o.name for o in ws.lock(check=True).stale}
    assert {"core", "app"} <= stale
    ws.lock()
    multi = _lockdoc(project, "core")
    # The primary platform's image is the same image: its drv does not move.
    assert multi["version"] == 4 and multi["drv"] == one["drv"]


@pytest.mark.docker
@pytest.mark.debian
def test_run_takes_the_hosts_image_of_the_index(
    tmp_path: Path, debian_rootfs: DebianRootfs, docker_client: object
) -> None:
    """A base index of a real bookworm amd64 image and a look-alike arm64 one: `envgraph run` loads the host's
    (amd64) image of the env's index, and the interpreter reports this machine's architecture."""
    if host_platform() != parse_platform("linux/amd64"):
        pytest.skip("the real base image here is amd64")
    from envgraph.oci._layer import layer_from_tarstream
    from tests.support.images import ARM64, fake_python_base

    layout = tmp_path / "base-layout"
    store = Store.open(layout)
    with open(debian_rootfs.tar_path, "rb") as f:
        blob = layer_from_tarstream(store, f)
    amd = write_image(store, [ImageLayer(blob.diff_id, blob.descriptor(), "debian")], ImageConfigSpec())
    fake_python_base(tmp_path / "arm", ARM64)
    src = Store.open(tmp_path / "arm")
    (arm_desc,) = [d for d in src.tags().values()]
    manifest = read_manifest(src, arm_desc.digest)
    for d in (manifest.config, *manifest.layers):
        with src.open_blob(d.digest) as f:
            store.add_stream(f, d.digest)
    diff_id = read_config(src, manifest.config.digest).rootfs.diff_ids[0]
    arm = write_image(
        store,
        [ImageLayer(diff_id, manifest.layers[0], "python")],
        ImageConfigSpec(),
        Platform("arm64", "linux"),
    )
    store.tag("base", write_index(store, [amd, arm]))

    standard_wheels(tmp_path / "wheels")
    _binary_wheels(tmp_path / "wheels")
    header = HEADER.replace('image = "scratch"', 'image = "oci:base-layout:base"').replace(
        SCRATCH_PYTHON, "/usr/bin/python3.11"
    )
    (tmp_path / "envgraph.toml").write_text(textwrap.dedent(header) + textwrap.dedent(BODY), encoding="utf-8")
    cli(tmp_path, "lock")
    cli(tmp_path, "build", "-q")
    code = "import platform, alpha, fastmath, gamma; print(platform.machine(), alpha.__version__)"
    out = cli(tmp_path, "run", "--network", "none", "app", "--", "python", "-c", code).stdout
    assert out.strip().splitlines()[-1] == "x86_64 1.0"
