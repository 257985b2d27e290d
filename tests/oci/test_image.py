"""Image config and manifest: stable digests, OCI JSON shape, inheritance from a base, skopeo."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from envgraph._hashing import sha256_digest
from envgraph.errors import BuildError, StoreError
from envgraph.identity import MEDIA_TYPE_CONFIG, MEDIA_TYPE_MANIFEST, Compression
from envgraph.oci._image import (
    ImageConfigSpec,
    ImageLayer,
    chain_ids,
    read_config,
    read_manifest,
    write_image,
)
from envgraph.oci._layer import layer_from_directory
from envgraph.oci._model import (
    ContainerConfig,
    Descriptor,
    History,
    ImageConfig,
    Platform,
    RootFS,
    from_json,
    to_json,
)
from envgraph.oci._store import Store

SPEC = ImageConfigSpec(
    env={"PATH": "/opt/venv/bin:/usr/bin", "PYTHONDONTWRITEBYTECODE": "1"},
    working_dir="/work",
    entrypoint=["python"],
    cmd=["-c", "print(1)"],
    labels={"org.example.env": "train"},
)


def layers(store: Store, tmp_path: Path) -> list[ImageLayer]:
    out = []
    for name in ("numpy", "torch"):
        tree = tmp_path / name
        (tree / name).mkdir(parents=True, exist_ok=True)
        (tree / name / "__init__.py").write_text(f"NAME = {name!r}\n")
        blob, _ = layer_from_directory(
            store, tree, "opt/venv/lib/python3.11/site-packages/", Compression.GZIP
        )
        out.append(blob.image_layer(f"{name} 1.0"))
    return out


def test_write_image_is_stable(tmp_path: Path) -> None:
    s1 = Store.open(tmp_path / "s1")
    s2 = Store.open(tmp_path / "s2")
    d1 = write_image(s1, layers(s1, tmp_path), SPEC)
    d1_again = write_image(s1, layers(s1, tmp_path), SPEC)
    d2 = write_image(s2, layers(s2, tmp_path), SPEC)
    assert d1 == d1_again == d2
    assert d1.media_type == MEDIA_TYPE_MANIFEST and d1.platform == Platform("amd64", "linux")
    other = write_image(s1, layers(s1, tmp_path), ImageConfigSpec(env={"X": "1"}))
    assert other.digest != d1.digest


def test_oci_json_shape(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    image_layers = layers(store, tmp_path)
    desc = write_image(store, image_layers, SPEC)
    manifest = json.loads(store.read_blob(desc.digest))
    assert set(manifest) == {"schemaVersion", "mediaType", "config", "layers"}
    assert manifest["schemaVersion"] == 2 and manifest["mediaType"] == MEDIA_TYPE_MANIFEST
    assert manifest["config"]["mediaType"] == MEDIA_TYPE_CONFIG
    assert [layer["digest"] for layer in manifest["layers"]] == [x.descriptor.digest for x in image_layers]
    for d in [manifest["config"], *manifest["layers"]]:
        assert set(d) == {"mediaType", "digest", "size"}
        assert store.blob_path(d["digest"]).stat().st_size == d["size"]
    assert store.read_blob(desc.digest) == to_json(read_manifest(store, desc.digest))  # canonical

    config = json.loads(store.read_blob(manifest["config"]["digest"]))
    assert "created" not in config
    assert config["architecture"] == "amd64" and config["os"] == "linux"
    assert config["rootfs"] == {"type": "layers", "diff_ids": [x.diff_id for x in image_layers]}
    assert config["config"] == {
        "Env": ["PATH=/opt/venv/bin:/usr/bin", "PYTHONDONTWRITEBYTECODE=1"],
        "WorkingDir": "/work",
        "Entrypoint": ["python"],
        "Cmd": ["-c", "print(1)"],
        "Labels": {"org.example.env": "train"},
    }
    assert config["history"] == [
        {"created_by": "envgraph", "comment": "numpy 1.0"},
        {"created_by": "envgraph", "comment": "torch 1.0"},
    ]
    assert read_config(store, manifest["config"]["digest"]).rootfs.diff_ids == tuple(
        config["rootfs"]["diff_ids"]
    )


def test_base_image_is_inherited(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    base_layer, pkg_layer = layers(store, tmp_path)
    base = ImageConfig(
        architecture="amd64",
        os="linux",
        rootfs=RootFS((base_layer.diff_id,)),
        config=ContainerConfig(User="app", Env=("PATH=/usr/bin", "LANG=C.UTF-8"), Cmd=("bash",)),
        history=(History(created="2024-01-01T00:00:00Z", created_by="debootstrap"),),
    )
    desc = write_image(
        store, [base_layer, pkg_layer], ImageConfigSpec(env={"PATH": "/opt/venv/bin"}), base=base
    )
    cfg = read_config(store, read_manifest(store, desc.digest).config.digest)
    assert cfg.config is not None
    assert cfg.config.User == "app" and cfg.config.Cmd == ("bash",)
    assert cfg.config.Env == ("PATH=/opt/venv/bin", "LANG=C.UTF-8")
    assert cfg.history is not None and [h.created_by for h in cfg.history] == ["debootstrap", "envgraph"]
    with pytest.raises(BuildError, match="base image's layers"):
        write_image(store, [pkg_layer], SPEC, base=base)
    with pytest.raises(BuildError, match="target is linux/arm64"):
        write_image(store, [base_layer], SPEC, Platform("arm64", "linux"), base=base)


def test_missing_layer_blob_is_refused(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    ghost = Descriptor(Compression.GZIP.media_type, sha256_digest(b"ghost"), 5)
    with pytest.raises(BuildError, match="not in the store"):
        write_image(store, [ImageLayer(sha256_digest(b"x"), ghost, "ghost")], SPEC)


def test_foreign_documents_parse_and_bad_ones_fail() -> None:
    docker_config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2024-05-01T10:00:00.123Z",
        "docker_version": "24.0.7",
        "container_config": {"Hostname": "abc"},
        "config": {"Env": ["PATH=/bin"], "Hostname": "", "ExposedPorts": {"80/tcp": {}}, "Cmd": None},
        "rootfs": {"type": "layers", "diff_ids": [sha256_digest(b"l")]},
        "history": [{"created": "2024-05-01T10:00:00Z", "created_by": "/bin/sh", "empty_layer": True}, {}],
    }
    cfg = from_json(json.dumps(docker_config), ImageConfig)
    assert cfg.config == ContainerConfig(Env=("PATH=/bin",), ExposedPorts={"80/tcp": {}})
    assert cfg.history is not None and cfg.history[0].empty_layer is True
    with pytest.raises(StoreError, match="malformed ImageConfig"):
        from_json(json.dumps({**docker_config, "rootfs": {"diff_ids": "sha256:x"}}), ImageConfig)


def test_chain_ids() -> None:
    a, b, c = (sha256_digest(x) for x in (b"a", b"b", b"c"))
    ab = sha256_digest(f"{a} {b}".encode())
    assert chain_ids([a, b, c]) == [a, ab, sha256_digest(f"{ab} {c}".encode())]


def test_spec_rejects_bad_env() -> None:
    with pytest.raises(BuildError, match="NAME=value"):
        ImageConfigSpec(env=["NOEQUALS"])
    with pytest.raises(BuildError, match="list of arguments"):
        ImageConfigSpec(cmd="python -c 1")  # type: ignore[arg-type]


@pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (CI installs it)")
def test_skopeo_accepts_the_layout(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    desc = write_image(store, layers(store, tmp_path), SPEC)
    store.tag("train-1", desc)
    out = subprocess.run(
        ["skopeo", "inspect", f"oci:{store.root}:train-1"], capture_output=True, text=True, check=False
    )
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout)
    assert info["Digest"] == desc.digest
    assert info["Layers"] == [d["digest"] for d in json.loads(store.read_blob(desc.digest))["layers"]]
    assert "PYTHONDONTWRITEBYTECODE=1" in info["Env"]
