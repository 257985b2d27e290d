"""Sources of packages built from source: reading an sdist, a directory or a git commit, never trusting them.

- :func:`build_system` reads ``[build-system]`` (requires, build-backend, backend-path) from a source tree or
  from the ``pyproject.toml`` inside an sdist (one small member, nothing extracted); a project without one is
  built by setuptools' legacy backend, as pip does.
- :func:`git_checkout` fetches a repository at a full commit into the cache (``<cache>/git/<commit>``) and
  checks that the checkout really is that commit; the tree's content hash is what the lockfile pins.
- :func:`unpack_sdist` extracts an sdist safely (no absolute paths, no ``..``, no links leaving it, no
  devices) into a directory; the single top-level directory's content is returned.
- :func:`copy_source` copies a source tree as builds see it; :func:`private_copies` gives the resolver such
  copies of the project's directories, since pip-compile, uv and pip run a build backend's metadata hooks in
  the directory they are given and setuptools writes ``*.egg-info`` (and ``build/``) there: locking must not
  change the user's tree.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tarfile
import tempfile
import tomllib
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

from attrs import frozen

from envgraph._fs import cache_dir, locked_temp_dir
from envgraph._hashing import tree_sha256
from envgraph._subprocess import GuardedTimeout, run_guarded
from envgraph.errors import EnvgraphError, LockError
from envgraph.lock._requirements import source_files

__all__ = [
    "BuildSystem",
    "LEGACY_BACKEND",
    "build_system",
    "git_checkout",
    "unpack_sdist",
    "source_hash",
    "copy_source",
    "private_copies",
]

LEGACY_BACKEND = "setuptools.build_meta:__legacy__"
# pip's requirements for a project without [build-system] (PEP 517's fallback).
LEGACY_REQUIRES = ("setuptools>=40.8.0",)
_PYPROJECT_LIMIT = 1 << 20
_SDIST_SUFFIXES = (".tar.gz", ".zip")


@frozen
class BuildSystem:
    requires: tuple[str, ...]
    backend: str
    backend_path: tuple[str, ...] = ()


def _parse_pyproject(data: bytes | None, what: str) -> BuildSystem:
    if data is None:
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND)
    try:
        doc = tomllib.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise LockError(f"{what}: invalid pyproject.toml: {e}") from None
    table: Any = doc.get("build-system")
    if table is None:
        return BuildSystem(LEGACY_REQUIRES, LEGACY_BACKEND)
    if not isinstance(table, dict):
        raise LockError(f"{what}: [build-system] in pyproject.toml is not a table")
    requires = table.get("requires")
    if not isinstance(requires, list) or not all(isinstance(r, str) for r in requires):
        raise LockError(f"{what}: [build-system] requires must be a list of strings (PEP 518)")
    backend = table.get("build-backend", LEGACY_BACKEND)
    if not isinstance(backend, str) or not backend.strip():
        raise LockError(f"{what}: [build-system] build-backend must be a string")
    paths = table.get("backend-path", [])
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise LockError(f"{what}: [build-system] backend-path must be a list of strings")
    for p in paths:
        pp = PurePosixPath(p)
        if pp.is_absolute() or ".." in pp.parts:
            raise LockError(f"{what}: backend-path {p!r} must stay inside the project (PEP 517)")
    return BuildSystem(tuple(requires), backend.strip(), tuple(paths))


def build_system(source: Path, what: str) -> BuildSystem:
    """The ``[build-system]`` of a source tree (a directory) or of an sdist file."""
    if source.is_dir():
        path = source / "pyproject.toml"
        return _parse_pyproject(path.read_bytes() if path.is_file() else None, what)
    return _parse_pyproject(_sdist_member(source, "pyproject.toml", what), what)


def _sdist_member(sdist: Path, name: str, what: str) -> bytes | None:
    """The bytes of ``<top>/<name>`` in an sdist, or None when it has none; the sdist must have one top directory."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                names = zf.namelist()
                top = _single_top(names, what)
                member = f"{top}/{name}"
                if member not in names:
                    return None
                info = zf.getinfo(member)
                if info.file_size > _PYPROJECT_LIMIT:
                    raise LockError(f"{what}: {name} is larger than {_PYPROJECT_LIMIT} bytes")
                return zf.read(member)
        with tarfile.open(sdist, mode="r:*") as tf:
            first: str | None = None
            found: bytes | None = None
            for m in tf:
                parts = PurePosixPath(m.name).parts
                if not parts:
                    continue
                first = first or parts[0]
                if parts[0] != first:
                    raise LockError(f"{what}: an sdist must hold one top-level directory")
                if len(parts) == 2 and parts[1] == name:
                    if not m.isreg() or m.size > _PYPROJECT_LIMIT:
                        raise LockError(
                            f"{what}: {name} is not a regular file of at most {_PYPROJECT_LIMIT} bytes"
                        )
                    f = tf.extractfile(m)
                    assert f is not None
                    found = f.read()
            return found
    except (tarfile.TarError, zipfile.BadZipFile, OSError, EOFError) as e:
        raise LockError(f"{what}: cannot read the sdist: {e}") from None


def _single_top(names: list[str], what: str) -> str:
    tops = {PurePosixPath(n).parts[0] for n in names if PurePosixPath(n).parts}
    if len(tops) != 1:
        raise LockError(f"{what}: an sdist must hold one top-level directory")
    return tops.pop()


