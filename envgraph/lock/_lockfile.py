"""Reading and writing lockfiles.

Every lock carries two hashes whose rules live in :mod:`envgraph.identity`: ``inputs`` (what resolution
depends on) and ``drv`` (everything that determines the image).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import cattrs

from envgraph import identity
from envgraph._convert import describe_error, quote, structure, unstructure
from envgraph._fs import atomic_write, path_problem, read_regular
from envgraph.debian._rootfs import MERGED_USR
from envgraph.errors import StaleLockError
from envgraph.identity import LOCK_VERSION
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
    "write_lock",
    "write_base_lock",
    "requirements_txt",
    "base_identity",
]

LOCKDIR = "lockfiles"
T = TypeVar("T")


def lock_path(lockdir: Path, env: str) -> Path:
    return lockdir / f"{env}.lock.json"


def requirements_path(lockdir: Path, env: str) -> Path:
    return lockdir / f"{env}.requirements.txt"


def base_lock_path(lockdir: Path, base: str) -> Path:
    return lockdir / "bases" / f"{base}.lock.json"


def dumps(obj: Any) -> str:
    """Canonical, reviewable JSON: sorted keys, two-space indent, trailing newline."""
    return json.dumps(unstructure(obj), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def write_atomic(path: Path, text: str) -> bool:
    """Write only when the content changes (so mtimes and diffs stay quiet); returns whether it wrote."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return atomic_write(path, text, only_if_changed=True)


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {quote(k)}")
        out[k] = v
    return out


def _read(path: Path, cls: type[T], name: str, name_key: str, *, any_version: bool = False) -> T | None:
    """The lockfile at ``path`` checked field by field; None when there is none. Every problem is one line.

    ``any_version`` reads an older format's fields as if they were the current one's (only for preferences)."""

    def bad(why: str) -> StaleLockError:
        return StaleLockError(f"{path}: {why}: run `envgraph lock`")

    problem = path_problem(path)
    if problem:
        raise bad(f"the path {problem}")
    try:
        raw = read_regular(path)
    except FileNotFoundError:
        return None
    except OSError as e:
        raise bad(f"unreadable lockfile ({e.strerror or e})") from None
    try:
        data = json.loads(raw.decode("utf-8"), object_pairs_hook=_no_duplicates)
    except UnicodeDecodeError as e:
        raise bad(f"unreadable lockfile (not UTF-8: byte {raw[e.start]:#04x} at offset {e.start})") from None
    except ValueError as e:  # JSON syntax, duplicate keys, integers too long to convert
        raise bad(f"unreadable lockfile ({quote(str(e), 120)})") from None
    except RecursionError:
        raise bad("unreadable lockfile (nested too deeply)") from None
    if not isinstance(data, dict):
        raise bad(f"not a lockfile ({_json_kind(data)}, not a JSON object)")
    if any_version:
        data = {**data, "version": LOCK_VERSION}
    if "version" in data and data["version"] != LOCK_VERSION:  # a missing one is reported below
        raise bad(f"lockfile version {quote(data.get('version'))} is not {LOCK_VERSION}")
    try:
        result: T = structure(data, cls)
    except cattrs.BaseValidationError as e:
        raise bad(f"malformed lockfile ({describe_error(e, 'json')})") from None
    if getattr(result, name_key) != name:
        raise bad(f"malformed lockfile ({name_key} is {quote(getattr(result, name_key))}, not {quote(name)})")
    return result


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    return "a number"


def read_lock(lockdir: Path, env: str) -> Lockfile | None:
    return _read(lock_path(lockdir, env), Lockfile, env, "env")


def read_base_lock(lockdir: Path, base: str) -> BaseLock | None:
    return _read(base_lock_path(lockdir, base), BaseLock, base, "name")


def read_base_lock_any_version(lockdir: Path, base: str) -> BaseLock | None:
    """A base lock of an older format, when its fields still read: only a preference for re-pinning (its
    versions are kept), never trusted as it is. None when unreadable."""
    try:
        return _read(base_lock_path(lockdir, base), BaseLock, base, "name", any_version=True)
    except StaleLockError:
        return None


def requirements_txt(closure: Sequence[LockedPackage]) -> str:
    """Usable as-is by ``pip install --require-hashes -r``: every package of the env and its ancestors (a package
    built from an sdist by its sdist's hash; one built from a directory or a git commit only as a comment, since
    pip cannot hash those)."""
    lines = ["# Generated by envgraph from the lockfile; do not edit."]
    for p in sorted(closure, key=lambda p: p.name):
        if p.wheel is not None:
            lines.append(f"{p.name}=={p.version} \\\n    --hash=sha256:{p.wheel.sha256}")
        elif p.source is not None and p.source.kind == "sdist":
            lines.append(f"{p.name}=={p.version} \\\n    --hash=sha256:{p.source.sha256}")
        elif p.source is not None:
            where = p.source.url + (f"@{p.source.commit}" if p.source.commit else "")
            lines.append(f"# {p.name}=={p.version} is built from {p.source.kind} {where}")
    return "\n".join(lines) + "\n"


def write_lock(lockdir: Path, lock: Lockfile, closure: Sequence[LockedPackage]) -> bool:
    a = write_atomic(lock_path(lockdir, lock.env), dumps(lock))
    b = write_atomic(requirements_path(lockdir, lock.env), requirements_txt(closure))
    return a or b


def write_base_lock(lockdir: Path, lock: BaseLock) -> bool:
    return write_atomic(base_lock_path(lockdir, lock.name), dumps(lock))


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
