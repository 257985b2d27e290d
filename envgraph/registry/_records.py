"""What ``envgraph push`` pushed where: ``<store>/push-records.json``.

One record per (registry, repository, env, manifest digest): the tag pushed, the env's drv, the pipeline steps
that ran on the env when it was pushed, and the project it came from. ``envgraph export-settings`` and the
dashboard read it through :func:`push_records`; only pushes write it (:func:`record_pushes`).

The file is read strictly: anything that is not exactly a record (a wrong type, a digest that is not
``sha256:<64 hex>``, an unknown key) is a one-line :class:`~envgraph.errors.StoreError`, never a guess.
Writers merge under a file lock and replace the file atomically, so concurrent pushes keep each other's records.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs

from envgraph._fs import atomic_write
from envgraph.errors import StoreError
from envgraph.oci._store import Store

__all__ = [
    "PUSH_RECORDS_FILE",
    "PUSH_RECORDS_VERSION",
    "PushRecord",
    "push_records",
    "push_time",
    "record_pushes",
]

PUSH_RECORDS_FILE = "push-records.json"
PUSH_RECORDS_VERSION = 1

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


@attrs.frozen
class PushRecord:
    """One image pushed to one repository."""

    registry: str  # HOST[:PORT]
    repository: str  # REPO (may contain slashes)
    env: str
    drv: str  # the image id (identity.image_id): the env's drv unless it has files
    tag: str  # <env>-<id12>; the moving tag <env> was pushed alongside
    digest: str  # the manifest's digest
    project: str  # [project] name
    # Absolute path of the envgraph.toml it was pushed from ("" in the build history, which does not keep it).
    declaration: str = ""
    steps: tuple[tuple[str, str], ...] = ()  # (pipeline, step) pairs running on the env, sorted
    pushed_at: str = ""  # ISO 8601 UTC of the latest push of this image here (for people, never hashed)
    # What the push uploaded for it: a figure of one run, kept in the build history, not in the file.
    bytes_uploaded: int = 0

    @property
    def reference(self) -> str:
        """``HOST/REPO:<env>-<id12>``."""
        return f"{self.registry}/{self.repository}:{self.tag}"

    @property
    def pinned(self) -> str:
        """``HOST/REPO@sha256:...``: the reference by digest, which cannot move."""
        return f"{self.registry}/{self.repository}@{self.digest}"

    def key(self) -> tuple[str, str, str, str]:
        return (self.registry, self.repository, self.env, self.digest)

    def to_json(self) -> dict[str, Any]:
        return {
            "registry": self.registry,
            "repository": self.repository,
            "env": self.env,
            "drv": self.drv,
            "tag": self.tag,
            "digest": self.digest,
            "project": self.project,
            "declaration": self.declaration,
            "steps": [{"pipeline": p, "step": s} for p, s in self.steps],
            "pushed_at": self.pushed_at,
        }


_FIELDS = {f.name for f in attrs.fields(PushRecord)} - {"bytes_uploaded"}


def _string(entry: Mapping[str, Any], key: str, where: str) -> str:
    value = entry.get(key)
    if not isinstance(value, str) or not value:
        raise StoreError(f"{where}: {key!r} must be a non-empty string")
    return value


def _record(entry: Any, where: str) -> PushRecord:
    if not isinstance(entry, dict):
        raise StoreError(f"{where} is not an object")
    unknown = set(entry) - _FIELDS
    missing = _FIELDS - set(entry)
    if unknown or missing:
        what = ", ".join(
            [*(f"unknown key {k!r}" for k in sorted(unknown)), *(f"no {k!r}" for k in sorted(missing))]
        )
        raise StoreError(f"{where}: {what}")
    values: dict[str, Any] = {k: _string(entry, k, where) for k in _FIELDS - {"steps", "pushed_at"}}
    for k in ("digest", "drv"):
        if not _DIGEST.match(values[k]):
            raise StoreError(f"{where}: {k!r} is not a sha256 digest")
    if not isinstance(entry["pushed_at"], str):
        raise StoreError(f"{where}: 'pushed_at' must be a string")
    steps = entry["steps"]
    if not isinstance(steps, list):
        raise StoreError(f"{where}: 'steps' must be a list")
    pairs: list[tuple[str, str]] = []
    for i, s in enumerate(steps):
        if not isinstance(s, dict) or set(s) != {"pipeline", "step"}:
            raise StoreError(f"{where}: steps[{i}] must be {{pipeline, step}}")
        pairs.append((_string(s, "pipeline", where), _string(s, "step", where)))
    return PushRecord(**values, steps=tuple(sorted(pairs)), pushed_at=entry["pushed_at"])


def _read(path: Path) -> list[PushRecord]:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return []
    except OSError as e:
        raise StoreError(f"cannot read {path}: {e.strerror or e}") from None
    try:
        data = json.loads(raw)
    except ValueError as e:
        raise StoreError(f"{path} is not valid JSON: {e}") from None
    if not isinstance(data, dict) or set(data) != {"version", "records"}:
        raise StoreError(f"{path} is not a push record file (expected {{version, records}})")
    if data["version"] != PUSH_RECORDS_VERSION:
        raise StoreError(f"{path} has format {data['version']!r}, this envgraph reads {PUSH_RECORDS_VERSION}")
    if not isinstance(data["records"], list):
        raise StoreError(f"{path}: 'records' must be a list")
    return [_record(e, f"{path}: records[{i}]") for i, e in enumerate(data["records"])]


def push_time(when: datetime) -> str:
    """A record's ``pushed_at``: ISO 8601 UTC to the second (a naive time is taken as UTC)."""
    if when.tzinfo is not None:
        when = when.astimezone(UTC)
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


def push_records(store: Store | Path) -> list[PushRecord]:
    """Every push recorded in ``store`` (a :class:`Store` or its directory), sorted by registry, repository,
    env and push time; nothing when no push was recorded. Needs no write access."""
    root = store.root if isinstance(store, Store) else Path(store)
    records = _read(root / PUSH_RECORDS_FILE)
    return sorted(records, key=lambda r: (r.registry, r.repository, r.env, r.pushed_at, r.digest))


def _serialise(records: Iterable[PushRecord]) -> str:
    ordered = sorted(records, key=lambda r: r.key())
    doc = {"version": PUSH_RECORDS_VERSION, "records": [r.to_json() for r in ordered]}
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def record_pushes(
    store_root: Path, tmp_dir: Path, pushed: Iterable[PushRecord], *, now: datetime | None = None
) -> None:
    """Merge ``pushed`` into the store's records (a re-push of the same image updates its entry)."""
    stamp = push_time(now or datetime.now(UTC))
    path = Path(store_root) / PUSH_RECORDS_FILE
    fd = os.open(Path(tmp_dir) / (PUSH_RECORDS_FILE + ".lock"), os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        merged = {r.key(): r for r in _read(path)}
        for r in pushed:
            merged[r.key()] = attrs.evolve(r, pushed_at=stamp)
        atomic_write(path, _serialise(merged.values()), tmp_dir=tmp_dir)
    finally:
        os.close(fd)
