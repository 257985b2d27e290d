"""HTTP from a Debian mirror: bounded, streamed, and verified before anything becomes visible."""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING

from envgraph._hashing import CHUNK
from envgraph.errors import EnvgraphError

if TYPE_CHECKING:
    import requests

__all__ = ["check_mirror", "download", "fetch_bytes"]

_TIMEOUT = (30, 300)
_ATTEMPTS = 2  # one retry for a dropped connection; HTTP errors and bad bytes are final
_MIRROR_RE = re.compile(r"^https?://[^\s/?#]+(/[^\s?#]*)?$")
_local = threading.local()


def check_mirror(mirror: str, error: type[EnvgraphError]) -> str:
    """An ``http(s)://host/path`` mirror URL without its trailing slash."""
    if not _MIRROR_RE.match(mirror):
        raise error(f"invalid Debian mirror {mirror!r}: expected http(s)://host/path")
    return mirror.rstrip("/")


def _session() -> requests.Session:
    import requests

    s: requests.Session | None = getattr(_local, "session", None)
    if s is None:
        s = _local.session = requests.Session()
    return s


def _get(url: str, what: str, error: type[EnvgraphError]) -> requests.Response:
    """A streamed 200 response; 404 raises FileNotFoundError (callers may fall back)."""
    import requests

    for attempt in range(_ATTEMPTS):
        try:
            r = _session().get(url, stream=True, timeout=_TIMEOUT)
        except (requests.ConnectionError, requests.Timeout) as err:
            if attempt + 1 < _ATTEMPTS:
                time.sleep(1)
                continue
            raise error(f"cannot download {what} from {url}: {type(err).__name__}") from None
        except requests.RequestException as err:
            raise error(f"cannot download {what} from {url}: {type(err).__name__}") from None
        if r.status_code == 404:
            r.close()
            raise FileNotFoundError(url)
        if r.status_code != 200:
            r.close()
            raise error(f"cannot download {what}: HTTP {r.status_code} from {url}")
        return r
    raise AssertionError("unreachable")


def fetch_bytes(url: str, *, limit: int, what: str, error: type[EnvgraphError]) -> bytes:
    """A small file (at most ``limit`` bytes) into memory; 404 is an error too."""
    import requests

    try:
        r = _get(url, what, error)
    except FileNotFoundError:
        raise error(f"cannot download {what}: HTTP 404 from {url}") from None
    data = bytearray()
    try:
        with r:
            for chunk in r.iter_content(CHUNK):
                data += chunk
                if len(data) > limit:
                    raise error(f"{what} from {url} is larger than {limit} bytes")
    except requests.RequestException as err:
        raise error(f"cannot download {what} from {url}: {type(err).__name__}") from None
    return bytes(data)


def download(
    url: str,
    dest: Path,
    *,
    sha256: str,
    size: int,
    what: str,
    error: type[EnvgraphError],
    mismatch: type[EnvgraphError],
) -> None:
    """Stream ``url`` into ``dest``, which appears only once its size and sha256 are the expected ones.

    Stops reading as soon as more than ``size`` bytes arrive. 404 raises FileNotFoundError.
    """
    import requests

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    try:
        h = hashlib.sha256()
        got = 0
        with os.fdopen(fd, "wb") as out:
            r = _get(url, what, error)
            try:
                with r:
                    for chunk in r.iter_content(CHUNK):
                        got += len(chunk)
                        if got > size:
                            raise mismatch(f"{what} from {url} is larger than the {size} bytes it must have")
                        h.update(chunk)
                        out.write(chunk)
            except requests.RequestException as err:
                raise error(f"cannot download {what} from {url}: {type(err).__name__}") from None
            out.flush()
            os.fsync(out.fileno())
        if got != size:
            raise mismatch(f"{what} from {url} has {got} bytes, not the {size} it must have")
        if h.hexdigest() != sha256:
            raise mismatch(f"{what} from {url}: sha256 {h.hexdigest()} is not the expected {sha256}")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
