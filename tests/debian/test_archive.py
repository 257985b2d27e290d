"""The signed archive index: gpgv verification, Release checks, hashes and the cache, against a loopback
mirror the tests lay out and sign themselves."""

from __future__ import annotations

import hashlib
import lzma
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest

from envgraph.debian._archive import _gpg_signatures, load_index, parse_release, verify_inrelease
from envgraph.errors import DebianError
from tests.support.debian import TestKeys, build_deb, make_archive, serve


@pytest.fixture
def debs(tmp_path: Path) -> list[Path]:
    return [
        build_deb(tmp_path / "debs", "hello", "1.0-1", fields={"Depends": "libhello1 (>= 1.0)"}),
        build_deb(tmp_path / "debs", "libhello1", "1.0-1", fields={"Multi-Arch": "same"}),
    ]


def packages_sha(root: Path, suite: str = "test") -> str:
    return hashlib.sha256((root / "dists" / suite / "main/binary-amd64/Packages").read_bytes()).hexdigest()


def test_index_is_verified_cached_and_reused(tmp_path: Path, test_keys: TestKeys, debs: list[Path]) -> None:
    root, cache = tmp_path / "mirror", tmp_path / "cache"
    pool = make_archive(root, "test", debs, keys=test_keys)
    with serve(root) as server:
        index = load_index("test", mirror=server.url + "/", keyring=test_keys.keyring, cache=cache)
        plain = packages_sha(root)
        xz = hashlib.sha256((root / "dists/test/main/binary-amd64/Packages.xz").read_bytes()).hexdigest()
        assert server.paths() == [
            "/dists/test/InRelease",
            f"/dists/test/main/binary-amd64/by-hash/SHA256/{xz}",
        ]
        assert index.source_sha256 == plain
        assert index.label == "test/amd64"
        (hello,) = index.versions("hello")
        assert hello.filename == pool[debs[0].name]
        assert hello.sha256 == hashlib.sha256(debs[0].read_bytes()).hexdigest()
        assert hello.depends == "libhello1 (>= 1.0)"
        # The verified, uncompressed index is cached under its own sha256 ...
        assert (cache / "packages" / plain).read_bytes() == (
            root / "dists/test/main/binary-amd64/Packages"
        ).read_bytes()
        # ... so the next lock of the same archive state fetches only InRelease.
        server.requests.clear()
        again = load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=cache)
        assert server.paths() == ["/dists/test/InRelease"]
        assert again.versions("hello") == index.versions("hello")
        # A corrupted cache entry is not trusted: it is fetched again.
        (cache / "packages" / plain).write_bytes(b"Package: evil\n")
        server.requests.clear()
        third = load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=cache)
        assert len(server.paths()) == 2
        assert third.names() == ["hello", "libhello1"]
    assert not [p for p in cache.rglob("*") if p.name.startswith(".")]  # no temp files left behind


def test_plain_paths_when_by_hash_is_missing(tmp_path: Path, test_keys: TestKeys, debs: list[Path]) -> None:
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys)
    shutil.rmtree(root / "dists/test/main/binary-amd64/by-hash")
    (root / "dists/test/main/binary-amd64/Packages.xz").unlink()  # only the plain file is left
    with serve(root) as server:
        index = load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
        assert index.names() == ["hello", "libhello1"]
        assert server.paths()[-1] == "/dists/test/main/binary-amd64/Packages"


@pytest.mark.parametrize(
    ("signers", "message"),
    [
        (("unknown",), "is not signed by a key in .*: signature by key [0-9A-F]+ cannot be checked"),
        (("expired",), "is not signed by a key in .*: signature by an expired or revoked key"),
    ],
)
def test_signatures_that_do_not_count(
    tmp_path: Path, test_keys: TestKeys, debs: list[Path], signers: tuple[str, ...], message: str
) -> None:
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys, signers=signers)
    with serve(root) as server, pytest.raises(DebianError, match=message) as info:
        load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
    assert "\n" not in str(info.value)
    assert not (tmp_path / "c").exists()


def test_one_good_signature_among_unknown_ones_is_enough(
    tmp_path: Path, test_keys: TestKeys, debs: list[Path]
) -> None:
    # Debian signs with several keys; an older keyring lacks some of them (apt accepts that too).
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys, signers=("unknown", "trusted"))
    with serve(root) as server:
        index = load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
    assert index.names() == ["hello", "libhello1"]


