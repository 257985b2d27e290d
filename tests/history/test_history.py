"""The build history: what real `lock`, `build` and `push` commands record, in a real SQLite database."""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import attrs
import pytest

from envgraph.errors import SpecError
from envgraph.history import EnvRecord, RunRecord, _fast, _schema, open_history
from envgraph.history._url import database_url, driver_url, safe_url
from envgraph.registry import PushRecord
from tests.support.cli import cli
from tests.support.postgres import RunningPostgres
from tests.support.project import GRAPH, copy_project, locked_template


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return locked_template(tmp_path_factory.mktemp("history"), GRAPH)


@pytest.fixture
def project(template: Path, tmp_path: Path) -> Path:
    return copy_project(template, tmp_path / "project")


def db_of(project: Path) -> str:
    return f"sqlite:///{project / '.envgraph' / 'history.sqlite'}"


def test_build_and_noop_build_are_recorded_with_packages_and_layers(project: Path) -> None:
    cli(project, "build", "-q")
    cli(project, "build", "train", "-q")
    history = open_history(db_of(project), readonly=True)
    assert history is not None
    builds = history.runs(kind="build")
    assert [r.layers_built for r in builds] == [5, 0]
    assert builds[1].layers_reused == 3 and builds[1].selection == ("train",)
    assert all(r.ok and r.user and r.host and r.seconds > 0 for r in builds)
    first = history.run(builds[0].id or 0)
    assert first is not None
    envs = {e.env: e for e in first.envs}
    assert set(envs) == {"core", "train", "serve", "batch"}
    assert envs["train"].packages == {"alpha": "1.0", "gamma": "1.0"}  # the parent's packages too
    assert envs["train"].lock_digest is not None and envs["train"].lock_digest.startswith("sha256:")
    assert envs["train"].digest == first.report["envs"][3]["digest"] or envs["train"].digest
    assert first.report["totals"]["layers_built"] == 5
    listed = json.loads(cli(project, "history", "--kind", "build", "--json").stdout)
    assert [r["id"] for r in listed] == [r.id for r in builds]
    table = cli(project, "history", "--env", "train").stdout.splitlines()
    assert table[0].split()[:2] == ["RUN", "KIND"] and len(table) == 1 + len(history.runs(env="train"))


def test_fast_path_writes_what_sqlalchemy_reads_back_alike(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'h.sqlite'}"
    history = open_history(url)
    assert history is not None
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    run = RunRecord(
        kind="push", project="p", started=started, seconds=1.5, ok=False, user="u", host="h",
        selection=("core",), layers_built=1, layers_reused=2, layers_pulled=3, bytes_written=4,
        report={"x": [1, "y"]}, error="failed https://alice:s3cret@example.org/x",
        envs=(EnvRecord("core", "sha256:d", "sha256:l", {"b": "2", "a": "1"}, "built", "sha256:i", 9, 0.5, 1, 2, 3),),
        pushes=(PushRecord("r.example:5000", "team/img", "core", "sha256:d", "core-abc", "sha256:i", "p",
                           bytes_uploaded=7),),
    )  # fmt: skip
    slow_id = history.add(run)
    fast_id = _fast.add_if_current(tmp_path / "h.sqlite", run)
    assert fast_id == slow_id + 1
    slow, fast = history.run(slow_id), history.run(fast_id)
    assert slow is not None and fast is not None
    assert fast == attrs.evolve(slow, id=fast_id)
    # The push reads back as the store's record of it: the run gives its drv, project and time.
    assert slow.pushes == (attrs.evolve(run.pushes[0], pushed_at="2026-01-02T03:04:05Z"),)
    assert "s3cret" not in (slow.error or "") and fast.started == started


def test_fast_path_matches_the_schema() -> None:
    assert _fast.HEAD == _schema.HEAD
    assert set(_fast.RUN_COLUMNS) == {c.name for c in _schema.runs.columns} - {"id"}
    assert set(_fast.ENV_COLUMNS) == {c.name for c in _schema.envs.columns} - {"id"}
    assert set(_fast.PUSH_COLUMNS) == {c.name for c in _schema.pushes.columns} - {"id"}


def test_a_new_database_is_migrated_and_an_old_one_too(tmp_path: Path) -> None:
    path = tmp_path / "h.sqlite"
    sqlite3.connect(path).close()  # an empty file: no schema yet
    assert _fast.add_if_current(path, RunRecord("lock", "p", datetime.now(UTC), 0, True, "u", "h")) is None
    history = open_history(f"sqlite:///{path}")
    assert history is not None and history.revision() == _schema.HEAD
    assert {
        t for (t,) in sqlite3.connect(path).execute("select name from sqlite_master where type='table'")
    } >= {"runs", "run_envs", "pushes", "alembic_version"}


