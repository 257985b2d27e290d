"""Choosing a release's wheel for the target interpreter, platform and C library (no index, no resolver)."""

from __future__ import annotations

import pytest
from packaging.tags import Tag

from envgraph.lock._wheels import Target, best_wheel, target_tags

GLIBC = Target("3.11", "linux/amd64", "glibc-2.17")
NEW_GLIBC = Target("3.11", "linux/amd64", "glibc-2.36")
MUSL = Target("3.11", "linux/amd64", "musl-1.2")
ARM = Target("3.11", "linux/arm64", "glibc-2.17")

NUMPY = [
    "numpy-2.0.0.tar.gz",
    "numpy-2.0.0-cp311-cp311-musllinux_1_1_x86_64.whl",
    "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "numpy-2.0.0-cp311-cp311-manylinux_2_28_x86_64.whl",
    "numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl",
    "numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
    "numpy-2.0.0-cp311-cp311-macosx_11_0_arm64.whl",
    "numpy-2.0.0-cp311-cp311-win_amd64.whl",
]


@pytest.mark.parametrize(
    ("target", "chosen"),
    [
        (GLIBC, "numpy-2.0.0-cp311-cp311-manylinux_2_17_x86_64.manylinux2014_x86_64.whl"),
        (NEW_GLIBC, "numpy-2.0.0-cp311-cp311-manylinux_2_28_x86_64.whl"),  # the newest the libc runs
        (MUSL, "numpy-2.0.0-cp311-cp311-musllinux_1_1_x86_64.whl"),
        (ARM, "numpy-2.0.0-cp311-cp311-manylinux_2_17_aarch64.manylinux2014_aarch64.whl"),
        (
            Target("3.12", "linux/amd64", "glibc-2.17"),
            "numpy-2.0.0-cp312-cp312-manylinux_2_17_x86_64.manylinux2014_x86_64.whl",
        ),
        (Target("3.13", "linux/amd64", "glibc-2.36"), None),  # no cp313 build, no abi3, no pure wheel
    ],
    ids=["glibc-2.17", "glibc-2.36", "musl", "arm64", "cp312", "none"],
)
def test_the_best_fitting_wheel_is_chosen(target: Target, chosen: str | None) -> None:
    assert best_wheel(NUMPY, target_tags(target)) == chosen
    assert best_wheel(list(reversed(NUMPY)), target_tags(target)) == chosen  # listing order does not matter


def test_specific_beats_abi3_beats_pure() -> None:
    files = [
        "pkg-1.0-py3-none-any.whl",
        "pkg-1.0-cp38-abi3-manylinux_2_17_x86_64.whl",
        "pkg-1.0-cp311-cp311-manylinux_2_17_x86_64.whl",
    ]
    tags = target_tags(GLIBC)
    assert best_wheel(files, tags) == files[2]
    assert best_wheel(files[:2], tags) == files[1]
    assert best_wheel(files[:1], tags) == files[0]


def test_legacy_aliases_and_the_libc_ceiling() -> None:
    tags = set(target_tags(GLIBC))
    assert Tag("cp311", "cp311", "manylinux2014_x86_64") in tags
    assert Tag("cp311", "cp311", "manylinux2010_x86_64") in tags
    assert Tag("cp311", "cp311", "manylinux1_x86_64") in tags
    assert Tag("cp311", "cp311", "manylinux_2_18_x86_64") not in tags  # newer than the base's glibc
    arm = set(target_tags(ARM))
    assert Tag("cp311", "cp311", "manylinux2014_aarch64") in arm
    assert Tag("cp311", "cp311", "manylinux2010_aarch64") not in arm  # never existed for aarch64
    assert all("x86_64" not in t.platform for t in arm if t.platform != "any")


def test_ties_go_to_the_smallest_name_and_junk_is_skipped() -> None:
    files = [
        "pkg-1.0-2build-py3-none-any.whl",
        "pkg-1.0-1build-py3-none-any.whl",
        "pkg-1.0-py3-none-any.zip",
        "not a wheel.whl",
        "pkg-1.0.tar.gz",
    ]
    assert best_wheel(files, target_tags(GLIBC)) == "pkg-1.0-1build-py3-none-any.whl"
    assert best_wheel(files[2:], target_tags(GLIBC)) is None
    assert best_wheel([], target_tags(GLIBC)) is None
