"""Declared requirements as people write them: PEP 508 lines, local directories, git URLs pinned to a commit,
and requirement files with ``-r``/``-c`` includes and comments, read as pip reads them.

Everything is checked here, before the resolver runs, so that a bad line is one clear error:

- ``name[extras] specifier ; marker``: PEP 508, passed to the resolver as written;
- ``./libs/features`` (a path relative to the declaration file, with a ``pyproject.toml`` or ``setup.py``):
  a project of the team's own, built into a wheel; its content hash is part of the env's inputs;
- ``name @ git+https://host/repo@<full commit>`` (optionally ``#subdirectory=dir``): fetched at that commit
  and built; a branch, a tag or a short commit is refused, since it can move;
- in a requirements file: blank lines, ``#`` comments (at the start of a line or after whitespace), lines
  continued with a trailing backslash, ``-r FILE``/``--requirement FILE`` (another requirements file) and
  ``-c FILE``/``--constraint FILE`` (constraints), both relative to the file that names them, as pip does.
  Other options (``-e``, ``--hash``, ``-i``, ``-f``...) are refused: they belong in ``[project]`` or make no
  sense in an image.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from attrs import frozen
from packaging.requirements import InvalidRequirement, Requirement

from envgraph._convert import quote
from envgraph._fs import read_regular
from envgraph._hashing import tree_sha256
from envgraph.errors import LockError, ResolutionError

__all__ = [
    "Declared",
    "LocalDir",
    "GitRef",
    "classify",
    "parse_git_url",
    "read_requirements_file",
    "source_files",
]

_COMMENT_RE = re.compile(r"(^|\s+)#.*$")
_COMMIT_RE = re.compile(r"^[0-9a-f]{40}$|^[0-9a-f]{64}$")
_GIT_URL_RE = re.compile(r"^git\+(https|http|ssh|file)://[^\s@#]+(?:@[^\s@#/]+)?(?:#\S*)?$")
_OPTION_IN_LINE_RE = re.compile(r"\s--?[A-Za-z]")
_OPTIONS_WITH_FILE = {"-r": "r", "--requirement": "r", "-c": "c", "--constraint": "c"}
# Not part of a project's source: caches and build output a developer's checkout may hold.
_JUNK_DIRS = {".git", ".hg", ".svn", "__pycache__", ".venv", ".tox", ".nox", ".mypy_cache", ".pytest_cache",
              ".ruff_cache", ".eggs"}  # fmt: skip
_JUNK_TOP = {"build", "dist"}


@frozen
class LocalDir:
    """A requirement naming a directory of the project."""

    line: str  # as written
    rel: str  # posix path relative to the declaration file
    path: Path  # absolute


@frozen
class GitRef:
    """A requirement ``name @ git+URL@commit``."""

    line: str
    name: str
    url: str  # the repository URL without ``git+``, the commit and the fragment
    commit: str
    subdirectory: str | None

    @property
    def pip_url(self) -> str:
        frag = f"#subdirectory={self.subdirectory}" if self.subdirectory else ""
        return f"git+{self.url}@{self.commit}{frag}"


@frozen
class Declared:
    """An env's own requirements and constraints, checked."""

    requirements: tuple[str, ...]
    constraints: tuple[str, ...] = ()
    local: tuple[LocalDir, ...] = ()
    git: tuple[GitRef, ...] = ()

    def sources(self) -> dict[str, str]:
        """Content hash of every local directory (relative path -> tree hash)."""
        return {d.rel: tree_sha256(d.path, source_files(d.path)) for d in self.local}


def source_files(root: Path) -> list[Path]:
    """The files of a source tree that a build sees (and its content hash covers): everything but VCS
    metadata, caches, virtual environments, ``*.egg-info`` anywhere (setuptools writes them into the tree, also
    under ``src/``, when metadata is prepared) and a top-level ``build/``/``dist/``."""
    out: list[Path] = []

    def walk(d: Path, top: bool) -> None:
        for p in sorted(d.iterdir(), key=lambda p: p.name):
            if p.is_dir() and not p.is_symlink():
                if p.name in _JUNK_DIRS or p.name.endswith(".egg-info") or (top and p.name in _JUNK_TOP):
                    continue
                walk(p, False)
            elif not p.name.endswith((".pyc", ".pyo")):
                out.append(p)

    walk(root, True)
    return out


