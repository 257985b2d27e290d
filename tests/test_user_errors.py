"""Regression tests of issue 10: no input gives a traceback, and messages quote the input as written.

Declarations, requirements files, paths, option values and environment variables; through the library
(fast) and through the real command line (a subprocess) where the CLI's own handling matters. The fuzz
tests in ``tests/fuzz/`` look for new cases; these pin the ones found.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import envgraph
from envgraph.errors import BuildError, EnvgraphError, LockError, SpecError, StoreError
from tests.support.project import BUILD_HEADER, HEADER

LONG = "x" * 256  # one byte over NAME_MAX


def cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k not in ("ENVGRAPH_STORE", "SOURCE_DATE_EPOCH")}
    return subprocess.run(
        [sys.executable, "-m", "envgraph.cli", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
        env={**environ, **env},
    )


def one_error_line(proc: subprocess.CompletedProcess[str], code: int = 1) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stderr)
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("envgraph: error: "), proc.stderr
    return lines[0]


def spec_error(make_project: Callable[..., Path], body: str, header: str = HEADER) -> str:
    path = make_project(body, header)
    with pytest.raises(SpecError) as info:
        envgraph.load(path)
    return str(info.value)


# -- declarations: messages quote the input as written --------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[env.a]\nbase = "none"\nenvironment = { OMP_NUM_THREADS = 1 }\n',
            "env.a.environment.OMP_NUM_THREADS: expected a string, got 1",
        ),
        ('[env.my_env]\nbase = "none"\nrequirements = [1]\n', "env.my_env.requirements[0]: expected a string, got 1"),
        ('[env.a]\nbase = "none"\nrequirements-file = 3\n', "env.a.requirements-file: expected a string, got 3"),
        ('[env.a]\nbase = "none"\nfiles = [{ src = "x" }]\n', "missing required key env.a.files[0].dest"),
        ('[env.a]\nbase = "none"\nfiles = "x"\n', "env.a.files: expected an array, got 'x'"),
        ('[env.a]\nbase = "none"\nenvironment = "x"\n', "env.a.environment: expected a table, got 'x'"),
        ('[env.a]\nbase = "none"\nsnake_case = 1\n', "unknown key(s) snake_case in env.a"),
        ('[env.a]\nbase = "none"\n"odd key" = 1\n', 'unknown key(s) "odd key" in env.a'),
        ('[env.a]\nbase = "none"\n"a\\rb" = 1\n', 'unknown key(s) "a\\rb" in env.a'),
        ('[env.a]\nbase = "none"\nworkdir = 1979-05-27\n', "env.a.workdir: expected a string, got date 1979-05-27"),
        ('[env."a.b"]\nbase = 1\n', 'env."a.b".base: expected a string, got 1'),
        ('[pipeline.p]\nsteps = { "x y" = 2 }\n', 'pipeline.p.steps."x y": expected a string, got 2'),
    ],
)  # fmt: skip
def test_errors_name_keys_as_written(make_project: Callable[..., Path], body: str, expected: str) -> None:
    assert expected in spec_error(make_project, body)


def test_renamed_fields_keep_their_dashes(make_project: Callable[..., Path]) -> None:
    header = HEADER.replace('find-links = ["wheels"]', 'find-links = ["wheels"]\nmax-layers = "many"')
    assert "project.max-layers: expected an integer, got 'many'" in spec_error(make_project, "", header)


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (f'[env.{"e" * 101}]\nbase = "none"\n', "names are at most 100 characters long"),
        ('[env."core\\n"]\nbase = "none"\n', 'env."core\\n": names may use letters'),
        ('[env.a]\nbase = "none"\nenvironment = { "A=B" = "1" }\n', "variable names must be non-empty"),
        ('[env.a]\nbase = "none"\ncmd = ["a\\u0000b"]\n', "env.a.cmd[0]: contains a NUL character"),
        ('[env.a]\nbase = "none"\nworkdir = "/app/../etc"\n', "must be an absolute path in the image (without '..')"),
        ('[env.a]\nbase = "none"\nfiles = [{ src = "app", dest = "/a/../b" }]\n', "files dest '/a/../b'"),
        ('[env.a]\nbase = "none"\nrequirements-file = ""\n', "requirements-file '' must not be empty"),
        ('[bases.d]\ndebian = { suite = "bookworm", packages = ["--include=x"] }\npython = "/p"\n',
         "bases.d.debian.packages: not a Debian package name: '--include=x'"),
        ('[bases.d]\ndebian = { suite = "bookworm", mirror = "http://a b" }\npython = "/p"\n',
         "bases.d.debian.mirror must be a URL without white space"),
        ('[bases.d]\nimage = "scratch"\npython = "python3"\n', "bases.d.python 'python3' (the interpreter in the image)"),
    ],
)  # fmt: skip
def test_values_nothing_downstream_could_use_are_refused(
    make_project: Callable[..., Path], body: str, expected: str
) -> None:
    assert expected in spec_error(make_project, body)


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('python = "3.11"', 'python = "3.\\u0661\\u0661"', "project.python must be a major.minor version"),
        ('python = "3.11"', 'python = "3.11\\n"', "project.python must be a major.minor version"),
        (
            'name = "t"',
            'name = "t"\nresolve-timeout = nan',
            "project.resolve-timeout must be a positive number",
        ),
        (
            'name = "t"',
            'name = "t"\nresolve-timeout = inf',
            "project.resolve-timeout must be a positive number",
        ),
    ],
)
def test_project_values(make_project: Callable[..., Path], old: str, new: str, expected: str) -> None:
    assert expected in spec_error(make_project, "", HEADER.replace(old, new))


# -- long path components, NUL bytes, undecodable files ------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "header_edit", "expected"),
    [
        ("", ('find-links = ["wheels"]', f'find-links = ["{LONG}"]'), "project.find-links[0] 'xxx"),
        (
            "",
            ('find-links = ["wheels"]', f'find-links = ["wheels/{"é" * 128}"]'),
            "has a component of 256 bytes",
        ),
        (
            f'[env.a]\nbase = "none"\nfiles = [{{ src = "{LONG}", dest = "/a" }}]\n',
            None,
            "env.a: files src 'xxx",
        ),
        (
            f'[env.a]\nbase = "none"\nfiles = [{{ src = "a", dest = "/{LONG}" }}]\n',
            None,
            "env.a: files dest '/xxx",
        ),
        (f'[env.a]\nbase = "none"\nrequirements-file = "{LONG}"\n', None, "env.a.requirements-file 'xxx"),
        (f'[bases.o]\nimage = "oci:{LONG}"\npython = "/p"\n', None, "bases.o: image 'oci:xxx"),
        ('[env.a]\nbase = "none"\nrequirements-file = "r\\u0000.txt"\n', None, "contains a NUL character"),
    ],
)
def test_paths_no_file_system_can_hold_are_refused(
    make_project: Callable[..., Path], body: str, header_edit: tuple[str, str] | None, expected: str
) -> None:
    header = HEADER.replace(*header_edit) if header_edit else HEADER
    message = spec_error(make_project, body, header)
    assert expected in message
    assert "NUL" in message or "component of 256 bytes (the limit is 255)" in message, message


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (b"alpha\n\xff\xfe\n", "env a: requirements file r.txt is not UTF-8 text (byte 0xff at offset 6)"),
        (b"alpha\nbeta\x00\n", "env a: requirements file r.txt line 2: contains a NUL byte"),
        (None, "env a: cannot read requirements file r.txt: not a regular file"),
        ("dir", "env a: cannot read requirements file r.txt: not a regular file"),
        ("missing", "env a: cannot read requirements file r.txt: No such file or directory"),
    ],
)
def test_unreadable_requirements_files(
    make_project: Callable[..., Path], tmp_path: Path, content: bytes | str | None, expected: str
) -> None:
    path = make_project('[env.a]\nbase = "none"\nrequirements-file = "r.txt"\n')
    target = tmp_path / "r.txt"
    if content is None:
        os.mkfifo(target)  # nobody writes to it: reading it would wait forever
    elif content == "dir":
        target.mkdir()
    elif isinstance(content, bytes):
        target.write_bytes(content)
    ws = envgraph.load(path)
    for run in (lambda: ws.lock(check=True), ws.lock):
        with pytest.raises(LockError) as info:
            run()
        assert str(info.value) == expected


def test_a_fifo_in_files_is_an_error_not_a_hang(make_project: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "app").mkdir()
    os.mkfifo(tmp_path / "app" / "pipe")
    path = make_project('[env.a]\nbase = "none"\nfiles = [{ src = "app", dest = "/app" }]\n', BUILD_HEADER)
    envgraph.load(path).lock()  # the lock pins what the files are, not their content
    with pytest.raises(BuildError, match=r"^files 'app': cannot read .*/app/pipe: not a regular file"):
        envgraph.load(path).plan()
    os.unlink(tmp_path / "app" / "pipe")
    os.rmdir(tmp_path / "app")
    os.mkfifo(tmp_path / "app")  # the src itself: refused when locking
    with pytest.raises(LockError, match=r"^env a: files src 'app' is not a regular file or directory$"):
        envgraph.load(path).lock()


def test_declaration_paths(tmp_path: Path) -> None:
    with pytest.raises(SpecError, match="has a component of 256 bytes"):
        envgraph.load(tmp_path / LONG / "envgraph.toml")
    (tmp_path / "envgraph.toml").write_bytes(b'[project]\nname = "\xff"\n')
    with pytest.raises(SpecError, match=r"envgraph.toml: not UTF-8 text \(byte 0xff at offset 18\)"):
        envgraph.load(tmp_path / "envgraph.toml")
    (tmp_path / "envgraph.toml").write_text("a = " + "[" * 100_000)
    with pytest.raises(SpecError, match="invalid TOML"):
        envgraph.load(tmp_path / "envgraph.toml")


def test_store_paths(
    make_project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_project('[env.a]\nbase = "none"\n')
    with pytest.raises(
        StoreError, match=r"store '.*'... \(\d+ characters\): the path has a component of 256 bytes"
    ):
        envgraph.load(path, store=tmp_path / LONG)
    monkeypatch.setenv("ENVGRAPH_STORE", str(tmp_path / "s" / LONG))
    with pytest.raises(StoreError, match="component of 256 bytes"):
        envgraph.load(path)


# -- through the command line ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small offline project, locked and built into ``store/``."""
    from tests.support.wheels import standard_wheels

    root = tmp_path_factory.mktemp("built")
    standard_wheels(root / "wheels")
    body = '[env.core]\nbase = "none"\nrequirements = ["alpha<2"]\n'
    (root / "envgraph.toml").write_text(textwrap.dedent(BUILD_HEADER) + body)
    ws = envgraph.load(root / "envgraph.toml", store=root / "store")
    ws.lock()
    assert ws.build(jobs=1).ok
    return root


