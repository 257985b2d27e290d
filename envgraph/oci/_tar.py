"""The one deterministic tar writer.

Every tar envgraph produces (package layers, OCI and docker archives) goes through :func:`write_tar`.
The bytes depend only on the entries, never on the host, the locale, creation order or timestamps:

- POSIX.1-2001 (PAX) format, fixed; non-ASCII and long names go into PAX extended headers as UTF-8;
- :func:`write_tar` sorts entries by the bytes of their UTF-8 path (a parent is a prefix of its
  children, so parents always come first); :class:`TarStream` keeps the producer's order, for producers
  whose order is fixed by their input (a wheel's members); either way every parent directory has an
  explicit entry before its children;
- mtime fixed to :func:`layer_mtime`; uid/gid 0 and empty uname/gname (unless given explicitly);
- modes normalised: directories 0755, regular files 0755 when executable else 0644, symlinks 0777,
  unless an entry gives its ``mode`` explicitly (Debian packages keep theirs: setuid bits are content);
- symlinks keep their target; a file reachable under several paths (same inode) is written once and
  the later paths as tar hard links to the first-sorted one; devices, fifos and sockets are refused.

:data:`envgraph.identity.TAR_FORMAT` names this byte format (it and the mtime are in every layer key): bump
it whenever the output of this module changes for the same input.
"""

from __future__ import annotations

import io
import os
import stat
import tarfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import BinaryIO, Literal

import attrs

from envgraph.errors import BuildError
from envgraph.identity import layer_mtime

__all__ = [
    "EntryKind",
    "LayerEntry",
    "TarStream",
    "normalize_prefix",
    "tar_directory",
    "write_tar",
]

EntryKind = Literal["dir", "file", "symlink", "hardlink"]

_DIR_MODE = 0o755
_EXEC_MODE = 0o755
_FILE_MODE = 0o644
_LINK_MODE = 0o777


def _check_path(path: str) -> str:
    """Validate an archive path: relative, no empty/``.``/``..`` components, valid UTF-8, no NUL."""
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise BuildError(f"path {path!r} is not valid UTF-8; layers only hold UTF-8 names") from None
    parts = path.split("/")
    if not path or path.startswith("/") or "\x00" in path or any(p in ("", ".", "..") for p in parts):
        raise BuildError(f"invalid archive path {path!r}: must be relative, normalised, without '..'")
    return path


def normalize_prefix(prefix: str) -> str:
    """``"/opt/venv"`` -> ``"opt/venv/"``; ``""`` stays ``""``."""
    stripped = prefix.strip("/")
    if stripped.startswith("./"):
        stripped = stripped[2:]
    if stripped in ("", "."):
        return ""
    return _check_path(stripped) + "/"


@attrs.frozen
class LayerEntry:
    """One archive entry. ``path`` has no leading or trailing slash.

    A ``file`` takes its bytes from ``source`` (streamed) or ``data`` (small in-memory content);
    ``symlink`` and ``hardlink`` use ``linkname`` (a hard link names another archive path, which must be a
    ``file`` entry sorting before it). ``mode`` (permission bits, 0..0o7777) replaces the normalised mode
    of a dir, file or hard link when given.
    """

    path: str = attrs.field(converter=_check_path)
    kind: EntryKind
    executable: bool = False
    source: Path | None = None
    data: bytes | None = None
    linkname: str = ""
    uid: int = 0
    gid: int = 0
    mode: int | None = attrs.field(default=None, validator=lambda _i, _a, v: _check_mode(v))

    @classmethod
    def directory(cls, path: str, *, uid: int = 0, gid: int = 0, mode: int | None = None) -> LayerEntry:
        return cls(path, "dir", uid=uid, gid=gid, mode=mode)

    @classmethod
    def from_file(
        cls, path: str, source: Path, *, executable: bool, uid: int = 0, gid: int = 0
    ) -> LayerEntry:
        return cls(path, "file", executable=executable, source=source, uid=uid, gid=gid)

    @classmethod
    def from_bytes(cls, path: str, data: bytes, *, executable: bool = False) -> LayerEntry:
        return cls(path, "file", executable=executable, data=data)

    @classmethod
    def symlink(cls, path: str, target: str, *, uid: int = 0, gid: int = 0) -> LayerEntry:
        return cls(path, "symlink", linkname=target, uid=uid, gid=gid)

    @classmethod
    def hardlink(cls, path: str, target: str, *, uid: int = 0, gid: int = 0) -> LayerEntry:
        return cls(path, "hardlink", linkname=target, uid=uid, gid=gid)


def _check_mode(mode: int | None) -> None:
    if mode is not None and not 0 <= mode <= 0o7777:
        raise BuildError(f"invalid file mode {mode:o}: only permission bits (0..7777) go into a layer")


