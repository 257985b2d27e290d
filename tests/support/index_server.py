"""A local package index over a directory of wheels: PEP 503 HTML pages with sha256 fragments and no PEP 658
metadata (like the proxy on the CI machines), files served with HTTP range support; it counts what it sent."""

from __future__ import annotations

import html
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from packaging.utils import canonicalize_name, parse_wheel_filename

from envgraph._hashing import file_sha256

__all__ = ["IndexServer", "index_server"]

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class IndexServer:
    def __init__(self, directory: Path, *, ranges: bool = True) -> None:
        self.directory = directory
        self.ranges = ranges
        self.file_bytes: dict[str, int] = {}  # bytes of each file sent
        self.range_requests = 0
        self.lock = threading.Lock()
        self.url = ""

    def page(self, project: str) -> str | None:
        links = []
        for p in sorted(self.directory.glob("*.whl")):
            if canonicalize_name(parse_wheel_filename(p.name)[0]) != project:
                continue
            sha, _ = file_sha256(p)
            links.append(
                f'<a href="../../files/{html.escape(p.name)}#sha256={sha}">{html.escape(p.name)}</a>'
            )
        if not links:
            return None
        return "<!DOCTYPE html><html><body>\n" + "\n".join(links) + "\n</body></html>\n"


def _handler(server: IndexServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            pass

        def _send(self, status: int, body: bytes, ctype: str, extra: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for k, v in (extra or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def do_HEAD(self) -> None:  # noqa: N802
            self.do_GET()

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?", 1)[0]
            m = re.match(r"^/simple/([^/]+)/?$", path)
            if m:
                page = server.page(str(canonicalize_name(m.group(1))))
                if page is None:
                    self._send(404, b"not found", "text/plain")
                else:
                    self._send(200, page.encode(), "text/html")
                return
            m = re.match(r"^/files/([^/]+)$", path)
            f = server.directory / m.group(1) if m else None
            if f is None or not f.is_file():
                self._send(404, b"not found", "text/plain")
                return
            data = f.read_bytes()
            rng = _RANGE.match(self.headers.get("Range", "")) if server.ranges else None
            if rng and (rng.group(1) or rng.group(2)):
                if rng.group(1):
                    start = int(rng.group(1))
                    end = min(int(rng.group(2)), len(data) - 1) if rng.group(2) else len(data) - 1
                else:
                    start, end = max(0, len(data) - int(rng.group(2))), len(data) - 1
                body = data[start : end + 1]
                with server.lock:
                    server.range_requests += 1
                    server.file_bytes[f.name] = server.file_bytes.get(f.name, 0) + len(body)
                self._send(
                    206,
                    body,
                    "application/octet-stream",
                    {"Content-Range": f"bytes {start}-{end}/{len(data)}"},
                )
                return
            if self.command != "HEAD":
                with server.lock:
                    server.file_bytes[f.name] = server.file_bytes.get(f.name, 0) + len(data)
            extra = {"Accept-Ranges": "bytes"} if server.ranges else {}
            self._send(200, data, "application/octet-stream", extra)

    return Handler


@contextmanager
def index_server(directory: Path, *, ranges: bool = True) -> Iterator[IndexServer]:
    """Serve ``directory``'s wheels at ``server.url`` (``http://127.0.0.1:PORT/simple``) while in the block."""
    server = IndexServer(directory, ranges=ranges)
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}/simple"
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    try:
        yield server
    finally:
        httpd.shutdown()
        httpd.server_close()
