"""Debian bases with mmdebstrap: real builds against the Debian archive (about 20 s each)."""

from __future__ import annotations

import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from envgraph._hashing import file_sha256
from envgraph.debian._rootfs import DebianRootfs, build_debian_rootfs, parse_versions
from envgraph.errors import BuildError
from tests.support.docker import BASE_PACKAGES, BASE_SUITE

pytestmark = pytest.mark.timeout(900)


def _members(tar_path: Path) -> set[str]:
    with tarfile.open(tar_path) as tf:
        return {m.name.removeprefix("./") for m in tf}


@pytest.mark.debian
def test_base_records_every_installed_version(debian_rootfs: DebianRootfs) -> None:
    versions = debian_rootfs.versions
    assert list(versions) == sorted(versions)
    for name in ("python3.11-minimal", "libpython3.11-stdlib", "libc6", "ca-certificates", "dpkg"):
        assert versions.get(name), name
    # The dpkg database in the tar is the source of truth for the recorded versions.
    with tarfile.open(debian_rootfs.tar_path) as tf:
        status = tf.extractfile("./var/lib/dpkg/status")
        assert status is not None
        text = status.read().decode()
    recorded = {
        block.split("Package: ")[1].split("\n")[0]: block.split("\nVersion: ")[1].split("\n")[0]
        for block in text.strip().split("\n\n")
        if "Status: install ok installed" in block
    }
    assert recorded == versions


@pytest.mark.debian
def test_base_tar_is_a_usable_slim_layer(debian_rootfs: DebianRootfs) -> None:
    names = _members(debian_rootfs.tar_path)
    assert "usr/bin/python3.11" in names
    assert "etc/ssl/certs/ca-certificates.crt" in names
    # Host-specific and non-reproducible files are gone, and so are apt's lists and caches.
    for gone in ("etc/resolv.conf", "etc/hostname", "var/log/dpkg.log", "var/cache/ldconfig/aux-cache"):
        assert gone not in names
    assert not [n for n in names if n.startswith("var/lib/apt/lists/") and n.endswith("Packages")]
    assert not [n for n in names if n.startswith("usr/share/man/") and not n.endswith("/")]
    # merged-/usr without the usrmerge package, which would pull in perl
    assert "perl" not in debian_rootfs.versions
    with tarfile.open(debian_rootfs.tar_path) as tf:
        assert tf.getmember("./bin").issym()
        assert {m.mtime for m in tf} == {0}
        # numeric owners only (real groups such as shadow stay), so the host's user names never leak in
        assert {(m.uname, m.gname) for m in tf} <= {("", ""), ("root", "root")}


@pytest.mark.debian
def test_pinned_rebuilds_are_bit_identical_and_honour_pins(
    debian_rootfs: DebianRootfs,
    tmp_path: Path,
) -> None:
    pins = debian_rootfs.versions
    first = build_debian_rootfs(BASE_SUITE, BASE_PACKAGES, pins=pins, out_tar=tmp_path / "a.tar")
    second = build_debian_rootfs(BASE_SUITE, BASE_PACKAGES, pins=pins, out_tar=tmp_path / "b.tar")
    assert first.versions == pins
    assert second.versions == pins
    assert file_sha256(first.tar_path) == file_sha256(second.tar_path)
    # A rebuild from a lock of every package gives the bytes of the unpinned build it was locked from.
    assert file_sha256(first.tar_path) == file_sha256(debian_rootfs.tar_path)


@pytest.mark.debian
def test_pinned_version_missing_from_archive_is_one_line_error(tmp_path: Path) -> None:
    out = tmp_path / "bogus.tar"
    with pytest.raises(BuildError) as info:
        build_debian_rootfs(
            BASE_SUITE, ["python3-minimal"], pins={"python3-minimal": "0.0-envgraph-bogus"}, out_tar=out
        )
    message = str(info.value)
    assert "\n" not in message
    assert "python3-minimal=0.0-envgraph-bogus" in message
    assert "bookworm" in message
    assert not out.exists()
    assert list(tmp_path.iterdir()) == []


def test_missing_mmdebstrap_is_one_line_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(BuildError, match=r"^mmdebstrap is not installed: apt-get install mmdebstrap$"):
        build_debian_rootfs(BASE_SUITE, ["python3-minimal"], pins=None, out_tar=tmp_path / "x.tar")


@pytest.mark.parametrize(
    ("packages", "pins"),
    [(["python3,evil"], None), (["python3"], {"python3": "1.0 --foo"}), (["-oFoo=1"], None)],
)
def test_names_that_would_break_the_command_line_are_refused(
    tmp_path: Path, packages: list[str], pins: dict[str, str] | None
) -> None:
    with pytest.raises(BuildError, match="^invalid Debian"):
        build_debian_rootfs(BASE_SUITE, packages, pins=pins, out_tar=tmp_path / "x.tar")
    with pytest.raises(BuildError, match="^invalid Debian suite"):
        build_debian_rootfs("--help", ["python3"], pins=None, out_tar=tmp_path / "x.tar")


def test_parse_versions_keeps_installed_packages_only() -> None:
    text = "ii \tzlib1g\t1:1.2.13\nrc \told\t1.0\nii \tbash\t5.2-2\n"
    assert parse_versions(text) == {"bash": "5.2-2", "zlib1g": "1:1.2.13"}


@pytest.mark.debian
def test_unknown_package_names_the_cause(tmp_path: Path) -> None:
    with pytest.raises(BuildError) as info:
        build_debian_rootfs(BASE_SUITE, ["envgraph-no-such-package"], pins=None, out_tar=tmp_path / "x.tar")
    assert (
        str(info.value) == "mmdebstrap failed for bookworm: Unable to locate package envgraph-no-such-package"
    )


class _NotFound(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def empty_mirror() -> Iterator[str]:
    """A local HTTP "mirror" that has nothing: apt fails at once (a refused connection would be retried for ~8 s)."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotFound)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/debian"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def test_mirror_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, empty_mirror: str
) -> None:
    # The mirror has no bookworm: apt's own reason must come through, naming the mirror from the environment.
    monkeypatch.setenv("ENVGRAPH_DEBIAN_MIRROR", empty_mirror)
    with pytest.raises(BuildError) as info:
        build_debian_rootfs(BASE_SUITE, ["python3-minimal"], pins=None, out_tar=tmp_path / "x.tar")
    message = str(info.value)
    assert message == (
        f"mmdebstrap failed for bookworm: The repository '{empty_mirror} bookworm Release' does not have a Release file."
    )
    assert list(tmp_path.iterdir()) == []
