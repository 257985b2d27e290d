"""Sources of packages built from source: [build-system] from sdists and trees, safe unpacking, git commits."""

from __future__ import annotations

import io
import os
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from envgraph.errors import BuildError, LockError
from envgraph.lock._sources import (
    LEGACY_BACKEND,
    BuildSystem,
    build_system,
    git_checkout,
    source_hash,
    unpack_sdist,
)
from tests.support.sdists import make_sdist, make_source_tree


def _tar(path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> Path:
    with tarfile.open(path, "w:gz") as tf:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tf.addfile(info, io.BytesIO(data) if data is not None else None)
    return path


def _file(name: str, data: bytes = b"x") -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), data


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


def test_build_system_of_an_sdist_a_tree_and_a_legacy_project(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "p", "1.0", build_requires=["tinybackend>=1"])
    assert build_system(sdist, "p") == BuildSystem(("tinybackend>=1",), "tinybackend")
    tree = make_source_tree(tmp_path / "t", "t", "1.0")
    assert build_system(tree, "t") == BuildSystem((), "backend", (".",))
    legacy = _tar(tmp_path / "old-1.0.tar.gz", [_file("old-1.0/setup.py", b"from setuptools import setup\n")])
    assert build_system(legacy, "old") == BuildSystem(("setuptools>=40.8.0",), LEGACY_BACKEND)
    zipped = tmp_path / "z-1.0.zip"
    with zipfile.ZipFile(zipped, "w") as zf:
        zf.writestr(
            "z-1.0/pyproject.toml",
            '[build-system]\nrequires = ["flit_core"]\nbuild-backend = "flit_core.buildapi"\n',
        )
    assert build_system(zipped, "z") == BuildSystem(("flit_core",), "flit_core.buildapi")


@pytest.mark.parametrize(
    ("pyproject", "needle"),
    [
        (b"[build-system\n", "invalid pyproject.toml"),
        (b'[build-system]\nrequires = "setuptools"\n', "requires must be a list of strings"),
        (b"[build-system]\nrequires = []\nbuild-backend = 3\n", "build-backend must be a string"),
        (b'[build-system]\nrequires = []\nbackend-path = ["../out"]\n', "must stay inside the project"),
    ],
)
def test_a_bad_build_system_is_one_clear_error(tmp_path: Path, pyproject: bytes, needle: str) -> None:
    sdist = _tar(tmp_path / "p-1.0.tar.gz", [_file("p-1.0/pyproject.toml", pyproject)])
    with pytest.raises(LockError, match=needle):
        build_system(sdist, "p")


def test_an_sdist_must_have_one_top_directory(tmp_path: Path) -> None:
    sdist = _tar(tmp_path / "p-1.0.tar.gz", [_file("p-1.0/pyproject.toml"), _file("other/x")])
    with pytest.raises(LockError, match="one top-level directory"):
        build_system(sdist, "p")


def test_unpacking_gives_the_tree(tmp_path: Path) -> None:
    sdist = make_sdist(tmp_path, "p", "1.0")
    root = unpack_sdist(sdist, tmp_path / "out", "p")
    assert root == tmp_path / "out" / "p-1.0"
    assert (root / "src" / "p" / "__init__.py").is_file()
    assert (root / "backend.py").is_file()


@pytest.mark.parametrize(
    "members",
    [
        [_file("p-1.0/ok"), _file("p-1.0/../../escape")],
        [_link("p-1.0/up", "/etc"), _file("p-1.0/up/passwd")],
        [_link("p-1.0/out", "../../.."), _file("p-1.0/out/x")],
        [_link("p-1.0/hard", "/etc/passwd", tarfile.LNKTYPE)],
    ],
    ids=["dotdot", "absolute-link", "relative-link-out", "hard-link-out"],
)
def test_hostile_sdists_write_nothing_outside(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> None:
    sdist = _tar(tmp_path / "p-1.0.tar.gz", members)
    dest = tmp_path / "deep" / "out"
    dest.mkdir(parents=True)
    with pytest.raises(BuildError):
        unpack_sdist(sdist, dest, "p", BuildError)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["deep", "p-1.0.tar.gz"]
    assert not (tmp_path / "escape").exists()


def _git(cwd: Path, *args: str) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@e", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@e"}  # fmt: skip
    return subprocess.run(
        ["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> tuple[Path, str, str]:
    """A git repository with two commits of one project; returns (path, first commit, second commit)."""
    path = make_source_tree(tmp_path / "repo", "gitpkg", "1.0")
    _git(path, "init", "-q")
    _git(path, "add", ".")
    _git(path, "commit", "-qm", "one")
    first = _git(path, "rev-parse", "HEAD")
    (path / "src" / "gitpkg" / "__init__.py").write_text("VALUE = 2\n")
    _git(path, "commit", "-qam", "two")
    return path, first, _git(path, "rev-parse", "HEAD")


def test_a_git_commit_is_checked_out_and_cached(repo: tuple[Path, str, str], tmp_path: Path) -> None:
    path, first, second = repo
    cache = tmp_path / "cache"
    tree = git_checkout(f"file://{path}", first, "gitpkg", cache)
    assert tree == cache / first / "tree"
    assert not (tree / ".git").exists()
    assert "VALUE" not in (tree / "src" / "gitpkg" / "__init__.py").read_text()
    other = git_checkout(f"file://{path}", second, "gitpkg", cache)
    assert source_hash(other) != source_hash(tree)
    (path / "src").rename(path / "gone")  # the cached checkout does not need the repository again
    assert git_checkout(f"file://{path}", first, "gitpkg", cache) == tree


def test_an_unknown_commit_is_one_clear_error(repo: tuple[Path, str, str], tmp_path: Path) -> None:
    path, _, _ = repo
    with pytest.raises(LockError, match=r"gitpkg: git checkout failed: .*"):
        git_checkout(f"file://{path}", "f" * 40, "gitpkg", tmp_path / "cache")
    assert list((tmp_path / "cache").iterdir()) == []  # nothing half-made is kept