def parse_git_url(url: str, where: str) -> tuple[str, str, str | None]:
    """``git+URL@commit[#subdirectory=dir]`` -> (URL, commit, subdirectory); a clear error otherwise."""
    if not _GIT_URL_RE.match(url):
        raise LockError(f"{where}: unsupported git URL {url!r}: use git+https://host/repo@<full commit>")
    rest, _, fragment = url.removeprefix("git+").partition("#")
    scheme, sep, after = rest.partition("://")
    repo, at, ref = after.rpartition("@")
    if not at or "/" in ref:
        raise LockError(
            f"{where}: {url!r} is not pinned to a commit: append @<full 40-hex commit> (a branch or tag can move)"
        )
    if not _COMMIT_RE.match(ref):
        raise LockError(
            f"{where}: {url!r} names {ref!r}, not a full commit: pin it to the 40-hex commit id "
            "(a branch, a tag or a short id can move)"
        )
    subdirectory = None
    for part in fragment.split("&") if fragment else ():
        key, _, value = part.partition("=")
        if key == "subdirectory":
            sub = PurePosixPath(value)
            if not value or sub.is_absolute() or ".." in sub.parts:
                raise LockError(f"{where}: invalid subdirectory {value!r} in {url!r}")
            subdirectory = sub.as_posix()
        elif key != "egg":
            raise LockError(f"{where}: unsupported fragment {part!r} in {url!r}")
    return f"{scheme}{sep}{repo}", ref, subdirectory


def _looks_like_path(line: str) -> bool:
    head = re.split(r"[\s;\[]", line, maxsplit=1)[0]
    return head.startswith((".", "/", "~")) or ("/" in head and "://" not in head and "@" not in head)


@functools.lru_cache(maxsize=1 << 14)
def _requirement(text: str) -> Requirement:
    """A PEP 508 line parsed once per process: a thousand envs repeat the same lines (``lock --check`` parses
    every env's). Callers only read it; an invalid line raises each time (exceptions are not cached)."""
    return Requirement(text)


def classify(line: str, root: Path, where: str) -> LocalDir | GitRef | Requirement:
    """What one requirement line is; raises a one-line error for anything envgraph cannot build."""
    text = line.strip()
    if text.startswith(("git+", "hg+", "svn+", "bzr+")):
        raise LockError(f"{where}: write VCS requirements as 'name @ {text}' (PEP 508)")
    if _looks_like_path(text):
        if text.startswith(("/", "~")):
            raise LockError(
                f"{where}: {text!r} is an absolute path: name the directory relative to the declaration file"
            )
        if ".." in PurePosixPath(Path(text).as_posix()).parts:
            raise LockError(f"{where}: {text!r} leaves the project directory: keep local packages inside it")
        try:  # a path too long for the OS, or unreadable, is the user's input: one line, no traceback
            path = (root / text).resolve()
            is_dir = path.is_dir()
            is_project = is_dir and ((path / "pyproject.toml").is_file() or (path / "setup.py").is_file())
        except OSError as e:
            raise LockError(f"{where}: {quote(text, 80)}: cannot read it ({e.strerror or e})") from None
        if not is_dir:
            raise LockError(f"{where}: {text!r} is not a directory (relative to the declaration file)")
        if not is_project:
            raise LockError(
                f"{where}: {text!r} has neither pyproject.toml nor setup.py: it is not a Python project"
            )
        rel = PurePosixPath(Path(text).as_posix()).as_posix().removeprefix("./")
        return LocalDir(text, rel, path)
    try:
        req = _requirement(text)
    except InvalidRequirement as e:
        reason = str(e).splitlines()[0]
        raise ResolutionError(f"{where}: invalid requirement {text!r}: {reason}") from None
    if req.url is None:
        return req
    if req.url.startswith("git+"):
        url, commit, sub = parse_git_url(req.url, where)
        return GitRef(text, req.name, url, commit, sub)
    raise LockError(
        f"{where}: {text!r}: direct URLs other than git+URL@commit are not supported: "
        "publish the file to an index or put it in a find-links directory"
    )


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """(line number, line) with comments removed and backslash continuations joined, as pip reads them."""
    buffer: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        if not buffer:
            start = number
        line = _COMMENT_RE.sub("", raw) if not buffer or raw.strip().startswith("#") else raw
        if buffer and raw.strip().startswith("#"):
            line = ""
        if line.endswith("\\"):
            buffer.append(line[:-1])
            continue
        buffer.append(line)
        joined = _COMMENT_RE.sub("", "".join(buffer)).strip()
        buffer = []
        if joined:
            yield start, joined
    if buffer:
        joined = _COMMENT_RE.sub("", "".join(buffer)).strip()
        if joined:
            yield start, joined


