"""Reading and writing lockfiles.

Every lock carries two hashes whose rules live in :mod:`envgraph.identity`: ``inputs`` (what resolution
depends on) and ``drv`` (everything that determines the image).
"""

from __future__ import annotations

import json
import os
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any, TypeVar

import cattrs

from envgraph import identity
from envgraph._convert import describe_error, quote, structure, unstructure
from envgraph._fs import atomic_write, path_problem, read_regular
from envgraph._hashing import sha256_digest
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


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in pairs:
        if k in out:
            raise ValueError(f"duplicate key {quote(k)}")
        out[k] = v
    return out


# What a command already parsed, by the file's identity (inode, size, mtime): the plan after the freshness check
# and the history after a build get the same objects without reading the file again, unless it changed.
_PARSED: dict[tuple[str, int, int, int, type[Any], bool], tuple[Any, str]] = {}


def _read(path: Path, cls: type[T], name: str, name_key: str, *, any_version: bool = False) -> T | None:
    """The lockfile at ``path`` checked field by field; None when there is none. Every problem is one line.

    ``any_version`` reads an older format's fields as if they were the current one's (only for preferences)."""
    got = _read_digest(path, cls, name, name_key, any_version=any_version)
    return None if got is None else got[0]


def _read_digest(
    path: Path, cls: type[T], name: str, name_key: str, *, any_version: bool = False
) -> tuple[T, str] | None:
    """The parsed lockfile and the sha256 of the bytes it was parsed from; None when there is no file."""
    problem = path_problem(path)
    if problem:
        raise StaleLockError(f"{path}: the path {problem}: run `envgraph lock`")
    try:
        st = os.stat(path)
        hit = _PARSED.get((str(path), st.st_ino, st.st_size, st.st_mtime_ns, cls, any_version))
        if hit is not None:
            return hit
        raw = read_regular(path)
        st = os.stat(path)  # a file replaced since the first stat is only cached under its new identity
    except FileNotFoundError:
        return None
    except OSError as e:
        raise StaleLockError(
            f"{path}: unreadable lockfile ({e.strerror or e}): run `envgraph lock`"
        ) from None
    parsed = _parse(raw, str(path), cls, name, name_key, any_version=any_version)
    result = (parsed, sha256_digest(raw))
    if len(_PARSED) > 10_000:
        _PARSED.clear()
    if st.st_size == len(raw):
        _PARSED[(str(path), st.st_ino, st.st_size, st.st_mtime_ns, cls, any_version)] = result
    return result


def lock_digest(lockdir: Path, env: str) -> str | None:
    """The sha256 of an env's lockfile as parsed (read once per command with :func:`read_lock`)."""
    got = lock_and_digest(lockdir, env)
    return None if got is None else got[1]


def lock_and_digest(lockdir: Path, env: str) -> tuple[Lockfile, str] | None:
    """:func:`read_lock` and :func:`lock_digest` in one look-up (the history reads both for every env)."""
    return _read_digest(lock_path(lockdir, env), Lockfile, env, "env")


def parse_lock_text(text: str, path: str, cls: type[T], *, any_version: bool = False) -> T:
    """A lockfile's text (from git at some revision: untrusted), strictly parsed; ``path`` names it in errors."""
    return _parse(text.encode("utf-8", "surrogateescape"), path, cls, None, "", any_version=any_version)


def _parse(
    raw: bytes, path: str, cls: type[T], name: str | None, name_key: str, *, any_version: bool = False
) -> T:
    def bad(why: str) -> StaleLockError:
        return StaleLockError(f"{path}: {why}: run `envgraph lock`")

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
    # Format 4 is format 3 with per-platform pins (identity.MULTI_PLATFORM_LOCK_VERSION), for env locks only.
    accepted = (LOCK_VERSION, MULTI_PLATFORM_LOCK_VERSION) if cls is Lockfile else (LOCK_VERSION,)
    if "version" in data and data["version"] not in accepted:  # a missing one is reported below
        raise bad(f"lockfile version {quote(data.get('version'))} is not {LOCK_VERSION}")
    if (
        cls is Lockfile
        and "version" in data
        and (data["version"] == MULTI_PLATFORM_LOCK_VERSION) != bool(data.get("platforms"))
    ):
        raise bad(
            f"malformed lockfile (per-platform pins need version {MULTI_PLATFORM_LOCK_VERSION}, and only they)"
        )
    try:
        result: T = structure(data, cls)
    except cattrs.BaseValidationError as e:
        raise bad(f"malformed lockfile ({describe_error(e, 'json')})") from None
    if name is not None and getattr(result, name_key) != name:
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


def read_base_lock(lockdir: Path, base: str, platform_slug: str | None = None) -> BaseLock | None:
    return _read(base_lock_path(lockdir, base, platform_slug), BaseLock, base, "name")


def read_base_lock_any_version(lockdir: Path, base: str, platform_slug: str | None = None) -> BaseLock | None:
    """A base lock of an older format, when its fields still read: only a preference for re-pinning (its
    versions are kept), never trusted as it is. None when unreadable."""
    try:
        return _read(base_lock_path(lockdir, base, platform_slug), BaseLock, base, "name", any_version=True)
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
