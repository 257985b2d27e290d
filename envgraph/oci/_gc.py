"""Garbage collection of a store, and the roots that keep what every project using the store still needs.

A store may be shared by several projects (``ENVGRAPH_STORE``). Each build records its project's roots in
``roots/<id>.json``: the declaration file it came from, the image tags and layer keys of its current
lockfiles, and when it last built. gc keeps the roots of every project whose declaration file still exists
(like Nix's indirect GC roots, whose target must exist), so gc run from one project never drops what
another still uses; it says whose roots it kept and why.
"""

from __future__ import annotations

import contextlib
import datetime
import hashlib
import json
import shutil
from collections.abc import Collection
from pathlib import Path

import attrs

from envgraph._fs import atomic_write
from envgraph.errors import StoreError
from envgraph.identity import ANNOTATION_REF_NAME
from envgraph.oci._store import Store

__all__ = ["GcResult", "ProjectRoots", "collect_garbage", "gc_blobs", "read_roots", "record_roots"]


@attrs.frozen
class ProjectRoots:
    declaration: str  # absolute path of the envgraph.toml
    tags: tuple[str, ...]
    keys: tuple[str, ...]
    last_used: str  # ISO 8601, UTC


@attrs.frozen
class GcResult:
    freed: int  # bytes
    dropped: tuple[str, ...]  # tags removed
    kept: tuple[str, ...]  # one line per project whose roots were kept, and why


def _roots_path(store: Store, declaration: Path) -> Path:
    ident = hashlib.sha256(str(declaration).encode("utf-8", "surrogateescape")).hexdigest()[:32]
    return store.roots_dir / f"{ident}.json"


def record_roots(store: Store, declaration: Path, tags: Collection[str], keys: Collection[str]) -> None:
    """Remember what ``declaration``'s current lockfiles need (written after each build)."""
    declaration = declaration.absolute()
    path = _roots_path(store, declaration)
    when = datetime.datetime.now(datetime.UTC).replace(microsecond=0).isoformat()
    doc = {"declaration": str(declaration), "tags": sorted(tags), "keys": sorted(keys), "last_used": when}
    with contextlib.suppress(OSError, ValueError, AttributeError):
        old = json.loads(path.read_text())
        unchanged = {k: v for k, v in old.items() if k != "last_used"} == {
            k: v for k, v in doc.items() if k != "last_used"
        }
        if unchanged and old.get("last_used", "")[:10] == when[:10]:
            return  # a no-op build writes nothing (the day of last use is enough)
    store.roots_dir.mkdir(exist_ok=True)
    atomic_write(path, json.dumps(doc, sort_keys=True, indent=1) + "\n", tmp_dir=store.tmp_dir)


def read_roots(store: Store) -> list[tuple[Path, ProjectRoots | None]]:
    """Every roots file with its content (None when unreadable)."""
    out: list[tuple[Path, ProjectRoots | None]] = []
    if not store.roots_dir.is_dir():
        return out
    for path in sorted(store.roots_dir.glob("*.json")):
        try:
            doc = json.loads(path.read_text())
            roots = ProjectRoots(
                str(doc["declaration"]),
                tuple(str(t) for t in doc["tags"]),
                tuple(str(k) for k in doc["keys"]),
                str(doc.get("last_used", "")),
            )
        except (OSError, ValueError, KeyError, TypeError):
            roots = None
        out.append((path, roots))
    return out


