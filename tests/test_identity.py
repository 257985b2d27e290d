"""The identity rules (envgraph/identity.py): each hash changes for exactly the inputs that decide its result.

For every hash kind, each input is changed on its own and must move the hash, while what must not matter
(order of unordered inputs, how a base was fetched) must not. The digests themselves are pinned by
tests/test_identity_snapshot.py; these tests say why they move.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from envgraph._convert import structure, unstructure
from envgraph.errors import BuildError
from envgraph.identity import (
    DEFAULT_COMPRESSION,
    DEFAULT_MTIME,
    TAR_FORMAT,
    Compression,
    InstallTarget,
    base_identity,
    base_inputs,
    cache_tag,
    compression_of_media_type,
    debian_key,
    derivation,
    drv12,
    files_key,
    image_id,
    image_tag,
    layer_format,
    layer_mtime,
    package_key,
    registry_tag,
    resolution_inputs,
    venv_key,
)
from envgraph.lock._model import LockedPackage
from tests.support.strategies import packages, texts

H1, H2 = "1" * 64, "2" * 64
DRV = "sha256:0123456789ab" + "f" * 52


def changes_each(fn: Callable[..., str], base: dict[str, Any], variants: dict[str, list[Any]]) -> None:
    """``fn(**base)`` moves when any one input takes any of its variants, and is stable otherwise."""
    reference = fn(**base)
    assert fn(**base) == reference
    seen = {reference}
    for name, values in variants.items():
        for value in values:
            digest = fn(**{**base, name: value})
            assert digest != reference, f"{name}={value!r} does not change the hash"
            seen.add(digest)
    assert len(seen) == 1 + sum(len(v) for v in variants.values())  # and no two variants collide


# --- drv ----------------------------------------------------------------------------------------------

DRV_INPUTS: dict[str, Any] = {
    "env": "core",
    "source": "sha256:" + H1,
    "packages": [("alpha", "1.0", H1), ("beta", "2.0", H2)],
    "merged": (),
    "environment": {"A": "1"},
    "files": [("/app", "app/", ())],
    "workdir": None,
    "entrypoint": None,
    "cmd": None,
    "python": "3.11",
    "platform": "linux/amd64",
    "bytecode": False,
}


def test_drv_changes_with_every_input() -> None:
    changes_each(
        derivation,
        DRV_INPUTS,
        {
            "env": ["serve"],
            "source": ["sha256:" + H2],
            "packages": [
                [("alpha", "1.1", H1), ("beta", "2.0", H2)],  # version
                [("alpha", "1.0", H2), ("beta", "2.0", H2)],  # wheel
                [("alpha", "1.0", H1)],  # one fewer
            ],
            "merged": [("beta",)],
            "environment": [{"A": "2"}, {"A": "1", "B": "1"}, {}],
            "files": [[("/app", "src/", ())], [("/srv", "app/", ())], [("/app", "app/", ("*.log",))], []],
            "workdir": ["/app"],
            "entrypoint": [("python",), ()],
            "cmd": [("serve",), ()],
            "python": ["3.12"],
            "platform": ["linux/arm64"],
            "bytecode": [True],
        },
    )


def test_drv_ignores_the_order_of_packages_merged_and_environment() -> None:
    reordered = {
        **DRV_INPUTS,
        "packages": list(reversed(DRV_INPUTS["packages"])),
        "environment": {"B": "2", "A": "1"},
        "merged": ("beta", "alpha"),
    }
    base = {**DRV_INPUTS, "environment": {"A": "1", "B": "2"}, "merged": ("alpha", "beta")}
    assert derivation(**reordered) == derivation(**base)


def test_drv_tells_files_order_and_empty_from_unset() -> None:
    two = [("/a", "a/", ()), ("/b", "b/", ())]
    assert derivation(**{**DRV_INPUTS, "files": two}) != derivation(**{**DRV_INPUTS, "files": two[::-1]})
    # An empty entrypoint clears the base's; None inherits it: different images.
    assert derivation(**{**DRV_INPUTS, "entrypoint": ()}) != derivation(**{**DRV_INPUTS, "entrypoint": None})


@given(
    st.lists(packages(built=False), max_size=5, unique_by=lambda p: p.name),
    st.dictionaries(texts, texts, max_size=5),
    st.randoms(),
)
@settings(max_examples=100, deadline=None)
def test_drv_ignores_order_but_not_content(
    pkgs: list[LockedPackage], environment: dict[str, str], rnd: random.Random
) -> None:
    def drv(ps: list[LockedPackage], env: dict[str, str]) -> str:
        triples = [
            (p.name, p.version, p.wheel.filename, p.wheel.sha256, p.wheel.size, p.wheel.url)
            for p in ps
            if p.wheel is not None
        ]
        return derivation(**{**DRV_INPUTS, "packages": triples, "environment": env, "files": ()})

    shuffled = list(pkgs)
    rnd.shuffle(shuffled)
    items = list(environment.items())
    rnd.shuffle(items)
    assert drv(pkgs, environment) == drv(shuffled, dict(items))
    assert drv(pkgs, {**environment, "EXTRA-KEY-NOT-GENERATED!": "1"}) != drv(pkgs, environment)
    if pkgs:
        bumped = [unstructure(p) for p in pkgs]
        old = bumped[0]["version"]
        bumped[0]["version"] += ".1"
        wheel = bumped[0]["wheel"]
        wheel["filename"] = wheel["filename"].replace(f"-{old}-", f"-{old}.1-")
        wheel["url"] = wheel["url"].rsplit("/", 1)[0] + "/" + wheel["filename"]
        assert drv([structure(p, LockedPackage) for p in bumped], environment) != drv(pkgs, environment)


# --- resolution inputs and bases ---------------------------------------------------------------------

RESOLUTION_INPUTS: dict[str, Any] = {
    "env": "core",
    "requirements": ["alpha<2"],
    "python": "3.11",
    "platform": "linux/amd64",
    "libc": "glibc-2.17",
    "indexes": [""],
    "find_links": {"wheels": ["alpha-1.0-py3-none-any.whl"]},
    "parent_pins": {},
    "resolver": {"pip": "25.2", "pip-tools": "7.5.1"},
}


def test_resolution_inputs_change_with_every_input() -> None:
    changes_each(
        resolution_inputs,
        RESOLUTION_INPUTS,
        {
            "env": ["serve"],
            "requirements": [["alpha<3"], ["alpha<2", "beta"]],
            "python": ["3.12"],
            "platform": ["linux/arm64"],
            "libc": ["glibc-2.36"],
            "indexes": [["https://pypi.org/simple"]],
            "find_links": [{"wheels": ["alpha-1.0-py3-none-any.whl", "alpha-2.0-py3-none-any.whl"]}, {}],
            "parent_pins": [{"alpha": "1.0"}],
            "resolver": [{"pip": "25.3", "pip-tools": "7.5.1"}],
        },
    )


def test_resolution_inputs_ignore_listing_and_pin_order_but_not_requirement_order() -> None:
    two_wheels = ["b-1.0-py3-none-any.whl", "a-1.0-py3-none-any.whl"]
    one = {**RESOLUTION_INPUTS, "find_links": {"wheels": two_wheels}, "parent_pins": {"a": "1", "b": "2"}}
    other = {**one, "find_links": {"wheels": two_wheels[::-1]}, "parent_pins": {"b": "2", "a": "1"}}
    assert resolution_inputs(**one) == resolution_inputs(**other)
    # Requirements are hashed as written: reordering them re-resolves (harmless, and what the user did).
    swapped = {**one, "requirements": ["beta", "alpha<2"]}
    assert resolution_inputs(**swapped) != resolution_inputs(**{**one, "requirements": ["alpha<2", "beta"]})


def test_base_inputs_and_identity() -> None:
    inputs: dict[str, Any] = {"debian": ("bookworm", ["python3", "ca-certificates"], None), "image": None,
                              "python": "/usr/bin/python3.11", "libc": "glibc-2.36",
                              "platform": "linux/amd64"}  # fmt: skip
    changes_each(
        base_inputs,
        inputs,
        {
            "debian": [("trixie", ["python3", "ca-certificates"], None), ("bookworm", ["python3"], None),
                       ("bookworm", ["python3", "ca-certificates"], "http://mirror"), None],
            "image": ["docker://r/x:1"],
            "python": ["/usr/bin/python3"],
            "libc": ["glibc-2.41"],
            "platform": ["linux/arm64"],
        },
    )  # fmt: skip
    reordered = {**inputs, "debian": ("bookworm", ["ca-certificates", "python3"], None)}
    assert base_inputs(**reordered) == base_inputs(**inputs)

    ident: dict[str, Any] = {"python": "/usr/bin/python3.11", "libc": "glibc-2.36", "architecture": "amd64",
                             "python_version": "3.11", "image": None,
                             "debian": {"suite": "bookworm", "versions": {"python3": "3.11.2-1"}}}  # fmt: skip
    changes_each(
        base_identity,
        ident,
        {
            "python": [None],
            "libc": ["glibc-2.41"],
            "architecture": ["arm64", None],
            "python_version": ["3.12"],
            "debian": [{"suite": "bookworm", "versions": {"python3": "3.11.2-2"}},
                       {"suite": "trixie", "versions": {"python3": "3.11.2-1"}}, None],
            "image": [{"reference": "docker://r/x:1", "digest": "sha256:" + H1, "layers": 1}],
        },
    )  # fmt: skip


# --- layer keys --------------------------------------------------------------------------------------

TARGET = InstallTarget(python="3.11", interpreter="/usr/bin/python3.11", bytecode=False)


def test_install_target_decides_venv_and_package_keys() -> None:
    wheels = [("alpha-1.0-py3-none-any.whl", H1)]
    variants = [
        attrs.evolve(TARGET, python="3.12"),
        attrs.evolve(TARGET, interpreter="/usr/local/bin/python3.11"),
        attrs.evolve(TARGET, bytecode=True),
        attrs.evolve(TARGET, compression=Compression.ZSTD),
        attrs.evolve(TARGET, compression=Compression.NONE),
    ]
    for key in (venv_key, lambda t: package_key(t, wheels)):
        keys = {key(TARGET), *(key(v) for v in variants)}
        assert len(keys) == 1 + len(variants)
    assert venv_key(TARGET) != package_key(TARGET, [])  # kinds never collide


def test_package_key_is_the_set_of_wheels() -> None:
    a, b = ("alpha-1.0-py3-none-any.whl", H1), ("beta-1.0-py3-none-any.whl", H2)
    assert package_key(TARGET, [a, b]) == package_key(TARGET, [b, a])  # a merged layer's wheels are a set
    keys = {
        package_key(TARGET, [a]),
        package_key(TARGET, [b]),
        package_key(TARGET, [a, b]),
        package_key(TARGET, [(a[0], H2)]),  # same name, other bytes
        package_key(TARGET, [("alpha-1.0-py3-none-manylinux_2_17_x86_64.whl", H1)]),
    }
    assert len(keys) == 5


def test_files_and_debian_keys() -> None:
    changes_each(
        files_key,
        {"compression": Compression.GZIP, "dest": "/app", "content": "sha256:" + H1},
        {"compression": [Compression.ZSTD, Compression.NONE], "dest": ["/srv"], "content": ["sha256:" + H2]},
    )
    changes_each(
        debian_key,
        {
            "suite": "bookworm",
            "versions": {"python3": "1"},
            "diff_id": "sha256:" + H1,
            "compression": Compression.GZIP,
        },
        {
            "suite": ["trixie"],
            "versions": [{"python3": "2"}, {}],
            "diff_id": ["sha256:" + H2],
            "compression": [Compression.ZSTD],
        },
    )


def test_source_date_epoch_is_a_format_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SOURCE_DATE_EPOCH", raising=False)
    assert layer_mtime() == DEFAULT_MTIME
    unset = (
        venv_key(TARGET),
        files_key(Compression.GZIP, "/app", "sha256:" + H1),
        layer_format(Compression.GZIP),
    )
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "")
    assert layer_mtime() == DEFAULT_MTIME
    monkeypatch.setenv("SOURCE_DATE_EPOCH", " 1700000000 ")
    assert layer_mtime() == 1700000000
    later = (
        venv_key(TARGET),
        files_key(Compression.GZIP, "/app", "sha256:" + H1),
        layer_format(Compression.GZIP),
    )
    assert all(a != b for a, b in zip(unset, later, strict=True))
    assert later[2].startswith(f"{TAR_FORMAT};mtime=1700000000;gzip-")
    for bad, why in (("yesterday", "be an integer"), ("-1", "not be negative")):
        monkeypatch.setenv("SOURCE_DATE_EPOCH", bad)
        with pytest.raises(BuildError, match=f"^SOURCE_DATE_EPOCH must .*{why}"):
            layer_mtime()


def test_compressor_ids_name_library_level_and_version() -> None:
    assert DEFAULT_COMPRESSION is Compression.GZIP
    assert Compression.GZIP.compressor_id.startswith("gzip-2-isal")
    assert Compression.ZSTD.compressor_id.startswith("zstd-3-libzstd")
    assert Compression.NONE.compressor_id == "none"
    for c in Compression:
        assert compression_of_media_type(c.media_type) is c
    assert compression_of_media_type("application/vnd.docker.image.rootfs.diff.tar.gzip") is Compression.GZIP
    with pytest.raises(ValueError, match="not a layer media type"):
        compression_of_media_type("application/vnd.oci.image.manifest.v1+json")


# --- names -------------------------------------------------------------------------------------------


def test_tags_carry_the_first_twelve_hex_digits() -> None:
    assert drv12(DRV) == "0123456789ab"
    assert image_tag("core", DRV) == "core:0123456789ab"
    assert registry_tag("core", DRV) == "core-0123456789ab"
    assert cache_tag(DRV) == "key-" + DRV.removeprefix("sha256:")
    assert len(cache_tag(DRV)) <= 128  # a registry tag's limit
    for bad in ("0123456789ab", "sha256:XYZ", "sha512:" + H1):
        with pytest.raises(ValueError):
            image_tag("core", bad)


def test_image_id_is_the_drv_without_files_and_moves_with_their_content() -> None:
    """Code is not a dependency: the image id (and so the tag) of an env with files changes with their content,
    the drv does not; an env without files keeps tag = drv."""
    drv = derivation(**DRV_INPUTS)
    assert image_id(drv, []) == drv
    one = image_id(drv, [("/app", "sha256:" + H1)])
    assert one != drv and one.startswith("sha256:")
    assert image_id(drv, [("/app", "sha256:" + H2)]) != one  # a code edit
    assert image_id(drv, [("/srv", "sha256:" + H1)]) != one
    assert image_id("sha256:" + H2, [("/app", "sha256:" + H1)]) != one
    assert image_id(drv, [("/a", "sha256:" + H1), ("/b", "sha256:" + H2)]) != image_id(
        drv, [("/b", "sha256:" + H2), ("/a", "sha256:" + H1)]
    )


def test_installer_version_is_what_importlib_metadata_says() -> None:
    # Read from installer's dist-info directly (importlib.metadata is slow to import); it must be the same.
    import importlib.metadata

    from envgraph.identity import _installer_version

    assert _installer_version() == importlib.metadata.version("installer")
