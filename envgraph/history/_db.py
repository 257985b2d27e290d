"""The history database: opened (and migrated to the newest schema) on first use, then read and written.

Alembic runs only when the database is not at :data:`HEAD` (a new database or an older schema); a database
already at it is opened with one query. Every error is a :class:`HistoryError` with credentials redacted.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from envgraph.errors import HistoryError, redact
from envgraph.history._records import EnvRecord, RunRecord
from envgraph.history._schema import HEAD, envs, pushes, runs
from envgraph.history._url import driver_url, safe_url
from envgraph.registry._records import PushRecord, push_time

__all__ = ["History", "open_history"]

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


@contextmanager
def _errors(url: str, what: str) -> Iterator[None]:
    try:
        yield
    except sa.exc.SQLAlchemyError as err:
        detail = str(getattr(err, "orig", None) or err).splitlines()[0] if str(err) else type(err).__name__
        raise HistoryError(f"history database {safe_url(url)}: cannot {what}: {redact(detail)}") from None
    except OSError as err:
        raise HistoryError(
            f"history database {safe_url(url)}: cannot {what}: {err.strerror or err}"
        ) from None


def _sqlite_path(url: str) -> Path | None:
    scheme, _, rest = url.partition("://")
    if scheme.split("+")[0] != "sqlite":
        return None
    return Path(rest[1:].partition("?")[0]) if rest.startswith("/") else None


def open_history(url: str, *, readonly: bool = False) -> History | None:
    """The history at ``url`` (migrated to the newest schema unless ``readonly``); None when ``readonly`` and
    a SQLite file that does not exist yet (nothing recorded)."""
    path = _sqlite_path(url)
    if path is not None and readonly and not path.is_file():
        return None
    connect: dict[str, Any] = {}
    target = driver_url(url)
    if path is not None:
        connect["timeout"] = 30  # concurrent commands on one store wait for each other's short writes
        if readonly:
            target = f"sqlite:///file:{path}?mode=ro&uri=true"
    with _errors(url, "open"):
        engine = sa.create_engine(target, connect_args=connect, pool_pre_ping=path is None)
        history = History(engine, url)
        history.migrate(readonly=readonly)
    return history


class History:
    """Runs recorded so far; thread-safe (SQLAlchemy's pool)."""

    def __init__(self, engine: Engine, url: str) -> None:
        self.engine = engine
        self.url = url

    def close(self) -> None:
        self.engine.dispose()

    # -- schema --------------------------------------------------------------------------------------------
    def revision(self) -> str | None:
        with _errors(self.url, "read the schema version"), self.engine.connect() as conn:
            if not sa.inspect(conn).has_table("alembic_version"):
                return None
            value = conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()
            return str(value) if value is not None else None

    def migrate(self, *, readonly: bool = False) -> None:
        if self.revision() == HEAD:
            return
        if readonly:
            raise HistoryError(
                f"history database {safe_url(self.url)} is not at schema {HEAD} and may not be written"
            )
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with _errors(self.url, "migrate"), self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    # -- writing -------------------------------------------------------------------------------------------
    def add(self, run: RunRecord) -> int:
        with _errors(self.url, "record a run"), self.engine.begin() as conn:
            row = conn.execute(
                runs.insert().values(
                    kind=run.kind,
                    project=run.project,
                    started=run.started,
                    seconds=run.seconds,
                    ok=run.ok,
                    user=run.user,
                    host=run.host,
                    selection=list(run.selection),
                    layers_built=run.layers_built,
                    layers_reused=run.layers_reused,
                    layers_pulled=run.layers_pulled,
                    bytes_written=run.bytes_written,
                    report=run.report,
                    error=redact(run.error) if run.error else None,
                )
            )
            key = row.inserted_primary_key
            assert key is not None
            run_id = int(key[0])
            if run.envs:
                conn.execute(envs.insert(), [_env_row(run_id, e) for e in run.envs])
            if run.pushes:
                conn.execute(pushes.insert(), [_push_row(run_id, p) for p in run.pushes])
        return run_id

    # -- reading -------------------------------------------------------------------------------------------
    def runs(self, *, kind: str | None = None, limit: int = 500, env: str | None = None) -> list[RunRecord]:
        """The newest ``limit`` runs, oldest first, without their report and envs (see :meth:`run`)."""
        query = sa.select(runs).order_by(runs.c.id.desc()).limit(limit)
        if kind is not None:
            query = query.where(runs.c.kind == kind)
        if env is not None:
            query = query.where(runs.c.id.in_(sa.select(envs.c.run_id).where(envs.c.env == env)))
        with _errors(self.url, "read runs"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        return [_run(r, full=False) for r in reversed(rows)]

    def run(self, run_id: int) -> RunRecord | None:
        with _errors(self.url, "read a run"), self.engine.connect() as conn:
            row = conn.execute(sa.select(runs).where(runs.c.id == run_id)).mappings().first()
            if row is None:
                return None
            env_rows = conn.execute(
                sa.select(envs).where(envs.c.run_id == run_id).order_by(envs.c.env)
            ).mappings()
            push_rows = conn.execute(
                sa.select(pushes).where(pushes.c.run_id == run_id).order_by(pushes.c.id)
            ).mappings()
            return _run(row, full=True, env_rows=list(env_rows), push_rows=list(push_rows))

    def latest_pushes(self, env: str | None = None) -> list[tuple[PushRecord, datetime]]:
        """The newest push of each (env, registry, repository, tag), with when it happened."""
        query = (
            sa.select(pushes, runs.c.started, runs.c.project, envs.c.drv)
            .join(runs, runs.c.id == pushes.c.run_id)
            .outerjoin(envs, sa.and_(envs.c.run_id == pushes.c.run_id, envs.c.env == pushes.c.env))
            .order_by(pushes.c.id)
        )
        if env is not None:
            query = query.where(pushes.c.env == env)
        with _errors(self.url, "read pushes"), self.engine.connect() as conn:
            rows = conn.execute(query).mappings().all()
        latest: dict[tuple[str, str, str, str], tuple[PushRecord, datetime]] = {}
        for r in rows:
            p = _push(r, drv=r["drv"], project=r["project"], started=r["started"])
            latest[(p.env, p.registry, p.repository, p.tag)] = (p, _utc(r["started"]))
        return [latest[k] for k in sorted(latest)]

    def env_packages(self, run_id: int) -> dict[str, EnvRecord]:
        with _errors(self.url, "read a run's envs"), self.engine.connect() as conn:
            rows = conn.execute(sa.select(envs).where(envs.c.run_id == run_id)).mappings().all()
        return {r["env"]: _env(r) for r in rows}


def _env_row(run_id: int, e: EnvRecord) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "env": e.env,
        "drv": e.drv,
        "lock_digest": e.lock_digest,
        "packages": dict(sorted(e.packages.items())),
        "status": e.status,
        "digest": e.digest,
        "bytes": e.bytes,
        "seconds": e.seconds,
        "layers_built": e.layers_built,
        "layers_reused": e.layers_reused,
        "layers_pulled": e.layers_pulled,
    }


def _push_row(run_id: int, p: PushRecord) -> dict[str, Any]:
    return {
        "run_id": run_id,
        "env": p.env,
        "registry": p.registry,
        "repository": p.repository,
        "tag": p.tag,
        "digest": p.digest,
        "bytes_uploaded": p.bytes_uploaded,
    }


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)  # SQLite drops the zone


