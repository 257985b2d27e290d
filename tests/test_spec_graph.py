"""Declarations and graph validation: every bad input is one clear line, through the real CLI."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

import envgraph
from envgraph._spec_schema import spec_schema
from envgraph.errors import GraphError, SpecError

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


def run_cli(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envgraph.cli", *args], cwd=cwd, capture_output=True, text=True
    )


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
        "project.python: invalid value for type, expected str",
    ),
    (
        GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "b"\nrequirements = "numpy"'),
        "env.a.requirements: invalid value",
    ),
    (
        GOOD.replace('[env.a]\nbase = "b"', '[env.a]\nbase = "b"\nenvironment = { X = 1 }'),
        "env.a.environment.X: invalid value for type, expected str",
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
    proc = run_cli(tmp_path, "graph")
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr
    assert "Traceback" not in proc.stderr


def test_declaration_found_upward(tmp_path: Path) -> None:
    (tmp_path / "envgraph.toml").write_text(GOOD)
    sub = tmp_path / "deep" / "er"
    sub.mkdir(parents=True)
    proc = run_cli(sub, "graph")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[:3] == [
        "base b",
        "  env a  (used by pipeline p)",
        "    env c  (used by pipeline p)",
    ]


def test_missing_declaration(tmp_path: Path) -> None:
    proc = run_cli(tmp_path, "graph")
    assert proc.returncode == 1 and "no envgraph.toml found" in proc.stderr


def test_graph_formats_and_pipeline_filter(tmp_path: Path) -> None:
    (tmp_path / "envgraph.toml").write_text(
        GOOD + '[env.other]\nbase = "b"\n[pipeline.q]\nsteps = { s = "other" }\n'
    )
    data = json.loads(run_cli(tmp_path, "graph", "--format", "json", "--pipeline", "q").stdout)
    assert {n["name"] for n in data["nodes"]} == {"b", "other", "q"}
    dot = run_cli(tmp_path, "graph", "--format", "dot").stdout
    assert '"env a" -> "env c";' in dot
    mermaid = run_cli(tmp_path, "graph", "--format", "mermaid").stdout
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