def test_tampered_or_unsigned_inrelease_is_refused(
    tmp_path: Path, test_keys: TestKeys, debs: list[Path]
) -> None:
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys)
    inrelease = root / "dists/test/InRelease"
    signed = inrelease.read_bytes()
    inrelease.write_bytes(signed.replace(b"Origin: envgraph-tests", b"Origin: envgraph-evil!"))
    with serve(root) as server:
        with pytest.raises(
            DebianError, match=r"InRelease: BAD signature by key [0-9A-F]+: refusing to use it$"
        ):
            load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
        inrelease.write_bytes((root / "dists/test/Release").read_bytes())
        with pytest.raises(
            DebianError, match="is not signed by a key in .*: it carries no signature gpgv can check"
        ):
            load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")


def test_only_the_signed_text_is_used(tmp_path: Path, test_keys: TestKeys, debs: list[Path]) -> None:
    """Text around the signed part (here a Release naming other hashes) is ignored, as gpgv outputs only
    what the signature covers."""
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys)
    inrelease = root / "dists/test/InRelease"
    evil = b"Suite: test\nSHA256:\n " + b"0" * 64 + b" 10 main/binary-amd64/Packages\n\n"
    inrelease.write_bytes(evil + inrelease.read_bytes() + b"\n" + evil)
    text = verify_inrelease(inrelease.read_bytes(), test_keys.keyring)
    assert text == (root / "dists/test/Release").read_text()
    with serve(root) as server:
        index = load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
    assert index.source_sha256 == packages_sha(root)


def test_release_must_match_the_request(tmp_path: Path, test_keys: TestKeys, debs: list[Path]) -> None:
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys, release_fields={"Suite": "stable", "Codename": "other"})
    with serve(root) as server:
        with pytest.raises(DebianError, match=r"InRelease is for suite stable \(other\), not test$"):
            load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
        with pytest.raises(DebianError, match="has no architecture arm64"):
            make_archive(root, "test", debs, keys=test_keys)
            load_index("test", "arm64", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
        make_archive(
            root,
            "test",
            debs,
            keys=test_keys,
            release_fields={"Valid-Until": "Sat, 01 Jan 2022 00:00:00 UTC"},
        )
        with pytest.raises(DebianError, match=r"expired at 2022-01-01 00:00 UTC \(Valid-Until\)"):
            load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
        # the same archive is fine while it is valid
        then = datetime(2021, 6, 1, tzinfo=UTC)
        index = load_index(
            "test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c", now=then
        )
        assert index.names() == ["hello", "libhello1"]


def test_index_bytes_must_match_the_signed_hashes(
    tmp_path: Path, test_keys: TestKeys, debs: list[Path]
) -> None:
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys, by_hash=False)
    xz = root / "dists/test/main/binary-amd64/Packages.xz"
    good = xz.read_bytes()
    with serve(root) as server:
        # same size, other content
        xz.write_bytes(lzma.compress(b"Package: evil\n").ljust(len(good), b"\0")[: len(good)])
        with pytest.raises(
            DebianError, match=r"Packages.xz from .*: sha256 [0-9a-f]{64} is not the expected"
        ):
            load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
        xz.write_bytes(good + b"trailing junk")
        with pytest.raises(DebianError, match=r"larger than the \d+ bytes it must have"):
            load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
    assert not (tmp_path / "c" / "packages").exists() or not list((tmp_path / "c" / "packages").iterdir())


def test_a_decompressed_index_must_match_too(tmp_path: Path, test_keys: TestKeys, debs: list[Path]) -> None:
    def wrong_plain_hash(release: str) -> str:
        return release.replace(packages_sha(root), "1" * 64)

    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys, edit_release=wrong_plain_hash)
    with serve(root) as server, pytest.raises(DebianError, match="decompressed index does not match"):
        load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")


def test_hostile_pool_paths_are_refused_when_used(
    tmp_path: Path, test_keys: TestKeys, debs: list[Path]
) -> None:
    root = tmp_path / "mirror"
    sha = hashlib.sha256(b"x").hexdigest()
    text = (
        f"Package: evil\nVersion: 1\nArchitecture: amd64\nFilename: pool/../../../etc/passwd.deb\nSize: 1\nSHA256: {sha}\n\n"
        f"Package: fine\nVersion: 1\nArchitecture: amd64\nFilename: pool/f/fine.deb\nSize: 1\nSHA256: {sha}\n"
    )
    make_archive(root, "test", debs, keys=test_keys, packages_text=text)
    with serve(root) as server:
        index = load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")
    assert [p.filename for p in index.versions("fine")] == ["pool/f/fine.deb"]
    with pytest.raises(DebianError, match=r"^Packages index, package 'evil': invalid Debian pool path"):
        index.versions("evil")


