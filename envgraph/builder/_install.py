"""Installing wheels straight into a layer's tar stream; installer does the installing.

installer decides where each file goes, rewrites ``#!python`` shebangs, writes the entry-point
launchers and RECORD; :class:`TarDestination` only turns its file-system writes into tar entries.
There is no staging directory: each member streams from the wheel's zip through the tar writer into
the compressor. Entries keep the wheel's member order, which the wheel's bytes (hence the layer key)
fix.
"""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
import zlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, cast

from installer.destinations import SchemeDictionaryDestination
from installer.records import Hash, RecordEntry
from installer.scripts import Script
from installer.sources import WheelFile
from installer.utils import Scheme
from isal import isal_zlib

from envgraph.errors import BuildError
from envgraph.oci._tar import TarStream

__all__ = ["TarDestination", "install_wheels"]


class _HashingReader:
    """What tarfile reads a member through: hashes it for RECORD and may copy it to disk."""

    def __init__(self, stream: BinaryIO, copy_to: BinaryIO | None) -> None:
        self._stream = stream
        self._copy_to = copy_to
        self.hash = hashlib.sha256()

    def read(self, n: int = -1) -> bytes:
        data = self._stream.read(n)
        self.hash.update(data)
        if self._copy_to is not None:
            self._copy_to.write(data)
        return data


def _inflate_with_isal(stream: BinaryIO) -> None:
    """Let a wheel member's deflate stream be inflated by ISA-L instead of zlib, before it is read.

    With compression on the pool, this thread (unzip, hash for RECORD, tar framing) is a big layer's
    critical path, and zlib's inflate was most of it: 2.3-2.7 of 3.1-3.8 CPU seconds for cuBLAS (610 MB);
    ISA-L inflates the same members in 1.6 s, and the whole thread then takes 2.8 s. zipfile keeps doing
    all the checks (CRC-32, sizes, end of stream); only its decompressor object is swapped for ISA-L's,
    which has the same interface. Anything unexpected (another Python's zipfile internals, a member
    already read) leaves zlib in place.
    """
    if (
        isinstance(stream, zipfile.ZipExtFile)
        and getattr(stream, "_compress_type", None) == zipfile.ZIP_DEFLATED
        and isinstance(getattr(stream, "_decompressor", None), _ZLIB_DECOMPRESS)
        and stream.tell() == 0
    ):
        stream._decompressor = isal_zlib.decompressobj(-isal_zlib.MAX_WBITS)  # type: ignore[attr-defined]


_ZLIB_DECOMPRESS = type(zlib.decompressobj())


def _size_of(stream: BinaryIO, wheel: zipfile.ZipFile | None) -> tuple[BinaryIO, int]:
    """The bytes left in ``stream``: a wheel member's size from the zip directory, an in-memory
    buffer's from its length; anything else (never seen from installer) is read into memory."""
    if isinstance(stream, zipfile.ZipExtFile) and wheel is not None and stream.tell() == 0:
        return stream, wheel.getinfo(stream.name).file_size
    if isinstance(stream, io.BytesIO):
        return stream, stream.getbuffer().nbytes - stream.tell()
    data = stream.read()
    return io.BytesIO(data), len(data)


class TarDestination(SchemeDictionaryDestination):
    """An installer destination writing into a :class:`TarStream` instead of a file system.

    ``scheme_dict`` holds absolute paths in the image; entries are written relative to ``/``.
    With ``python_copies`` set, the ``.py`` files of purelib/platlib are also written there (at their
    image paths), for compiling bytecode afterwards.
    """

    def __init__(
        self,
        tar: TarStream,
        scheme_dict: dict[str, str],
        interpreter: str,
        *,
        owners: dict[str, str],
        python_copies: Path | None = None,
    ) -> None:
        super().__init__(scheme_dict, interpreter=interpreter, script_kind="posix")
        self.tar = tar
        self.owners = owners  # archive path -> package, across the wheels of one layer
        self.python_copies = python_copies
        self.package = ""
        self.wheel: zipfile.ZipFile | None = None

    def _archive_path(self, scheme: Scheme, path: str) -> str:
        # installer's own check refuses paths outside the scheme's directory (ValueError)
        return self._path_with_destdir(scheme, path).as_posix().lstrip("/")

    def write_to_fs(self, scheme: Scheme, path: str, stream: BinaryIO, is_executable: bool) -> RecordEntry:
        archive_path = self._archive_path(scheme, path)
        other = self.owners.get(archive_path)
        if other == self.package:
            raise BuildError(f"{self.package} writes /{archive_path} twice")
        if other is not None:
            raise BuildError(f"packages {other} and {self.package} both write /{archive_path}")
        self.owners[archive_path] = self.package
        stream, size = _size_of(stream, self.wheel)
        _inflate_with_isal(stream)
        # Like uv (and pip for wheels built on Windows): whatever the zip says, scripts are executable.
        is_executable = is_executable or scheme == "scripts"
        with self._copy_for_bytecode(scheme, archive_path) as copy_to:
            reader = _HashingReader(stream, copy_to)
            # tarfile reads exactly ``size`` bytes and raises on a short stream; zipfile checks the CRC.
            self.tar.add_file(archive_path, cast(BinaryIO, reader), size, executable=is_executable)
        digest = Hash(self.hash_algorithm, _urlsafe_b64(reader.hash.digest()))
        return RecordEntry(path, digest, size)

    @contextmanager
    def _copy_for_bytecode(self, scheme: Scheme, archive_path: str) -> Iterator[BinaryIO | None]:
        if (
            self.python_copies is None
            or scheme not in ("purelib", "platlib")
            or not archive_path.endswith(".py")
        ):
            yield None
            return
        dest = self.python_copies / archive_path
        dest.parent.mkdir(parents=True, exist_ok=True)
        with open(dest, "wb") as f:
            yield f

    def write_script(self, name: str, module: str, attr: str, section: str) -> RecordEntry:
        script_name, data = Script(name, module, attr, section).generate(  # type: ignore[arg-type]
            self.interpreter, self.script_kind
        )
        return self.write_to_fs(Scheme("scripts"), script_name, io.BytesIO(data), is_executable=True)


def _urlsafe_b64(digest: bytes) -> str:
    return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def install_wheels(
    tar: TarStream,
    wheels: Sequence[tuple[str, str, Path]],
    scheme: dict[str, str],
    interpreter: str,
    python_copies: Path | None = None,
) -> None:
    """Install ``wheels`` ((project name, wheel file name, path), in name order) into ``tar``.

    The file name (checked by the lockfile parser) is given separately: a cached wheel's path is its sha256."""
    from installer import install

    owners: dict[str, str] = {}
    destination = TarDestination(tar, scheme, interpreter, owners=owners, python_copies=python_copies)
    for name, filename, path in sorted(wheels, key=lambda w: w[0]):
        destination.package = name
        try:
            with open(path, "rb") as f, zipfile.ZipFile(f) as wheel:
                wheel.filename = filename  # installer reads the distribution and version from it
                destination.wheel = wheel
                install(WheelFile(wheel), destination, {"INSTALLER": b"envgraph\n"})
        except BuildError:
            raise
        except Exception as e:  # installer and zipfile raise several kinds for bad wheels
            raise BuildError(f"cannot install {filename}: {e}") from None
        finally:
            destination.wheel = None