def read_requirements_file(path: Path, root: Path, env: str) -> tuple[list[str], list[str]]:
    """(requirement lines, constraint lines) of a requirements file and the files it includes."""
    requirements: list[str] = []
    constraints: list[str] = []
    _read(path, root, env, requirements, constraints, into="r", seen=())
    return requirements, constraints


def _split_option(line: str) -> tuple[str, str]:
    """``-r file``, ``-rfile``, ``--requirement file``, ``--requirement=file`` -> (option, value)."""
    if line.startswith("--"):
        head, _, rest = line.partition(" ")
        option, eq, value = head.partition("=")
        return option, (value if eq else rest).strip()
    if len(line) > 2 and line[2] != " ":
        return line[:2], line[2:].strip()
    option, _, rest = line.partition(" ")
    return option, rest.strip()


def _display(path: Path, root: Path) -> str:
    try:
        return path.relative_to(root).as_posix()
    except ValueError:
        return str(path)


def _read(
    path: Path, root: Path, env: str, reqs: list[str], cons: list[str], *, into: str, seen: tuple[Path, ...]
) -> None:
    try:
        resolved = path.resolve()
    except RuntimeError:  # a symlink loop: reading it below says so (ELOOP) in one line
        resolved = path.absolute()
    name = _display(resolved, root)
    if resolved in seen:
        chain = " -> ".join(_display(p, root) for p in (*seen, resolved))
        raise LockError(f"env {env}: requirement files include each other: {chain}")
    try:
        raw = read_regular(resolved)  # a FIFO must not hang us
    except OSError as e:
        raise LockError(f"env {env}: cannot read requirements file {name}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise LockError(
            f"env {env}: requirements file {name} is not UTF-8 text (byte {raw[e.start]:#04x} at offset {e.start})"
        ) from None
    if "\x00" in text:
        at = text.count("\n", 0, text.index("\x00")) + 1
        raise LockError(f"env {env}: requirements file {name} line {at}: contains a NUL byte")
    for number, line in _logical_lines(text):
        where = f"env {env}: {name}:{number}"
        if line.startswith("-"):
            option, value = _split_option(line)
            kind = _OPTIONS_WITH_FILE.get(option)
            if kind is None:
                raise LockError(
                    f"{where}: option {option!r} is not supported (only -r/--requirement and -c/--constraint: "
                    "indexes and find-links go in [project], editable installs make no sense in an image, "
                    "and envgraph pins hashes itself)"
                )
            if not value:
                raise LockError(f"{where}: {option} needs a file name")
            # Included files are relative to the file that names them, as pip reads them; what a constraints
            # file includes is constraints too.
            _read(resolved.parent / value, root, env, reqs, cons, into="c" if into == "c" else kind,
                  seen=(*seen, resolved))  # fmt: skip
            continue
        if _OPTION_IN_LINE_RE.search(line.split(";", 1)[0]):
            raise LockError(
                f"{where}: per-requirement options such as --hash are not supported (envgraph pins hashes itself)"
            )
        (cons if into == "c" else reqs).append(line)