def test_setup_problems_are_one_line_errors(
    tmp_path: Path, test_keys: TestKeys, monkeypatch: pytest.MonkeyPatch
) -> None:
    with pytest.raises(DebianError, match="^invalid Debian mirror 'ftp://x': expected"):
        load_index("test", mirror="ftp://x", cache=tmp_path)
    with pytest.raises(DebianError, match="^invalid Debian suite, architecture or component '../x'"):
        load_index("../x", mirror="http://127.0.0.1:9", cache=tmp_path)
    with pytest.raises(DebianError, match=r"^Debian archive keyring /nonexistent\.gpg does not exist"):
        verify_inrelease(b"x", Path("/nonexistent.gpg"))
    # nothing listens on the discard port
    with pytest.raises(
        DebianError,
        match=r"^cannot download InRelease from http://127.0.0.1:9/debian/dists/test/InRelease: ConnectionError$",
    ):
        load_index("test", mirror="http://127.0.0.1:9/debian", keyring=test_keys.keyring, cache=tmp_path)
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(DebianError, match="^gpgv is not installed: apt-get install gpgv$"):
        verify_inrelease(b"x", test_keys.keyring)


def test_missing_inrelease_is_an_error(tmp_path: Path, test_keys: TestKeys) -> None:
    (tmp_path / "empty").mkdir()
    with serve(tmp_path / "empty") as server, pytest.raises(DebianError, match="HTTP 404"):
        load_index("test", mirror=server.url, keyring=test_keys.keyring, cache=tmp_path / "c")


def test_release_parsing() -> None:
    sha = "a" * 64
    release = parse_release(
        f"Suite: stable\nCodename: bookworm\nArchitectures: all amd64\nComponents: main contrib\n"
        f"Acquire-By-Hash: yes\nValid-Until: Sat, 01 Jan 2022 00:00:00 UTC\nSHA256:\n {sha} 12 main/binary-amd64/Packages\n"
    )
    assert (release.suite, release.codename, release.acquire_by_hash) == ("stable", "bookworm", True)
    assert release.architectures == ("all", "amd64")
    assert release.sha256 == {"main/binary-amd64/Packages": (sha, 12)}
    assert release.valid_until == datetime(2022, 1, 1, tzinfo=UTC)
    with pytest.raises(DebianError, match="malformed SHA256 line"):
        parse_release("Suite: x\nSHA256:\n nothex 12 a\n")
    with pytest.raises(DebianError, match="lists no SHA256"):
        parse_release("Suite: x\n")
    with pytest.raises(DebianError, match="cannot read the date"):
        parse_release(f"Valid-Until: someday\nSHA256:\n {sha} 1 x\n")


def test_gpg_status_rules() -> None:
    good = (
        "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG AAAA k\n[GNUPG:] VALIDSIG FPR1 2024-01-01 0 0 4 0 22 8 01 FPR1\n"
    )
    sha1 = "[GNUPG:] NEWSIG\n[GNUPG:] GOODSIG BBBB k\n[GNUPG:] VALIDSIG FPR2 2024-01-01 0 0 4 0 1 2 01 FPR2\n"
    bad = "[GNUPG:] NEWSIG\n[GNUPG:] BADSIG CCCC k\n"
    missing = "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG DDDD 1 8 01 0 9\n[GNUPG:] NO_PUBKEY DDDD\n"
    assert _gpg_signatures(good) == (["FPR1"], [])
    assert _gpg_signatures(sha1) == ([], ["signature by FPR2 uses a weak hash algorithm"])
    assert _gpg_signatures(good + bad)[1] == ["BAD signature by key CCCC"]
    assert _gpg_signatures(missing + good) == (
        ["FPR1"],
        ["signature by key DDDD cannot be checked (its key is not in the keyring)"],
    )
    assert _gpg_signatures("") == ([], [])


def test_keyring_and_mirror_from_the_environment(
    tmp_path: Path, test_keys: TestKeys, debs: list[Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "mirror"
    make_archive(root, "test", debs, keys=test_keys)
    with serve(root) as server:
        monkeypatch.setenv("ENVGRAPH_DEBIAN_MIRROR", server.url)
        monkeypatch.setenv("ENVGRAPH_DEBIAN_KEYRING", str(test_keys.keyring))
        assert load_index("test", cache=tmp_path / "c").names() == ["hello", "libhello1"]
        # Debian's own keyring does not know the test key
        monkeypatch.delenv("ENVGRAPH_DEBIAN_KEYRING")
        with pytest.raises(DebianError, match="debian-archive-keyring.gpg: signature by key"):
            load_index("test", cache=tmp_path / "c")