@pytest.mark.parametrize(
    ("args", "env", "expected"),
    [
        (("build", "-j", "0"), {}, "Invalid value for '-j' / '--jobs': 0 is not in the range x>=1."),
        (("lock", "-j", "-3"), {}, "Invalid value for '-j' / '--jobs': -3 is not in the range x>=1."),
        (("gc", "--keep-last", "-1"), {}, "Invalid value for '--keep-last': -1 is not in the range x>=0."),
        (("push", "-j", "65", "--registry", "r/x"), {}, "Invalid value for '-j' / '--jobs'"),
        (("export", "core", "-o", "."), {}, "Invalid value for '-o' / '--output': '.' is a directory"),
        (("build", "--report", "."), {}, "Invalid value for '--report': '.' is a directory"),
        (("--store", f"s/{LONG}", "build"), {}, "Invalid value for '--store': the path 's/xxx"),
        (("--store", f"s/{LONG}", "verify"), {}, "component of 256 bytes"),
        (("--store", f"s/{LONG}", "images"), {}, "component of 256 bytes"),
        (("images",), {"ENVGRAPH_STORE": f"/tmp/{LONG}"}, "Invalid value for '--store'"),
        (("-f", f"{LONG}.toml", "graph"), {}, "Invalid value for '-f' / '--file'"),
        (
            ("graph", "--format", "pdf"),
            {},
            "'pdf' is not one of 'tree', 'dot', 'mermaid', 'json', 'png', 'svg'.",
        ),
        (("frobnicate",), {}, "No such command 'frobnicate'."),
        (
            ("lock", "-P", "numpy>=2"),
            {},
            "Invalid value for '--upgrade-package' / '-P': 'numpy>=2' is not a package name",
        ),
    ],
)
def test_bad_option_values_are_one_line(
    built: Path, args: tuple[str, ...], env: dict[str, str], expected: str
) -> None:
    line = one_error_line(cli(built, *args, **env), code=2)
    assert expected in line and "(see `envgraph" in line, line


