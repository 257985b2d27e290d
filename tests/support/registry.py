"""Pytest fixtures running the real CNCF distribution registry (Debian package ``docker-registry``).

The process itself is started by :mod:`tests.support.registry_server` (pytest-free, shared with the
benchmarks); this module turns a missing tool into a skip. Registered for every test by ``pytest_plugins``
in ``tests/conftest.py``.

Fixtures (session-scoped: one registry process per test run; use distinct repository names):

- ``registry``: anonymous, plain HTTP on ``127.0.0.1:<free port>``, filesystem storage, deletes enabled.
- ``registry_basic_auth``: the same with htpasswd Basic auth; ``.username``/``.password`` are valid.
- ``registry_token_auth``: the same with Bearer token auth (``auth: token``), backed by a small in-process
  token service (:class:`TokenServer`, needs ``cryptography``) that checks Basic credentials and issues
  ES256 JWTs with an ``x5c`` certificate the registry trusts; ``.token_server.requests`` records what
  clients asked for.

Each yields a :class:`RunningRegistry` (``.host`` = ``"127.0.0.1:PORT"``, ``.url``, ``.storage``,
``.blob_data_path(digest)``). :func:`start_registry` is the context manager behind them, for tests
that need a registry of their own. Everything is skipped with a reason when the binary is missing;
``ENVGRAPH_TEST_REGISTRY_BIN`` points at another binary.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from tests.support import registry_server as _server
from tests.support.registry_server import (
    TEST_PASSWORD,
    TEST_USER,
    RunningRegistry,
    TokenServer,
    registry_binary,
)

__all__ = [
    "RunningRegistry",
    "TokenServer",
    "start_registry",
    "start_token_server",
    "registry_binary",
    "registry",
    "registry_basic_auth",
    "registry_token_auth",
]


@contextmanager
def start_token_server(workdir: Path, username: str, password: str) -> Iterator[TokenServer]:
    with ExitStack() as stack:
        try:  # only starting may skip, not the block's own failures
            tokens = stack.enter_context(_server.start_token_server(workdir, username, password))
        except _server.Unavailable as e:
            pytest.skip(str(e))
        yield tokens


@contextmanager
def start_registry(
    workdir: Path,
    *,
    basic_auth: tuple[str, str] | None = None,
    token_server: TokenServer | None = None,
) -> Iterator[RunningRegistry]:
    """Run ``docker-registry serve`` under ``workdir`` until the block exits; skips when it is not installed."""
    with ExitStack() as stack:
        try:  # only starting may skip, not the block's own failures
            running = stack.enter_context(
                _server.start_registry(workdir, basic_auth=basic_auth, token_server=token_server)
            )
        except _server.Unavailable as e:
            pytest.skip(str(e))
        yield running


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(tmp_path_factory.mktemp("registry")) as reg:
        yield reg


@pytest.fixture(scope="session")
def registry_basic_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    with start_registry(
        tmp_path_factory.mktemp("registry-auth"), basic_auth=(TEST_USER, TEST_PASSWORD)
    ) as reg:
        yield reg


@pytest.fixture(scope="session")
def registry_token_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningRegistry]:
    if registry_binary() is None:
        pytest.skip(_server.MISSING_BINARY)
    workdir = tmp_path_factory.mktemp("registry-token")
    with (
        start_token_server(workdir, TEST_USER, TEST_PASSWORD) as tokens,
        start_registry(workdir, token_server=tokens) as reg,
    ):
        yield reg
