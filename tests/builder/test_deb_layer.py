"""Deterministic layers from .debs the tests build with ``dpkg-deb`` (and by hand, for hostile ones)."""

from __future__ import annotations

import contextlib
import hashlib
import tarfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from envgraph._hashing import digest_of
from envgraph.builder._deb_layer import (
    DEFAULT_MERGED_USR,
    deb_layer_key,
    merged_usr_dirs,
    write_deb_layer,
)
from envgraph.debian._resolve import DebPin
from envgraph.debian._rootfs import SLIM_DPKG_OPTIONS
from envgraph.errors import BuildError
from envgraph.identity import DEB_FORMAT, Compression, compression_of_media_type, layer_format
from envgraph.oci._compress import open_decompressed
from envgraph.oci._layer import LayerBlob
from envgraph.oci._store import Store
from tests.support.debian import Dir, File, Hard, Link, build_deb, write_raw_deb

FILES = {
    "usr/bin/tool": File(b"#!/bin/sh\necho tool\n", 0o755),
    "usr/bin/suid": File(b"suid", 0o4755),
    "bin/legacy": File(b"legacy", 0o755),
    "lib/x86_64-linux-gnu/libfoo.so.1.0": File(b"\x7fELF", 0o644),
    "lib/x86_64-linux-gnu/libfoo.so.1": Link("libfoo.so.1.0"),
    "usr/lib/x86_64-linux-gnu/libfoo.so": Link("/lib/x86_64-linux-gnu/libfoo.so.1"),
    "sbin/hard1": File(b"hard", 0o755),
    "sbin/hard2": Hard("sbin/hard1"),
    "etc/secret": Dir(0o750),
    "etc/secret/key": File(b"k", 0o600),
    "var/spool/drop": Dir(0o1777),
    "usr/share/doc/pkg/copyright": b"copyright",
    "usr/share/doc/pkg/changelog.Debian.gz": b"changes",
    "usr/share/man/man1/tool.1.gz": b"man",
}


@attrs.frozen
class Member:
    name: str
    type: bytes
    mode: int
    linkname: str
    owner: tuple[int, int, str, str]
    mtime: int
    sha256: str | None


@contextlib.contextmanager
def layer_tar(store: Store, blob: LayerBlob) -> Iterator[tarfile.TarFile]:
    with (
        store.open_blob(blob.digest) as raw,
        open_decompressed(raw, compression_of_media_type(blob.media_type)) as f,
        tarfile.open(fileobj=f, mode="r|") as tf,
    ):
        yield tf


def members(store: Store, blob: LayerBlob) -> list[Member]:
    out = []
    with layer_tar(store, blob) as tf:
        for m in tf:
            data = tf.extractfile(m) if m.isreg() else None
            digest = hashlib.sha256(data.read()).hexdigest() if data else None
            out.append(
                Member(m.name, m.type, m.mode, m.linkname, (m.uid, m.gid, m.uname, m.gname), m.mtime, digest)
            )
    return out


def by_name(ms: list[Member]) -> dict[str, Member]:
    return {m.name: m for m in ms}


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store.open(tmp_path / "store")


