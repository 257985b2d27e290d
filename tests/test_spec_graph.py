"""Declarations and graph validation: every bad input is one clear line, through the command line.

The command line runs in this process; one smoke test per behaviour runs the real ``python -m envgraph.cli``
(exit code, stderr, finding the declaration from the working directory).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph._spec_schema import spec_schema
from envgraph.errors import GraphError, SpecError
from tests.support.cli import cli, cli_process

ROOT = Path(__file__).resolve().parent.parent

GOOD = """
[project]
name = "x"
python = "3.11"
[bases.b]
image = "scratch"
[env.a]
base = "b"
[env.c]
parent = "a"
[pipeline.p]
steps = { one = "a", two = "c" }
"""


BAD = [
    ("[project\n", "invalid TOML: Expected ']' at the end of a table declaration (at line 1"),
    (GOOD.replace('parent = "a"', 'parent = "zzz"'), "env.c: unknown parent env 'zzz' (known: a, c)"),
    (GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "nope"'), "env.a: unknown base 'nope'"),
    (GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nparent = "c"'), "cycle in env parents: a -> c -> a"),
    (
        GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "b"\nparent = "c"'),
        "env.a: set exactly one of 'base' or 'parent'",
    ),
    (GOOD.replace('[env.a]\nbase = "b"', "[env.a]"), "env.a: set exactly one of 'base' or 'parent'"),
    (GOOD.replace('two = "c"', 'two = "ghost"'), "pipeline.p: step 'two' uses unknown env 'ghost'"),
    (GOOD + '[env.b]\nparent = "a"\n', "duplicate name 'b': used by both bases.b and env.b"),
    (GOOD + '[env.a]\nbase = "b"\n', "invalid TOML: Cannot declare ('env', 'a') twice (at line"),
    (
        GOOD.replace('python = "3.11"', "python = 3.11"),
        "project.python: expected a string, got 3.11",
    ),
    (
        GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "b"\nrequirements = "numpy"'),
        "env.a.requirements: expected an array, got 'numpy'",
    ),
    (
        GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "b"\nenvironment = { X = 1 }'),
        "env.a.environment.X: expected a string, got 1",
    ),
    (
        GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "b"\nrequirement = ["x"]'),
        "unknown key(s) requirement in env.a",
    ),
    (GOOD.replace('image = "scratch"', 'image = "ftp://x"'), "bases.b: unknown transport in image 'ftp://x'"),
    (GOOD.replace('python = "3.11"', 'python = "3"'), "project.python must be a major.minor version"),
    ("[project]\nname = 'x'\n", "missing required key project.python"),
]


@pytest.mark.parametrize(("text", "expected"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_input_is_one_clear_line(tmp_path: Path, text: str, expected: str) -> None:
    (tmp_path / "envgraph.toml").write_text(text)
    with pytest.raises(SpecError) as info:
        envgraph.load(tmp_path / "envgraph.toml")
    assert expected in str(info.value)
    proc = cli(tmp_path, "graph", check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_the_real_command_says_one_line_and_exits_1(tmp_path: Path) -> None:
    text, expected = BAD[1]
    (tmp_path / "envgraph.toml").write_text(text)
    proc = cli_process(tmp_path, "graph", check=False)
    assert proc.returncode == 1
    assert proc.stdout == ""
    assert proc.stderr == f"envgraph: error: {expected}\n"


@pytest.mark.parametrize("run", [cli, cli_process], ids=["in-process", "process"])
def test_declaration_found_upward(tmp_path: Path, run: Callable[..., Any]) -> None:
    (tmp_path / "envgraph.toml").write_text(GOOD)
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    proc = run(sub, "graph", check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:3] == [
        "base b",
        "  env a  (used by pipeline p)",
        "    env c  (used by pipeline p)",
    ]


def test_missing_declaration(tmp_path: Path) -> None:
    proc = cli(tmp_path, "graph", check=False)
    assert proc.returncode == 1 and "no envgraph.toml found" in proc.stderr


def test_graph_formats_and_pipeline_filter(tmp_path: Path) -> None:
    (tmp_path / "envgraph.toml").write_text(
        GOOD + '[env.other]\nbase = "b"\n[pipeline.q]\nsteps = { s = "other" }\n'
    )
    data = json.loads(cli(tmp_path, "graph", "--format", "json", "--pipeline", "q").stdout)
    assert {n["name"] for n in data["nodes"]} == {"b", "other", "q"}
    dot = cli(tmp_path, "graph", "--format", "dot").stdout
    assert '"env a" -> "env c";' in dot
    mermaid = cli(tmp_path, "graph", "--format", "mermaid").stdout
    assert mermaid.startswith("graph LR")
    ws = envgraph.load(tmp_path / "envgraph.toml")
    assert ws.graph.select(pipelines=["p"]) == ["a", "c"]
    assert ws.graph.select(envs=["c"]) == ["a", "c"]


def test_bundled_example_loads() -> None:
    ws = envgraph.load(ROOT / "envgraph.toml")
    assert ws.graph.envs() == ["core", "serve", "train"]
    assert set(ws.spec.pipeline) == {"training", "serving"}


def test_shipped_schema_is_generated_from_the_models() -> None:
    shipped = json.loads((ROOT / "envgraph" / "schema" / "envgraph.schema.json").read_text())
    assert shipped == spec_schema()
    env = shipped["$defs"]["Env"]["properties"]
    assert "requirements-file" in env and env["files"]["items"] == {"$ref": "#/$defs/FileSpec"}


def test_readme_documents_every_key() -> None:
    readme = (ROOT / "README.md").read_text()
    for key in ["index-url", "extra-index-urls", "find-links", "max-layers", "resolve-timeout", "requirements-file",
                "environment", "files", "workdir", "entrypoint", "libc", "db"]:  # fmt: skip
        assert f"`{key}`" in readme, key


def test_a_typo_in_an_env_or_pipeline_name_suggests_the_closest_names(tmp_path: Path) -> None:
    envs = "".join(f'[env.leaf{i}]\nparent = "a"\n' for i in range(40))
    (tmp_path / "envgraph.toml").write_text(GOOD + envs + '[pipeline.training]\nsteps = { s = "leaf1" }\n')
    ws = envgraph.load(tmp_path / "envgraph.toml")
    with pytest.raises(envgraph.errors.GraphError) as err:
        ws.graph.select(envs=["lef10"])
    msg = str(err.value)
    # At scale: the suggestions and a count, not 42 names.
    assert msg.startswith("unknown env 'lef10' (did you mean leaf10") and "42 known" in msg, msg
    assert "leaf33" not in msg
    # Every command taking a name says the same: build, lock, export (through the CLI, one line).
    for args in (
        ["build", "--dry-run", "lef10"],
        ["lock", "--check", "lef10"],
        ["export", "lef10", "-o", "x"],
    ):
        proc = cli_process(tmp_path, *args, check=False)
        assert proc.returncode != 0 and "did you mean leaf10" in proc.stderr, (args, proc.stderr)
        assert len(proc.stderr.splitlines()) == 1
    proc = cli_process(tmp_path, "build", "--pipeline", "trainig", check=False)
    assert "unknown pipeline 'trainig' (did you mean training? known: p, training)" in proc.stderr
    # A small graph still lists every name.
    ws = envgraph.load(ROOT / "envgraph.toml")
    with pytest.raises(envgraph.errors.GraphError, match=r"did you mean train\? known: core, serve, train"):
        ws.graph.select(envs=["trian"])


def test_a_pipeline_may_share_its_name_with_an_env(tmp_path: Path) -> None:
    from envgraph.graph import build_graph
    from envgraph.spec import parse_spec

    spec = parse_spec(GOOD + '[pipeline.c]\nsteps = { s = "a" }\n', root=tmp_path)
    g = build_graph(spec)
    assert g.select(["c"]) == ["a", "c"]  # the env c (and its parent)
    assert g.select(pipelines=["c"]) == ["a"]  # the pipeline c's steps
    tree = g.render("tree")
    assert "env c" in tree and "pipeline c: s=env a" in tree
    kinds = {(n["kind"], n["name"]) for n in json.loads(g.render("json"))["nodes"]}
    assert {("env", "c"), ("pipeline", "c")} <= kinds
    spec = parse_spec(GOOD, root=tmp_path)
    with pytest.raises(
        GraphError, match=r"unknown env 'p' \(known: a, c\); 'p' is a pipeline: use --pipeline p"
    ):
        build_graph(spec).select(["p"])
