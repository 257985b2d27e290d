"""Wheels (and sdists) fetched once into a content-addressed cache and verified against the lockfile's sha256.

Used by builds (wheels, and the sdists and build dependencies of packages built from source) and by the
locker (an sdist is read for its ``[build-system]``). The cache path comes from the sha256 alone
(``<root>/<hex[:2]>/<hex>.whl``, or ``.tar.gz``/``.zip`` for sdists), never from a name in a lockfile.
A wheel enters the cache only after its bytes hashed to the locked sha256 (downloaded, or copied from the
project's find-links, so a local file that changes afterwards cannot change a build); beside it a stamp
records its size, mtime and inode at that moment. A cached wheel is used again only while its stamp matches;
otherwise it is rehashed, and fetched again when its bytes no longer match. A file whose hash does not match
is an error naming the file; it is never used and never kept.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING

from envgraph._fs import atomic_output, cache_dir, cached_file_ok, stamp_file
from envgraph._hashing import CHUNK, file_sha256
from envgraph.errors import BuildError, HashMismatchError
from envgraph.lock._model import Wheel

if TYPE_CHECKING:
    import requests

__all__ = ["WheelCache"]

_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
_EXTENSIONS = (".whl", ".tar.gz", ".zip")


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
        if not _SHA256_RE.match(wheel.sha256):
            raise BuildError(f"{wheel.filename}: invalid sha256 {wheel.sha256!r}")
        ext = next((e for e in _EXTENSIONS if wheel.filename.endswith(e)), ".whl")
        return self.root / wheel.sha256[:2] / f"{wheel.sha256}{ext}"

    def _cached(self, wheel: Wheel, dest: Path) -> bool:
        """Whether ``dest`` holds the wheel: its stamp matches, or it hashes right now (then restamped)."""
        return cached_file_ok(dest, wheel.sha256, wheel.size)

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
        stamp_file(dest)
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