def test_layer_of_a_real_deb(tmp_path: Path, store: Store) -> None:
    deb = build_deb(tmp_path, "pkg", "1.0-1", files=FILES, fields={"Depends": "libc6"})
    blob, paths = write_deb_layer(store, deb)
    ms = members(store, blob)
    m = by_name(ms)
    # merged /usr: nothing at the top-level bin/ lib/ sbin/, which are symlinks in the base
    assert not [n for n in m if n.split("/")[0] in ("bin", "lib", "sbin", "lib64")]
    assert m["usr/bin/legacy"].type == tarfile.REGTYPE
    assert m["usr/lib/x86_64-linux-gnu/libfoo.so.1.0"].sha256 == hashlib.sha256(b"\x7fELF").hexdigest()
    # symlink targets exactly as dpkg writes them on a merged-/usr system
    assert m["usr/lib/x86_64-linux-gnu/libfoo.so.1"].linkname == "libfoo.so.1.0"
    assert m["usr/lib/x86_64-linux-gnu/libfoo.so"].linkname == "/lib/x86_64-linux-gnu/libfoo.so.1"
    # hard links name the moved path
    assert (m["usr/sbin/hard2"].type, m["usr/sbin/hard2"].linkname) == (tarfile.LNKTYPE, "usr/sbin/hard1")
    # the package's modes, special bits included
    assert m["usr/bin/suid"].mode == 0o4755
    assert m["usr/bin/tool"].mode == 0o755
    assert m["etc/secret"].mode == 0o750
    assert m["etc/secret/key"].mode == 0o600
    assert m["var/spool/drop"].mode == 0o1777
    # the slim base's filters: copyright kept, changelog and man pages gone
    assert "usr/share/doc/pkg/copyright" in m
    assert "usr/share/doc/pkg/changelog.Debian.gz" not in m
    assert not [n for n in m if n.startswith("usr/share/man/")]  # the empty man dir stays, as with dpkg
    # the control file, for scanners
    status = m["var/lib/dpkg/status.d/pkg"]
    assert status.mode == 0o644
    # normalised like every layer: numeric root owner, no names, one mtime; parents come first
    assert {x.owner for x in ms} == {(0, 0, "", "")}
    assert {x.mtime for x in ms} == {0}
    seen: set[str] = set()
    for x in ms:
        parent = x.name.rpartition("/")[0]
        assert not parent or parent in seen, x.name
        seen.add(x.name)
    assert paths == sorted(n for n, x in m.items() if x.type != tarfile.DIRTYPE)
    assert "var/lib/dpkg/status.d/pkg" in paths


def test_status_entry_is_the_control_file(tmp_path: Path, store: Store) -> None:
    deb = build_deb(tmp_path, "pkg", "2:1.0-1", fields={"Depends": "libc6 (>= 2.34)"})
    blob, _ = write_deb_layer(store, deb)
    with layer_tar(store, blob) as tf:
        for member in tf:
            if member.name == "var/lib/dpkg/status.d/pkg":
                text = tf.extractfile(member).read().decode()  # type: ignore[union-attr]
    assert text.startswith("Package: pkg\nVersion: 2:1.0-1\nArchitecture: amd64\n")
    assert "Depends: libc6 (>= 2.34)\n" in text


def test_same_deb_same_layer_whatever_its_compression(tmp_path: Path) -> None:
    blobs = []
    for i, compression in enumerate(("xz", "gzip", "zstd", "xz")):
        deb = build_deb(tmp_path / compression, "pkg", "1.0-1", files=FILES, compression=compression)
        store = Store.open(tmp_path / f"store{i}")
        blobs.append(write_deb_layer(store, deb)[0])
    # identical data tars give identical layers; the same .deb twice gives the same compressed blob
    assert len({b.diff_id for b in blobs}) == 1
    assert blobs[0] == blobs[3]
    # and writing it again into the same store changes nothing
    store = Store.open(tmp_path / "store0")
    assert write_deb_layer(store, tmp_path / "xz" / "pkg_1.0-1_amd64.deb")[0] == blobs[0]


def test_without_merged_usr_paths_stay(tmp_path: Path, store: Store) -> None:
    deb = build_deb(
        tmp_path, "pkg", files={"lib/x/libfoo.so": b"x", "sbin/h1": b"h", "sbin/h2": Hard("sbin/h1")}
    )
    blob, paths = write_deb_layer(store, deb, merged_usr=(), path_filters=())
    m = by_name(members(store, blob))
    assert paths == ["lib/x/libfoo.so", "sbin/h1", "sbin/h2", "var/lib/dpkg/status.d/pkg"]
    assert m["sbin/h2"].linkname == "sbin/h1"