def test_a_broken_database_is_one_warning_and_the_build_succeeds(project: Path) -> None:
    cli(project, "build", "-q")
    db = project / ".envgraph" / "history.sqlite"
    db.write_bytes(b"this is not a database" * 100)
    proc = cli(project, "build", "-q")
    warnings = [line for line in proc.stderr.splitlines() if "history" in line]
    assert len(warnings) == 1 and warnings[0].startswith("envgraph: warning: build history not recorded")
    assert "Traceback" not in proc.stderr


def test_a_password_in_the_url_is_never_printed(project: Path) -> None:
    proc = cli(project, "--db", "postgresql://alice:s3cret@127.0.0.1:9/nodb", "build", "-q")
    assert proc.returncode == 0
    assert "s3cret" not in proc.stderr + proc.stdout
    assert "envgraph: warning: build history not recorded" in proc.stderr


@contextlib.contextmanager
def read_only_view(src: Path, dest: Path) -> Iterator[Path]:
    """``src`` bind-mounted read-only at ``dest`` (as root, only a read-only mount stops writes)."""
    dest.mkdir()
    if os.geteuid() != 0:
        src.chmod(0o555)
        try:
            yield src
        finally:
            src.chmod(0o755)
        return
    if subprocess.run(["mount", "--bind", str(src), str(dest)], capture_output=True).returncode != 0:
        pytest.skip("cannot bind-mount here")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(dest)], check=True, capture_output=True)
        yield dest
    finally:
        subprocess.run(["umount", str(dest)], check=True)


def test_a_read_only_store_is_skipped_without_a_word(project: Path, tmp_path: Path) -> None:
    cli(project, "build", "-q")
    before = open_history(db_of(project), readonly=True)
    assert before is not None
    count = len(before.runs())
    with read_only_view(project / ".envgraph", tmp_path / "ro") as ro:
        proc = cli(project, "--store", str(ro), "lock")
        assert "warning" not in proc.stderr and "history" not in proc.stderr
        assert "Traceback" not in proc.stderr
    after = open_history(db_of(project), readonly=True)
    assert after is not None and len(after.runs()) == count


def test_db_off_records_nothing(project: Path) -> None:
    cli(project, "--db", "off", "build", "-q")
    history = open_history(db_of(project), readonly=True)
    assert history is None or history.runs(kind="build") == []


@pytest.mark.postgres
def test_postgresql_records_and_serves_the_same_history(
    project: Path, postgres_server: RunningPostgres
) -> None:
    url = postgres_server.url
    proc = cli(project, "--db", url, "build", "-q")
    assert postgres_server.password not in proc.stdout + proc.stderr and "warning" not in proc.stderr
    cli(project, "--db", url, "build", "train", "-q")
    history = open_history(url, readonly=True)
    assert history is not None and history.revision() == _schema.HEAD
    builds = history.runs(kind="build")
    assert [r.layers_built for r in builds] == [5, 0] and builds[1].selection == ("train",)
    run = history.run(builds[0].id or 0)
    assert run is not None and {e.env: e.packages for e in run.envs}["train"] == {
        "alpha": "1.0",
        "gamma": "1.0",
    }
    assert run.started.tzinfo is not None
    # Nothing was written to the store's default database, and the password is nowhere in the database.
    assert not (project / ".envgraph" / "history.sqlite").exists()
    with history.engine.connect() as conn:
        dump = str([tuple(r) for r in conn.execute(_schema.runs.select())])
    assert postgres_server.password not in dump
    history.close()


def test_a_noop_build_records_without_importing_sqlalchemy(project: Path) -> None:
    cli(project, "build", "-q")  # creates and migrates the database (SQLAlchemy and Alembic, once)
    code = (
        "import sys\n"
        "from envgraph.cli import main\n"
        "try:\n"
        "    main(['build', '-q'])\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        "print('loaded:', sorted(m for m in sys.modules if m.split('.')[0] in ('sqlalchemy', 'alembic')))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "loaded: []" in proc.stdout
    history = open_history(db_of(project), readonly=True)
    assert history is not None and [r.layers_built for r in history.runs(kind="build")] == [5, 0]


@pytest.mark.parametrize(
    ("option", "project_db", "expected"),
    [
        (None, None, "sqlite:////STORE/history.sqlite"),
        (None, "sqlite:////srv/h.sqlite", "sqlite:////srv/h.sqlite"),
        ("postgresql://u@db/h", "sqlite:////srv/h.sqlite", "postgresql://u@db/h"),
    ],
)
def test_which_database(option: str | None, project_db: str | None, expected: str) -> None:
    assert database_url(option, project_db, Path("/STORE")) == expected


def test_a_bad_url_is_one_line_without_the_password() -> None:
    with pytest.raises(SpecError) as err:
        database_url("mysql://bob:hunter2@db/h", None, Path("/s"))
    assert "hunter2" not in str(err.value) and "***@db" in str(err.value)
    assert driver_url("postgresql://u:p@h/d") == "postgresql+pg8000://u:p@h/d"
    assert safe_url("postgresql://u:p@h/d") == "postgresql://***@h/d"
