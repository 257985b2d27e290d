"""Through the real command line (a subprocess), a hostile declaration or lockfile gives exit code 0 or 1
and, on failure, exactly one line on stderr: ``envgraph: error: ...``, never a traceback.

Fifty hostile files: thirty written by hand (each once broke or could break something), twenty drawn by
hypothesis (four batches of five, each batch run in parallel subprocesses); ``ENVGRAPH_FUZZ=long`` draws
four hundred.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import attrs
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.conftest import FuzzProject, fuzz_settings
from tests.fuzz.mutations import damaged, edited, json_dumps, json_values, toml_dumps, toml_values

COMMANDS = [("graph",), ("lock", "--check"), ("build", "--dry-run"), ("gc", "--dry-run")]


@attrs.frozen
class Case:
    rel: str  # the file replaced, relative to the project
    # Its new content; None: a FIFO nobody writes to.
    data: bytes | None = attrs.field(
        repr=lambda b: "FIFO" if b is None else f"<{len(b)} bytes: {b[:120]!r}...>"
    )
    command: tuple[str, ...]
    expect: str = ""  # a part of the error line, when known


@st.composite
def cases(draw: st.DrawFn, project: FuzzProject) -> Case:
    command = draw(st.sampled_from(COMMANDS))
    kind = draw(st.sampled_from(["declaration", "declaration-bytes", "lockfile", "lockfile-bytes"]))
    if kind == "declaration":
        doc = draw(edited(project.declaration, toml_values, root_edits=False))
        return Case("envgraph.toml", toml_dumps(doc).encode(), command)
    if kind == "declaration-bytes":
        return Case("envgraph.toml", draw(damaged(project.text.encode())), command)
    rel = draw(st.sampled_from(sorted(project.locks)))
    if kind == "lockfile":
        doc = draw(edited(json.loads(project.locks[rel]), json_values, root_edits=True))
        return Case(rel, json_dumps(doc).encode(), command)
    return Case(rel, draw(damaged(project.locks[rel].encode())), command)


def run_case(template: Path, where: Path, case: Case) -> subprocess.CompletedProcess[str]:
    shutil.copytree(template, where, symlinks=True, ignore=shutil.ignore_patterns("store", "fifo"))
    os.mkfifo(where / "hostile" / "fifo")
    target = where / case.rel
    if case.data is None:
        target.unlink()
        os.mkfifo(target)
    else:
        target.write_bytes(case.data)
    argv = [
        sys.executable,
        "-m",
        "envgraph.cli",
        "-f",
        str(where / "envgraph.toml"),
        "--store",
        str(where / "store"),
    ]
    try:
        return subprocess.run(
            [*argv, *case.command],
            capture_output=True,
            text=True,
            timeout=60,
            env={**os.environ, "ENVGRAPH_STORE": ""},
        )
    except subprocess.TimeoutExpired:  # a hang is a finding like any other: report it with the rest
        return subprocess.CompletedProcess(argv, -1, "", "no answer within 60 s (hung)")


def check(case: Case, proc: subprocess.CompletedProcess[str]) -> str | None:
    """What is wrong with the process's answer, or None."""
    if "Traceback" in proc.stderr:
        return f"traceback for {case}:\n{proc.stderr}"
    if proc.returncode not in (0, 1):
        return f"exit code {proc.returncode} for {case}:\n{proc.stderr}"
    lines = proc.stderr.splitlines()
    if proc.returncode == 1 and (len(lines) != 1 or not lines[0].startswith("envgraph: error: ")):
        return f"not one error line for {case}:\n{proc.stderr}"
    if case.expect and (proc.returncode != 1 or case.expect not in proc.stderr):
        return (
            f"expected an error with {case.expect!r} for {case}, got exit {proc.returncode}:\n{proc.stderr}"
        )
    return None


def run_all(template: Path, base: Path, batch: list[Case]) -> list[str]:
    base.mkdir()
    try:
        with ThreadPoolExecutor(max_workers=5) as pool:
            procs = list(pool.map(lambda ic: run_case(template, base / str(ic[0]), ic[1]), enumerate(batch)))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return [p for p in (check(c, proc) for c, proc in zip(batch, procs, strict=True)) if p]


def _declaration(text: str, old: str, new: str) -> bytes:
    assert old in text, old
    return text.replace(old, new, 1).encode()


