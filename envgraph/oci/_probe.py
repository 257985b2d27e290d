"""Looking inside an image's layers without unpacking them: which file a path names once the layers are stacked
(later layers win, whiteouts delete, symlinks are followed, also in directory components), and that file's
first bytes. Used to check, before anything is built on a base, that its interpreter can run on the target:
the ELF header says the machine, the interpreter's real name (``python3.11``) its version.
"""

from __future__ import annotations

import posixpath
import re
import tarfile
from collections.abc import Sequence

import attrs

from envgraph.errors import StoreError
from envgraph.identity import compression_of_media_type
from envgraph.oci._compress import open_decompressed
from envgraph.oci._model import Descriptor
from envgraph.oci._store import Store

__all__ = ["Interpreter", "probe_interpreter", "ELF_MACHINES"]

# e_machine values of the ELF header (elf.h) -> OCI architecture names.
ELF_MACHINES = {0x3E: "amd64", 0xB7: "arm64", 0x03: "386", 0x28: "arm", 0x15: "ppc64le", 0x16: "s390x"}
_VERSIONED = re.compile(r"^python(\d+\.\d+)$")
_STDLIB = re.compile(r"^usr/(?:local/)?lib/python(\d+\.\d+)/os\.py$")
_MAX_LINKS = 40


@attrs.frozen
class Interpreter:
    path: str  # the real file, relative to the root
    architecture: str | None  # from the ELF header; None when not an ELF file
    version: str | None  # "3.11", from the real file's name or the only stdlib in the image


@attrs.frozen
class _Entry:
    layer: int
    kind: str  # "file", "dir", "symlink", "hardlink"
    link: str


def _normalise(name: str) -> str:
    path = posixpath.normpath("/" + name).lstrip("/")
    return "" if path == "." else path


def _index(store: Store, layers: Sequence[Descriptor]) -> dict[str, _Entry]:
    """Path -> its entry in the stacked layers (whiteouts applied)."""
    entries: dict[str, _Entry] = {}
    for i, layer in enumerate(layers):
        with store.open_blob(layer.digest) as raw:
            stream = open_decompressed(raw, compression_of_media_type(layer.media_type))
            try:
                with tarfile.open(fileobj=stream, mode="r|") as tf:
                    for m in tf:
                        path = _normalise(m.name)
                        base = posixpath.basename(path)
                        parent = posixpath.dirname(path)
                        if base == ".wh..wh..opq":  # opaque directory: nothing below it from earlier layers
                            prefix = parent + "/"
                            for p in [p for p, e in entries.items() if p.startswith(prefix) and e.layer < i]:
                                del entries[p]
                            continue
                        if base.startswith(".wh."):
                            gone = posixpath.join(parent, base[4:])
                            for p in [p for p in entries if p == gone or p.startswith(gone + "/")]:
                                del entries[p]
                            continue
                        if m.issym():
                            entries[path] = _Entry(i, "symlink", m.linkname)
                        elif m.islnk():
                            entries[path] = _Entry(i, "hardlink", _normalise(m.linkname))
                        elif m.isdir():
                            entries[path] = _Entry(i, "dir", "")
                        elif m.isreg():
                            entries[path] = _Entry(i, "file", "")
            except (tarfile.TarError, OSError, EOFError) as err:
                raise StoreError(f"layer {layer.digest} is not a readable tar: {err}") from None
    return entries


def _resolve(entries: dict[str, _Entry], path: str) -> str | None:
    """Follow symlinks (in every component) the way the kernel would inside the image; None when missing."""
    todo = [p for p in _normalise(path).split("/") if p]
    done: list[str] = []
    hops = 0
    while todo:
        part = todo.pop(0)
        if part == "..":
            if done:
                done.pop()
            continue
        current = "/".join([*done, part])
        entry = entries.get(current)
        if entry is None:
            return None
        if entry.kind == "symlink":
            hops += 1
            if hops > _MAX_LINKS:
                return None
            target = entry.link
            if target.startswith("/"):
                done = []
            todo = [p for p in target.split("/") if p and p != "."] + todo
            continue
        done.append(part)
    return "/".join(done)


def _head(store: Store, layer: Descriptor, path: str, n: int = 20) -> bytes:
    with store.open_blob(layer.digest) as raw:
        stream = open_decompressed(raw, compression_of_media_type(layer.media_type))
        with tarfile.open(fileobj=stream, mode="r|") as tf:
            for m in tf:
                if _normalise(m.name) == path and m.isreg():
                    f = tf.extractfile(m)
                    return f.read(n) if f is not None else b""
    return b""


def probe_interpreter(store: Store, layers: Sequence[Descriptor], path: str) -> Interpreter | None:
    """The interpreter ``path`` names in the stacked ``layers``, or None when the image has no such file."""
    entries = _index(store, layers)
    real = _resolve(entries, path)
    if real is None or entries[real].kind not in ("file", "hardlink"):
        return None
    entry = entries[real]
    if entry.kind == "hardlink":
        real = entry.link
        if real not in entries:
            return None
        entry = entries[real]
    head = _head(store, layers[entry.layer], real)
    architecture = None
    if head[:4] == b"\x7fELF" and len(head) >= 20:
        little = head[5] == 1
        machine = int.from_bytes(head[18:20], "little" if little else "big")
        architecture = ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")
    m = _VERSIONED.match(posixpath.basename(real))
    version = m.group(1) if m else None
    if version is None:
        stdlibs = {mm.group(1) for p in entries if (mm := _STDLIB.match(p))}
        version = stdlibs.pop() if len(stdlibs) == 1 else None
    return Interpreter(real, architecture, version)
