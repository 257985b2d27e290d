"""Registry client over the OCI distribution API: blobs, uploads, mounts, manifests, tags.

Library decision: a small ``requests`` client written here, not ``oras`` (oras-py 0.2.43, the current release when this was written).
oras-py has token and Basic auth and reads ``credHelpers``/``credsStore`` from the Docker config, but:
its monolithic upload does ``fd.read()`` (the whole blob in memory), it uploads from file paths rather
than streams, it has no cross-repo mount, ``download_blob`` does not verify digests, it works on
whole artifacts (push/pull) rather than on single blobs and descriptors, and it pulls in ``jsonschema``.
What envgraph needs is ~10 endpoints; owning them keeps streaming, verification, retries, counters and
one-line errors under our control. Credentials and the Bearer/Basic challenge live in
:mod:`envgraph.registry._auth`.

Everything here works on bytes, streams and digests; nothing depends on the store or image models.

Thread safety: one :class:`RegistryClient` may be shared by the workers of a ``ThreadPoolExecutor``;
each thread gets its own ``requests.Session``, the token cache is behind a lock, counters are locked.

Retries: idempotent requests (HEAD, GET, manifest PUT) are retried on connection errors, 429 and 5xx
with a short backoff; a blob upload is retried as a whole (a new session, ``stream_factory`` called
again). All failures the user can act on are one-line :class:`~envgraph.errors.RegistryError`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, suppress
from typing import IO, Any, Literal, cast
from urllib.parse import parse_qsl, urlencode, urljoin, urlsplit, urlunsplit

import requests

from envgraph._hashing import CHUNK, is_digest, sha256_digest, stream_sha256
from envgraph.errors import RegistryError
from envgraph.identity import MANIFEST_ACCEPT
from envgraph.registry._auth import Authenticator, AuthFailed, Credentials, repository_scope
from envgraph.registry._reference import DOCKER_HUB, DOCKER_HUB_API, TAG_RE
from envgraph.registry._stats import RegistryStats

__all__ = ["PushOutcome", "RegistryClient"]

MAX_MANIFEST_BYTES = 4 << 20  # the OCI distribution spec's minimum a registry must accept
DEFAULT_TIMEOUT = (10.0, 120.0)  # connect, read
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})

PushOutcome = Literal["skipped", "mounted", "uploaded"]


def _check_digest(digest: str) -> str:
    if not is_digest(digest):
        raise RegistryError(f"not a sha256 digest: {digest!r}")
    return digest


class _Transient(RegistryError):
    """A failure worth retrying (connection trouble, 429, 5xx)."""


class _Body:
    """Exactly ``size`` bytes of ``stream`` as a request body, read in chunks; never all in memory."""

    def __init__(self, stream: IO[bytes], size: int, what: str) -> None:
        self._stream = stream
        self._size = size
        self._what = what

    def __len__(self) -> int:
        return self._size

    def __iter__(self) -> Iterator[bytes]:
        left = self._size
        while left > 0:
            chunk = self._stream.read(min(CHUNK, left))
            if not chunk:
                raise RegistryError(f"{self._what}: the stream ended {left} bytes before the declared size")
            left -= len(chunk)
            yield chunk


class _TeeReader:
    """Feeds response chunks to the one hasher while writing them to ``sink``."""

    def __init__(self, chunks: Iterator[bytes], sink: IO[bytes]) -> None:
        self._chunks = chunks
        self._sink = sink

    def read(self, _n: int = -1) -> bytes:
        chunk = next(self._chunks, b"")
        if chunk:
            self._sink.write(chunk)
        return chunk


def _error_detail(resp: requests.Response) -> str:
    """The registry's JSON error body as ``CODE: message (detail)``; else the first line of the text."""
    try:
        text = resp.text
    except Exception:  # a broken body must not hide the status
        return ""
    try:
        errors = json.loads(text).get("errors")
    except (ValueError, AttributeError):
        errors = None
    if isinstance(errors, list) and errors:
        parts = []
        for err in errors:
            if not isinstance(err, dict):
                continue
            part = ": ".join(str(err[k]) for k in ("code", "message") if err.get(k))
            detail = err.get("detail")
            if detail:
                detail_text = detail if isinstance(detail, str) else json.dumps(detail, sort_keys=True)
                part += f" ({detail_text[:200]})"
            parts.append(part)
        return "; ".join(parts)
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line[:200]


