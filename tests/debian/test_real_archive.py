"""Debian packages from the real archive, end to end: the signed bookworm index, resolution against the
bookworm base (checked against apt itself), fetching by hash, one layer per package, and images that
run in Docker. Downloads are cached between runs (the archive index and .debs under
``$ENVGRAPH_TEST_CACHE``); warm, the whole module takes well under a minute."""

from __future__ import annotations

import io
import os
import shutil
import subprocess
import tarfile
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import docker
import pytest

from envgraph._docker import load_archive, run
from envgraph.builder._deb_layer import DEFAULT_MERGED_USR, deb_layer_key, merged_usr_dirs, write_deb_layer
from envgraph.debian._archive import load_index
from envgraph.debian._fetch import fetch_deb
from envgraph.debian._packages import PackageIndex
from envgraph.debian._resolve import DebPin, resolve
from envgraph.debian._rootfs import DebianRootfs, default_mirror
from envgraph.identity import Compression
from envgraph.oci._archive import export_docker_archive
from envgraph.oci._image import ImageConfigSpec, ImageLayer, write_image
from envgraph.oci._layer import layer_from_tarstream, record_layer
from envgraph.oci._store import Store
from tests.support.docker import BASE_SUITE, cache_dir

pytestmark = [pytest.mark.network, pytest.mark.debian, pytest.mark.timeout(900)]

PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def debian_cache() -> Path:
    return cache_dir() / "debian-archive"


@pytest.fixture(scope="session")
def bookworm_index() -> PackageIndex:
    if shutil.which("gpgv") is None:
        pytest.skip("gpgv is not installed (apt-get install gpgv)")
    return load_index(BASE_SUITE, "amd64", cache=debian_cache())


def test_jq_resolves_against_the_base(bookworm_index: PackageIndex, debian_rootfs: DebianRootfs) -> None:
    pins = resolve(["jq"], bookworm_index, debian_rootfs.versions)
    assert [p.name for p in pins] == ["jq", "libjq1", "libonig5"]
    for pin in pins:
        assert pin.filename.startswith("pool/main/")
        assert pin.architecture == "amd64"
        assert pin.name not in debian_rootfs.versions
    # libc6 and the other shared dependencies come from the base
    assert "libc6" in debian_rootfs.versions
    # the default merged-/usr directories are the base's
    assert merged_usr_dirs(debian_rootfs.tar_path) == DEFAULT_MERGED_USR


def _apt_closure(rootfs: DebianRootfs, packages: Sequence[str]) -> dict[str, set[str]]:
    """What ``apt-get install --no-install-recommends`` would add to the base, per package (simulated).

    apt's lists and caches live in the test cache, so a warm run only revalidates them."""
    workdir = debian_cache() / "apt"
    with tarfile.open(rootfs.tar_path) as tf:
        status = tf.extractfile("./var/lib/dpkg/status")
        assert status is not None
        data = status.read()
    for sub in ("lists/partial", "cache/archives/partial", "preferences.d"):
        (workdir / sub).mkdir(parents=True, exist_ok=True)
    if not (workdir / "status").is_file() or (workdir / "status").read_bytes() != data:
        (workdir / "status").write_bytes(data)
    (workdir / "sources.list").write_text(
        f"deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {default_mirror()} {BASE_SUITE} main\n"
    )
    options = {
        "Dir::State::status": workdir / "status",
        "Dir::State::Lists": workdir / "lists",
        "Dir::Cache": workdir / "cache",
        "Dir::Etc::SourceList": workdir / "sources.list",
        "Dir::Etc::SourceParts": workdir / "none",
        "Dir::Etc::Preferences": workdir / "preferences",
        "Dir::Etc::PreferencesParts": workdir / "preferences.d",
        "APT::Architecture": "amd64",
        "APT::Architectures": "amd64",
        "APT::Install-Recommends": "false",
        "Acquire::Languages": "none",
    }
    args = [f"-o{k}={v}" for k, v in options.items()]
    env = {**os.environ, "APT_CONFIG": "/dev/null", "LC_ALL": "C"}
    subprocess.run(["apt-get", *args, "-qq", "update"], check=True, capture_output=True, env=env)
    out = {}
    for package in packages:
        proc = subprocess.run(
            ["apt-get", *args, "-s", "install", package], check=True, capture_output=True, text=True, env=env
        )
        out[package] = {
            f"{line.split()[1]} {line.split()[2].strip('(')}"
            for line in proc.stdout.splitlines()
            if line.startswith("Inst ")
        }
    return out


