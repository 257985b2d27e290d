"""A wheel's ``.dist-info/METADATA`` read without downloading the wheel: HTTP range requests into its zip.

Indexes that serve no PEP 658 ``core-metadata`` (many mirrors and proxies) leave a resolver two choices:
download every candidate wheel whole (~900 MB for a torch wheel) or read the zip's central directory and the
one member it needs, as pip's lazy wheel does. This module does the latter: a seekable file over ranges of
the remote file (fetched in blocks, each fetched once), handed to :mod:`zipfile`. A server that ignores
``Range`` gets the file streamed once into a temporary file instead.

The metadata only explains resolutions (which pin blocks which release); nothing read here is written into a
lockfile, whose hashes come from the index and are verified at build time.
"""

from __future__ import annotations

import email.parser
import io
import re
import tempfile
import zipfile
from typing import TYPE_CHECKING

from envgraph.errors import LockError

if TYPE_CHECKING:
    import requests

__all__ = ["RangeFile", "remote_metadata", "metadata_of_zip", "requires_dist_of"]

BLOCK = 64 * 1024  # the tail of a wheel (its central directory) is usually within the first fetch
_CONTENT_RANGE = re.compile(r"^bytes (\d+)-(\d+)/(\d+|\*)$")


class _NoRanges(Exception):
    """The server answered a range request with the whole file (the response, not yet read)."""

    def __init__(self, response: requests.Response) -> None:
        super().__init__("no range support")
        self.response = response


class RangeFile(io.RawIOBase):
    """A read-only, seekable view of a remote file; each block is fetched at most once."""

    def __init__(self, session: requests.Session, url: str, *, timeout: float) -> None:
        super().__init__()
        self.session = session
        self.url = url
        self.timeout = timeout
        self.pos = 0
        self.segments: list[tuple[int, bytes]] = []  # (offset, bytes) already fetched
        self.requests = 0
        self.fetched = 0
        # One request for the tail gives the size (Content-Range) and, for most wheels, the central directory.
        start, _end, self.length, data = self._range(f"bytes=-{BLOCK}")
        self.segments.append((start, data))

    def _range(self, spec: str) -> tuple[int, int, int, bytes]:
        import requests

        try:
            r = self.session.get(
                self.url, headers={"Range": spec, "Accept-Encoding": "identity"}, timeout=self.timeout,
                stream=True,
            )  # fmt: skip
        except requests.RequestException as e:
            raise LockError(f"cannot read {self.url}: {type(e).__name__}") from None
        self.requests += 1
        if r.status_code == 200 and self.segments == []:
            raise _NoRanges(r)
        if r.status_code != 206:
            r.close()
            raise LockError(f"cannot read {self.url}: HTTP {r.status_code}")
        m = _CONTENT_RANGE.match(r.headers.get("content-range", ""))
        if m is None or m.group(3) == "*":
            raise LockError(f"cannot read {self.url}: the server's Content-Range is not understood")
        start, end, total = int(m.group(1)), int(m.group(2)), int(m.group(3))
        if len(r.content) != end - start + 1:
            raise LockError(f"cannot read {self.url}: short range answer")
        self.fetched += len(r.content)
        return start, end, total, r.content

    def _bytes_at(self, pos: int, hi: int) -> bytes:
        """Bytes from ``pos`` up to at most ``hi``: from a fetched segment, else one new request."""
        for start, data in self.segments:
            if start <= pos < start + len(data):
                return data[pos - start : hi - start]
        end = min(self.length, max(hi, pos + BLOCK)) - 1
        start, _end, _total, data = self._range(f"bytes={pos}-{end}")
        if start != pos:
            raise LockError(f"cannot read {self.url}: the server answered another range")
        self.segments.append((start, data))
        return data[: hi - pos]

    # -- io.RawIOBase --------------------------------------------------------------
    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        self.pos = max(0, base + offset)
        return self.pos

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        n = min(len(buffer), max(0, self.length - self.pos))
        if n == 0:
            return 0
        data = self._bytes_at(self.pos, self.pos + n)
        if not data:
            raise LockError(f"cannot read {self.url}: empty range answer")
        buffer[: len(data)] = data
        self.pos += len(data)
        return len(data)


def metadata_of_zip(zf: zipfile.ZipFile, where: str) -> str:
    names = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith(".dist-info/METADATA")]
    if len(names) != 1:
        raise LockError(f"{where}: not a wheel (no single .dist-info/METADATA)")
    info = zf.getinfo(names[0])
    if info.file_size > 16 * 1024 * 1024:
        raise LockError(f"{where}: METADATA of {info.file_size} bytes is not believable")
    return zf.read(info).decode("utf-8", "replace")


def remote_metadata(session: requests.Session, url: str, *, timeout: float) -> tuple[str, int]:
    """The wheel's METADATA and how many bytes were fetched to read it."""
    import requests

    try:
        rf = RangeFile(session, url, timeout=timeout)
    except _NoRanges as no:
        # No range support: stream the file once (never held in memory whole).
        with tempfile.TemporaryFile() as tmp:
            fetched = 0
            try:
                with no.response as r:
                    for chunk in r.iter_content(1 << 20):
                        tmp.write(chunk)
                        fetched += len(chunk)
            except requests.RequestException as e:
                raise LockError(f"cannot read {url}: {type(e).__name__}") from None
            tmp.seek(0)
            try:
                with zipfile.ZipFile(tmp) as zf:
                    return metadata_of_zip(zf, url), fetched
            except zipfile.BadZipFile:
                raise LockError(f"{url}: not a zip file") from None
    try:
        with zipfile.ZipFile(io.BufferedReader(rf, buffer_size=BLOCK)) as zf:
            return metadata_of_zip(zf, url), rf.fetched
    except zipfile.BadZipFile:
        raise LockError(f"{url}: not a zip file") from None


def requires_dist_of(metadata: str) -> list[str]:
    msg = email.parser.Parser().parsestr(metadata, headersonly=True)
    return msg.get_all("Requires-Dist") or []
