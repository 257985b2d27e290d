"""A ``.deb`` as one deterministic layer: its data tar's members, streamed, in the .deb's own order.

A .deb is an ``ar`` archive: ``debian-binary`` (``2.x``), ``control.tar[.gz|.xz|.zst]``, then
``data.tar[.gz|.xz|.zst|.bz2|.lzma]``. Nothing is unpacked to disk: the data tar is decompressed as a
stream and each member is written through :class:`~envgraph.oci._tar.TarStream`, so the layer's bytes
depend only on the .deb's bytes (which its sha256 fixes) and on the rules below, which
:data:`envgraph.identity.DEB_FORMAT` names:

- paths lose their leading ``./``; absolute paths and ``..`` are refused; every parent directory gets an
  entry (0755 when the .deb has none before it; a directory keeps the mode of its first entry); mtime,
  uid/gid and user names as for every layer;
- modes are the package's permission bits, setuid/setgid/sticky included: they are part of its content.
  Files a .deb gives to another owner than root (dpkg maps those names on the target system) become
  root's, and then lose their setuid/setgid bits rather than gaining root's privileges;
- merged /usr: ``merged_usr`` names the top-level directories the base has as symlinks into ``/usr``
  (:func:`merged_usr_dirs` reads them from a base's tar; :data:`DEFAULT_MERGED_USR` is what
  :mod:`envgraph.debian._rootfs` makes on amd64: ``bin lib lib64 sbin``; empty for a base that is not
  merged). Paths under those move under ``usr/``, exactly where dpkg's files end up on such a system (a
  layer holding a real ``lib/`` directory would hide the base's ``lib -> usr/lib`` symlink in overlayfs);
  other top-level directories (``lib32/`` on a base without that link) stay real, as dpkg makes them.
  Hard links name the moved path; symlink targets are kept as written, as dpkg keeps them: relative
  targets resolve from the same physical directory, absolute ones through the base's symlinks. A .deb
  holding the same path in both places, or one of the linked directories as a file, is an error;
- ``path_filters`` are dpkg's ``path-exclude=``/``path-include=`` rules (the last match wins), by default
  the slim base's (no man pages, info, locales or docs except copyright files);
- the package's control file is added as ``var/lib/dpkg/status.d/<name>``, as distroless images do, so
  that scanners (trivy, grype, syft) see the package although dpkg's own database does not list it;
- devices, fifos and sockets are refused.

No maintainer script runs: see :mod:`envgraph.debian` for what that means in an image.
"""

from __future__ import annotations

import bz2
import fnmatch
import gzip
import io
import lzma
import tarfile
import zlib
from collections.abc import Collection, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import zstandard

from envgraph.debian._packages import check_package_name, parse_stanza
from envgraph.debian._resolve import DebPin
from envgraph.debian._rootfs import MERGED_USR, SLIM_DPKG_OPTIONS
from envgraph.errors import BuildError, DebianError
from envgraph.identity import DEFAULT_COMPRESSION, Compression, deb_package_key
from envgraph.oci._layer import LayerBlob, write_layer
from envgraph.oci._store import Store
from envgraph.oci._tar import LayerEntry, TarStream

__all__ = [
    "DEFAULT_MERGED_USR",
    "STATUS_DIR",
    "deb_layer_key",
    "extract_deb",
    "merged_usr_dirs",
    "write_deb_layer",
]

DEFAULT_MERGED_USR = MERGED_USR
"""The top-level symlinks into /usr of a merged-/usr amd64 base made by :mod:`envgraph.debian._rootfs`."""
STATUS_DIR = "var/lib/dpkg/status.d"
_CONTROL_LIMIT = 1 << 20  # a control file is a few KiB
_SUID_SGID = 0o6000