def test_only_the_base_s_linked_directories_move(tmp_path: Path, store: Store) -> None:
    """On a base without a /lib32 link, dpkg makes /lib32 a real directory: so do we."""
    deb = build_deb(tmp_path, "pkg", files={"lib32/libfoo.so": b"x", "lib/x/libbar.so": b"y"})
    assert write_deb_layer(store, deb)[1] == [
        "lib32/libfoo.so",
        "usr/lib/x/libbar.so",
        "var/lib/dpkg/status.d/pkg",
    ]
    moved = write_deb_layer(store, deb, merged_usr=(*DEFAULT_MERGED_USR, "lib32"))[1]
    assert moved == ["usr/lib/x/libbar.so", "usr/lib32/libfoo.so", "var/lib/dpkg/status.d/pkg"]


def test_merged_dirs_are_read_from_a_base(tmp_path: Path) -> None:
    tar_path = tmp_path / "rootfs.tar"
    with tarfile.open(tar_path, "w") as tf:
        for name, target in [("./bin", "usr/bin"), ("./lib", "/usr/lib"), ("./lib64", "usr/lib64"),
                             ("./sbin", "usr/sbin"), ("./odd", "usr/other"), ("./usr/lib/x", "usr/lib/x")]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.type, info.linkname = tarfile.SYMTYPE, target
            tf.addfile(info)
    assert merged_usr_dirs(tar_path) == DEFAULT_MERGED_USR


def test_both_locations_of_one_merged_path_is_an_error(tmp_path: Path, store: Store) -> None:
    deb = build_deb(tmp_path, "pkg", files={"lib/x/libfoo.so": b"a", "usr/lib/x/libfoo.so": b"b"})
    with pytest.raises(BuildError) as info:
        write_deb_layer(store, deb)
    assert str(info.value) == (
        "Debian package pkg_1.0_amd64.deb: it ships both /lib/x/libfoo.so and /usr/lib/x/libfoo.so, "
        "which are one path on merged /usr"
    )
    assert list(store.blobs_dir.iterdir()) == []
    assert list(store.tmp_dir.iterdir()) == []


def test_path_filters(tmp_path: Path, store: Store) -> None:
    deb = build_deb(tmp_path, "pkg", files=FILES)
    _, everything = write_deb_layer(store, deb, path_filters=())
    assert "usr/share/man/man1/tool.1.gz" in everything
    _, paths = write_deb_layer(
        store, deb, path_filters=("path-exclude=/usr/bin/*", "path-include=/usr/bin/tool")
    )
    # as in dpkg, filters see the path in the package: /bin/legacy is not under /usr/bin there
    assert [p for p in paths if p.startswith("usr/bin/")] == ["usr/bin/legacy", "usr/bin/tool"]
    with pytest.raises(BuildError, match="invalid path filter 'exclude=/x'"):
        write_deb_layer(store, deb, path_filters=("exclude=/x",))


def test_pin_must_match_the_control_file(tmp_path: Path, store: Store) -> None:
    deb = build_deb(tmp_path, "pkg", "1.0-1")
    data = deb.read_bytes()
    pin = DebPin("pkg", "1.0-1", "amd64", hashlib.sha256(data).hexdigest(), len(data), "pool/p/pkg.deb")
    write_deb_layer(store, deb, pin=pin)
    with pytest.raises(
        BuildError,
        match=r"^Debian package pkg 1.0-2: its control file names pkg 1.0-1 amd64, not pkg 1.0-2 amd64$",
    ):
        write_deb_layer(store, deb, pin=attrs.evolve(pin, version="1.0-2"))


# --- hand-made .debs ------------------------------------------------------------------------------------