def test_bad_environment_variables_are_one_line(built: Path) -> None:
    line = one_error_line(cli(built, "build", "--dry-run", SOURCE_DATE_EPOCH="yesterday"))
    assert "SOURCE_DATE_EPOCH must be an integer number of seconds, got 'yesterday'" in line


def test_an_os_error_nobody_anticipated_is_one_line_naming_the_path(built: Path) -> None:
    line = one_error_line(cli(built, "--store", "store", "export", "core", "-o", "/proc/envgraph-export.tar"))
    assert "/proc/envgraph-export.tar: " in line, line


def test_debug_keeps_the_traceback(built: Path, tmp_path: Path) -> None:
    shutil.copytree(built, tmp_path / "p", ignore=shutil.ignore_patterns("store"))
    (tmp_path / "p" / "lockfiles" / "core.lock.json").write_text("[]")
    line = one_error_line(cli(tmp_path / "p", "build", "--dry-run"))
    assert "core.lock.json: not a lockfile (an array, not a JSON object): run `envgraph lock`" in line
    proc = cli(tmp_path / "p", "--debug", "build", "--dry-run")
    assert proc.returncode == 1 and "Traceback" in proc.stderr and "StaleLockError" in proc.stderr


# -- a read-only store -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def read_only_store(built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The built store, bind-mounted read-only (as root, permissions alone would not stop a write)."""
    where = tmp_path_factory.mktemp("ro") / "store"
    where.mkdir()
    bind = subprocess.run(["mount", "--bind", str(built / "store"), str(where)], capture_output=True)
    if bind.returncode != 0:
        pytest.skip(f"cannot bind-mount here: {bind.stderr.decode().strip()}")
    try:
        ro = subprocess.run(["mount", "-o", "remount,ro,bind", str(where)], capture_output=True)
        if ro.returncode != 0:
            pytest.skip(f"cannot remount read-only here: {ro.stderr.decode().strip()}")
        probe = where / ".probe"
        with pytest.raises(OSError):
            probe.write_text("x")
        yield where
    finally:
        subprocess.run(["umount", str(where)], check=True)


