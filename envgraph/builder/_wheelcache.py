"""Wheels fetched once into a content-addressed cache and verified against the lockfile's sha256.

A file whose hash does not match is an error naming the file; it is never used and never kept.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from envgraph._hashing import CHUNK, file_sha256
from envgraph.errors import BuildError, HashMismatchError
from envgraph.lock._model import Wheel
from envgraph.lock._resolve import cache_dir

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
        return self.root / wheel.sha256[:2] / wheel.sha256 / wheel.filename

    def fetch(self, wheel: Wheel) -> Path:
        """The verified wheel file: from the cache, the project's find-links, or downloaded."""
        if "://" not in wheel.url:
            return self._local_wheel(wheel)
        dest = self.path_for(wheel)
        if dest.exists():
            return dest  # entries only appear after verification (atomic rename)
        dest.parent.mkdir(parents=True, exist_ok=True)
        import requests

        fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                try:
                    with self._session().get(wheel.url, stream=True, timeout=(30, 300)) as r:
                        if r.status_code != 200:
                            raise BuildError(
                                f"cannot download {wheel.filename}: HTTP {r.status_code} from {wheel.url}"
                            )
                        for chunk in r.iter_content(CHUNK):
                            out.write(chunk)
                            h.update(chunk)
                except requests.RequestException as e:
                    raise BuildError(f"cannot download {wheel.filename}: {type(e).__name__}") from None
            if h.hexdigest() != wheel.sha256:
                raise HashMismatchError(
                    f"{wheel.filename}: downloaded sha256 {h.hexdigest()} does not match the lockfile's {wheel.sha256}"
                )
            os.replace(tmp, dest)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        return dest

    def _local_wheel(self, wheel: Wheel) -> Path:
        path = self.project_root / wheel.url
        if not path.is_file():
            raise BuildError(f"{wheel.filename}: not found at {wheel.url} (relative to the declaration file)")
        hexd, _ = file_sha256(path)
        if hexd != wheel.sha256:
            raise HashMismatchError(
                f"{wheel.url}: sha256 {hexd} does not match the lockfile's {wheel.sha256}"
            )
        return path
