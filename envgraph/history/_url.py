"""Which database: ``--db`` / ``ENVGRAPH_DB``, else ``[project] db``, else SQLite inside the store.

A password in the URL is used to connect and nowhere else: never stored, and every message shows
:func:`safe_url` (credentials replaced) or goes through :func:`envgraph.errors.redact`.
"""

from __future__ import annotations

from pathlib import Path

from envgraph.errors import SpecError, redact

__all__ = ["DEFAULT_DB_NAME", "database_url", "driver_url", "safe_url"]

DEFAULT_DB_NAME = "history.sqlite"


def database_url(option: str | None, project_db: str | None, store: Path) -> str:
    url = option or project_db
    if not url:
        return f"sqlite:///{store / DEFAULT_DB_NAME}"
    scheme = url.partition("://")[0]
    if not url.partition("://")[1] or scheme.split("+")[0] not in ("sqlite", "postgresql", "postgres"):
        raise SpecError(f"database URL {safe_url(url)!r}: use sqlite:///PATH or postgresql://HOST/DB")
    return url


def driver_url(url: str) -> str:
    """The URL SQLAlchemy connects with: plain ``postgresql://`` goes through pg8000 (pure Python)."""
    scheme, sep, rest = url.partition("://")
    if scheme in ("postgresql", "postgres"):
        return f"postgresql+pg8000://{rest}"
    return url


def safe_url(url: str) -> str:
    return redact(url)
