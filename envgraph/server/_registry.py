"""The read-only OCI distribution API over a store, as an ASGI app to mount at ``/v2``.

Endpoints (distribution spec): ``GET /v2/``, ``GET /v2/_catalog``, ``GET /v2/<name>/tags/list`` (both
with ``n``/``last`` pagination and a ``Link`` header), ``GET|HEAD /v2/<name>/manifests/<tag|digest>``,
``GET|HEAD /v2/<name>/blobs/<digest>`` (with ``Range``). Any other method is ``405 UNSUPPORTED``.
Errors are the spec's JSON (``{"errors": [{"code": ..., "message": ...}]}``). Every path parameter is
validated before it is looked up; only digests a repository's tags reach are served; manifests are
hashed before they are sent and blobs while they are sent (see ``_blobs``).
"""

from __future__ import annotations

import functools
import logging
import os
import stat
import time
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route, Router
from starlette.types import Message, Receive, Scope, Send

from envgraph._hashing import is_digest
from envgraph.errors import StoreError
from envgraph.identity import INDEX_MEDIA_TYPES, MANIFEST_MEDIA_TYPES
from envgraph.oci._store import Store
from envgraph.server._blobs import (
    BlobResponse,
    RangeNotSatisfiable,
    VerifiedBlobs,
    file_identity,
    parse_range,
)
from envgraph.server._names import is_repository, is_tag
from envgraph.server._stats import ServeStats
from envgraph.server._view import (
    BlobDamaged,
    BlobMissing,
    Repository,
    StoreView,
    document_media_type,
    read_verified,
)

__all__ = ["API_VERSION_HEADER", "RegistryApp"]

log = logging.getLogger("envgraph.server")

API_VERSION_HEADER = ("Docker-Distribution-API-Version", "registry/2.0")
_READ_METHODS = ("GET", "HEAD")
_BLOB_CACHE_CONTROL = "max-age=31536000"  # blobs are immutable: their name is their content