def test_resolution_agrees_with_apt(bookworm_index: PackageIndex, debian_rootfs: DebianRootfs) -> None:
    if shutil.which("apt-get") is None:
        pytest.skip("apt-get is not installed")
    packages = ["jq", "libgl1", "build-essential"]
    apt = _apt_closure(debian_rootfs, packages)
    for package in packages:
        ours = {str(pin) for pin in resolve([package], bookworm_index, debian_rootfs.versions)}
        assert ours == apt[package], package
    assert len(apt["build-essential"]) > 40  # a real closure, with alternatives and virtual packages


# --- layers and images -------------------------------------------------------------------------------


def deb_layers(store: Store, pins: Sequence[DebPin]) -> list[ImageLayer]:
    """One layer per package, reused by key when the store has it (as builds will do)."""
    layers = []
    for pin in pins:
        key = deb_layer_key(pin, DEFAULT_MERGED_USR, Compression.GZIP)
        record = store.get_key(key)
        if record is None:
            blob, paths = write_deb_layer(store, fetch_deb(pin, cache=debian_cache()), pin=pin)
            record = record_layer(store, key, blob, paths)
        layers.append(ImageLayer(record.diff_id, record.descriptor(), f"debian {pin}"))
    return layers


@pytest.fixture(scope="module")
def image_store(
    debian_rootfs: DebianRootfs, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Store, ImageLayer]:
    store = Store.open(tmp_path_factory.mktemp("debian-images") / "store")
    with open(debian_rootfs.tar_path, "rb") as f:
        blob = layer_from_tarstream(store, f)
    return store, blob.image_layer("base bookworm")


def test_one_deterministic_layer_per_package(
    bookworm_index: PackageIndex, debian_rootfs: DebianRootfs, tmp_path: Path
) -> None:
    pins = resolve(["jq"], bookworm_index, debian_rootfs.versions)
    first = deb_layers(Store.open(tmp_path / "a"), pins)
    second = deb_layers(Store.open(tmp_path / "b"), pins)
    assert [layer.descriptor.digest for layer in first] == [layer.descriptor.digest for layer in second]
    assert len({layer.diff_id for layer in first}) == 3


@pytest.fixture
def image(docker_client: docker.DockerClient, tmp_path: Path) -> Iterator[object]:
    refs: list[str] = []

    def load(store: Store, layers: Sequence[ImageLayer]) -> str:
        desc = write_image(store, layers, ImageConfigSpec(env={"PATH": PATH}))
        ref = f"envgraph-test/debian-packages:{uuid.uuid4().hex[:12]}"
        archive = tmp_path / f"{ref.rsplit(':', 1)[1]}.tar"
        export_docker_archive(store, desc, [ref], archive)
        assert load_archive(docker_client, archive) == [ref]
        refs.append(ref)
        return ref

    yield load
    for ref in refs:
        docker_client.images.remove(ref, force=True)


def _run(client: docker.DockerClient, ref: str, *command: str) -> tuple[int, str]:
    out = io.StringIO()
    code = run(client, ref, list(command), stream_to=out, network="none")
    return code, out.getvalue()


@pytest.mark.docker
def test_jq_runs_from_its_package_layers(
    bookworm_index: PackageIndex,
    debian_rootfs: DebianRootfs,
    image_store: tuple[Store, ImageLayer],
    image: object,
    docker_client: docker.DockerClient,
) -> None:
    store, base = image_store
    pins = resolve(["jq"], bookworm_index, debian_rootfs.versions)
    ref = image(store, [base, *deb_layers(store, pins)])  # type: ignore[operator]
    code, output = _run(docker_client, ref, "jq", "--version")
    assert (code, output.strip()) == (0, "jq-1.6")
    code, output = _run(docker_client, ref, "sh", "-c", "echo '{\"a\": [1, 2, 3]}' | jq -c '.a | map(. * 2)'")
    assert (code, output.strip()) == (0, "[2,4,6]")


@pytest.mark.docker
def test_a_library_layer_is_what_makes_dlopen_work(
    bookworm_index: PackageIndex,
    debian_rootfs: DebianRootfs,
    image_store: tuple[Store, ImageLayer],
    image: object,
    docker_client: docker.DockerClient,
) -> None:
    store, base = image_store
    pins = resolve(["libgomp1"], bookworm_index, debian_rootfs.versions)
    assert [p.name for p in pins] == ["libgomp1"]
    check = ("python3", "-c", "import ctypes; ctypes.CDLL('libgomp.so.1'); print('loaded')")
    with_gomp = image(store, [base, *deb_layers(store, pins)])  # type: ignore[operator]
    assert _run(docker_client, with_gomp, *check) == (0, "loaded\n")
    without = image(store, [base])  # type: ignore[operator]
    code, output = _run(docker_client, without, *check)
    assert code == 1
    assert "libgomp.so.1: cannot open shared object file" in output
