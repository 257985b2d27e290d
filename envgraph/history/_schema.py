"""The history's tables (SQLAlchemy Core). Changing them means a new migration in ``migrations/versions``."""

from __future__ import annotations

import sqlalchemy as sa

__all__ = ["HEAD", "envs", "metadata", "pushes", "runs"]

HEAD = "0001"
"""The newest migration: a database already at it is opened without loading Alembic."""

metadata = sa.MetaData()

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("kind", sa.String(16), nullable=False, index=True),
    sa.Column("project", sa.String(200), nullable=False),
    sa.Column("started", sa.DateTime(timezone=True), nullable=False, index=True),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("ok", sa.Boolean, nullable=False),
    sa.Column("user", sa.String(200), nullable=False),
    sa.Column("host", sa.String(255), nullable=False),
    sa.Column("selection", sa.JSON, nullable=False),
    sa.Column("layers_built", sa.Integer, nullable=False),
    sa.Column("layers_reused", sa.Integer, nullable=False),
    sa.Column("layers_pulled", sa.Integer, nullable=False),
    sa.Column("bytes_written", sa.BigInteger, nullable=False),
    sa.Column("report", sa.JSON, nullable=False),
    sa.Column("error", sa.Text, nullable=True),
)

envs = sa.Table(
    "run_envs",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("env", sa.String(200), nullable=False, index=True),
    sa.Column("drv", sa.String(80), nullable=False),
    sa.Column("lock_digest", sa.String(80), nullable=True),
    sa.Column("packages", sa.JSON, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("digest", sa.String(80), nullable=True),
    sa.Column("bytes", sa.BigInteger, nullable=False),
    sa.Column("seconds", sa.Float, nullable=False),
    sa.Column("layers_built", sa.Integer, nullable=False),
    sa.Column("layers_reused", sa.Integer, nullable=False),
    sa.Column("layers_pulled", sa.Integer, nullable=False),
)

pushes = sa.Table(
    "pushes",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False, index=True),
    sa.Column("env", sa.String(200), nullable=False, index=True),
    sa.Column("registry", sa.String(255), nullable=False),
    sa.Column("repository", sa.String(255), nullable=False),
    sa.Column("tag", sa.String(128), nullable=False),
    sa.Column("digest", sa.String(80), nullable=False),
    sa.Column("bytes_uploaded", sa.BigInteger, nullable=False),
)
