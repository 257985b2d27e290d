"""dpkg version comparison, checked against the real ``dpkg --compare-versions``."""

from __future__ import annotations

import random
import shutil
import subprocess

import pytest

from envgraph.debian._version import compare_versions, parse_version, satisfies, version_key

KNOWN = [
    ("1.0", "1.0", 0),
    ("1.0", "1.0-0", 0),
    ("1.0~rc1", "1.0", -1),
    ("1.0~~", "1.0~", -1),
    ("1.0~", "1.0", -1),
    ("1.0", "1.0+b1", -1),
    ("1.0a", "1.0", 1),
    ("1.0a", "1.0.", -1),
    ("1:0.1", "2.0", 1),
    ("0:2.0", "2.0", 0),
    ("2.10", "2.9", 1),
    ("2.010", "2.10", 0),
    ("1.2.13.dfsg-1", "1.2.13-1", 1),
    ("2.36-9+deb12u4", "2.36-9+deb12u10", -1),
    ("12.2.0-14", "12.2.0-14+deb12u1", -1),
    ("7.88.1-10+deb12u5", "7.88.1-10", 1),
    ("1.0-1", "1.0-1~bpo1", 1),
    ("a", "b", -1),
    ("1:1.2.13.dfsg-1", "1:1.2.11.dfsg-4", 1),
]


@pytest.mark.parametrize(("a", "b", "expected"), KNOWN)
def test_known_pairs(a: str, b: str, expected: int) -> None:
    assert compare_versions(a, b) == expected
    assert compare_versions(b, a) == -expected


def _random_version(rng: random.Random) -> str:
    pieces = ["0", "1", "2", "9", "10", "01", "a", "b", "Z", ".", "+", "~", "~~", "dfsg", "rc1", "+b1", ".0"]
    upstream = str(rng.randint(0, 12)) + "".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
    version = upstream
    if rng.random() < 0.3:
        version = f"{rng.randint(0, 2)}:{version}"
    if rng.random() < 0.6:
        revision = "".join(rng.choice(pieces) for _ in range(rng.randint(1, 3)))
        version = f"{version}-{revision.replace('-', '')}"
    return version


@pytest.mark.skipif(shutil.which("dpkg") is None, reason="dpkg is not installed")
def test_agrees_with_dpkg_on_random_versions() -> None:
    rng = random.Random(13)
    pairs = [(_random_version(rng), _random_version(rng)) for _ in range(400)]
    pairs += [(a, b) for a, b, _ in KNOWN]
    # One shell runs dpkg for every pair: far cheaper than a Python subprocess each.
    script = "".join(f"dpkg --compare-versions '{a}' lt '{b}'; echo $?\n" for a, b in pairs)
    script += "".join(f"dpkg --compare-versions '{a}' eq '{b}'; echo $?\n" for a, b in pairs)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True, check=True).stdout.split()
    less, equal = out[: len(pairs)], out[len(pairs) :]
    for (a, b), lt, eq in zip(pairs, less, equal, strict=True):
        expected = -1 if lt == "0" else 0 if eq == "0" else 1
        assert compare_versions(a, b) == expected, (a, b)


def test_sorting_and_relations() -> None:
    versions = ["1.0", "1:0.5", "1.0~rc1", "1.0-1", "0.9", "1.0+b1"]
    assert sorted(versions, key=version_key) == ["0.9", "1.0~rc1", "1.0", "1.0-1", "1.0+b1", "1:0.5"]
    assert satisfies("2.36-9", ">=", "2.34")
    assert not satisfies("2.36-9", ">>", "2.36-9")
    assert satisfies("2.36-9", "=", "2.36-9")
    assert satisfies("2.36-9", "<<", "2.37")
    assert satisfies("2.36-9", "<=", "2.36-9")
    with pytest.raises(ValueError):
        satisfies("1", "!=", "2")


@pytest.mark.parametrize("bad", ["", " 1.0", "a:1.0", "1.0-", "1:", "1.0_1", "1.0-a-b_c", "1.0-é"])
def test_invalid_versions_are_refused(bad: str) -> None:
    with pytest.raises(ValueError, match="invalid Debian version"):
        parse_version(bad)


def test_parse_keeps_the_parts() -> None:
    v = parse_version("1:2.3-4-5")
    assert (v.epoch, v.upstream, v.revision) == (1, "2.3-4", "5")
    assert str(v) == "1:2.3-4-5"
    assert str(parse_version("0:2.3")) == "2.3"
