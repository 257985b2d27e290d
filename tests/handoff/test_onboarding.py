"""``init``, ``images --json``, ``graph --format json|png|svg``, shell completion and the default export format."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph.cli import main
from tests.conftest import BUILD_HEADER

BODY = """
[env.core]
base = "none"
requirements = ["alpha"]

[env.app]
parent = "core"
requirements = ["gamma"]

[pipeline.training]
steps = { ingest = "core", fit = "app", score = "app" }
"""


def invoke(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def test_init_writes_a_valid_starter_and_ignores_the_store(tmp_path: Path) -> None:
    proj = tmp_path / "My Project"
    proj.mkdir()
    (proj / ".gitignore").write_text("*.pyc")  # no trailing newline: the entry still gets its own line
    out = invoke("init", str(proj))
    assert "added .envgraph/ to" in out
    assert (proj / ".gitignore").read_text().splitlines()[0] == "*.pyc"
    assert ".envgraph/" in (proj / ".gitignore").read_text().splitlines()
    ws = envgraph.load(proj / "envgraph.toml")
    assert ws.spec.project.name == "My-Project"
    assert set(ws.spec.env) == {"core", "train"} and set(ws.spec.pipeline) == {"training"}
    # A second init refuses to overwrite; --force does, and .gitignore keeps one entry.
    again = CliRunner().invoke(main, ["init", str(proj)])
    assert again.exit_code != 0 and "exists" in again.output
    invoke("init", "--force", "--name", "demo", str(proj))
    assert (proj / ".gitignore").read_text().count(".envgraph") == 1
    assert envgraph.load(proj / "envgraph.toml").spec.project.name == "demo"


def test_init_creates_gitignore(tmp_path: Path) -> None:
    invoke("init", str(tmp_path / "new"))
    assert (tmp_path / "new" / ".gitignore").read_text().endswith(".envgraph/\n")


def test_graph_json_names_steps(make_project: Callable[..., Path]) -> None:
    path = make_project(BODY)
    doc = json.loads(invoke("-f", str(path), "graph", "--format", "json"))
    nodes = {(n["kind"], n["name"]): n for n in doc["nodes"]}
    assert nodes[("pipeline", "training")]["steps"] == {"fit": "app", "ingest": "core", "score": "app"}
    assert nodes[("env", "app")]["parent"] == "core"
    assert nodes[("env", "app")]["steps"] == [
        {"pipeline": "training", "step": "fit"},
        {"pipeline": "training", "step": "score"},
    ]
    edge = next(e for e in doc["edges"] if e["from"] == "env app" and e["to"] == "pipeline training")
    assert edge["steps"] == ["fit", "score"]


def test_images_json_and_default_export(make_project: Callable[..., Path], tmp_path: Path) -> None:
    path = make_project(BODY, header=BUILD_HEADER)
    ws = envgraph.load(path)
    ws.lock()
    assert ws.build(jobs=2).ok
    doc = json.loads(invoke("-f", str(path), "images", "--json"))
    rows = {r["env"]: r for r in doc["images"]}
    assert set(rows) == {"core", "app"}
    app = rows["app"]
    assert app["current"] is True and app["pushed"] == []
    assert app["steps"] == [
        {"pipeline": "training", "step": "fit"},
        {"pipeline": "training", "step": "score"},
    ]
    assert app["docker"] == [f"envgraph/app:{app['drv'][7:19]}", "envgraph/app:latest"]
    assert app["digest"] == ws.open_store().tags()["app:latest"].digest

    # The default export loads into any Docker (docker-archive: manifest.json with the Docker names).
    out = tmp_path / "app.tar"
    invoke("-f", str(path), "export", "app", "-o", str(out))
    with tarfile.open(out) as tf:
        manifest = json.load(tf.extractfile("manifest.json"))  # type: ignore[arg-type]
    assert manifest[0]["RepoTags"] == app["docker"]


def test_graph_png_and_svg_need_dot(
    make_project: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = make_project(BODY)
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    result = CliRunner().invoke(main, ["-f", str(path), "graph", "--format", "svg"])
    assert result.exit_code != 0
    assert result.output.strip() == (
        "envgraph: error: graph --format svg needs Graphviz's dot: apt-get install graphviz "
        "(or use --format dot and render it elsewhere)"
    )


@pytest.mark.skipif(
    not any(os.access(Path(d) / "dot", os.X_OK) for d in os.environ.get("PATH", "").split(os.pathsep)),
    reason="Graphviz is not installed (apt-get install graphviz; .ci/setup installs it)",
)
def test_graph_png_and_svg_with_dot(make_project: Callable[..., Path], tmp_path: Path) -> None:
    path = make_project(BODY)
    png = tmp_path / "g.png"
    invoke("-f", str(path), "graph", "--format", "png", "-o", str(png))
    assert png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    svg = invoke("-f", str(path), "graph", "--format", "svg")
    assert "<svg" in svg and "env app" in svg
    refused = CliRunner().invoke(main, ["-f", str(path), "graph", "--format", "png"])
    assert refused.exit_code != 0 and "give -o FILE" in refused.output


def complete(cwd: Path, words: str, shell: str = "bash") -> list[str]:
    env = {**os.environ, "_ENVGRAPH_COMPLETE": f"{shell}_complete", "COMP_WORDS": words,
           "COMP_CWORD": str(len(words.split(" ")) - 1)}  # fmt: skip
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "envgraph")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout.split()


def test_completion_offers_env_and_pipeline_names(
    make_project: Callable[..., Path], tmp_path_factory: pytest.TempPathFactory
) -> None:
    path = make_project(BODY)
    assert complete(path.parent, "envgraph run ") == ["plain,app", "plain,core"]
    assert complete(path.parent, "envgraph build a") == ["plain,app"]
    assert complete(path.parent, "envgraph push --pipeline t") == ["plain,training"]
    # Outside a project: nothing, and no error.
    elsewhere = tmp_path_factory.mktemp("elsewhere")
    assert complete(elsewhere, "envgraph run ") == []
