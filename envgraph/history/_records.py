"""What one command run leaves in the history: plain data, written and read by :mod:`envgraph.history._db`."""

from __future__ import annotations

import os
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from attrs import field, frozen

if TYPE_CHECKING:  # a no-op build writes its run without loading envgraph.registry
    from envgraph.registry._records import PushRecord

__all__ = ["EnvRecord", "RunKind", "RunRecord", "whoami"]

RunKind = Literal["build", "push", "lock"]


@frozen
class EnvRecord:
    """One env as a run saw it: its lockfile and package set then, and (builds) the image made."""

    env: str
    drv: str
    lock_digest: str | None  # sha256 of the lockfile's bytes
    packages: dict[str, str]  # the image's whole package set (ancestors' too): name -> version
    status: str = ""  # build: the image's status; lock: the outcome (resolved, unchanged, ...)
    digest: str | None = None  # the image's manifest digest
    bytes: int = 0
    seconds: float = 0.0
    layers_built: int = 0
    layers_reused: int = 0
    layers_pulled: int = 0


@frozen
class RunRecord:
    kind: RunKind
    project: str
    started: datetime  # UTC
    seconds: float
    ok: bool
    user: str
    host: str
    selection: tuple[str, ...] = ()  # the envs/pipelines asked for, as on the command line
    layers_built: int = 0
    layers_reused: int = 0
    layers_pulled: int = 0
    bytes_written: int = 0
    report: dict[str, Any] = field(factory=dict)  # the --report content (build), results (push, lock)
    envs: tuple[EnvRecord, ...] = ()
    # A push run's pushes: the store's records of what it pushed (with the bytes it uploaded).
    pushes: tuple[PushRecord, ...] = ()
    error: str | None = None
    id: int | None = None  # given by the database


def whoami() -> tuple[str, str]:
    """(user, host) for a run record."""
    import getpass
    import socket

    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = str(os.getuid())
    return user, socket.gethostname()