def _sort_key(path: str) -> bytes:
    return path.encode("utf-8")


def _complete(entries: Iterable[LayerEntry]) -> list[LayerEntry]:
    """Sorted entries with every parent directory present; duplicate paths are an error
    (except the same directory twice)."""
    by_path: dict[str, LayerEntry] = {}
    for e in entries:
        prev = by_path.get(e.path)
        if prev is not None and not (prev.kind == "dir" and e.kind == "dir"):
            raise BuildError(f"archive path {e.path!r} is written twice")
        by_path[e.path] = e
    for path in list(by_path):
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            existing = by_path.get(parent)
            if existing is None:
                by_path[parent] = LayerEntry.directory(parent)
            elif existing.kind != "dir":
                raise BuildError(f"archive path {parent!r} is both a {existing.kind} and a directory")
    return [by_path[p] for p in sorted(by_path, key=_sort_key)]


class TarStream:
    """Writes entries one at a time, in the caller's order, into a deterministic tar stream.

    For producers whose order is itself fixed by their input (a wheel's members in archive order):
    nothing is collected or sorted, file contents stream straight through. A missing parent directory
    gets its entry just before its first child; a path written twice is an error. Use as a context
    manager, or call :meth:`close` (which does not close ``out``).
    """

    def __init__(self, out: BinaryIO, *, mtime: int | None = None) -> None:
        self._when = layer_mtime() if mtime is None else mtime
        # 64 KiB reads from the sources (tarfile's 16 KiB default costs more calls; 1 MiB was slower).
        self._tf = tarfile.open(  # noqa: SIM115 (closed by close())
            fileobj=out, mode="w|", format=tarfile.PAX_FORMAT, encoding="utf-8"
        )
        self._tf.copybufsize = 64 * 1024  # type: ignore[attr-defined]  # set by TarFile.__init__, not in typeshed
        self._dirs: set[str] = set()
        self._files: set[str] = set()
        self._regular: set[str] = set()  # hard-link targets

    def __enter__(self) -> TarStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def paths(self) -> list[str]:
        """The non-directory paths written so far, sorted."""
        return sorted(self._files, key=_sort_key)

    def close(self) -> None:
        self._tf.close()

    def _info(self, path: str, uid: int, gid: int) -> tarfile.TarInfo:
        info = tarfile.TarInfo(path)
        info.mtime = self._when
        info.uid, info.gid = uid, gid
        info.uname = info.gname = ""
        return info

    def _claim(self, path: str, kind: EntryKind) -> bool:
        """Record ``path``; False when it is a directory already written."""
        parts = path.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent in self._files:
                raise BuildError(f"archive path {parent!r} is both a file and a directory")
            if parent not in self._dirs:
                self._dirs.add(parent)
                info = self._info(parent, 0, 0)
                info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE
                self._tf.addfile(info)
        if path in self._dirs:
            if kind == "dir":
                return False
            raise BuildError(f"archive path {path!r} is both a {kind} and a directory")
        if path in self._files:
            raise BuildError(f"archive path {path!r} is written twice")
        (self._dirs if kind == "dir" else self._files).add(path)
        return True

    def add_file(
        self, path: str, stream: BinaryIO, size: int, *, executable: bool = False, mode: int | None = None
    ) -> None:
        """A regular file of ``size`` bytes read from ``stream`` (in chunks, never whole); ``mode``, when
        given, replaces the normalised one."""
        _check_mode(mode)
        self._claim(_check_path(path), "file")
        info = self._info(path, 0, 0)
        info.type, info.size = tarfile.REGTYPE, size
        info.mode = mode if mode is not None else _EXEC_MODE if executable else _FILE_MODE
        self._tf.addfile(info, stream)
        self._regular.add(path)

    def add(self, e: LayerEntry) -> None:
        if not self._claim(e.path, e.kind):
            return
        info = self._info(e.path, e.uid, e.gid)
        if e.kind == "dir":
            info.type, info.mode = tarfile.DIRTYPE, _DIR_MODE if e.mode is None else e.mode
            self._tf.addfile(info)
        elif e.kind == "symlink":
            if not e.linkname or "\x00" in e.linkname:
                raise BuildError(f"symlink {e.path!r} has an empty or invalid target")
            info.type, info.mode, info.linkname = tarfile.SYMTYPE, _LINK_MODE, e.linkname
            self._tf.addfile(info)
        elif e.kind == "hardlink":
            if e.linkname not in self._regular:
                raise BuildError(
                    f"hard link {e.path!r} -> {e.linkname!r}: the target must be a file written before it"
                )
            info.type, info.linkname = tarfile.LNKTYPE, e.linkname
            info.mode = e.mode if e.mode is not None else _EXEC_MODE if e.executable else _FILE_MODE
            self._tf.addfile(info)
        else:
            info.type = tarfile.REGTYPE
            info.mode = e.mode if e.mode is not None else _EXEC_MODE if e.executable else _FILE_MODE
            if e.data is not None:
                info.size = len(e.data)
                self._tf.addfile(info, io.BytesIO(e.data))
            elif e.source is not None:
                try:
                    fd = os.open(e.source, os.O_RDONLY | os.O_NOFOLLOW)
                except OSError as err:
                    raise BuildError(f"cannot read {e.source}: {err.strerror}") from err
                with os.fdopen(fd, "rb") as f:
                    st = os.fstat(f.fileno())
                    if not stat.S_ISREG(st.st_mode):
                        raise BuildError(f"{e.source} is not a regular file")
                    info.size = st.st_size
                    self._tf.addfile(info, f)  # streamed in chunks by tarfile
            else:
                raise BuildError(f"file entry {e.path!r} has neither source nor data")
            self._regular.add(e.path)


