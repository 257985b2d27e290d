"""Lockfiles as they were at a git revision (``git show REV:lockfiles/<env>.lock.json``), parsed strictly.

What git returns is untrusted input like any lockfile: env and base names are checked before they become
paths, the revision cannot be taken for an option, and the text goes through the strict lockfile reader (an
older lockfile format whose fields still read is accepted: history is read, never built from). A lockfile of
a format too old for the current reader is read for what a comparison needs only (env, drv, parent, base,
package names and versions), each field type-checked.
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any

from attrs import frozen

from envgraph.errors import EnvgraphError, StaleLockError
from envgraph.lock._lockfile import LOCKDIR, parse_lock_text
from envgraph.lock._model import BaseLock, Lockfile

__all__ = ["LockView", "view_of", "locks_at_revision"]


@frozen
class LockView:
    """What comparing env closures needs from a lockfile."""

    env: str
    drv: str
    parent: str | None
    base: str | None
    packages: dict[str, str]  # name -> version
    debian: dict[str, str]  # the env's own Debian packages, name -> version
    files: bool = False  # whether the env has files (its image is then named by their content too)


def view_of(lock: Lockfile) -> LockView:
    return LockView(
        env=lock.env,
        drv=lock.drv,
        parent=lock.parent.env if lock.parent is not None else None,
        base=lock.base.name if lock.base is not None else None,
        packages={p.name: p.version for p in lock.packages},
        debian={d.name: d.version for d in lock.apt.packages} if lock.apt is not None else {},
        files=bool(lock.files),
    )


def _str(d: Any, key: str, what: str, *, optional: bool = False) -> Any:
    v = d.get(key) if isinstance(d, dict) else None
    if v is None and optional:
        return None
    if not isinstance(v, str) or not v:
        raise EnvgraphError(f"{what}: field {key!r} missing or not a string")
    return v


def _ref(value: Any, key: str, what: str) -> str | None:
    """A reference to a parent env or a base: a table (current formats) or a plain name (early ones)."""
    if value is None or isinstance(value, str):
        return value or None
    return str(_str(value, key, what))


def _versions(items: Any, what: str) -> dict[str, str]:
    if not isinstance(items, list):
        raise EnvgraphError(f"{what}: packages are not a list")
    return {_str(i, "name", what): _str(i, "version", what) for i in items}


def _lenient_view(text: str, what: str) -> LockView:
    try:
        data = json.loads(text)
    except ValueError as e:
        raise EnvgraphError(f"{what}: unreadable lockfile ({e})") from None
    if not isinstance(data, dict):
        raise EnvgraphError(f"{what}: not a lockfile")
    parent, base, apt = data.get("parent"), data.get("base"), data.get("apt")
    return LockView(
        env=_str(data, "env", what),
        drv=_str(data, "drv", what),
        parent=_ref(parent, "env", what),
        base=_ref(base, "name", what),
        packages=_versions(data.get("packages"), what),
        debian=_versions(apt.get("packages"), what) if isinstance(apt, dict) else {},
        files=bool(data.get("files")),
    )


def _debian_versions(text: str, what: str) -> dict[str, str]:
    try:
        return dict((parse_lock_text(text, what, BaseLock, any_version=True).debian or _NO_DEBIAN).versions)
    except StaleLockError:
        data = json.loads(text)
        versions = data.get("debian", {}).get("versions", {}) if isinstance(data, dict) else {}
        if not isinstance(versions, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in versions.items()
        ):
            raise EnvgraphError(f"{what}: malformed Debian versions") from None
        return versions


class _NoDebian:
    versions: dict[str, str] = {}


_NO_DEBIAN = _NoDebian()

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_REV = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/~^@{}:+-]{0,255}$")
MAX_DEPTH = 64


def _git_show(root: Path, rev: str, rel: str) -> str | None:
    """The file at ``rel`` (relative to ``root``) at ``rev``; None when the revision has no such file."""
    try:
        proc = subprocess.run(
            # The revision is validated (it cannot start with '-'); --end-of-options makes sure anyway.
            ["git", "-C", str(root), "show", "--end-of-options", f"{rev}:./{rel}"],
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


def locks_at_revision(root: Path, env: str, rev: str) -> tuple[list[LockView], dict[str, str]]:
    """The env's lockfile and its ancestors' at ``rev`` (following each lock's recorded parent), root ancestor
    first, and the Debian packages (name -> version) of the root ancestor's base."""
    if not _REV.match(rev) or ".." in rev:
        raise EnvgraphError(f"invalid git revision {rev!r}")
    views: list[LockView] = []
    name: str | None = env
    while name is not None:
        if not _NAME.match(name) or any(v.env == name for v in views) or len(views) >= MAX_DEPTH:
            raise EnvgraphError(f"lockfile of env {env} at {rev}: invalid or cyclic parent env {name!r}")
        rel = f"{LOCKDIR}/{name}.lock.json"
        text = _git_show(root, rev, rel)
        if text is None:
            raise EnvgraphError(f"env {name} has no lockfile at {rev} ({rel})")
        what = f"{rev}:{rel}"
        try:
            view = view_of(parse_lock_text(text, what, Lockfile, any_version=True))
        except StaleLockError:
            view = _lenient_view(text, what)  # an older format: what a comparison needs, type-checked
        if view.env != name:
            raise EnvgraphError(f"{what} is the lockfile of env {view.env!r}, not of {name}")
        views.append(view)
        name = view.parent
    views.reverse()
    debian: dict[str, str] = {}
    bname = views[0].base
    if bname is not None:
        if not _NAME.match(bname):
            raise EnvgraphError(f"lockfile of env {views[0].env} at {rev}: invalid base name {bname!r}")
        rel = f"{LOCKDIR}/bases/{bname}.lock.json"
        text = _git_show(root, rev, rel)
        if text is not None:
            debian = _debian_versions(text, f"{rev}:{rel}")
    return views, debian
