"""Requirements as people write them: requirement files read as pip reads them, directories, git URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from envgraph.errors import LockError, ResolutionError
from envgraph.lock._requirements import GitRef, LocalDir, classify, parse_git_url, read_requirements_file
from envgraph.lock._sources import source_hash
from tests.support.sdists import make_source_tree

COMMIT = "0123456789abcdef0123456789abcdef01234567"


def test_includes_constraints_comments_and_continuations_as_pip_reads_them(tmp_path: Path) -> None:
    (tmp_path / "reqs").mkdir()
    (tmp_path / "reqs" / "main.txt").write_text(
        "# the env's requirements\n"
        "alpha<2   # an inline comment\n"
        "-r common.txt\n"
        "--constraint ../constraints.txt\n"
        "beta \\\n"
        "    >=1.0\n"
        "\n"
        "gamma ; python_version >= '3'\n"
    )
    (tmp_path / "reqs" / "common.txt").write_text("delta\n--requirement=more/extra.txt\n")
    (tmp_path / "reqs" / "more").mkdir()
    (tmp_path / "reqs" / "more" / "extra.txt").write_text("-rnested.txt\n")  # pip accepts -rFILE too
    (tmp_path / "reqs" / "more" / "nested.txt").write_text("epsilon==1\n")
    (tmp_path / "constraints.txt").write_text("alpha==1.0\n-r constraints-more.txt\n")
    (tmp_path / "constraints-more.txt").write_text(
        "beta==1.0  # a constraint file's includes are constraints\n"
    )
    reqs, cons = read_requirements_file(tmp_path / "reqs" / "main.txt", tmp_path, "e")
    assert reqs == ["alpha<2", "delta", "epsilon==1", "beta     >=1.0", "gamma ; python_version >= '3'"]
    assert cons == ["alpha==1.0", "beta==1.0"]


def test_a_url_fragment_is_not_a_comment(tmp_path: Path) -> None:
    url = f"pkg @ git+https://example.org/pkg@{COMMIT}#subdirectory=python"
    (tmp_path / "r.txt").write_text(url + "\n")
    assert read_requirements_file(tmp_path / "r.txt", tmp_path, "e")[0] == [url]


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("-e ./libs/x", "option '-e' is not supported"),
        ("--index-url https://example.org/simple", "indexes and find-links go in [project]"),
        ("-f ./wheels", "option '-f' is not supported"),
        ("alpha==1.0 --hash=sha256:" + "0" * 64, "per-requirement options such as --hash are not supported"),
        ("-r", "-r needs a file name"),
        ("-r missing.txt", "cannot read requirements file missing.txt"),
    ],
)
def test_unsupported_lines_are_one_clear_error_with_file_and_line(
    tmp_path: Path, line: str, needle: str
) -> None:
    (tmp_path / "r.txt").write_text("alpha\n" + line + "\n")
    with pytest.raises(LockError) as e:
        read_requirements_file(tmp_path / "r.txt", tmp_path, "core")
    msg = str(e.value)
    assert needle in msg
    assert msg.startswith("env core: r.txt:2" if "missing" not in line and line != "-r" else "env core:")
    assert "\n" not in msg


def test_files_including_each_other_are_refused_naming_the_cycle(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("-r b.txt\n")
    (tmp_path / "b.txt").write_text("-r a.txt\n")
    with pytest.raises(LockError, match=r"include each other: a\.txt -> b\.txt -> a\.txt"):
        read_requirements_file(tmp_path / "a.txt", tmp_path, "e")


def test_a_directory_of_the_project_is_a_local_package(tmp_path: Path) -> None:
    make_source_tree(tmp_path / "libs" / "features", "features", "0.3")
    item = classify("./libs/features", tmp_path, "env e")
    assert isinstance(item, LocalDir)
    assert (item.rel, item.path) == ("libs/features", (tmp_path / "libs" / "features").resolve())


@pytest.mark.parametrize(
    ("line", "needle"),
    [
        ("/abs/libs/x", "is an absolute path"),
        ("../outside", "leaves the project directory"),
        ("./libs/missing", "is not a directory"),
        ("./libs/empty", "neither pyproject.toml nor setup.py"),
        ("git+https://example.org/x@" + COMMIT, "write VCS requirements as 'name @ git+"),
        ("x @ https://example.org/x-1.0.tar.gz", "direct URLs other than git+URL@commit are not supported"),
        ("x @ git+https://example.org/x", "is not pinned to a commit"),
        ("x @ git+https://example.org/x@main", "names 'main', not a full commit"),
        ("x @ git+https://example.org/x@0123abc", "names '0123abc', not a full commit"),
        ("x @ git+https://example.org/x@" + COMMIT + "#subdirectory=../up", "invalid subdirectory"),
        ("x >= = 1", "invalid requirement"),
    ],
)
def test_requirements_envgraph_cannot_build_are_refused_plainly(
    tmp_path: Path, line: str, needle: str
) -> None:
    (tmp_path / "libs" / "empty").mkdir(parents=True)
    with pytest.raises((LockError, ResolutionError)) as e:
        classify(line, tmp_path, "env e")
    assert needle in str(e.value)


def test_git_requirements_pinned_to_a_full_commit() -> None:
    url = f"git+https://example.org/repo.git@{COMMIT}#subdirectory=pkgs/x"
    assert parse_git_url(url, "e") == ("https://example.org/repo.git", COMMIT, "pkgs/x")
    item = classify(f"x @ {url}", Path("."), "env e")
    assert isinstance(item, GitRef)
    assert (item.name, item.commit, item.pip_url) == ("x", COMMIT, url)


def test_a_source_tree_hash_ignores_caches_and_build_output(tmp_path: Path) -> None:
    tree = make_source_tree(tmp_path / "p", "p", "1.0")
    before = source_hash(tree)
    for junk in ("build/lib/p.py", "dist/p-1.0.tar.gz", "p.egg-info/PKG-INFO", "src/p/__pycache__/x.pyc",
                 ".git/HEAD", ".venv/bin/python", "src/p/y.pyc"):  # fmt: skip
        (tree / junk).parent.mkdir(parents=True, exist_ok=True)
        (tree / junk).write_text("junk")
    assert source_hash(tree) == before
    (tree / "src" / "p" / "__init__.py").write_text("changed = True\n")
    assert source_hash(tree) != before


def test_a_directory_path_too_long_for_the_os_is_one_line(tmp_path: Path) -> None:
    """Found by the declaration fuzzer: a local-directory line longer than PATH_MAX raised ENAMETOOLONG."""
    from envgraph.lock._requirements import classify

    line = "./" + "/".join(["x" * 255] * 20)
    with pytest.raises(
        LockError, match=r"^env a: '\./x+'\.\.\. \(5121 characters\): cannot read it \(File name too long\)$"
    ):
        classify(line, tmp_path, "env a")