@pytest.mark.parametrize(
    "args",
    [
        ("graph",),
        ("images",),
        ("verify",),
        ("export", "core", "-o", "{tmp}/core.tar"),
        ("build", "--dry-run"),
    ],
    ids=["graph", "images", "verify", "export", "build-dry-run"],
)
def test_read_only_commands_work_on_a_read_only_store(
    built: Path, read_only_store: Path, tmp_path: Path, args: tuple[str, ...]
) -> None:
    argv = [a.replace("{tmp}", str(tmp_path)) for a in args]
    proc = cli(built, "--store", str(read_only_store), *argv)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    if args[0] == "images":
        assert "core" in proc.stdout
    if args[0] == "export":
        assert (tmp_path / "core.tar").stat().st_size > 0


def test_a_read_only_store_fails_in_one_line_where_it_must_write(built: Path, read_only_store: Path) -> None:
    # Building into it cannot work (the lockfile changed, so something must be written): one line, no traceback.
    proc = cli(built, "--store", str(read_only_store), "gc")
    assert "Traceback" not in proc.stderr, proc.stderr
    if proc.returncode != 0:
        one_error_line(proc)


def test_user_errors_are_envgraph_errors() -> None:
    # The CLI's handler catches exactly this type: every error class above must be one.
    for cls in (SpecError, LockError, StoreError):
        assert issubclass(cls, EnvgraphError)


def test_a_full_disk_is_one_line_and_leaves_nothing_half_written(built: Path, tmp_path: Path) -> None:
    full = tmp_path / "full"
    full.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4k", "tmpfs", str(full)], capture_output=True)
    if mount.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mount.stderr.decode().strip()}")
    try:
        line = one_error_line(cli(built, "--store", "store", "export", "core", "-o", str(full / "core.tar")))
        assert f"{full}/core.tar: No space left on device" in line, line
        assert list(full.iterdir()) == []
    finally:
        subprocess.run(["umount", str(full)], check=True)