class ApiError(Exception):
    def __init__(
        self, status: int, code: str, message: str, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.headers = status, code, message, headers


def error_response(err: ApiError) -> Response:
    body = {"errors": [{"code": err.code, "message": err.message}]}
    return JSONResponse(body, status_code=err.status, headers=err.headers)


Handler = Callable[[Any, Request], Response]


def _api(fn: Handler) -> Handler:
    """Turn ApiError and store failures into the spec's error responses."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Request) -> Response:
        try:
            return fn(self, request)
        except ApiError as err:
            return error_response(err)
        except StoreError as err:
            log.error("%s", err)
            return error_response(ApiError(500, "UNKNOWN", str(err)))
        except OSError as err:  # an unreadable store file: say which, keep serving
            log.error("%s: %s", err.filename or "the store", err.strerror or err)
            return error_response(ApiError(500, "UNKNOWN", f"cannot read the store: {err.strerror or err}"))

    return wrapper


def _accepts(accept: list[str], media_type: str) -> bool:
    """Whether the Accept headers admit ``media_type`` (none: anything). Docker sends one header per type."""
    items = [item for header in accept for item in header.split(",") if item.strip()]
    if not items:
        return True
    for item in items:
        kind = item.split(";", 1)[0].strip().lower()
        if kind in ("*/*", "application/*", media_type.lower()):
            return True
    return False


class RegistryApp:
    """ASGI app serving a store's repositories read-only; mount it at ``/v2``. ``stats`` counts what it sent."""

    def __init__(self, store: Store, stats: ServeStats | None = None) -> None:
        self.store = store
        self.view = StoreView(store)
        self.stats = stats if stats is not None else ServeStats()
        self.verified = VerifiedBlobs()
        self.router = Router(
            routes=[
                Route("/", self.version),
                Route("/_catalog", self.catalog),
                Route("/{name:path}/tags/list", self.tags_list),
                Route("/{name:path}/manifests/{reference}", self.manifest),
                Route("/{name:path}/blobs/{digest}", self.blob),
                Route("/{rest:path}", self.unknown),
            ]
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.router(scope, receive, send)
            return
        started = time.monotonic()
        self.stats.request()
        status = 0
        sent = 0

        async def send_with_version(message: Message) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                name, value = API_VERSION_HEADER
                message["headers"] = [*message.get("headers", []), (name.lower().encode(), value.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            if scope["method"] not in _READ_METHODS:
                err = ApiError(
                    405,
                    "UNSUPPORTED",
                    f"this registry is read-only: {scope['method']} is not supported",
                    {"Allow": ", ".join(_READ_METHODS)},
                )
                await error_response(err)(scope, receive, send_with_version)
            else:
                await self.router(scope, receive, send_with_version)
        finally:
            log.debug(
                "%s %s %s %d bytes %.3fs",
                scope["method"],
                scope["path"],
                status,
                sent,
                time.monotonic() - started,
            )

    # --- lookups -------------------------------------------------------------------------------------

    def _repositories(self) -> Mapping[str, Repository]:
        return self.view.repositories()

    def _repository(self, name: str) -> Repository:
        if not is_repository(name):
            raise ApiError(400, "NAME_INVALID", f"invalid repository name {name!r}")
        repo = self._repositories().get(name)
        if repo is None:
            raise ApiError(404, "NAME_UNKNOWN", f"repository {name} is not in this store")
        return repo

    def _damaged(self, digest: str, why: str) -> ApiError:
        self.stats.damaged(digest)
        log.error("%s: not served; run `envgraph verify`", why)
        return ApiError(500, "UNKNOWN", f"{why}: run `envgraph verify` on the store")

    # --- endpoints -----------------------------------------------------------------------------------

    @_api
    def version(self, request: Request) -> Response:
        return JSONResponse({})

    @_api
    def unknown(self, request: Request) -> Response:
        raise ApiError(404, "NAME_UNKNOWN", f"no such endpoint or repository: {request.url.path}")

    @_api
    def catalog(self, request: Request) -> Response:
        names, link = _page(list(self._repositories()), request)
        return JSONResponse({"repositories": names}, headers=link)

    @_api
    def tags_list(self, request: Request) -> Response:
        repo = self._repository(request.path_params["name"])
        tags, link = _page(sorted(repo.tags), request)
        return JSONResponse({"name": repo.name, "tags": tags}, headers=link)

    @_api
    def manifest(self, request: Request) -> Response:
        reference: str = request.path_params["reference"]
        if ":" in reference:
            if not is_digest(reference):
                raise ApiError(
                    400, "DIGEST_INVALID", f"invalid digest {reference!r}: expected sha256:<64 hex>"
                )
        elif not is_tag(reference):
            raise ApiError(400, "TAG_INVALID", f"invalid tag {reference!r}")
        repo = self._repository(request.path_params["name"])
        desc = repo.manifests.get(reference) if ":" in reference else repo.tags.get(reference)
        if desc is None or desc.media_type not in (*MANIFEST_MEDIA_TYPES, *INDEX_MEDIA_TYPES):
            raise ApiError(404, "MANIFEST_UNKNOWN", f"manifest {reference} is not in repository {repo.name}")
        try:
            data = read_verified(self.store, desc)
        except BlobMissing as err:
            raise ApiError(404, "MANIFEST_UNKNOWN", f"manifest {err}") from None
        except BlobDamaged as err:
            raise self._damaged(desc.digest, f"manifest {err}") from None
        media_type = document_media_type(data, desc)
        if not _accepts(request.headers.getlist("accept"), media_type):
            raise ApiError(
                404,
                "MANIFEST_UNKNOWN",
                f"manifest {reference} is {media_type}, which the request does not accept",
            )
        headers = {
            "Docker-Content-Digest": desc.digest,
            "ETag": f'"{desc.digest}"',
            "Content-Length": str(len(data)),
        }
        if request.method == "HEAD":
            return Response(b"", headers=headers, media_type=media_type)
        self.stats.manifest_sent(desc.digest)
        return Response(data, headers=headers, media_type=media_type)

    @_api
    def blob(self, request: Request) -> Response:
        digest: str = request.path_params["digest"]
        if not is_digest(digest):
            raise ApiError(400, "DIGEST_INVALID", f"invalid digest {digest!r}: expected sha256:<64 hex>")
        repo = self._repository(request.path_params["name"])
        desc = repo.blobs.get(digest)
        if desc is None:
            raise ApiError(404, "BLOB_UNKNOWN", f"blob {digest} is not in repository {repo.name}")
        # Not store.open_blob: it rehashes a blob whose stamp is stale before we stream it, and streaming
        # hashes every byte anyway (BlobResponse cuts a damaged blob off), so the file would be read twice.
        path = self.store.blob_path(digest)  # a validated digest: the path stays in blobs/sha256
        try:
            f = open(path, "rb")  # noqa: SIM115 - closed below or by BlobResponse
        except FileNotFoundError:
            raise ApiError(404, "BLOB_UNKNOWN", f"blob {digest} is missing from the store") from None
        try:
            response = self._blob_response(request, f, digest, desc.size)
        except BaseException:
            f.close()
            raise
        if not isinstance(response, BlobResponse):
            f.close()
        return response

    def _blob_response(self, request: Request, f: BinaryIO, digest: str, size: int) -> Response:
        st = os.fstat(f.fileno())  # the file we read, even if its name is replaced meanwhile
        if not stat.S_ISREG(st.st_mode) or st.st_size != size:
            why = f"blob {digest} is damaged in the store: {st.st_size} bytes, its descriptor says {size}"
            raise self._damaged(digest, why)
        headers = {
            "Docker-Content-Digest": digest,
            "ETag": f'"{digest}"',
            "Accept-Ranges": "bytes",
            "Cache-Control": _BLOB_CACHE_CONTROL,
        }
        if request.method == "HEAD":
            headers["Content-Length"] = str(st.st_size)
            return Response(b"", headers=headers, media_type="application/octet-stream")
        try:
            byte_range = parse_range(request.headers.get("range"), st.st_size)
        except RangeNotSatisfiable:
            raise ApiError(
                416,
                "RANGE_INVALID",
                f"blob {digest} has {st.st_size} bytes: the requested range is outside it",
                {"Content-Range": f"bytes */{st.st_size}"},
            ) from None
        if byte_range is None:
            headers["Content-Length"] = str(st.st_size)
        else:
            first, last = byte_range
            headers["Content-Length"] = str(last - first + 1)
            headers["Content-Range"] = f"bytes {first}-{last}/{st.st_size}"
        return BlobResponse(
            f,
            digest,
            file_identity(st),
            byte_range,
            headers=headers,
            verified=self.verified,
            stats=self.stats,
        )


def _page(items: list[str], request: Request) -> tuple[list[str], dict[str, str] | None]:
    """``n``/``last`` pagination of sorted ``items``; a ``Link`` header when more follow."""
    n_arg = request.query_params.get("n")
    last = request.query_params.get("last")
    n: int | None = None
    if n_arg is not None:
        if not n_arg.isdigit() or len(n_arg) > 9:
            raise ApiError(400, "PAGINATION_NUMBER_INVALID", f"invalid number of results {n_arg!r}")
        n = int(n_arg)
    if last is not None:
        items = [i for i in items if i > last]
    if n is None or len(items) <= n:
        return items, None
    page = items[:n]
    if not page:
        return page, None
    query = urlencode({"last": page[-1], "n": n})
    return page, {"Link": f'<{request.url.path}?{query}>; rel="next"'}