def deb_layer_key(
    pin: DebPin,
    merged_usr: Collection[str],
    compression: Compression,
    path_filters: Sequence[str] = SLIM_DPKG_OPTIONS,
) -> str:
    """The layer key of ``pin``'s .deb (:func:`envgraph.identity.deb_package_key`)."""
    return deb_package_key(pin.sha256, merged_usr, path_filters, compression)


# --- ar ---------------------------------------------------------------------------------------------------


class _Bounded(io.RawIOBase):
    """Reads at most ``size`` bytes of ``f`` (one ar member)."""

    def __init__(self, f: BinaryIO, size: int) -> None:
        super().__init__()
        self._f = f
        self.left = size

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer)[: self.left]
        if not view:
            return 0
        n = self._f.readinto(view)  # type: ignore[attr-defined]
        if not n:
            raise BuildError("the .deb ends in the middle of a member")
        self.left -= n
        return int(n)

    def skip(self) -> None:
        """Consume the rest of the member (straight from the file: a decompressor may have closed us)."""
        while self.left:
            chunk = self._f.read(min(self.left, 1 << 20))
            if not chunk:
                raise BuildError("the .deb ends in the middle of a member")
            self.left -= len(chunk)


def _ar_members(f: BinaryIO) -> Iterator[tuple[str, _Bounded]]:
    if f.read(8) != b"!<arch>\n":
        raise BuildError("not a .deb (no ar header)")
    while True:
        header = f.read(60)
        if not header:
            return
        if len(header) != 60 or header[58:60] != b"`\n":
            raise BuildError("malformed ar member header")
        try:
            name = header[:16].decode("ascii").rstrip(" ").removesuffix("/")
            size = int(header[48:58].decode("ascii").strip())
        except (UnicodeDecodeError, ValueError):
            raise BuildError("malformed ar member header") from None
        member = _Bounded(f, size)
        yield name, member
        member.skip()
        if size % 2:
            f.read(1)  # members start at even offsets


def _decompressed(name: str, member: _Bounded) -> BinaryIO:
    """A reader of the tar inside ``control.tar.*``/``data.tar.*``."""
    raw: BinaryIO = io.BufferedReader(member, 1 << 16)
    suffix = name.rpartition(".tar")[2]
    if suffix == "":
        return raw
    if suffix == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]  # noqa: SIM115
    if suffix in (".xz", ".lzma"):
        return lzma.LZMAFile(raw)  # type: ignore[return-value]  # noqa: SIM115
    if suffix == ".zst":
        return zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
    if suffix == ".bz2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]  # noqa: SIM115
    raise BuildError(f"unsupported .deb member {name}")


# --- paths ------------------------------------------------------------------------------------------------


def _member_path(name: str) -> str:
    """``./usr/bin/jq`` -> ``usr/bin/jq``; ``./`` -> ``""``; absolute paths and ``..`` are refused."""
    path = name.removeprefix("./").rstrip("/")
    if path in ("", "."):
        return ""
    parts = path.split("/")
    if name.startswith("/") or any(p in ("", ".", "..") for p in parts) or "\x00" in path:
        raise BuildError(f"unsafe path {name!r} in the data archive")
    return path


def merged_usr_dirs(rootfs_tar: Path) -> tuple[str, ...]:
    """The top-level directories an (uncompressed) root filesystem tar has as symlinks to ``usr/<name>``."""
    found = []
    with tarfile.open(rootfs_tar, mode="r:", encoding="utf-8") as tf:
        for m in tf:
            name = m.name.removeprefix("./").rstrip("/")
            if m.issym() and "/" not in name and m.linkname.lstrip("/") == f"usr/{name}":
                found.append(name)
    return tuple(sorted(found))


