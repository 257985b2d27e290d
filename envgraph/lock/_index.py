"""Listing the files of a project on package indexes and in find-links directories.

pip-compile says which versions to pin and which hashes are allowed, but not which file each
hash belongs to; this module gives filename -> (sha256, size, url) from the index's JSON simple
API (PEP 691, with PEP 700 sizes and upload times) or an HTML simple page, and from local
find-links directories. It also reads a release's core metadata (PEP 658) to explain resolutions.
"""

from __future__ import annotations

import html.parser
import os
import re
import threading
import urllib.parse
import zipfile
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from attrs import frozen
from packaging.utils import canonicalize_name, parse_sdist_filename, parse_wheel_filename
from packaging.version import InvalidVersion, Version

from envgraph._fs import cache_dir, cached_file_ok
from envgraph._hashing import file_sha256
from envgraph.errors import LockError
from envgraph.lock._lazywheel import metadata_of_zip, remote_metadata, requires_dist_of

if TYPE_CHECKING:
    import requests

__all__ = ["IndexFile", "PackageIndex", "local_distributions"]

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
JSON_ACCEPT = "application/vnd.pypi.simple.v1+json, text/html;q=0.1"


@frozen
class IndexFile:
    filename: str
    url: str  # absolute URL, or a path relative to the project root for find-links files
    sha256: str | None
    size: int | None
    upload_time: str | None = None
    yanked: bool = False
    metadata_url: str | None = None
    local_path: Path | None = None

    @property
    def version(self) -> Version | None:
        try:
            if self.filename.endswith(".whl"):
                return parse_wheel_filename(self.filename)[1]
            if self.is_sdist:
                return parse_sdist_filename(self.filename)[1]
        except (ValueError, InvalidVersion):
            return None
        return None

    @property
    def is_sdist(self) -> bool:
        return self.filename.endswith((".tar.gz", ".zip"))


