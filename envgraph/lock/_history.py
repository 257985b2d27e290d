"""Lockfiles as they were at a git revision (``git show REV:lockfiles/<env>.lock.json``), parsed strictly.

What git returns is untrusted input like any lockfile: env and base names are checked before they become
paths, the revision cannot be taken for an option, and the text goes through the strict lockfile reader (an
older lockfile format whose fields still read is accepted: history is read, never built from).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from envgraph.errors import EnvgraphError
from envgraph.lock._lockfile import LOCKDIR, parse_lock_text
from envgraph.lock._model import BaseLock, Lockfile

__all__ = ["locks_at_revision"]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}:+-]{0,255}$")
MAX_DEPTH = 64


def _git_show(root: Path, rev: str, rel: str) -> str | None:
    """The file at ``rel`` (relative to ``root``) at ``rev``; None when the revision has no such file."""
    try:
        proc = subprocess.run(
            ["git", "-C", str(root), "show", f"{rev}:./{rel}"],
            capture_output=True,
            timeout=60,
            check=False,
        )
    except FileNotFoundError:
        raise EnvgraphError("git is not installed: reading lockfiles at a revision needs it") from None
    if proc.returncode == 0:
        return proc.stdout.decode("utf-8", errors="replace")
    err = proc.stderr.decode("utf-8", errors="replace").strip()
    if "exists on disk, but not in" in err or "does not exist in" in err:
        return None
    first = err.splitlines()[0] if err else f"exit status {proc.returncode}"
    raise EnvgraphError(f"git cannot show revision {rev!r} in {root}: {first}")


def locks_at_revision(root: Path, env: str, rev: str) -> tuple[dict[str, Lockfile], BaseLock | None]:
    """The env's lockfile and its ancestors' at ``rev`` (following each lock's recorded parent), and the base
    lock of the root ancestor."""
    if not _REV.match(rev) or ".." in rev:
        raise EnvgraphError(f"invalid git revision {rev!r}")
    locks: dict[str, Lockfile] = {}
    name: str | None = env
    while name is not None:
        if not _NAME.match(name) or name in locks or len(locks) >= MAX_DEPTH:
            raise EnvgraphError(f"lockfile of env {env} at {rev}: invalid or cyclic parent env {name!r}")
        rel = f"{LOCKDIR}/{name}.lock.json"
        text = _git_show(root, rev, rel)
        if text is None:
            raise EnvgraphError(f"env {name} has no lockfile at {rev} ({rel})")
        lock = parse_lock_text(text, f"{rev}:{rel}", Lockfile, any_version=True)
        if lock.env != name:
            raise EnvgraphError(f"{rev}:{rel} is the lockfile of env {lock.env!r}, not of {name}")
        locks[name] = lock
        name = lock.parent.env if lock.parent is not None else None
    root_lock = list(locks.values())[-1]
    base = None
    if root_lock.base is not None:
        bname = root_lock.base.name
        if not _NAME.match(bname):
            raise EnvgraphError(f"lockfile of env {root_lock.env} at {rev}: invalid base name {bname!r}")
        rel = f"{LOCKDIR}/bases/{bname}.lock.json"
        text = _git_show(root, rev, rel)
        if text is not None:
            base = parse_lock_text(text, f"{rev}:{rel}", BaseLock, any_version=True)
    return dict(reversed(list(locks.items()))), base