class _Filter:
    """dpkg's ``--path-exclude``/``--path-include`` (fnmatch on ``/path``; the last matching rule wins)."""

    def __init__(self, rules: Sequence[str]) -> None:
        self.rules: list[tuple[bool, str]] = []
        for rule in rules:
            kind, eq, pattern = rule.partition("=")
            if not eq or kind not in ("path-exclude", "path-include") or not pattern.startswith("/"):
                raise BuildError(
                    f"invalid path filter {rule!r}: expected path-exclude=/glob or path-include=/glob"
                )
            self.rules.append((kind == "path-include", pattern))

    def keeps(self, path: str) -> bool:
        keep = True
        absolute = "/" + path
        for include, pattern in self.rules:
            if fnmatch.fnmatchcase(absolute, pattern):
                keep = include
        return keep


# --- extraction -------------------------------------------------------------------------------------------


def _mode(member: tarfile.TarInfo) -> int:
    mode = member.mode & 0o7777
    root_user = member.uname == "root" or (not member.uname and member.uid == 0)
    root_group = member.gname == "root" or (not member.gname and member.gid == 0)
    if not (root_user and root_group):
        mode &= ~_SUID_SGID  # the owner becomes root: never hand root a setuid/setgid it was not given
    return mode


def _read_control(reader: BinaryIO) -> bytes:
    with tarfile.open(fileobj=reader, mode="r|", encoding="utf-8") as tf:
        for member in tf:
            if _member_path(member.name) == "control" and member.isreg():
                if member.size > _CONTROL_LIMIT:
                    raise BuildError("its control file is too large")
                f = tf.extractfile(member)
                assert f is not None
                return f.read()
    raise BuildError("its control archive has no control file")


class _Extractor:
    def __init__(self, out: TarStream, merged_usr: Collection[str], path_filter: _Filter) -> None:
        self.out = out
        self.merged = frozenset(merged_usr)
        self.filter = path_filter
        self.origin: dict[str, tuple[str, str]] = {}  # layer path -> (path in the .deb, kind)
        self.dropped: set[str] = set()  # filtered-out files (hard links to them are dropped too)

    def _claim(self, path: str, original: str, kind: str) -> bool:
        """Record ``path``; False for a directory seen before; an error for any other repeat."""
        prev = self.origin.get(path)
        if prev is None:
            self.origin[path] = (original, kind)
            return True
        if prev[1] == kind == "dir":
            return False
        if prev[0] != original:
            raise BuildError(f"it ships both /{prev[0]} and /{original}, which are one path on merged /usr")
        raise BuildError(f"it ships /{original} twice")

    def _moved(self, path: str) -> str:
        return f"usr/{path}" if path.split("/", 1)[0] in self.merged else path

    def member(self, tf: tarfile.TarFile, m: tarfile.TarInfo) -> None:
        original = _member_path(m.name)
        if not original:
            return  # the root directory itself
        path = self._moved(original)
        if original in self.merged and not m.isdir():
            target = m.linkname.lstrip("/") if m.issym() else ""
            if target == f"usr/{original}":
                return  # the merged-/usr symlink itself, which the base already has
            raise BuildError(f"it ships /{original} as a non-directory, but merged /usr has it as a symlink")
        if not self.filter.keeps(original):
            if not m.isdir():
                self.dropped.add(path)
            return
        kind = "dir" if m.isdir() else "file"
        if not self._claim(path, original, kind):
            return
        if m.isdir():
            self.out.add(LayerEntry.directory(path, mode=_mode(m)))
        elif m.isreg():
            f = tf.extractfile(m)
            assert f is not None
            self.out.add_file(path, f, m.size, mode=_mode(m))  # type: ignore[arg-type]
        elif m.issym():
            self.out.add(LayerEntry.symlink(path, m.linkname))
        elif m.islnk():
            target = self._moved(_member_path(m.linkname))
            if target in self.dropped:
                self.dropped.add(path)  # a hard link to a filtered-out file goes with it
                return
            self.out.add(LayerEntry(path, "hardlink", linkname=target, mode=_mode(m)))
        else:
            raise BuildError(f"/{original} is a device, fifo or socket, which cannot go into a layer")