def info(name: str, kind: bytes = tarfile.REGTYPE, mode: int = 0o644, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.type, ti.mode = kind, mode
    for key, value in kw.items():
        setattr(ti, key, value)
    return ti


def test_foreign_owners_lose_setuid_but_keep_other_bits(tmp_path: Path, store: Store) -> None:
    deb = write_raw_deb(
        tmp_path / "raw.deb",
        [
            (info("./", tarfile.DIRTYPE, 0o755), None),
            (info("./usr/bin/mailer", mode=0o2755, uid=0, gid=8, uname="root", gname="mail"), b"m"),
            (info("./usr/bin/user-suid", mode=0o4755, uid=1000, gid=0, uname="someone", gname="root"), b"u"),
            (info("./usr/bin/root-suid", mode=0o4755, uid=0, gid=0, uname="root", gname="root"), b"r"),
            (info("./var/mail", tarfile.DIRTYPE, 0o3775, gid=8, gname="mail"), None),
        ],
    )
    blob, _ = write_deb_layer(store, deb)
    m = by_name(members(store, blob))
    assert m["usr/bin/mailer"].mode == 0o755
    assert m["usr/bin/user-suid"].mode == 0o755
    assert m["usr/bin/root-suid"].mode == 0o4755
    assert m["var/mail"].mode == 0o1775  # sticky stays
    assert {x.owner for x in m.values()} == {(0, 0, "", "")}


def test_the_merged_usr_symlinks_themselves_are_dropped(tmp_path: Path, store: Store) -> None:
    deb = write_raw_deb(
        tmp_path / "raw.deb",
        [
            (info("./lib", tarfile.SYMTYPE, 0o777, linkname="usr/lib"), None),
            (info("./bin", tarfile.SYMTYPE, 0o777, linkname="/usr/bin"), None),
            (info("./usr/lib/x", mode=0o644), b"x"),
        ],
    )
    _, paths = write_deb_layer(store, deb)
    assert paths == ["usr/lib/x", "var/lib/dpkg/status.d/raw"]
    deb = write_raw_deb(tmp_path / "bad.deb", [(info("./lib", tarfile.SYMTYPE, linkname="elsewhere"), None)])
    with pytest.raises(
        BuildError, match="it ships /lib as a non-directory, but merged /usr has it as a symlink"
    ):
        write_deb_layer(store, deb)


def test_hard_links_to_filtered_files_go_with_them(tmp_path: Path, store: Store) -> None:
    deb = write_raw_deb(
        tmp_path / "raw.deb",
        [
            (info("./usr/share/man/man1/a.1.gz"), b"man"),
            (info("./usr/share/a/also", tarfile.LNKTYPE, linkname="./usr/share/man/man1/a.1.gz"), None),
        ],
    )
    assert write_deb_layer(store, deb)[1] == ["var/lib/dpkg/status.d/raw"]


@pytest.mark.parametrize(
    ("entries", "message"),
    [
        ([(info("/etc/passwd"), b"x")], "unsafe path '/etc/passwd' in the data archive"),
        ([(info("./usr/../../escape"), b"x")], "unsafe path './usr/../../escape'"),
        (
            [(info("./dev/null", tarfile.CHRTYPE, devmajor=1, devminor=3), None)],
            "/dev/null is a device, fifo or socket",
        ),
        ([(info("./fifo", tarfile.FIFOTYPE), None)], "/fifo is a device, fifo or socket"),
        ([(info("./usr/a"), b"1"), (info("./usr/a"), b"2")], "it ships /usr/a twice"),
        (
            [(info("./usr/a"), b"1"), (info("./usr/a/b"), b"2")],
            "archive path 'usr/a' is both a file and a directory",
        ),
    ],
)
def test_hostile_members_are_refused(
    tmp_path: Path, store: Store, entries: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    deb = write_raw_deb(tmp_path / "raw.deb", entries)
    with pytest.raises(BuildError, match=f"^Debian package raw.deb: .*{message}") as err:
        write_deb_layer(store, deb)
    assert "\n" not in str(err.value)
    assert list(store.blobs_dir.iterdir()) == []


@pytest.mark.parametrize(
    ("members_", "message"),
    [
        (("control.tar.gz", "debian-binary", "data.tar.xz"), "not a .deb of format 2.x"),
        (("debian-binary", "data.tar.xz", "control.tar.gz"), "unexpected member 'data.tar.xz'"),
        (("debian-binary", "control.tar.gz"), "it has no data archive"),
        (
            ("debian-binary", "control.tar.gz", "data.tar.xz", "data.tar.gz"),
            "unexpected member 'data.tar.gz'",
        ),
        (("debian-binary", "control.tar.gz", "data.tar.rar"), "unsupported .deb member data.tar.rar"),
    ],
)
def test_malformed_debs_are_refused(
    tmp_path: Path, store: Store, members_: tuple[str, ...], message: str
) -> None:
    deb = write_raw_deb(tmp_path / "raw.deb", [(info("./a"), b"a")], members=members_)
    with pytest.raises(BuildError, match=f"^Debian package raw.deb: {message}"):
        write_deb_layer(store, deb)


def test_extra_underscore_members_are_ignored(tmp_path: Path, store: Store) -> None:
    deb = write_raw_deb(
        tmp_path / "raw.deb",
        [(info("./a"), b"a")],
        members=("debian-binary", "_gpgorigin", "control.tar.gz", "data.tar.xz"),
    )
    assert write_deb_layer(store, deb)[1] == ["a", "var/lib/dpkg/status.d/raw"]


def test_truncated_and_garbage_files(tmp_path: Path, store: Store) -> None:
    deb = build_deb(tmp_path, "pkg", files=FILES)
    data = deb.read_bytes()
    (tmp_path / "cut.deb").write_bytes(data[: len(data) - 200])
    with pytest.raises(BuildError, match=r"^Debian package cut.deb: (corrupt .deb|the .deb ends)"):
        write_deb_layer(store, tmp_path / "cut.deb")
    (tmp_path / "junk.deb").write_bytes(b"PK\x03\x04 not an ar archive")
    with pytest.raises(BuildError, match=r"^Debian package junk.deb: not a .deb \(no ar header\)$"):
        write_deb_layer(store, tmp_path / "junk.deb")
    with pytest.raises(BuildError, match="does not exist"):
        write_deb_layer(store, tmp_path / "missing.deb")
    assert list(store.blobs_dir.iterdir()) == []


def test_layer_key_names_everything_the_bytes_depend_on(monkeypatch: pytest.MonkeyPatch) -> None:
    pin = DebPin("pkg", "1.0", "amd64", "a" * 64, 10, "pool/p/pkg.deb")
    key = deb_layer_key(pin, DEFAULT_MERGED_USR, Compression.GZIP)
    # the recipe, spelled out: the .deb, the options, the extraction rules and the layer format
    assert key == digest_of(
        {
            "kind": "debian-package",
            "deb_sha256": "a" * 64,
            "extract": DEB_FORMAT,
            "merged_usr": ["bin", "lib", "lib64", "sbin"],
            "path_filters": list(SLIM_DPKG_OPTIONS),
            "layer": layer_format(Compression.GZIP),
        }
    )
    assert key == deb_layer_key(
        attrs.evolve(pin, filename="pool/elsewhere/pkg.deb"), DEFAULT_MERGED_USR, Compression.GZIP
    )
    others = {
        deb_layer_key(attrs.evolve(pin, sha256="b" * 64), DEFAULT_MERGED_USR, Compression.GZIP),
        deb_layer_key(pin, (), Compression.GZIP),
        deb_layer_key(pin, DEFAULT_MERGED_USR, Compression.ZSTD),
        deb_layer_key(pin, DEFAULT_MERGED_USR, Compression.GZIP, ()),
    }
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    others.add(deb_layer_key(pin, DEFAULT_MERGED_USR, Compression.GZIP))
    others.add(deb_layer_key(pin, ("bin", "lib"), Compression.GZIP))
    assert key not in others and len(others) == 6
    # the merged directories are a set
    assert deb_layer_key(pin, ("lib", "bin"), Compression.GZIP) == deb_layer_key(
        pin, ["bin", "lib"], Compression.GZIP
    )