def collect_garbage(
    store: Store,
    *,
    declaration: Path,
    current_tags: set[str],
    current_keys: set[str],
    keep_last: int = 1,
    dry_run: bool = False,
) -> GcResult:
    """The gc policy. Kept: the current images and layers of this project (``current_tags``,
    ``current_keys``) and of every other project whose roots are still valid, ``<env>:latest``, and the
    ``keep_last`` newest other images per env; everything else is untagged and the blobs nothing kept refers
    to are deleted. A dry run computes exactly what a real run would free. Refused while a build uses the store."""
    with store.in_use(exclusive=True):
        kept_lines: list[str] = []
        keep_tags = set(current_tags)
        keep_keys = set(current_keys)
        own = _roots_path(store, declaration.absolute())
        for path, roots in read_roots(store):
            if path == own:
                continue
            if roots is None:
                kept_lines.append(f"ignoring unreadable roots file {path.name}")
                continue
            if not Path(roots.declaration).is_file():
                kept_lines.append(f"forgetting {roots.declaration} (the declaration no longer exists)")
                if not dry_run:
                    path.unlink(missing_ok=True)
                continue
            keep_tags.update(roots.tags)
            keep_keys.update(roots.keys)
            kept_lines.append(
                f"keeping {len(roots.tags)} tags and {len(roots.keys)} layers of {roots.declaration} "
                f"(its declaration exists; last built {roots.last_used[:10] or 'unknown'})"
            )
        tags = store.tags()
        by_env: dict[str, list[tuple[float, str]]] = {}
        for ref, desc in tags.items():
            env, _, name = ref.partition(":")
            if name == "latest" or ref in keep_tags:
                continue
            try:
                when = store.blob_path(desc.digest).stat().st_mtime
            except (OSError, StoreError):
                when = 0.0
            by_env.setdefault(env, []).append((when, ref))
        drop: list[str] = []
        for items in by_env.values():
            items.sort(reverse=True)
            drop += [ref for _, ref in items[keep_last:]]
        keep: set[str] = {r.digest for r in store.records() if r.key in keep_keys}
        if not dry_run and drop:
            store.update_tags({}, tuple(drop))
        freed = gc_blobs(store, keep, untag=set(drop), dry_run=dry_run)
        freed += _gc_build_roots(store, keep_keys, dry_run=dry_run)
        return GcResult(freed, tuple(sorted(drop)), tuple(kept_lines))


def _gc_build_roots(store: Store, keep_keys: set[str], *, dry_run: bool) -> int:
    """Remove the assembled build roots (``build-roots/``, where wheels are built from source) whose layers are
    not all kept, and half-made ones; returns the bytes freed. No build runs meanwhile (gc holds ``in-use``)."""
    roots = store.root / "build-roots"
    if not roots.is_dir():
        return 0
    freed = 0
    for entry in roots.iterdir():
        try:
            keys = set((entry / "complete").read_text().split())
        except OSError:
            keys = None  # killed while it was assembled
        if keys is not None and keys <= keep_keys:
            continue
        freed += sum(f.lstat().st_size for f in entry.rglob("*") if f.is_file() and not f.is_symlink())
        if not dry_run:
            shutil.rmtree(entry, ignore_errors=True)
    return freed


def gc_blobs(store: Store, keep: set[str], *, untag: Collection[str] = (), dry_run: bool = False) -> int:
    """Delete every blob not in ``keep``, not reachable from a tag (other than those in ``untag``), and not the
    path list of a kept layer record; drop the key records and stamps whose blob went, and dead writers' temp
    files. Returns the bytes freed (with ``dry_run``, that would be freed; nothing is touched)."""
    freed = 0
    with store._locked(exclusive=True):
        roots = [
            d
            for d in store.read_index().manifests
            if (d.annotations or {}).get(ANNOTATION_REF_NAME) not in untag
        ]
        live = set(keep) | set(store.reachable(roots))
        records = []
        for path in store.record_paths():
            try:
                records.append((path, store._read_record(path)))
            except Exception:
                if not dry_run:
                    path.unlink(missing_ok=True)
        for _, record in records:
            if record.digest in live and record.paths_digest:
                live.add(record.paths_digest)
        for blob in store.blobs_dir.iterdir():
            if "sha256:" + blob.name not in live:
                with contextlib.suppress(FileNotFoundError):
                    size = blob.lstat().st_size
                    if not dry_run:
                        blob.unlink()
                        store._stamp_path(blob.name).unlink(missing_ok=True)
                    freed += size
        if not dry_run:
            for path, record in records:
                if record.digest not in live:
                    path.unlink(missing_ok=True)
        freed += store.clean_tmp(dry_run=dry_run)
    return freed