def extract_deb(
    deb: BinaryIO,
    out: TarStream,
    *,
    merged_usr: Collection[str] = DEFAULT_MERGED_USR,
    path_filters: Sequence[str] = SLIM_DPKG_OPTIONS,
    pin: DebPin | None = None,
) -> str:
    """Write the data of the .deb read from ``deb`` into ``out``, then its status.d entry.

    With ``pin``, the control file must name that package, version and architecture.
    Returns the package name. Raises BuildError (without naming the package: callers add it).
    """
    path_filter = _Filter(path_filters)
    control: bytes | None = None
    seen: list[str] = []
    extractor = _Extractor(out, merged_usr, path_filter)
    for name, member in _ar_members(deb):
        if name.startswith("_"):
            continue  # dpkg ignores such members
        if not seen:
            if name != "debian-binary" or not member.read(16).startswith(b"2."):
                raise BuildError("not a .deb of format 2.x (no debian-binary member first)")
        elif name.startswith("control.tar") and len(seen) == 1:
            with _decompressed(name, member) as reader:
                control = _read_control(reader)
        elif name.startswith("data.tar") and len(seen) == 2:
            with (
                _decompressed(name, member) as reader,
                tarfile.open(fileobj=reader, mode="r|", encoding="utf-8") as tf,
            ):
                for m in tf:
                    extractor.member(tf, m)
        else:
            raise BuildError(f"unexpected member {name!r} (after {', '.join(seen) or 'nothing'})")
        seen.append(name)
    if len(seen) != 3 or control is None:
        raise BuildError("it has no data archive")
    package = _check_control(control, pin)
    out.add(LayerEntry.from_bytes(f"{STATUS_DIR}/{package}", control))
    return package


def _check_control(control: bytes, pin: DebPin | None) -> str:
    try:
        text = control.decode("utf-8")
        fields = parse_stanza(text.strip("\n"), "control", {"Package", "Version", "Architecture"})
        name = check_package_name(fields.get("Package", ""))
    except (UnicodeDecodeError, DebianError) as err:
        raise BuildError(f"malformed control file: {err}") from None
    if pin is not None:
        found = (name, fields.get("Version"), fields.get("Architecture"))
        if found != (pin.name, pin.version, pin.architecture):
            raise BuildError(
                f"its control file names {' '.join(map(str, found))}, not {pin} {pin.architecture}"
            )
    return name


def write_deb_layer(
    store: Store,
    deb_path: Path,
    *,
    pin: DebPin | None = None,
    merged_usr: Collection[str] = DEFAULT_MERGED_USR,
    compression: Compression = DEFAULT_COMPRESSION,
    path_filters: Sequence[str] = SLIM_DPKG_OPTIONS,
) -> tuple[LayerBlob, list[str]]:
    """Store the layer of the (already verified) .deb at ``deb_path``; returns it and its non-directory paths.

    Record it under :func:`deb_layer_key` with :func:`envgraph.oci._layer.record_layer`.
    """
    what = str(pin) if pin is not None else Path(deb_path).name

    def produce(sink: BinaryIO) -> list[str]:
        with open(deb_path, "rb") as f, TarStream(sink) as tar:
            extract_deb(f, tar, merged_usr=merged_usr, path_filters=path_filters, pin=pin)
        return tar.paths

    try:
        return write_layer(store, produce, compression)
    except BuildError as err:
        raise BuildError(f"Debian package {what}: {err}") from None
    except FileNotFoundError as err:
        if err.filename != str(deb_path):
            raise
        raise BuildError(f"Debian package {what}: {deb_path} does not exist") from None
    except (
        tarfile.TarError,
        zstandard.ZstdError,
        lzma.LZMAError,
        zlib.error,
        gzip.BadGzipFile,
        EOFError,
    ) as err:
        raise BuildError(f"Debian package {what}: corrupt .deb ({type(err).__name__}: {err})") from None