def hostile_cases(project: FuzzProject) -> list[Case]:
    """Thirty hand-written hostile files, alternating `lock --check` and `build --dry-run`."""
    t = project.text
    req = 'requirements-file = "reqs/train.txt"'
    core = project.locks["lockfiles/core.lock.json"]
    joblib = '"filename": "../../3d/x/joblib-1.6.0-py3-none-any.whl"'
    decl: list[tuple[bytes, str]] = [
        (_declaration(t, req, 'requirements-file = "hostile/bad-utf8.txt"'), "not UTF-8 text (byte 0xff"),
        (_declaration(t, req, 'requirements-file = "hostile/nul.txt"'), "contains a NUL byte"),
        (_declaration(t, req, 'requirements-file = "hostile/fifo"'), "not a regular file"),
        (_declaration(t, req, f'requirements-file = "{"x" * 256}"'), "has a component of 256 bytes"),
        (
            _declaration(t, req, 'requirements-file = "hostile/options.txt"'),
            "cannot read requirements file hostile/other.txt: No such file",
        ),
        (
            _declaration(t, 'find-links = ["wheels"]', f'find-links = ["{"x" * 256}"]'),
            "project.find-links[0]",
        ),
        (_declaration(t, 'find-links = ["wheels"]', f'find-links = ["wheels/{"é" * 128}"]'), "256 bytes"),
        (_declaration(t, 'src = "app/"', f'src = "{"x" * 300}"'), "files src"),
        (_declaration(t, 'src = "app/"', 'src = "hostile/fifo"'), "not a regular file"),
        # Another files src is another declaration: a stale lock (the content is read only when building).
        (_declaration(t, 'src = "app/"', 'src = "hostile"'), "drv changed: files"),
        (_declaration(t, 'dest = "/app"', 'dest = "/app\\u0000"'), "NUL"),
        (
            _declaration(t, 'OMP_NUM_THREADS = "1"', "OMP_NUM_THREADS = 1"),
            "env.core.environment.OMP_NUM_THREADS",
        ),
        (_declaration(t, "[env.tools]", f"[env.{'t' * 101}]"), "at most 100 characters"),
        (_declaration(t, "[env.tools]", '[env."tools\\r"]'), "tools\\r"),
        (_declaration(t, 'python = "3.11"', 'python = "3.\u0661\u0661"'), "project.python"),
        (_declaration(t, 'image = "scratch"', f'image = "oci:{"x" * 300}"'), "bases.none"),
        (_declaration(t, "max-layers = 20", "max-layers = 20\nresolve-timeout = nan"), "resolve-timeout"),
        (b"\xff" + t.encode(), "not UTF-8 text"),
        (t.encode().replace(b"fuzz", b"fu\x00zz", 1), "invalid TOML"),
        (b"a = " + b"[" * 100_000, "invalid TOML"),
    ]
    lock: list[tuple[str, bytes | None, str]] = [
        ("lockfiles/core.lock.json", b"[]\n", "not a lockfile (an array"),
        ("app/__main__.py", None, "not a regular file"),  # a FIFO in fresh files: hashed when building
        ("lockfiles/train.lock.json", b"1\n", "not a lockfile (a number"),
        ("lockfiles/bases/none.lock.json", b'"x"\n', "not a lockfile (a string"),
        ("lockfiles/bases/deb.lock.json", b"[]\n", "not a lockfile (an array"),
        ("lockfiles/core.lock.json", None, "not a regular file"),
        ("lockfiles/core.lock.json", b"\xff\xfe{}", "not UTF-8"),
        ("lockfiles/core.lock.json", b"[" * 100_000, "nested too deeply"),
        ("lockfiles/core.lock.json", core.replace('"filename": "alpha-1.0-py3-none-any.whl"', joblib).encode(),
         "packages[0].wheel.filename"),
        ("lockfiles/serve.lock.json", core.encode(), "env is 'core', not 'serve'"),
    ]  # fmt: skip
    commands = [("lock", "--check"), ("build", "--dry-run")]
    out = [Case("envgraph.toml", data, commands[i % 2], expect) for i, (data, expect) in enumerate(decl)]
    out += [Case(rel, data, commands[i % 2], expect) for i, (rel, data, expect) in enumerate(lock)]
    return out


def test_thirty_hostile_files_through_the_cli_are_one_line(fuzz_project: FuzzProject) -> None:
    cases = hostile_cases(fuzz_project)
    assert len(cases) == 30
    problems = run_all(fuzz_project.root, fuzz_project.root.parent / "cli-hostile", cases)
    assert not problems, "\n\n".join(problems)


_counter = iter(range(10**9))


@given(data=st.data())
@fuzz_settings(4)
def test_drawn_hostile_files_through_the_cli_are_one_line(
    fuzz_project: FuzzProject, data: st.DataObject
) -> None:
    batch = data.draw(st.lists(cases(fuzz_project), min_size=5, max_size=5), label="cases")
    problems = run_all(fuzz_project.root, fuzz_project.root.parent / f"cli-{next(_counter)}", batch)
    assert not problems, "\n\n".join(problems)
