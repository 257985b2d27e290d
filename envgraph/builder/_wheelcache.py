"""Wheels fetched once into a content-addressed cache and verified against the lockfile's sha256.

The cache path comes from the sha256 alone (``<root>/<hex[:2]>/<hex>.whl``), never from a name in a lockfile.
A wheel enters the cache only after its bytes hashed to the locked sha256 (downloaded, or copied from the
project's find-links, so a local file that changes afterwards cannot change a build); beside it a stamp
records its size, mtime and inode at that moment. A cached wheel is used again only while its stamp matches;
otherwise it is rehashed, and fetched again when its bytes no longer match. A file whose hash does not match
is an error naming the file; it is never used and never kept.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from envgraph._fs import atomic_output, atomic_write, cache_dir
from envgraph._hashing import CHUNK, file_sha256
from envgraph.errors import BuildError, HashMismatchError
from envgraph.lock._model import Wheel

if TYPE_CHECKING:
    import requests

__all__ = ["WheelCache"]


class WheelCache:
    def __init__(self, project_root: Path, root: Path | None = None) -> None:
        self.project_root = project_root
        self.root = root or cache_dir() / "wheels"
        self._local = threading.local()

    def _session(self) -> requests.Session:
        import requests

        s = getattr(self._local, "session", None)
        if s is None:
            s = self._local.session = requests.Session()
            cert = os.environ.get("PIP_CERT")
            if cert and not os.environ.get("REQUESTS_CA_BUNDLE"):
                s.verify = cert
        return s

    def path_for(self, wheel: Wheel) -> Path:
        return self.root / wheel.sha256[:2] / f"{wheel.sha256}.whl"

    @staticmethod
    def _stamp_of(path: Path) -> bytes:
        st = path.stat()
        return f"{st.st_size} {st.st_mtime_ns} {st.st_ino}\n".encode()

    def _cached(self, wheel: Wheel, dest: Path) -> bool:
        """Whether ``dest`` holds the wheel: its stamp matches, or it hashes right now (then restamped)."""
        stamp = dest.with_suffix(".stamp")
        try:
            current = self._stamp_of(dest)
        except FileNotFoundError:
            return False
        try:
            if stamp.read_bytes() == current:
                return True
        except OSError:
            pass
        hexd, size = file_sha256(dest)
        if hexd != wheel.sha256 or size != wheel.size:
            dest.unlink(missing_ok=True)  # damaged since it was verified: fetch it again
            return False
        atomic_write(stamp, current)
        return True

    def fetch(self, wheel: Wheel) -> Path:
        """The verified wheel file in the cache: already there, copied from the project's find-links, or downloaded.

        A find-links wheel is the project's own file: it is checked against the lockfile at every build (a
        rebuilt wheel with other bytes is an error that names it, not silently replaced by an older copy)."""
        dest = self.path_for(wheel)
        if "://" not in wheel.url and dest.exists():
            self._check_local(wheel)
        if self._cached(wheel, dest):
            return dest
        dest.parent.mkdir(parents=True, exist_ok=True)
        with self._verified_output(wheel, dest) as out:
            if "://" not in wheel.url:
                self._copy_local(wheel, out)
            else:
                self._download(wheel, out)
        atomic_write(dest.with_suffix(".stamp"), self._stamp_of(dest))
        return dest

    @contextmanager
    def _verified_output(self, wheel: Wheel, dest: Path) -> Iterator[_HashingWriter]:
        """Bytes written here become ``dest`` only when they hash to the lockfile's sha256 and size."""
        with atomic_output(dest, mode=0o444) as f:
            hasher = _HashingWriter(f)
            yield hasher
            if hasher.hash.hexdigest() != wheel.sha256:
                source = wheel.url if "://" not in wheel.url else f"{wheel.filename} (from {wheel.url})"
                raise HashMismatchError(
                    f"{source}: sha256 {hasher.hash.hexdigest()} does not match the lockfile's {wheel.sha256}"
                )
            if hasher.size != wheel.size:
                raise HashMismatchError(
                    f"{wheel.filename}: {hasher.size} bytes, the lockfile says {wheel.size} (from {wheel.url})"
                )

    def _check_local(self, wheel: Wheel) -> None:
        path = self.project_root / wheel.url
        try:
            hexd, size = file_sha256(path)
        except FileNotFoundError:
            raise BuildError(
                f"{wheel.filename}: not found at {wheel.url} (relative to the declaration file)"
            ) from None
        except OSError as e:
            raise BuildError(f"{wheel.filename}: cannot read {wheel.url}: {e.strerror}") from None
        if hexd != wheel.sha256:
            raise HashMismatchError(
                f"{wheel.url}: sha256 {hexd} does not match the lockfile's {wheel.sha256}"
            )

    def _copy_local(self, wheel: Wheel, out: _HashingWriter) -> None:
        path = self.project_root / wheel.url
        try:
            with open(path, "rb") as f:
                while chunk := f.read(CHUNK):
                    out.write(chunk)
        except FileNotFoundError:
            raise BuildError(
                f"{wheel.filename}: not found at {wheel.url} (relative to the declaration file)"
            ) from None
        except OSError as e:
            raise BuildError(f"{wheel.filename}: cannot read {wheel.url}: {e.strerror}") from None

    def _download(self, wheel: Wheel, out: _HashingWriter) -> None:
        import requests

        try:
            with self._session().get(wheel.url, stream=True, timeout=(30, 300)) as r:
                if r.status_code != 200:
                    raise BuildError(
                        f"cannot download {wheel.filename}: HTTP {r.status_code} from {wheel.url}"
                    )
                for chunk in r.iter_content(CHUNK):
                    out.write(chunk)
        except requests.RequestException as e:
            raise BuildError(f"cannot download {wheel.filename}: {type(e).__name__}") from None


class _HashingWriter:
    def __init__(self, out: IO[bytes]) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        return self._out.write(data)