def _env(r: Any) -> EnvRecord:
    return EnvRecord(
        env=r["env"],
        drv=r["drv"],
        lock_digest=r["lock_digest"],
        packages=dict(r["packages"] or {}),
        status=r["status"],
        digest=r["digest"],
        bytes=int(r["bytes"]),
        seconds=float(r["seconds"]),
        layers_built=int(r["layers_built"]),
        layers_reused=int(r["layers_reused"]),
        layers_pulled=int(r["layers_pulled"]),
    )


def _push(r: Any, *, drv: str | None, project: str, started: datetime) -> PushRecord:
    """A pushes row as the store's record of that push; the row's run gives the drv (its env row), the project
    and the time, and the history keeps no declaration or pipeline steps."""
    return PushRecord(
        registry=r["registry"],
        repository=r["repository"],
        env=r["env"],
        drv=drv or "",
        tag=r["tag"],
        digest=r["digest"],
        project=project,
        pushed_at=push_time(_utc(started)),
        bytes_uploaded=int(r["bytes_uploaded"]),
    )


def _run(
    r: Any, *, full: bool, env_rows: list[Any] | None = None, push_rows: list[Any] | None = None
) -> RunRecord:
    drvs = {e["env"]: e["drv"] for e in env_rows or ()}
    return RunRecord(
        id=int(r["id"]),
        kind=r["kind"],
        project=r["project"],
        started=_utc(r["started"]),
        seconds=float(r["seconds"]),
        ok=bool(r["ok"]),
        user=r["user"],
        host=r["host"],
        selection=tuple(r["selection"] or ()),
        layers_built=int(r["layers_built"]),
        layers_reused=int(r["layers_reused"]),
        layers_pulled=int(r["layers_pulled"]),
        bytes_written=int(r["bytes_written"]),
        report=dict(r["report"] or {}) if full else {},
        envs=tuple(_env(e) for e in env_rows or ()),
        pushes=tuple(
            _push(p, drv=drvs.get(p["env"]), project=r["project"], started=r["started"])
            for p in push_rows or ()
        ),
        error=r["error"],
    )
