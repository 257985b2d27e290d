"""Errors that reach the user as one clear line.

Every failure a user can cause (bad input, a missing daemon, a hash mismatch) raises
an :class:`EnvgraphError`; the CLI prints its message on one line and exits non-zero.
Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import re

__all__ = [
    "redact",
    "EnvgraphError",
    "SpecError",
    "GraphError",
    "LockError",
    "ResolutionError",
    "StaleLockError",
    "DebianError",
    "BuildError",
    "HashMismatchError",
    "StoreError",
    "RegistryError",
    "DockerError",
    "ServerError",
]


# user:password@ in a URL or reference (scheme optional): what must never reach a terminal, a log or a file.
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)?[^\s/@'\"]+:[^\s/@'\"]*@")


def redact(text: str) -> str:
    """``alice:s3cret@host`` -> ``***@host`` (and ``https://alice:s3cret@host`` -> ``https://***@host``)."""
    return _USERINFO.sub(lambda m: (m.group("scheme") or "") + "***@", text)


class EnvgraphError(Exception):
    """A failure the user can act on; ``str(err)`` is a single line, with credentials in URLs redacted."""

    exit_code = 1

    def __init__(self, message: str) -> None:
        super().__init__(redact(" ".join(message.split("\n")).strip()))


class SpecError(EnvgraphError):
    """The declaration file is malformed or names things wrongly."""


class GraphError(SpecError):
    """The graph of bases, envs and pipelines is invalid (cycle, unknown name)."""


class LockError(EnvgraphError):
    """Locking failed."""


class ResolutionError(LockError):
    """pip-compile could not resolve, or resolved to something surprising."""


class StaleLockError(LockError):
    """A lockfile is missing or does not match the declarations."""


class DebianError(LockError):
    """The Debian archive sent something we cannot trust, or Debian packages cannot be resolved."""


class BuildError(EnvgraphError):
    """A layer or image could not be built."""


class HashMismatchError(BuildError):
    """A downloaded or stored file does not have the digest it must have."""


class StoreError(EnvgraphError):
    """The local store is missing, corrupt or locked."""


class RegistryError(EnvgraphError):
    """A registry could not be reached, refused us, or sent bad data."""


class DockerError(EnvgraphError):
    """No Docker daemon answers, or it refused an operation."""


class ServerError(EnvgraphError):
    """``envgraph serve`` (or the endpoint ``load`` starts) could not listen or stopped."""


class HistoryError(EnvgraphError):
    """The build-history database cannot be opened, migrated, written or read."""
