"""Reading and writing lockfiles.

Every lock carries two hashes whose rules live in :mod:`envgraph.identity`: ``inputs`` (what resolution
depends on) and ``drv`` (everything that determines the image).
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import cattrs

from envgraph import identity
from envgraph._convert import structure, unstructure
from envgraph._fs import atomic_write
from envgraph.debian._rootfs import MERGED_USR
from envgraph.errors import StaleLockError
from envgraph.identity import LOCK_VERSION, MULTI_PLATFORM_LOCK_VERSION
from envgraph.lock._model import BaseLock, DebianPin, LockedPackage, Lockfile

__all__ = [
    "LOCKDIR",
    "lock_path",
    "requirements_path",
    "base_lock_path",
    "dumps",
    "write_atomic",
    "read_lock",
    "read_base_lock",
    "read_base_lock_any_version",
    "parse_lock_text",
    "write_lock",
    "write_base_lock",
    "requirements_txt",
    "index_options",
    "base_identity",
]

LOCKDIR = "lockfiles"
T = TypeVar("T")


def lock_path(lockdir: Path, env: str) -> Path:
    return lockdir / f"{env}.lock.json"


def requirements_path(lockdir: Path, env: str) -> Path:
    return lockdir / f"{env}.requirements.txt"


def base_lock_path(lockdir: Path, base: str, platform_slug: str | None = None) -> Path:
    """``bases/<base>.lock.json``; a further platform's pin of a multi-platform project is
    ``bases/<base>@<os>-<arch>.lock.json`` (base names cannot hold ``@``)."""
    suffix = f"@{platform_slug}" if platform_slug else ""
    return lockdir / "bases" / f"{base}{suffix}.lock.json"


def dumps(obj: Any) -> str:
    """Canonical, reviewable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(unstructure(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> bool:
    """Write only when the content changes (so mtimes and diffs stay quiet); returns whether it wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, text, only_if_changed=True)


def _read(path: Path, cls: type[T], *, any_version: bool = False) -> T | None:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise StaleLockError(f"{path}: unreadable lockfile ({e}): run `envgraph lock`") from None
    return parse_lock_text(text, str(path), cls, any_version=any_version)


def parse_lock_text(text: str, path: str, cls: type[T], *, any_version: bool = False) -> T:
    """A lockfile's text (from a file, or from git at some revision: untrusted either way), strictly parsed;
    ``path`` names it in errors. ``any_version``: an older format whose fields still read is accepted."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise StaleLockError(f"{path}: unreadable lockfile ({e}): run `envgraph lock`") from None
    if any_version and isinstance(data, dict):
        data = {**data, "version": LOCK_VERSION}
    # Format 4 is format 3 with per-platform pins (identity.MULTI_PLATFORM_LOCK_VERSION), for env locks only.
    accepted = (LOCK_VERSION, MULTI_PLATFORM_LOCK_VERSION) if cls is Lockfile else (LOCK_VERSION,)
    if not isinstance(data, dict) or data.get("version") not in accepted:
        raise StaleLockError(
            f"{path}: lockfile version {data.get('version') if isinstance(data, dict) else None!r} is not "
            f"{LOCK_VERSION}: run `envgraph lock`"
        )
    if cls is Lockfile and (data.get("version") == MULTI_PLATFORM_LOCK_VERSION) != bool(
        data.get("platforms")
    ):
        raise StaleLockError(
            f"{path}: malformed lockfile (per-platform pins need version {MULTI_PLATFORM_LOCK_VERSION}, "
            f"and only they): run `envgraph lock`"
        )
    try:
        result: T = structure(data, cls)
    except cattrs.BaseValidationError as e:
        msg = cattrs.transform_error(e)[0]
        raise StaleLockError(f"{path}: malformed lockfile ({msg}): run `envgraph lock`") from None
    return result


def read_lock(lockdir: Path, env: str) -> Lockfile | None:
    return _read(lock_path(lockdir, env), Lockfile)


def read_base_lock(lockdir: Path, base: str, platform_slug: str | None = None) -> BaseLock | None:
    return _read(base_lock_path(lockdir, base, platform_slug), BaseLock)


def read_base_lock_any_version(lockdir: Path, base: str, platform_slug: str | None = None) -> BaseLock | None:
    """A base lock of an older format, when its fields still read: only a preference for re-pinning (its
    versions are kept), never trusted as it is. None when unreadable."""
    try:
        return _read(base_lock_path(lockdir, base, platform_slug), BaseLock, any_version=True)
    except StaleLockError:
        return None


def index_options(index_url: str, extra_index_urls: Sequence[str], find_links: Sequence[str]) -> list[str]:
    """pip options naming where the packages come from, as the lock was resolved against: the index URLs without
    credentials (pip asks its keyring or .netrc), find-links relative to the requirements file (as pip reads them)."""
    out = [f"--index-url {_no_userinfo(index_url)}" if index_url else "--no-index"]
    out += [f"--extra-index-url {_no_userinfo(u)}" for u in extra_index_urls if u]
    out += [f"--find-links {fl}" for fl in find_links]
    return out


def _no_userinfo(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urllib.parse.urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def requirements_txt(closure: Sequence[LockedPackage], options: Sequence[str] = ()) -> str:
    """Usable as-is by ``pip install --require-hashes -r``: the index options, then every package of the env and its
    ancestors (a package built from an sdist by its sdist's hash; one built from a directory or a git commit only
    as a comment, since pip cannot hash those)."""
    lines = ["# Generated by envgraph from the lockfile; do not edit.", *options]
    for p in sorted(closure, key=lambda p: p.name):
        if p.wheel is not None:
            # Every platform's wheel: pip on any of them finds its file's hash.
            hashes = [p.wheel.sha256, *sorted({w.sha256 for w in p.platforms.values()} - {p.wheel.sha256})]
            lines.append(f"{p.name}=={p.version}" + "".join(f" \\\n    --hash=sha256:{h}" for h in hashes))
        elif p.source is not None and p.source.kind == "sdist":
            lines.append(f"{p.name}=={p.version} \\\n    --hash=sha256:{p.source.sha256}")
        elif p.source is not None:
            where = p.source.url + (f"@{p.source.commit}" if p.source.commit else "")
            lines.append(f"# {p.name}=={p.version} is built from {p.source.kind} {where}")
    return "\n".join(lines) + "\n"


def write_lock(
    lockdir: Path, lock: Lockfile, closure: Sequence[LockedPackage], options: Sequence[str] = ()
) -> bool:
    a = write_atomic(lock_path(lockdir, lock.env), dumps(lock))
    b = write_atomic(requirements_path(lockdir, lock.env), requirements_txt(closure, options))
    return a or b


def write_base_lock(lockdir: Path, lock: BaseLock, platform_slug: str | None = None) -> bool:
    return write_atomic(base_lock_path(lockdir, lock.name, platform_slug), dumps(lock))


def _debian_identity(d: DebianPin) -> dict[str, object]:
    out: dict[str, object] = {
        "suite": d.suite,
        "packages": sorted(d.packages),
        "mirror": d.mirror,
        "versions": dict(d.versions),
        "diff-id": d.diff_id,
    }
    if d.merged_usr != MERGED_USR:  # recorded (and hashed) only when unusual: existing identities stay
        out["merged-usr"] = sorted(d.merged_usr)
    if d.architecture is not None:  # likewise: amd64 bases keep their identities
        out["architecture"] = d.architecture
    if d.variant is not None:
        out["variant"] = d.variant
    return out


def base_identity(lock: BaseLock) -> str:
    """The pinned identity of a base lock (the rule is :func:`envgraph.identity.base_identity`)."""
    d, i = lock.debian, lock.image
    return identity.base_identity(
        python=lock.python,
        libc=lock.libc,
        architecture=lock.architecture,
        python_version=lock.python_version,
        debian=None if d is None else _debian_identity(d),
        image=None if i is None else {"reference": i.reference, "digest": i.digest, "layers": i.layers},
    )
