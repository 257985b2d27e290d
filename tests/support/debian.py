"""Small real Debian packages and signed archives made by the tests themselves (no network).

- :func:`build_deb` makes a .deb with the real ``dpkg-deb --build``;
- :func:`write_raw_deb` writes one byte by byte (ar + tar), for the malformed and hostile cases
  ``dpkg-deb`` refuses to build;
- :class:`TestKeys` is a throwaway GnuPG home with a trusted, an unknown and an expired signing key;
- :func:`make_archive` lays out ``dists/<suite>/{InRelease,Release}``, the Packages index (plain, .xz,
  by-hash) and ``pool/`` like a Debian mirror;
- :func:`serve` is a loopback HTTP server over a directory that records the paths asked for.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import io
import lzma
import os
import shutil
import subprocess
import tarfile
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import attrs

__all__ = [
    "SHA",
    "Dir",
    "File",
    "Hard",
    "Link",
    "Server",
    "TestKeys",
    "build_deb",
    "make_archive",
    "packages_stanza",
    "serve",
    "stanza",
    "write_raw_deb",
]


@attrs.frozen
class File:
    data: bytes = b""
    mode: int = 0o644


@attrs.frozen
class Link:
    target: str


@attrs.frozen
class Hard:
    target: str  # path inside the package, e.g. "usr/bin/a"


@attrs.frozen
class Dir:
    mode: int = 0o755


Entry = File | Link | Hard | Dir | bytes


def _control(name: str, version: str, arch: str, fields: Mapping[str, str]) -> str:
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    lines += ["Maintainer: envgraph tests <tests@example.invalid>"]
    lines += [f"{k}: {v}" for k, v in fields.items()]
    lines += ["Description: test package made by envgraph's tests"]
    return "\n".join(lines) + "\n"


def build_deb(
    directory: Path,
    name: str,
    version: str = "1.0",
    *,
    arch: str = "amd64",
    files: Mapping[str, Entry] | None = None,
    fields: Mapping[str, str] | None = None,
    compression: str = "xz",
) -> Path:
    """``name_version_arch.deb`` built by ``dpkg-deb --build --root-owner-group`` from ``files``."""
    directory.mkdir(parents=True, exist_ok=True)
    tree = directory / f".tree-{name}-{version}"
    shutil.rmtree(tree, ignore_errors=True)
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(_control(name, version, arch, fields or {}))
    files = files if files is not None else {f"usr/share/{name}/data.txt": f"{name} {version}\n".encode()}
    hard: list[tuple[str, str]] = []
    for path, entry in sorted(files.items()):
        target = tree / path
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(entry, bytes):
            entry = File(entry)
        if isinstance(entry, File):
            target.write_bytes(entry.data)
            os.chmod(target, entry.mode)
        elif isinstance(entry, Link):
            os.symlink(entry.target, target)
        elif isinstance(entry, Dir):
            target.mkdir(exist_ok=True)
            os.chmod(target, entry.mode)
        else:
            hard.append((path, entry.target))
    for path, target in hard:
        os.link(tree / target, tree / path)
    out = directory / f"{name}_{version.replace(':', '%3a')}_{arch}.deb"
    subprocess.run(
        ["dpkg-deb", "--root-owner-group", f"-Z{compression}", "--build", str(tree), str(out)],
        check=True,
        capture_output=True,
        env={**os.environ, "SOURCE_DATE_EPOCH": "1700000000"},
    )
    shutil.rmtree(tree)
    return out


def _ar_member(name: str, data: bytes) -> bytes:
    header = f"{name:<16}{0:<12}{0:<6}{0:<6}{0o100644:<8o}{len(data):<10}`\n".encode()
    assert len(header) == 60
    return header + data + (b"\n" if len(data) % 2 else b"")


def _tar(members: Sequence[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def write_raw_deb(
    path: Path,
    data_members: Sequence[tuple[tarfile.TarInfo, bytes | None]],
    *,
    control: str | None = None,
    members: Sequence[str] = ("debian-binary", "control.tar.gz", "data.tar.xz"),
) -> Path:
    """A .deb written by hand: ``members`` in order (names decide the compression)."""
    control = control or _control("raw", "1.0", "amd64", {})
    info = tarfile.TarInfo("./control")
    control_tar = _tar([(info, control.encode())])
    data_tar = _tar(data_members)
    out = b"!<arch>\n"
    for name in members:
        if name == "debian-binary":
            out += _ar_member(name, b"2.0\n")
        elif name.startswith("control.tar"):
            out += _ar_member(name, _compress(name, control_tar))
        elif name.startswith("data.tar"):
            out += _ar_member(name, _compress(name, data_tar))
        else:
            out += _ar_member(name, b"extra")
    path.write_bytes(out)
    return path


def _compress(name: str, data: bytes) -> bytes:
    import gzip

    if name.endswith(".gz"):
        return gzip.compress(data, mtime=0)
    if name.endswith(".xz"):
        return lzma.compress(data)
    return data


def packages_stanza(deb: Path, filename: str) -> str:
    """The Packages stanza of ``deb``: its control fields plus Filename, Size and SHA256."""
    control = subprocess.run(
        ["dpkg-deb", "--field", str(deb)], check=True, capture_output=True, text=True
    ).stdout
    data = deb.read_bytes()
    return (
        control.rstrip("\n")
        + f"\nFilename: {filename}\nSize: {len(data)}\nSHA256: {hashlib.sha256(data).hexdigest()}\n"
    )


class TestKeys:
    """A GnuPG home with three signing keys: ``trusted`` (exported to :attr:`keyring`), ``unknown``
    (not in the keyring) and ``expired`` (in the keyring, expired since 2020)."""

    __test__ = False  # not a test class, despite the name

    def __init__(self, home: Path) -> None:
        self.home = home
        home.mkdir(parents=True, exist_ok=True)
        os.chmod(home, 0o700)
        self._gpg("--quick-gen-key", "envgraph trusted <trusted@example.invalid>", "ed25519", "sign", "never")
        self._gpg("--quick-gen-key", "envgraph unknown <unknown@example.invalid>", "ed25519", "sign", "never")
        self._gpg(
            "--faked-system-time", "20200101T000000",
            "--quick-gen-key", "envgraph expired <expired@example.invalid>", "ed25519", "sign", "1d",
        )  # fmt: skip
        self.keyring = home / "keyring.gpg"
        exported = self._gpg("--export", "trusted@example.invalid", "expired@example.invalid")
        self.keyring.write_bytes(exported)

    def _gpg(self, *args: str, data: bytes | None = None) -> bytes:
        cmd = [
            "gpg",
            "--homedir",
            str(self.home),
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
        ]
        proc = subprocess.run([*cmd, *args], input=data, capture_output=True, check=False)
        if proc.returncode != 0:
            raise RuntimeError(f"gpg {' '.join(args)} failed: {proc.stderr.decode(errors='replace')}")
        return proc.stdout

    def clearsign(self, text: bytes, *signers: str) -> bytes:
        """``text`` clearsigned by each of ``signers`` ("trusted", "unknown", "expired")."""
        args: list[str] = []
        for signer in signers or ("trusted",):
            args += ["--local-user", f"{signer}@example.invalid"]
        if "expired" in signers:
            args = ["--faked-system-time", "20200101T010000", *args]
        return self._gpg(*args, "--digest-algo", "SHA256", "--clearsign", data=text)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def make_archive(
    root: Path,
    suite: str,
    debs: Sequence[Path],
    *,
    keys: TestKeys | None,
    signers: Sequence[str] = ("trusted",),
    arch: str = "amd64",
    codename: str | None = None,
    release_fields: Mapping[str, str] | None = None,
    packages_text: str | None = None,
    edit_release: Callable[[str], str] | None = None,
    by_hash: bool = True,
) -> dict[str, str]:
    """Lay out a signed archive with ``debs`` in ``main``; returns {package file name: pool path}."""
    pool: dict[str, str] = {}
    stanzas = []
    for deb in debs:
        filename = f"pool/main/{deb.name[0]}/{deb.name}"
        _write(root / filename, deb.read_bytes())
        pool[deb.name] = filename
        stanzas.append(packages_stanza(deb, filename))
    text = packages_text if packages_text is not None else "\n".join(stanzas)
    plain = text.encode()
    xz = lzma.compress(plain)
    directory = f"main/binary-{arch}"
    dists = root / "dists" / suite
    _write(dists / directory / "Packages", plain)
    _write(dists / directory / "Packages.xz", xz)
    for blob in (plain, xz):
        _write(dists / directory / "by-hash" / "SHA256" / hashlib.sha256(blob).hexdigest(), blob)
    fields = {
        "Origin": "envgraph-tests",
        "Suite": suite,
        "Codename": codename or suite,
        "Date": "Sat, 01 Jan 2022 00:00:00 UTC",
        "Acquire-By-Hash": "yes" if by_hash else "no",
        "Architectures": f"all {arch}",
        "Components": "main",
        **(release_fields or {}),
    }
    release = "".join(f"{k}: {v}\n" for k, v in fields.items()) + "SHA256:\n"
    for name, blob in (("Packages", plain), ("Packages.xz", xz)):
        release += f" {hashlib.sha256(blob).hexdigest()} {len(blob):>8} {directory}/{name}\n"
    if edit_release is not None:
        release = edit_release(release)
    _write(dists / "Release", release.encode())
    if keys is not None:
        _write(dists / "InRelease", keys.clearsign(release.encode(), *signers))
    return pool


@attrs.define
class Server:
    url: str
    requests: list[str]

    def paths(self) -> list[str]:
        return [p.split("?", 1)[0] for p in self.requests]


@contextlib.contextmanager
def serve(root: Path) -> Iterator[Server]:
    """Serve ``root`` over HTTP on a loopback port; the server records every path requested."""
    server = Server("", [])

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, directory=str(root), **kwargs)  # type: ignore[arg-type]

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            server.requests.append(self.path)
            super().do_GET()

        def log_message(self, format: str, *args: object) -> None:
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=10)


# A Packages stanza with made-up Filename, Size and SHA256 (for parsing and resolving, never fetched).
SHA = "ab" * 32


def stanza(name: str, version: str = "1.0", arch: str = "amd64", **fields: str) -> str:
    lines = [f"Package: {name}", f"Version: {version}", f"Architecture: {arch}"]
    lines += [f"{k.replace('_', '-')}: {v}" for k, v in fields.items()]
    pool_version = version.replace(":", "%3a")
    defaults = {
        "Filename": f"pool/main/{name[0]}/{name}_{pool_version}_{arch}.deb",
        "Size": "100",
        "SHA256": SHA,
    }
    lines += [f"{k}: {v}" for k, v in defaults.items() if k not in fields]
    lines += ["Description: something", " with a continuation line"]
    return "\n".join(lines) + "\n"
