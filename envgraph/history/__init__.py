"""Build history: what every ``build``, ``push`` and ``lock`` did, in a SQL database (SQLite in the store by
default, PostgreSQL when asked). SQLAlchemy and Alembic are imported only when a record is written or read, after
the command's work, so a no-op build does not pay for them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.history._db import History as History
    from envgraph.history._db import open_history as open_history
    from envgraph.history._records import EnvRecord as EnvRecord
    from envgraph.history._records import RunRecord as RunRecord
    from envgraph.history._url import DEFAULT_DB_NAME as DEFAULT_DB_NAME
    from envgraph.history._url import database_url as database_url
    from envgraph.history._url import safe_url as safe_url

_EXPORTS = {
    "History": "envgraph.history._db",
    "open_history": "envgraph.history._db",
    "EnvRecord": "envgraph.history._records",
    "RunRecord": "envgraph.history._records",
    "DEFAULT_DB_NAME": "envgraph.history._url",
    "database_url": "envgraph.history._url",
    "safe_url": "envgraph.history._url",
}
__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