class _Links(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.append(dict(attrs))


class PackageIndex:
    """Files per project from the configured indexes and find-links, cached for the life of the object."""

    def __init__(
        self,
        index_urls: Iterable[str],
        find_links: Iterable[Path] = (),
        *,
        root: Path | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.index_urls = [u.rstrip("/") + "/" for u in index_urls]
        self.find_links = [Path(p) for p in find_links]
        self.root = root
        self.timeout = timeout
        self._cache: dict[str, list[IndexFile]] = {}
        self._local: list[IndexFile] | None = None
        self._lock = threading.Lock()
        self._http: requests.Session | None = None
        self._requires: dict[str, list[str]] = {}
        self.metadata_bytes = 0  # fetched by range requests to read metadata the index does not serve

    @property
    def _session(self) -> requests.Session:
        # Imported and opened on first use: `lock --check` and builds never need the network.
        if self._http is None:
            import requests

            self._http = requests.Session()
            cert = os.environ.get("PIP_CERT")
            if cert and not os.environ.get("REQUESTS_CA_BUNDLE"):
                self._http.verify = cert
        return self._http

    def files(self, project: str) -> list[IndexFile]:
        name = canonicalize_name(project)
        with self._lock:
            if name not in self._cache:
                found = [f for f in self._local_files() if _project_of(f.filename) == name]
                for url in self.index_urls:
                    found.extend(self._remote_files(url, name))
                self._cache[name] = found
            return self._cache[name]

    def release_files(self, project: str, version: str) -> list[IndexFile]:
        v = Version(version)
        return [f for f in self.files(project) if f.version == v]

    def requires_dist(self, file: IndexFile) -> list[str]:
        """The ``Requires-Dist`` lines of a wheel's core metadata: the local wheel, PEP 658 metadata when the index
        serves it, the wheel cache when the file is there, else HTTP range requests into the remote wheel."""
        with self._lock:
            if file.url in self._requires:
                return self._requires[file.url]
        if file.local_path is not None:
            with zipfile.ZipFile(file.local_path) as zf:
                text = metadata_of_zip(zf, file.filename)
        elif file.metadata_url:
            text = self._get(file.metadata_url).text
        elif (cached := self._cached_wheel(file)) is not None:
            with zipfile.ZipFile(cached) as zf:
                text = metadata_of_zip(zf, file.filename)
        elif file.filename.endswith(".whl"):
            text, fetched = remote_metadata(self._session, file.url, timeout=self.timeout)
            with self._lock:
                self.metadata_bytes += fetched
        else:
            return []
        out = requires_dist_of(text)
        with self._lock:
            self._requires[file.url] = out
        return out

    @staticmethod
    def _cached_wheel(file: IndexFile) -> Path | None:
        """The wheel in envgraph's wheel cache (put there, verified, by an earlier build), if it is there."""
        sha = file.sha256
        if not sha or not _SHA256.match(sha) or not file.filename.endswith(".whl"):
            return None
        path = cache_dir() / "wheels" / sha[:2] / f"{sha}.whl"
        if not path.exists():
            return None
        # Without a size from the index the stamp still guards: a changed file is rehashed against the sha256.
        size = file.size if file.size is not None else path.stat().st_size
        return path if cached_file_ok(path, sha, size) else None

    def size_of(self, url: str) -> int:
        import requests

        try:
            r = self._session.head(url, allow_redirects=True, timeout=self.timeout)
            return int(r.headers["content-length"])
        except (requests.RequestException, KeyError, ValueError):
            raise LockError(f"cannot get the size of {url}") from None

    # -- sources -----------------------------------------------------------------
    def _local_files(self) -> list[IndexFile]:
        if self._local is None:
            out = []
            for d in self.find_links:
                if not d.is_dir():
                    raise LockError(f"find-links directory {d} does not exist")
                for p in sorted(local_distributions(d)):  # regular files only: a FIFO would hang
                    hexd, size = file_sha256(p)
                    rel = os.path.relpath(p, self.root) if self.root else str(p)
                    out.append(IndexFile(p.name, Path(rel).as_posix(), hexd, size, local_path=p.resolve()))
            self._local = out
        return self._local

    def _get(self, url: str, **headers: str) -> requests.Response:
        if url.startswith("file://"):
            raise LockError(f"file:// indexes are not supported ({url}): use find-links")
        import requests

        try:
            r = self._session.get(url, headers=headers, timeout=self.timeout)
        except requests.RequestException as e:
            raise LockError(f"cannot reach package index {url}: {type(e).__name__}") from None
        return r

    def _remote_files(self, index: str, name: str) -> list[IndexFile]:
        url = urllib.parse.urljoin(index, f"{name}/")
        r = self._get(url, Accept=JSON_ACCEPT)
        if r.status_code == 404:
            return []
        if r.status_code != 200:
            raise LockError(f"package index {url} answered HTTP {r.status_code}")
        if r.headers.get("content-type", "").startswith("application/vnd.pypi.simple.v1+json"):
            return [_from_json(f, url) for f in r.json().get("files", [])]
        parser = _Links()
        parser.feed(r.text)
        out = []
        for a in parser.links:
            href = a.get("href") or ""
            full, _, frag = urllib.parse.urljoin(url, href).partition("#")
            algo, _, hexd = frag.partition("=")
            meta = a.get("data-core-metadata") or a.get("data-dist-info-metadata")
            out.append(
                IndexFile(
                    filename=urllib.parse.unquote(full.rsplit("/", 1)[-1]),
                    url=full,
                    sha256=hexd if algo == "sha256" else None,
                    size=None,
                    yanked="data-yanked" in a,
                    metadata_url=full + ".metadata" if meta and meta != "false" else None,
                )
            )
        return out


def _from_json(f: dict[str, Any], page_url: str) -> IndexFile:
    url = urllib.parse.urljoin(page_url, f["url"])
    meta = f.get("core-metadata", f.get("dist-info-metadata"))
    return IndexFile(
        filename=f["filename"],
        url=url,
        sha256=f.get("hashes", {}).get("sha256"),
        size=f.get("size"),
        upload_time=f.get("upload-time"),
        yanked=bool(f.get("yanked")),
        metadata_url=url + ".metadata" if meta else None,
    )


def _project_of(filename: str) -> str:
    try:
        if filename.endswith(".whl"):
            return canonicalize_name(parse_wheel_filename(filename)[0])
        return canonicalize_name(parse_sdist_filename(filename)[0])
    except (ValueError, InvalidVersion):
        return ""


def local_distributions(directory: Path) -> list[Path]:
    """The wheels and sdists of a find-links directory."""
    return [p for pattern in ("*.whl", "*.tar.gz", "*.zip") for p in directory.glob(pattern) if p.is_file()]
