"""Adding a run to a SQLite history already at the newest schema with the standard library's ``sqlite3``.

Importing SQLAlchemy costs a few hundred milliseconds, as much as a whole no-op build: the common case (the
default database in the store, already migrated) writes the same rows SQLAlchemy would (JSON as text, times as
SQLAlchemy's SQLite ``DATETIME`` strings, booleans as 0/1; tests/history check both read alike), and anything
else (a new or older database, PostgreSQL) goes through :mod:`envgraph.history._db`.
"""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from envgraph.errors import redact
from envgraph.history._records import EnvRecord, RunRecord

if TYPE_CHECKING:  # a no-op build writes its run without loading envgraph.registry
    from envgraph.registry._records import PushRecord

__all__ = ["ENV_COLUMNS", "HEAD", "PUSH_COLUMNS", "RUN_COLUMNS", "add_if_current"]

HEAD = "0001"  # envgraph.history._schema.HEAD (not imported: that would import SQLAlchemy); a test checks
RUN_COLUMNS = (
    "kind", "project", "started", "seconds", "ok", "user", "host", "selection", "layers_built",
    "layers_reused", "layers_pulled", "bytes_written", "report", "error",
)  # fmt: skip
ENV_COLUMNS = (
    "run_id", "env", "drv", "lock_digest", "packages", "status", "digest", "bytes", "seconds",
    "layers_built", "layers_reused", "layers_pulled",
)  # fmt: skip
PUSH_COLUMNS = ("run_id", "env", "registry", "repository", "tag", "digest", "bytes_uploaded")


def _time(value: datetime) -> str:
    """SQLAlchemy's SQLite DATETIME storage format (naive, UTC)."""
    return value.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def _insert(table: str, columns: tuple[str, ...]) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    return f'INSERT INTO "{table}" ({names}) VALUES ({", ".join("?" * len(columns))})'


def _run_row(run: RunRecord) -> tuple[Any, ...]:
    return (
        run.kind, run.project, _time(run.started), run.seconds, int(run.ok), run.user, run.host,
        json.dumps(list(run.selection)), run.layers_built, run.layers_reused, run.layers_pulled,
        run.bytes_written, json.dumps(run.report), redact(run.error) if run.error else None,
    )  # fmt: skip


def _env_row(run_id: int, e: EnvRecord) -> tuple[Any, ...]:
    return (
        run_id, e.env, e.drv, e.lock_digest, json.dumps(dict(sorted(e.packages.items()))), e.status, e.digest,
        e.bytes, e.seconds, e.layers_built, e.layers_reused, e.layers_pulled,
    )  # fmt: skip


def _push_row(run_id: int, p: PushRecord) -> tuple[Any, ...]:
    return (run_id, p.env, p.registry, p.repository, p.tag, p.digest, p.bytes_uploaded)


def add_if_current(path: Path, run: RunRecord) -> int | None:
    """The new run's id; None (nothing written) when the file is missing or not at :data:`HEAD`.
    Raises ``sqlite3.Error`` when the database is broken."""
    if not path.is_file():
        return None
    conn = sqlite3.connect(path, timeout=30, isolation_level=None)
    try:
        try:
            row = conn.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.OperationalError:
            return None
        if row is None or row[0] != HEAD:
            return None
        conn.execute("BEGIN IMMEDIATE")
        cur = conn.execute(_insert("runs", RUN_COLUMNS), _run_row(run))
        run_id = cur.lastrowid
        assert run_id is not None
        conn.executemany(_insert("run_envs", ENV_COLUMNS), [_env_row(run_id, e) for e in run.envs])
        conn.executemany(_insert("pushes", PUSH_COLUMNS), [_push_row(run_id, p) for p in run.pushes])
        conn.execute("COMMIT")
        return run_id
    finally:
        conn.close()
