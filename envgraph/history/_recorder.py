"""Recording a run without ever failing the command: a broken database is one warning line."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from envgraph.errors import redact
from envgraph.history._records import RunRecord

__all__ = ["record_run"]

log = logging.getLogger("envgraph.history")


def record_run(url: str, run: RunRecord, *, store: Path) -> int | None:
    """Add ``run`` to the history at ``url``; its id, or None when not recorded (with a warning, except for a
    read-only store holding the default database, where there is nothing to complain about)."""
    if _in_readonly_store(url, store):
        log.debug("store %s is read-only: run not recorded", store)
        return None
    try:
        sqlite_path = _plain_sqlite(url)
        if sqlite_path is not None:
            from envgraph.history._fast import add_if_current

            run_id = add_if_current(sqlite_path, run)
            if run_id is not None:
                return run_id
        from envgraph.history._db import open_history

        if url == _default(store) and not store.is_dir():
            from envgraph.oci._store import Store

            Store.open(store)  # e.g. `envgraph lock` before any build: the store holds the history

        history = open_history(url)
        assert history is not None
        try:
            return history.add(run)
        finally:
            history.close()
    except Exception as err:  # recording must never fail the command it records
        log.warning("build history not recorded: %s", redact(str(err)).splitlines()[0] if str(err) else err)
        return None


def _in_readonly_store(url: str, store: Path) -> bool:
    """The default database of a store we may not write (access() also sees a read-only mount as root)."""
    from envgraph.history._url import DEFAULT_DB_NAME

    if url != _default(store):
        return False
    db = store / DEFAULT_DB_NAME
    if not store.is_dir():
        return not os.access(store.parent if store.parent.is_dir() else "/", os.W_OK)
    return not os.access(store, os.W_OK) or (db.exists() and not os.access(db, os.W_OK))


def _default(store: Path) -> str:
    from envgraph.history._url import DEFAULT_DB_NAME

    return f"sqlite:///{store / DEFAULT_DB_NAME}"


def _plain_sqlite(url: str) -> Path | None:
    """The file of a ``sqlite:///PATH`` URL without options."""
    if url.startswith("sqlite:///") and "?" not in url:
        return Path(url.removeprefix("sqlite:///"))
    return None