def _connection_reason(exc: BaseException) -> str:
    text = str(exc)
    if isinstance(exc, requests.exceptions.SSLError):
        return "TLS handshake failed (for a plain-HTTP registry pass --insecure)"
    for needle, reason in (
        ("Connection refused", "connection refused"),
        ("Name or service not known", "host name not found"),
        ("Temporary failure in name resolution", "host name not found"),
        ("nodename nor servname", "host name not found"),
        ("No address associated", "host name not found"),
        ("Connection reset", "connection reset"),
        ("RemoteDisconnected", "connection closed by the registry"),
        ("Connection aborted", "connection closed by the registry"),
        ("No route to host", "no route to host"),
        ("Network is unreachable", "network is unreachable"),
    ):
        if needle in text:
            return reason
    if isinstance(exc, requests.exceptions.Timeout):
        return "timed out"
    return type(exc).__name__


def _with_query(url: str, **params: str) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def _ref_str(repo: str, ref: str) -> str:
    return f"{repo}@{ref}" if is_digest(ref) else f"{repo}:{ref}"


class RegistryClient:
    """A client for one registry host. ``insecure`` means plain HTTP (meant for localhost registries)."""

    def __init__(
        self,
        host: str,
        *,
        insecure: bool = False,
        auth: Credentials | None = None,
        timeout: tuple[float, float] = DEFAULT_TIMEOUT,
        retries: int = 3,
        backoff: float = 0.2,
        chunk_size: int | None = None,
    ) -> None:
        self.host = host
        api_host = DOCKER_HUB_API if host == DOCKER_HUB else host
        self.base_url = f"{'http' if insecure else 'https'}://{api_host}"
        self.insecure = insecure
        self.timeout = timeout
        self.retries = max(1, retries)
        self.backoff = backoff
        self.chunk_size = chunk_size
        self.stats = RegistryStats()
        self._auth = Authenticator(host, auth)
        self._local = threading.local()
        self._sessions: list[requests.Session] = []
        self._sessions_lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryClient({self.base_url!r})"

    # --- plumbing ---------------------------------------------------------------------------------

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers["User-Agent"] = "envgraph"
            with self._sessions_lock:
                self._sessions.append(session)
            self._local.session = session
        return session

    def close(self) -> None:
        with self._sessions_lock:
            sessions, self._sessions = self._sessions, []
        for session in sessions:
            session.close()
        self._local = threading.local()

    def __enter__(self) -> RegistryClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _url(self, repo: str, *parts: str) -> str:
        return f"{self.base_url}/v2/{repo}/" + "/".join(parts)

    def _sleep(self, attempt: int) -> None:
        time.sleep(self.backoff * (2**attempt))

    def _send(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """One request, answering at most one auth challenge. Connection trouble raises :class:`_Transient`."""
        session = self._session()
        answered_challenge = False
        while True:
            hdrs = dict(headers or {})
            auth_header = self._auth.header(scopes, session, self.timeout[0])
            if auth_header:
                hdrs["Authorization"] = auth_header
            data = body() if callable(body) else body
            try:
                resp = session.request(
                    method, url, headers=hdrs, data=data, stream=stream, timeout=self.timeout
                )
            except (requests.ConnectionError, requests.Timeout) as e:
                raise _Transient(f"registry {self.host} is not reachable: {_connection_reason(e)}") from None
            except requests.RequestException as e:
                raise RegistryError(f"{what} on {self.host} failed: {_connection_reason(e)}") from None
            self.stats.add(requests=1)
            if resp.status_code != 401:
                return resp
            challenge = resp.headers.get("WWW-Authenticate", "")
            resp.close()
            if not answered_challenge and self._auth.on_unauthorized(challenge, scopes):
                if isinstance(data, _Body):
                    # A streamed body cannot be sent again: restart the whole upload with a fresh token.
                    raise _Transient(f"{what}: registry {self.host} asked to authenticate again")
                answered_challenge = True
                continue
            raise AuthFailed(
                f"authentication to {self.host} failed for {what}: {self._auth.describe_credentials()}"
            )

    def _request(
        self,
        method: str,
        url: str,
        *,
        scopes: tuple[str, ...],
        what: str,
        headers: dict[str, str] | None = None,
        body: Callable[[], Any] | bytes | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """An idempotent request, retried on connection errors, 429 and 5xx."""
        for attempt in range(self.retries):
            last = attempt + 1 == self.retries
            try:
                resp = self._send(
                    method, url, scopes=scopes, what=what, headers=headers, body=body, stream=stream
                )
            except _Transient:
                if last:
                    raise
                self._sleep(attempt)
                continue
            if resp.status_code in RETRY_STATUSES and not last:
                resp.close()
                self._sleep(attempt)
                continue
            return resp
        raise AssertionError("unreachable")

    def _retrying(self, fn: Callable[[], Any], what: str) -> Any:
        """Run a non-idempotent sequence again from the start on transient failures."""
        for attempt in range(self.retries):
            try:
                return fn()
            except _Transient:
                if attempt + 1 == self.retries:
                    raise
                self._sleep(attempt)
        raise AssertionError("unreachable")

    def _fail(self, resp: requests.Response, what: str) -> RegistryError:
        detail = _error_detail(resp)
        status = resp.status_code
        if status == 403:
            msg = f"access denied by {self.host} for {what} (403)"
        else:
            msg = f"{what} failed: registry {self.host} answered {status}"
        if detail:
            msg += f": {detail}"
        cls = _Transient if status in RETRY_STATUSES else RegistryError
        return cls(msg)

    @staticmethod
    def _pull(repo: str) -> tuple[str, ...]:
        return (repository_scope(repo, ["pull"]),)

    @staticmethod
    def _push(repo: str) -> tuple[str, ...]:
        return (repository_scope(repo, ["pull", "push"]),)

    # --- API ----------------------------------------------------------------------------------------

    def ping(self) -> None:
        """``GET /v2/``: raises a one-line error when the registry is unreachable or refuses us."""
        resp = self._request("GET", f"{self.base_url}/v2/", scopes=(), what="GET /v2/")
        resp.close()
        if resp.status_code != 200:
            raise self._fail(resp, "GET /v2/")

    def blob_exists(self, repo: str, digest: str) -> bool:
        """``HEAD`` the blob: True on 200, False on 404."""
        _check_digest(digest)
        what = f"HEAD blob {digest} in {repo}"
        resp = self._request("HEAD", self._url(repo, "blobs", digest), scopes=self._pull(repo), what=what)
        resp.close()
        if resp.status_code == 200:
            return True
        if resp.status_code == 404:
            return False
        raise self._fail(resp, what)

    def get_blob(self, repo: str, digest: str, dest: IO[bytes]) -> int:
        """Stream the blob into ``dest`` and verify its digest; returns its size.

        On a digest mismatch this raises and, when ``dest`` is seekable, truncates it back to where it
        started; callers should still pass a temporary file and rename it only on success.
        """
        _check_digest(digest)
        what = f"download of blob {digest} from {repo}"
        seekable = dest.seekable()
        start = dest.tell() if seekable else 0

        def rewind() -> None:
            if seekable:
                dest.seek(start)
                dest.truncate()

        for attempt in range(self.retries):
            resp = self._request(
                "GET", self._url(repo, "blobs", digest), scopes=self._pull(repo), what=what, stream=True
            )
            try:
                if resp.status_code == 404:
                    raise RegistryError(f"blob {digest} not found in {self.host}/{repo}")
                if resp.status_code != 200:
                    raise self._fail(resp, what)
                try:
                    hexd, size = stream_sha256(cast(IO[bytes], _TeeReader(resp.iter_content(CHUNK), dest)))
                except requests.RequestException as e:
                    rewind()
                    if seekable and attempt + 1 < self.retries:
                        self._sleep(attempt)
                        continue
                    raise RegistryError(f"{what} on {self.host} broke off: {_connection_reason(e)}") from None
            finally:
                resp.close()
            if "sha256:" + hexd != digest:
                rewind()
                raise RegistryError(
                    f"blob {digest} from {self.host}/{repo} failed verification: its bytes hash to "
                    f"sha256:{hexd} ({size} bytes); nothing was kept"
                )
            self.stats.add(bytes_downloaded=size)
            return size
        raise AssertionError("unreachable")

    def _start_upload(self, repo: str, digest: str | None = None, from_repo: str | None = None) -> str | None:
        """POST an upload session (optionally a cross-repo mount); None when mounted, else the session URL."""
        url = self._url(repo, "blobs", "uploads") + "/"
        scopes = self._push(repo)
        what = f"starting an upload to {repo}"
        if digest and from_repo:
            url = _with_query(url, mount=digest, **{"from": from_repo})
            scopes += self._pull(from_repo)
            what = f"mounting blob {digest} from {from_repo} into {repo}"
        resp = self._send("POST", url, scopes=scopes, what=what)
        resp.close()
        if resp.status_code == 201 and digest and from_repo:
            return None
        if resp.status_code != 202:
            raise self._fail(resp, what)
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError(f"{what}: registry {self.host} sent no upload Location")
        return urljoin(resp.url, location)

    def _next_location(self, resp: requests.Response, current: str) -> str:
        location = resp.headers.get("Location")
        return urljoin(resp.url, location) if location else current

    def _finish_upload(
        self,
        repo: str,
        digest: str,
        size: int,
        stream_factory: Callable[[], AbstractContextManager[IO[bytes]] | IO[bytes]],
        location: str,
        chunk_size: int | None,
    ) -> None:
        what = f"upload of blob {digest} to {repo}"
        scopes = self._push(repo)
        octet = {"Content-Type": "application/octet-stream"}
        opened = stream_factory()
        stream_cm = opened if isinstance(opened, AbstractContextManager) else _closing(opened)
        with stream_cm as stream:
            if chunk_size is None or chunk_size <= 0 or chunk_size >= size:
                body: bytes | _Body = _Body(stream, size, what) if size else b""
                resp = self._send(
                    "PUT",
                    _with_query(location, digest=digest),
                    scopes=scopes,
                    what=what,
                    headers={**octet, "Content-Length": str(size)},
                    body=cast(bytes, body),
                )
            else:
                offset = 0
                while offset < size:
                    n = min(chunk_size, size - offset)
                    resp = self._send(
                        "PATCH",
                        location,
                        scopes=scopes,
                        what=what,
                        headers={
                            **octet,
                            "Content-Length": str(n),
                            "Content-Range": f"{offset}-{offset + n - 1}",
                        },
                        body=cast(bytes, _Body(stream, n, what)),
                    )
                    resp.close()
                    if resp.status_code != 202:
                        raise self._fail(resp, what)
                    location = self._next_location(resp, location)
                    offset += n
                resp = self._send(
                    "PUT",
                    _with_query(location, digest=digest),
                    scopes=scopes,
                    what=what,
                    headers={**octet, "Content-Length": "0"},
                    body=b"",
                )
        resp.close()
        if resp.status_code != 201:
            raise self._fail(resp, what)
        self.stats.add(blobs_uploaded=1, bytes_uploaded=size)

    def upload_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        stream_factory: Callable[[], AbstractContextManager[IO[bytes]] | IO[bytes]],
        chunk_size: int | None = None,
    ) -> None:
        """Upload ``size`` bytes from ``stream_factory()`` as blob ``digest``; the registry verifies the digest.

        Monolithic (POST, then PUT with the body) unless ``chunk_size`` (or the client's) is smaller than
        the blob: then PATCH chunks with ``Content-Range`` and a final ``PUT ?digest=``. The stream is read
        in chunks, never whole. On transient failure the whole upload starts again with a fresh stream.
        """
        _check_digest(digest)
        chunk = chunk_size if chunk_size is not None else self.chunk_size

        def attempt() -> None:
            location = self._start_upload(repo)
            assert location is not None
            self._finish_upload(repo, digest, size, stream_factory, location, chunk)

        self._retrying(attempt, f"upload of blob {digest}")

    def mount_blob(self, repo: str, digest: str, from_repo: str) -> bool:
        """Cross-repo mount: True when mounted (201); False when the registry opened an upload instead (202),
        which is then cancelled."""
        _check_digest(digest)
        location = self._retrying(lambda: self._start_upload(repo, digest, from_repo), "mount")
        if location is None:
            self.stats.add(blobs_mounted=1)
            return True
        self._cancel_upload(repo, location)
        return False

    def _cancel_upload(self, repo: str, location: str) -> None:
        with suppress(RegistryError):  # the registry purges abandoned uploads itself
            self._send("DELETE", location, scopes=self._push(repo), what="cancelling an upload").close()

    def push_blob(
        self,
        repo: str,
        digest: str,
        size: int,
        stream_factory: Callable[[], AbstractContextManager[IO[bytes]] | IO[bytes]],
        *,
        mount_from: str | None = None,
        chunk_size: int | None = None,
    ) -> PushOutcome:
        """Make the blob present in ``repo`` the cheapest way: skip when there, else mount, else upload."""
        _check_digest(digest)
        if self.blob_exists(repo, digest):
            self.stats.add(blobs_skipped=1)
            return "skipped"
        chunk = chunk_size if chunk_size is not None else self.chunk_size
        if mount_from and mount_from != repo:
            location = self._retrying(lambda: self._start_upload(repo, digest, mount_from), "mount")
            if location is None:
                self.stats.add(blobs_mounted=1)
                return "mounted"
            # The registry fell back to an upload session: use it for the first attempt.
            try:
                self._finish_upload(repo, digest, size, stream_factory, location, chunk)
                return "uploaded"
            except _Transient:
                pass
        self.upload_blob(repo, digest, size, stream_factory, chunk_size=chunk)
        return "uploaded"

    def put_manifest(self, repo: str, ref: str, body: bytes, media_type: str) -> str:
        """PUT a manifest under a tag or its digest; returns its digest."""
        return self.put_manifest_subject(repo, ref, body, media_type)[0]

    def put_manifest_subject(
        self, repo: str, ref: str, body: bytes, media_type: str
    ) -> tuple[str, str | None]:
        """PUT a manifest; returns its digest and the registry's ``OCI-Subject`` header (set by registries with
        the referrers API when the manifest has a subject)."""
        digest = sha256_digest(body)
        if is_digest(ref) and ref != digest:
            raise RegistryError(f"manifest for {repo} hashes to {digest}, not to the reference {ref}")
        if not is_digest(ref) and not TAG_RE.match(ref):
            raise RegistryError(f"invalid tag {ref!r}")
        name = _ref_str(repo, ref)
        what = f"pushing manifest {name}"
        resp = self._request(
            "PUT",
            self._url(repo, "manifests", ref),
            scopes=self._push(repo),
            what=what,
            headers={"Content-Type": media_type},
            body=body,
        )
        resp.close()
        if resp.status_code in (400, 404, 409, 413, 415):
            detail = _error_detail(resp) or f"status {resp.status_code}"
            raise RegistryError(f"registry {self.host} rejected manifest {name}: {detail}")
        if resp.status_code not in (200, 201, 202):
            raise self._fail(resp, what)
        echoed = resp.headers.get("Docker-Content-Digest")
        if echoed and echoed.startswith("sha256:") and echoed != digest:
            raise RegistryError(f"registry {self.host} stored manifest {name} as {echoed}, expected {digest}")
        return digest, resp.headers.get("OCI-Subject")

    def get_referrers(self, repo: str, digest: str) -> bytes | None:
        """The referrers API's image index for ``digest``; None when the registry has no referrers API (404)."""
        _check_digest(digest)
        what = f"listing referrers of {repo}@{digest}"
        resp = self._request(
            "GET", self._url(repo, "referrers", digest), scopes=self._pull(repo), what=what, stream=True
        )
        try:
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._fail(resp, what)
            body = b""
            for chunk in resp.iter_content(CHUNK):
                body += chunk
                if len(body) > MAX_MANIFEST_BYTES:
                    raise RegistryError(f"the referrers of {repo}@{digest} on {self.host} exceed 4 MiB")
            return body
        except requests.RequestException as e:
            raise RegistryError(f"{what} from {self.host} broke off: {_connection_reason(e)}") from None
        finally:
            resp.close()

    def _manifest_headers(self, accept: list[str] | tuple[str, ...] | None) -> dict[str, str]:
        return {"Accept": ", ".join(accept or MANIFEST_ACCEPT)}

    def get_manifest(
        self, repo: str, ref: str, accept: list[str] | tuple[str, ...] | None = None
    ) -> tuple[bytes, str, str]:
        """GET a manifest by tag or digest: (bytes, media type, digest). Fetched by digest, it is verified."""
        name = _ref_str(repo, ref)
        what = f"fetching manifest {name}"
        resp = self._request(
            "GET",
            self._url(repo, "manifests", ref),
            scopes=self._pull(repo),
            what=what,
            headers=self._manifest_headers(accept),
            stream=True,
        )
        try:
            if resp.status_code == 404:
                raise RegistryError(f"manifest {name} not found on {self.host}")
            if resp.status_code != 200:
                raise self._fail(resp, what)
            body = b""
            try:
                for chunk in resp.iter_content(CHUNK):
                    body += chunk
                    if len(body) > MAX_MANIFEST_BYTES:
                        raise RegistryError(f"manifest {name} on {self.host} is larger than 4 MiB")
            except requests.RequestException as e:
                raise RegistryError(f"{what} from {self.host} broke off: {_connection_reason(e)}") from None
            content_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
            echoed = resp.headers.get("Docker-Content-Digest")
        finally:
            resp.close()
        digest = sha256_digest(body)
        expected = ref if is_digest(ref) else (echoed if echoed and echoed.startswith("sha256:") else None)
        if expected and expected != digest:
            raise RegistryError(
                f"manifest {name} from {self.host} failed verification: its bytes hash to {digest}"
            )
        media_type = content_type
        if not media_type or media_type in ("application/json", "application/octet-stream", "text/plain"):
            with suppress(ValueError, AttributeError):
                media_type = str(json.loads(body).get("mediaType") or media_type)
        return body, media_type, digest

    def manifest_exists(
        self, repo: str, ref: str, accept: list[str] | tuple[str, ...] | None = None
    ) -> str | None:
        """HEAD a manifest: its digest when present, None on 404."""
        name = _ref_str(repo, ref)
        what = f"HEAD manifest {name}"
        resp = self._request(
            "HEAD",
            self._url(repo, "manifests", ref),
            scopes=self._pull(repo),
            what=what,
            headers=self._manifest_headers(accept),
        )
        resp.close()
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise self._fail(resp, what)
        echoed = resp.headers.get("Docker-Content-Digest")
        if is_digest(ref):
            return ref
        if echoed and is_digest(echoed):
            return echoed
        return self.get_manifest(repo, ref, accept)[2]

    def list_tags(self, repo: str, page_size: int = 1000) -> list[str]:
        """All tags of ``repo`` (following ``Link`` pagination); empty when the repository does not exist."""
        what = f"listing tags of {repo}"
        url: str | None = _with_query(self._url(repo, "tags", "list"), n=str(page_size))
        tags: list[str] = []
        while url:
            resp = self._request("GET", url, scopes=self._pull(repo), what=what)
            if resp.status_code == 404:
                resp.close()
                return tags
            if resp.status_code != 200:
                resp.close()
                raise self._fail(resp, what)
            try:
                tags.extend(resp.json().get("tags") or [])
            except (ValueError, AttributeError):
                raise RegistryError(
                    f"{what}: registry {self.host} sent something that is not a tag list"
                ) from None
            next_link = resp.links.get("next", {}).get("url")
            url = urljoin(resp.url, next_link) if next_link else None
            resp.close()
        return tags


class _closing(AbstractContextManager[IO[bytes]]):
    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def __enter__(self) -> IO[bytes]:
        return self._stream

    def __exit__(self, *exc: object) -> None:
        self._stream.close()