def unpack_sdist(sdist: Path, dest: Path, what: str, error: type[EnvgraphError] = LockError) -> Path:
    """Extract an sdist into ``dest`` (refusing anything that would leave it); returns its top directory."""
    try:
        if sdist.name.endswith(".zip"):
            with zipfile.ZipFile(sdist) as zf:
                top = _single_top(zf.namelist(), what)
                for info in zf.infolist():
                    target = _safe_target(dest, info.filename, what, error)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out)
                    if (info.external_attr >> 16) & 0o111:
                        target.chmod(0o755)
        else:
            with tarfile.open(sdist, mode="r:*") as tf:
                members = tf.getmembers()
                top = _single_top([m.name for m in members], what)
                for m in members:
                    if not (m.isreg() or m.isdir() or m.issym() or m.islnk()):
                        raise error(f"{what}: the sdist holds a device, fifo or socket ({m.name})")
                # 'data' refuses absolute paths, '..', links leaving the tree and special files (PEP 706).
                tf.extractall(dest, members=members, filter="data")
    except (tarfile.TarError, zipfile.BadZipFile, EOFError) as e:
        raise error(f"{what}: cannot unpack the sdist: {e}") from None
    root = dest / top
    if not root.is_dir():
        raise error(f"{what}: the sdist's top-level entry {top!r} is not a directory")
    return root


def _safe_target(dest: Path, name: str, what: str, error: type[EnvgraphError]) -> Path:
    parts = PurePosixPath(name).parts
    if not parts or PurePosixPath(name).is_absolute() or ".." in parts:
        raise error(f"{what}: unsafe path {name!r} in the sdist")
    return dest.joinpath(*parts)


def source_hash(root: Path) -> str:
    """The content hash of a source tree as builds see it (:func:`envgraph.lock._requirements.source_files`)."""
    return tree_sha256(root, source_files(root))


def copy_source(src: Path, dest: Path) -> None:
    """Copy the files of ``src`` that builds see (:func:`envgraph.lock._requirements.source_files`) to ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for path in source_files(src):
        out = dest / path.relative_to(src)
        out.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():
            out.symlink_to(os.readlink(path))
        else:
            shutil.copy2(path, out)


@contextlib.contextmanager
def private_copies(dirs: Iterable[Path]) -> Iterator[dict[Path, Path]]:
    """Each source directory (absolute, resolved) -> a copy of it in a private scratch directory, removed
    afterwards: what the resolver is given instead of the user's tree (whatever it writes goes there)."""
    unique = sorted(set(dirs))
    if not unique:
        yield {}
        return
    with locked_temp_dir(cache_dir() / "tmp", "sources-") as scratch:
        # Resolved: the resolver names a copy by this path (file:// URLs), and callers map it back to its source.
        scratch = scratch.resolve()
        copies: dict[Path, Path] = {}
        for i, src in enumerate(unique):
            copies[src] = scratch / str(i) / src.name  # the same name: messages stay recognisable
            copy_source(src, copies[src])
        yield copies


def _git(args: list[str], cwd: Path | None, what: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_TERMINAL_PROMPT="0", LC_ALL="C", GIT_CONFIG_NOSYSTEM="1")
    if shutil.which("git") is None:
        raise LockError(f"{what}: git is not installed (apt-get install git)")
    try:
        proc = run_guarded(["git", "-c", "advice.detachedHead=false", *args], cwd=cwd, env=env, timeout=600)
    except GuardedTimeout:
        raise LockError(f"{what}: git {args[0]} took longer than 600 s") from None
    if proc.returncode != 0:
        lines = [ln.strip() for ln in proc.output.splitlines() if ln.strip()]
        raise LockError(f"{what}: git {args[0]} failed: {lines[-1] if lines else 'no output'}")
    return proc.output


def git_revision(root: Path) -> str:
    """The commit checked out in the git repository holding ``root`` (``labels.revision = "git"``)."""
    what = f'labels revision = "git" in {root}'
    commit = _git(["rev-parse", "--verify", "HEAD"], root, what).strip()
    if not re.fullmatch(r"[0-9a-f]{40}|[0-9a-f]{64}", commit):
        raise LockError(f"{what}: git rev-parse printed {commit[:80]!r}, not a commit")
    return commit


def git_checkout(url: str, commit: str, what: str, cache: Path | None = None) -> Path:
    """The tree of ``url`` at ``commit`` (without ``.git``), cached by commit; fetched when absent."""
    root = (cache or cache_dir() / "git") / commit
    tree = root / "tree"
    if tree.is_dir():
        return tree
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{commit[:12]}-", dir=root.parent))
    try:
        work = tmp / "tree"
        _git(["clone", "--quiet", "--no-checkout", "--", url, str(work)], None, what)
        _git(["checkout", "--quiet", "--detach", commit], work, what)
        head = _git(["rev-parse", "HEAD"], work, what).strip()
        if head != commit:
            raise LockError(f"{what}: the checkout is at {head}, not {commit}")
        shutil.rmtree(work / ".git")
        with contextlib.suppress(OSError):
            os.rename(tmp, root)  # another process may have won the race: keep theirs
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return tree


def is_sdist(filename: str) -> bool:
    return filename.endswith(_SDIST_SUFFIXES)
