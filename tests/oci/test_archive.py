"""OCI and docker archives: deterministic exports, imports back into a fresh store."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import tarfile
import uuid
from pathlib import Path
from typing import Any

import pytest

from envgraph._hashing import canonical_json, sha256_digest
from envgraph.errors import HashMismatchError, StoreError
from envgraph.identity import MEDIA_TYPE_LAYER_TAR, Compression
from envgraph.oci._archive import (
    export_docker_archive,
    export_oci_archive,
    import_docker_archive,
    import_oci_archive,
    import_oci_layout,
)
from envgraph.oci._image import ImageConfigSpec, read_config, read_manifest, write_image
from envgraph.oci._layer import layer_from_directory
from envgraph.oci._model import Descriptor, to_json
from envgraph.oci._store import Store
from envgraph.oci._verify import verify_store
from tests.support.docker import remove_images

skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo is not installed (CI installs it)")


def image(store: Store, tmp_path: Path, names: tuple[str, ...] = ("a", "b")) -> Descriptor:
    image_layers = []
    for name in names:
        tree = tmp_path / "trees" / name
        tree.mkdir(parents=True, exist_ok=True)
        (tree / f"{name}.txt").write_text(name * 100)
        blob, _ = layer_from_directory(store, tree, "opt/", Compression.GZIP)
        image_layers.append(blob.image_layer(name))
    return write_image(store, image_layers, ImageConfigSpec(env={"A": "1"}, cmd=["sh"]))


def names_in(path: Path) -> list[str]:
    with tarfile.open(path) as tf:
        return tf.getnames()


def test_oci_archive_round_trip(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    desc = image(store, tmp_path)
    store.add_bytes(b"unrelated blob")
    export_oci_archive(store, {"app:1": desc}, tmp_path / "one.tar")
    export_oci_archive(store, {"app:1": desc}, tmp_path / "two.tar")
    assert (tmp_path / "one.tar").read_bytes() == (tmp_path / "two.tar").read_bytes()
    manifest = read_manifest(store, desc.digest)
    expected_blobs = {desc.digest, manifest.config.digest, *(layer.digest for layer in manifest.layers)}
    listed = [n for n in names_in(tmp_path / "one.tar") if n.startswith("blobs/sha256/")]
    assert {"sha256:" + n.rsplit("/", 1)[1] for n in listed} == expected_blobs  # only the needed blobs

    fresh = Store.open(tmp_path / "fresh")
    assert import_oci_archive(tmp_path / "one.tar", fresh, "app:1") == desc
    assert verify_store(fresh).problems == ()
    with open(tmp_path / "one.tar", "rb") as f:  # file objects work too; the only image needs no tag
        assert import_oci_archive(f, Store.open(tmp_path / "third")) == desc
    with pytest.raises(StoreError, match="no image tagged"):
        import_oci_archive(tmp_path / "one.tar", fresh, "other")
    other = image(store, tmp_path, ("c",))
    export_oci_archive(store, {"app:1": desc, "tool:1": other, "tool:2": other}, tmp_path / "many.tar")
    assert import_oci_archive(tmp_path / "many.tar", fresh, "2") == other  # unique tag part
    with pytest.raises(StoreError, match="ambiguous"):
        import_oci_archive(tmp_path / "many.tar", fresh, "1")
    with pytest.raises(StoreError, match="holds 3 images"):
        import_oci_archive(tmp_path / "many.tar", fresh)


def test_import_oci_layout_from_a_store(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    desc = image(store, tmp_path)
    store.tag("base", desc)
    fresh = Store.open(tmp_path / "fresh")
    assert import_oci_layout(store.root, fresh, "base") == desc
    assert fresh.has_blob(read_manifest(store, desc.digest).layers[1].digest)
    with pytest.raises(StoreError, match="not an OCI layout"):
        import_oci_layout(tmp_path / "nowhere", fresh)


def test_docker_archive_round_trip(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    desc = image(store, tmp_path)
    out = tmp_path / "docker.tar"
    export_docker_archive(store, desc, ["envgraph/app:1"], out)
    with tarfile.open(out) as tf:
        member = tf.extractfile("manifest.json")
        assert member is not None
        (entry,) = json.loads(member.read())
    manifest = read_manifest(store, desc.digest)
    assert entry == {
        "Config": "blobs/sha256/" + manifest.config.digest.removeprefix("sha256:"),
        "RepoTags": ["envgraph/app:1"],
        "Layers": ["blobs/sha256/" + d.digest.removeprefix("sha256:") for d in manifest.layers],
    }
    fresh = Store.open(tmp_path / "fresh")
    # nothing recompressed, same media types: the rebuilt OCI manifest is byte-identical
    assert import_docker_archive(out, fresh, "envgraph/app:1").digest == desc.digest
    assert verify_store(fresh).problems == ()


def test_legacy_docker_archive_with_shared_layer_symlink(tmp_path: Path) -> None:
    layer = io.BytesIO()
    with tarfile.open(fileobj=layer, mode="w", format=tarfile.PAX_FORMAT) as tf:
        info = tarfile.TarInfo("etc/hostname")
        info.size = 4
        tf.addfile(info, io.BytesIO(b"box\n"))
    layer_bytes = layer.getvalue()
    diff_id = sha256_digest(layer_bytes)
    config = canonical_json(
        {
            "architecture": "amd64",
            "os": "linux",
            "config": {"Env": ["PATH=/bin"]},
            "rootfs": {"type": "layers", "diff_ids": [diff_id, diff_id]},
            "container_config": {"Hostname": "x"},
        }
    )
    cfg_name = sha256_digest(config).removeprefix("sha256:") + ".json"
    manifest = [{"Config": cfg_name, "RepoTags": ["old:1"], "Layers": ["aaa/layer.tar", "bbb/layer.tar"]}]
    archive = tmp_path / "legacy.tar"
    with tarfile.open(archive, "w") as tf:
        for name, data in [
            ("aaa/VERSION", b"1.0"),
            ("aaa/json", b"{}"),
            ("aaa/layer.tar", layer_bytes),
            (cfg_name, config),
            ("manifest.json", json.dumps(manifest).encode()),
            ("repositories", b"{}"),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("bbb/layer.tar")
        link.type, link.linkname = tarfile.SYMTYPE, "../aaa/layer.tar"
        tf.addfile(link)
    store = Store.open(tmp_path / "s")
    desc = import_docker_archive(archive, store)
    m = read_manifest(store, desc.digest)
    assert [d.media_type for d in m.layers] == [MEDIA_TYPE_LAYER_TAR] * 2
    assert [d.digest for d in m.layers] == [diff_id, diff_id]
    assert read_config(store, m.config.digest).config is not None
    assert verify_store(store).problems == ()

    bad = json.loads(config)
    bad["rootfs"]["diff_ids"] = [sha256_digest(b"other"), diff_id]
    bad_config = canonical_json(bad)
    with tarfile.open(tmp_path / "bad.tar", "w") as tf:
        for name, data in [
            ("c.json", bad_config),
            ("l.tar", layer_bytes),
            (
                "manifest.json",
                json.dumps([{"Config": "c.json", "RepoTags": [], "Layers": ["l.tar", "l.tar"]}]).encode(),
            ),
        ]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    with pytest.raises(HashMismatchError, match="config says"):
        import_docker_archive(tmp_path / "bad.tar", store)


def test_exports_fail_cleanly_when_a_blob_is_missing(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    desc = image(store, tmp_path)
    store.blob_path(read_manifest(store, desc.digest).layers[0].digest).unlink()
    with pytest.raises(StoreError, match="missing"):
        export_oci_archive(store, {"x": desc}, tmp_path / "x.tar")
    assert list(tmp_path.glob("*.tar")) == [] and list(tmp_path.glob(".*.tmp")) == []
    assert to_json(read_manifest(store, desc.digest))  # the manifest itself is intact


@skopeo
def test_skopeo_reads_both_archives(tmp_path: Path) -> None:
    store = Store.open(tmp_path / "s")
    desc = image(store, tmp_path)
    export_oci_archive(store, {"app": desc}, tmp_path / "oci.tar")
    export_docker_archive(store, desc, ["envgraph/app:1"], tmp_path / "docker.tar")
    for ref in (f"oci-archive:{tmp_path / 'oci.tar'}:app", f"docker-archive:{tmp_path / 'docker.tar'}"):
        out = subprocess.run(["skopeo", "inspect", ref], capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["Env"] == ["A=1"]


@pytest.mark.docker
def test_docker_loads_the_docker_archive(tmp_path: Path, docker_client: Any) -> None:
    store = Store.open(tmp_path / "s")
    desc = image(store, tmp_path, ("one", "two"))
    tag = f"envgraph-oci-test:{uuid.uuid4().hex[:12]}"
    out = tmp_path / "docker.tar"
    export_docker_archive(store, desc, [tag], out)
    with open(out, "rb") as f:
        docker_client.images.load(f)
    try:
        loaded = docker_client.images.get(tag)
        manifest = read_manifest(store, desc.digest)
        assert loaded.id == manifest.config.digest  # the image ID is the config digest
        config = read_config(store, manifest.config.digest)
        assert loaded.attrs["RootFS"]["Layers"] == list(config.rootfs.diff_ids)
        assert loaded.attrs["Config"]["Env"] == ["A=1"]
    finally:
        remove_images(docker_client, tag)
