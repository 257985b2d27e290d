"""The dashboard's diff between two lockfile sides (ENV or ENV@REV, a git revision of the lockfiles): the answer of
`envgraph diff --json`, through the same call, on a real git repository whose lockfiles were committed twice, each
state built; untrusted revisions give one-line 400s, never a 500 or an option passed to git."""

from __future__ import annotations

import html
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from starlette.testclient import TestClient

from tests.support.cli import cli
from tests.support.project import GRAPH, locked_template
from tests.support.server import dashboard_client, get_json, serving


def _git(root: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(root), *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """GRAPH locked, built and committed; then core moves to alpha 2 and train gains beta: locked, built and
    committed again (HEAD~1 and HEAD)."""
    root = locked_template(tmp_path_factory.mktemp("lockdiff"), GRAPH)
    cli(root, "build", "-q")
    _git(root, "init", "-q")
    _git(root, "add", "envgraph.toml", "lockfiles")
    _git(root, "commit", "-q", "-m", "first")
    toml = root / "envgraph.toml"
    body = toml.read_text()
    toml.write_text(
        body.replace('requirements = ["alpha<2"]', 'requirements = ["alpha>=2"]').replace(
            'requirements = ["gamma"]', 'requirements = ["gamma", "beta"]'
        )
    )
    cli(root, "lock", "-q")
    cli(root, "build", "-q")
    _git(root, "add", "envgraph.toml", "lockfiles")
    _git(root, "commit", "-q", "-m", "second")
    return root


@pytest.fixture
def client(project: Path) -> Iterator[TestClient]:
    with dashboard_client(project, lock_diff=True) as c:
        yield c


def cli_json(project: Path, old: str, new: str) -> Any:
    return json.loads(cli(project, "diff", old, new, "--json").stdout)


@pytest.mark.parametrize(
    ("old", "new"),
    [("train@HEAD~1", "train@HEAD"), ("train@HEAD~1", "train"), ("core@HEAD~1", "core@HEAD")],
)
def test_api_diff_of_two_revisions_is_envgraph_diff_json(
    client: TestClient, project: Path, old: str, new: str
) -> None:
    d = get_json(client, f"/api/diff?from={old}&to={new}")
    assert d == cli_json(project, old, new)
    assert d["python"]["changed"] == [{"name": "alpha", "old": "1.0", "new": "2.0"}]
    assert d["python"]["added"] == ([["beta", "2.0"]] if old.startswith("train") else [])
    assert d["old"]["drv"] != d["new"]["drv"]
    im = d["images"]  # both states were built: their layers are compared too
    assert im is not None and im["old"] != im["new"] and im["shared"]
    assert {x["what"] for x in im["removed"]} >= {"envgraph: alpha 1.0"}


def test_two_envs_at_one_revision_and_reversed_sides(client: TestClient, project: Path) -> None:
    d = get_json(client, "/api/diff?from=core@HEAD~1&to=train@HEAD~1")
    assert d["python"]["added"] == [["gamma", "1.0"]] and not d["python"]["changed"]
    back = get_json(client, "/api/diff?from=train@HEAD&to=train@HEAD~1")
    assert back["python"]["removed"] == [["beta", "2.0"]]
    assert back["python"]["changed"] == [{"name": "alpha", "old": "2.0", "new": "1.0"}]
    head = _git(project, "rev-parse", "HEAD").strip()
    assert get_json(client, f"/api/diff?from=train@{head[:12]}&to=train")["python"] == {
        "added": [],
        "removed": [],
        "changed": [],
    }


def test_diff_page_of_two_revisions(client: TestClient) -> None:
    r = client.get("/ui/diff?from=train@HEAD~1&to=train@HEAD")
    assert r.status_code == 200
    page = r.text
    assert "<h1>Diff train@HEAD~1 → train@HEAD</h1>" in page
    assert "~ alpha 1.0 → 2.0" in page and "+ beta 2.0" in page
    assert 'id="lock-from" value="train@HEAD~1"' in page  # the form keeps the sides
    assert "envgraph: alpha 1.0" in page and "envgraph: alpha 2.0" in page  # removed and added layers
    assert "Debian packages</h2><ul class=diff><li>no change</li>" in page
    assert (
        'id="lock-diff"' in client.get("/ui/diff").text and 'id="lock-diff"' in client.get("/ui/history").text
    )


def test_a_side_at_a_revision_not_built_is_compared_without_images(client: TestClient, project: Path) -> None:
    (project / "notes.txt").write_text("a commit that changes no lockfile\n")
    _git(project, "add", "notes.txt")
    _git(project, "commit", "-q", "-m", "notes")
    try:
        d = get_json(client, "/api/diff?from=serve@HEAD~2&to=serve")
        assert d["python"]["changed"] == [{"name": "alpha", "old": "1.0", "new": "2.0"}]
        # serve has files: an older revision's files content is not known, so neither is its image
        assert d["old"]["image"] is None and d["images"] is None
        assert (
            "not compared: no image in the store for serve@HEAD~2"
            in client.get("/ui/diff?from=serve@HEAD~2&to=serve").text
        )
    finally:
        _git(project, "reset", "-q", "--hard", "HEAD~1")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("from=train@--output=OUT&to=train", "invalid git revision"),
        ("from=--output=OUT&to=train", "invalid side"),
        ("from=train@-p&to=train", "invalid git revision"),
        ("from=train@nope&to=train", "git cannot show revision 'nope'"),
        ("from=train@HEAD~9&to=train", "git cannot show revision 'HEAD~9'"),
        ("from=train@HEAD..HEAD~1&to=train", "invalid git revision"),
        ("from=nope@HEAD&to=train", "env nope has no lockfile at HEAD"),
        ("from=nope&to=train", "unknown env 'nope'"),
        ("from=../x@HEAD&to=train", "invalid or cyclic parent env"),
        ("from=2&to=train", "not one of each"),
        ("from=train@HEAD&to=train&env=core", "env applies to runs"),
        ("from=²&to=1", "not one of each"),
        ("from=²&to=¹", "unknown env '²'"),  # not run ids: int() refuses them
        ("from=&to=train", "invalid side"),
        (f"from=train@{'a' * 400}&to=train", "invalid side"),
    ],
)
def test_untrusted_sides_are_one_line_errors(
    client: TestClient, project: Path, query: str, message: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    query = query.replace("OUT", str(out))
    for path in (f"/api/diff?{query}", f"/ui/diff?{query}"):
        r = client.get(path)
        assert r.status_code == 400, (path, r.text)
        text = r.json()["error"] if path.startswith("/api") else html.unescape(r.text)
        assert message in text and "Traceback" not in text
        if path.startswith("/api"):
            assert "\n" not in text
    assert not out.exists()  # no revision became a git option


def test_a_digit_that_is_not_ascii_is_not_a_run_id(client: TestClient) -> None:
    assert "non-negative integer" in get_json(client, "/api/runs?limit=²", 400)["error"]


def test_without_the_workspace_lockfile_sides_are_not_available(project: Path) -> None:
    with dashboard_client(project) as c:
        assert "needs the project" in get_json(c, "/api/diff?from=train@HEAD~1&to=train", 404)["error"]


def test_envgraph_serve_answers_a_lockfile_diff(project: Path) -> None:
    with serving(project) as s:
        r = requests.get(f"{s.url}/api/diff", params={"from": "train@HEAD~1", "to": "train"}, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == cli_json(project, "train@HEAD~1", "train")
        s.stop()