def write_tar(entries: Iterable[LayerEntry], out: BinaryIO, *, mtime: int | None = None) -> list[str]:
    """Write ``entries``, sorted by path, as a deterministic tar stream into ``out`` (only needs ``write``).

    Returns the sorted archive paths of all non-directory entries. ``out`` is not closed.
    """
    with TarStream(out, mtime=mtime) as tar:
        for e in _complete(entries):
            tar.add(e)
    return tar.paths


def _scan(
    root: Path, prefix: str, owner_from_fs: bool, skip: Callable[[str], bool] | None = None
) -> list[LayerEntry]:
    entries: list[LayerEntry] = []
    inodes: dict[tuple[int, int], list[tuple[str, os.stat_result, Path]]] = {}

    def walk(directory: Path, rel: str) -> None:
        with os.scandir(directory) as it:
            children = list(it)
        for child in children:
            name = rel + child.name
            if skip is not None and skip(name):
                continue  # an excluded directory: nothing below it either
            path = Path(child.path)
            st = child.stat(follow_symlinks=False)
            uid, gid = (st.st_uid, st.st_gid) if owner_from_fs else (0, 0)
            if stat.S_ISDIR(st.st_mode):
                entries.append(LayerEntry.directory(prefix + name, uid=uid, gid=gid))
                walk(path, name + "/")
            elif stat.S_ISLNK(st.st_mode):
                entries.append(LayerEntry.symlink(prefix + name, os.readlink(path), uid=uid, gid=gid))
            elif stat.S_ISREG(st.st_mode):
                if st.st_nlink > 1:
                    inodes.setdefault((st.st_dev, st.st_ino), []).append((prefix + name, st, path))
                else:
                    entries.append(
                        LayerEntry.from_file(
                            prefix + name, path, executable=bool(st.st_mode & 0o111), uid=uid, gid=gid
                        )
                    )
            else:
                raise BuildError(f"{path}: devices, fifos and sockets cannot go into a layer")

    walk(root, "")
    for group in inodes.values():
        group.sort(key=lambda item: _sort_key(item[0]))
        first, st, source = group[0]
        uid, gid = (st.st_uid, st.st_gid) if owner_from_fs else (0, 0)
        executable = bool(st.st_mode & 0o111)
        entries.append(LayerEntry.from_file(first, source, executable=executable, uid=uid, gid=gid))
        for other, _, _ in group[1:]:
            entries.append(
                LayerEntry(other, "hardlink", executable=executable, linkname=first, uid=uid, gid=gid)
            )
    return entries


def tar_directory(
    root: Path,
    out: BinaryIO,
    *,
    prefix: str = "",
    owner_from_fs: bool = False,
    skip: Callable[[str], bool] | None = None,
) -> list[str]:
    """Write the tree under ``root`` (not ``root`` itself) as ``prefix + relpath`` entries.

    ``prefix`` such as ``"opt/venv/"`` puts the tree under ``opt/venv/`` with explicit ``opt/`` and
    ``opt/venv/`` directory entries. uid/gid are 0 unless ``owner_from_fs`` (then the numeric ids on disk;
    names stay empty). Returns the sorted non-directory archive paths.
    """
    root = Path(root)
    if root.is_symlink() or not root.is_dir():
        raise BuildError(f"{root} is not a directory")
    pre = normalize_prefix(prefix)
    entries = _scan(root, pre, owner_from_fs, skip)
    if pre:
        entries.append(LayerEntry.directory(pre.rstrip("/")))
    return write_tar(entries, out)
