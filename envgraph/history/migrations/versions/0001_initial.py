"""The first schema: runs, the envs each run saw, and pushes.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("project", sa.String(200), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
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
    op.create_index("ix_runs_kind", "runs", ["kind"])
    op.create_index("ix_runs_started", "runs", ["started"])
    op.create_table(
        "run_envs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
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
    op.create_index("ix_run_envs_run_id", "run_envs", ["run_id"])
    op.create_index("ix_run_envs_env", "run_envs", ["env"])
    op.create_table(
        "pushes",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.Integer, sa.ForeignKey("runs.id", ondelete="CASCADE"), nullable=False),
        sa.Column("env", sa.String(200), nullable=False),
        sa.Column("registry", sa.String(255), nullable=False),
        sa.Column("repository", sa.String(255), nullable=False),
        sa.Column("tag", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(80), nullable=False),
        sa.Column("bytes_uploaded", sa.BigInteger, nullable=False),
    )
    op.create_index("ix_pushes_run_id", "pushes", ["run_id"])
    op.create_index("ix_pushes_env", "pushes", ["env"])


def downgrade() -> None:
    op.drop_table("pushes")
    op.drop_table("run_envs")
    op.drop_table("runs")
