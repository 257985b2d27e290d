"""Fetching pinned .debs by hash into the content-addressed cache (loopback mirror, offline)."""

from __future__ import annotations

import hashlib
from pathlib import Path

import attrs
import pytest

from envgraph.debian._fetch import deb_cache_path, fetch_deb
from envgraph.debian._resolve import DebPin
from envgraph.errors import BuildError, DebianError, HashMismatchError
from tests.support.debian import build_deb, serve


@pytest.fixture
def mirror(tmp_path: Path) -> tuple[Path, DebPin]:
    root = tmp_path / "mirror"
    deb = build_deb(tmp_path / "debs", "hello", "1.0-1")
    filename = "pool/main/h/hello/hello_1.0-1_amd64.deb"
    (root / filename).parent.mkdir(parents=True)
    (root / filename).write_bytes(deb.read_bytes())
    data = deb.read_bytes()
    return root, DebPin("hello", "1.0-1", "amd64", hashlib.sha256(data).hexdigest(), len(data), filename)


def test_fetch_verifies_and_caches_by_hash(tmp_path: Path, mirror: tuple[Path, DebPin]) -> None:
    root, pin = mirror
    cache = tmp_path / "cache"
    with serve(root) as server:
        path = fetch_deb(pin, mirror=server.url + "/", cache=cache)
        assert path == cache / "debs" / pin.sha256[:2] / f"{pin.sha256}.deb"
        assert path == deb_cache_path(pin.sha256, cache)
        assert path.read_bytes() == (root / pin.filename).read_bytes()
        assert server.paths() == ["/" + pin.filename]
        # cached: no second download
        assert fetch_deb(pin, mirror=server.url, cache=cache) == path
        assert len(server.paths()) == 1
        # a cached file of the wrong size is replaced
        path.write_bytes(b"truncated")
        assert fetch_deb(pin, mirror=server.url, cache=cache) == path
        assert hashlib.sha256(path.read_bytes()).hexdigest() == pin.sha256
        assert len(server.paths()) == 2


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"sha256": "0" * 64}, r"sha256 [0-9a-f]{64} is not the expected 0{64}$"),
        ({"size": 10}, r"is larger than the 10 bytes it must have$"),
        ({"size": 10**7}, r"has \d+ bytes, not the 10000000 it must have$"),
    ],
)
def test_bad_bytes_never_become_visible(
    tmp_path: Path, mirror: tuple[Path, DebPin], change: dict[str, object], message: str
) -> None:
    root, pin = mirror
    bad = attrs.evolve(pin, **change)
    cache = tmp_path / "cache"
    with serve(root) as server, pytest.raises(HashMismatchError, match=message) as info:
        fetch_deb(bad, mirror=server.url, cache=cache)
    assert str(info.value).startswith("Debian package hello 1.0-1 from http://127.0.0.1:")
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_missing_file_says_what_to_do(tmp_path: Path, mirror: tuple[Path, DebPin]) -> None:
    root, pin = mirror
    gone = attrs.evolve(pin, filename="pool/main/h/hello/hello_0.9_amd64.deb")
    with serve(root) as server, pytest.raises(BuildError) as info:
        fetch_deb(gone, mirror=server.url, cache=tmp_path / "cache")
    assert str(info.value) == (
        f"Debian package hello 1.0-1 is no longer at {server.url}/pool/main/h/hello/hello_0.9_amd64.deb: "
        "relock, or set ENVGRAPH_DEBIAN_MIRROR to an archive snapshot that has it"
    )


def test_the_mirror_comes_from_the_environment(
    tmp_path: Path, mirror: tuple[Path, DebPin], monkeypatch: pytest.MonkeyPatch
) -> None:
    root, pin = mirror
    with serve(root) as server:
        monkeypatch.setenv("ENVGRAPH_DEBIAN_MIRROR", server.url)
        assert fetch_deb(pin, cache=tmp_path / "cache").is_file()


def test_untrusted_pins_are_refused(tmp_path: Path, mirror: tuple[Path, DebPin]) -> None:
    _, pin = mirror
    with pytest.raises(DebianError, match="invalid Debian pool path"):
        attrs.evolve(pin, filename="../../etc/shadow.deb")
    with pytest.raises(DebianError, match="malformed sha256"):
        attrs.evolve(pin, sha256="../x")
    with pytest.raises(BuildError, match="invalid sha256 '../x'"):
        deb_cache_path("../x", tmp_path)
    with pytest.raises(BuildError, match="invalid Debian mirror"):
        fetch_deb(pin, mirror="file:///etc", cache=tmp_path)
