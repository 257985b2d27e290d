"""Running the app with uvicorn: on a thread for the length of a ``with`` block, or until Ctrl-C/SIGTERM.

We bind the listening socket ourselves, so port 0 (any free port) works without a race and the
address is known before the first request; uvicorn then serves that socket. uvicorn's own log lines
(startup, malformed requests such as the TLS hello Docker tries before plain HTTP) become debug lines.
"""

from __future__ import annotations

import logging
import signal
import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn
from starlette.types import ASGIApp

from envgraph.errors import ServerError

__all__ = ["BackgroundServer", "bind", "serve_until_stopped"]

log = logging.getLogger("envgraph.server")

START_TIMEOUT_S = 10.0
GRACEFUL_SHUTDOWN_S = 5


class _ToDebug(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        log.debug("uvicorn: %s", record.getMessage())


def _route_uvicorn_logs() -> None:
    logger = logging.getLogger("uvicorn")
    if not any(isinstance(h, _ToDebug) for h in logger.handlers):
        logger.addHandler(_ToDebug())
        logger.propagate = False


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (port 0: a free one)."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as err:
        raise ServerError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError as err:
        sock.close()
        raise ServerError(f"cannot listen on {host}:{port}: {err.strerror or err}") from err
    return sock


class BackgroundServer:
    """``with BackgroundServer(app) as s:`` serves ``app`` at ``s.url`` on a thread until the block ends."""

    def __init__(self, app: ASGIApp, host: str = "127.0.0.1", port: int = 0) -> None:
        self.app = app
        self.host = host
        self.requested_port = port
        self.port = 0
        self._sock: socket.socket | None = None
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    @property
    def address(self) -> str:
        """``host:port`` as registry references spell it (IPv6 in brackets)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    @property
    def url(self) -> str:
        return f"http://{self.address}"

    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> BackgroundServer:
        _route_uvicorn_logs()
        self._sock = bind(self.host, self.requested_port)
        self.port = int(self._sock.getsockname()[1])
        config = uvicorn.Config(
            self.app,
            log_config=None,
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, name="envgraph-serve", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + START_TIMEOUT_S
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self._stop()
                raise ServerError(f"the server on {self.address} did not start")
            time.sleep(0.01)
        log.debug("serving on %s", self.url)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop()

    def _stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=GRACEFUL_SHUTDOWN_S + 5)
        if self._sock is not None:
            self._sock.close()
        log.debug("stopped serving on %s", self.url)


def serve_until_stopped(
    app: ASGIApp, host: str, port: int, ready: Callable[[BackgroundServer], None]
) -> None:
    """Serve until Ctrl-C or SIGTERM (a clean stop either way); ``ready`` is called once listening."""
    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    try:
        with BackgroundServer(app, host, port) as server:
            ready(server)
            try:
                while not stop.wait(0.5):
                    if not server.alive():
                        raise ServerError(f"the server on {server.address} stopped unexpectedly")
            except KeyboardInterrupt:
                pass
    finally:
        signal.signal(signal.SIGTERM, previous)
