"""The dashboard's JSON API and pages through Starlette's TestClient, against a real store built by the real
command line and the real SQLite history those commands wrote (two builds with a package change between them)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from envgraph.history import open_history
from envgraph.identity import drv12
from envgraph.oci._image import read_manifest
from envgraph.oci._store import Store
from envgraph.server._dashboard import API, PAGES
from tests.support.cli import cli
from tests.support.project import lock_drv
from tests.support.registry import RunningRegistry
from tests.support.server import dashboard_client, get_json

HOST = "testserver"  # the TestClient's Host header


@pytest.fixture(scope="module")
def project(dashboard_project: Path) -> Path:
    return dashboard_project


@pytest.fixture
def client(project: Path) -> Iterator[TestClient]:
    with dashboard_client(project) as c:
        yield c


def manifest_layers(project: Path, env: str) -> list[tuple[str, int]]:
    store = Store.open(project / ".envgraph", readonly=True)
    m = read_manifest(store, store.tags()[f"{env}:latest"].digest)
    return [(d.digest, d.size) for d in m.layers]


def test_graph_has_pipelines_steps_envs_bases_and_shared_layers(client: TestClient, project: Path) -> None:
    g = get_json(client, "/api/graph")
    assert g["bases"] == [{"name": "none", "kind": "image", "image": "scratch"}]
    assert {p["name"]: {s["step"]: s["env"] for s in p["steps"]} for p in g["pipelines"]} == {
        "training": {"prep": "core", "fit": "train"},
        "serving": {"api": "serve", "nightly": "batch"},
    }
    envs = {e["name"]: e for e in g["envs"]}
    assert set(envs) == {"core", "train", "serve", "batch"}
    store = Store.open(project / ".envgraph", readonly=True)
    layers = {name: {d for d, _ in manifest_layers(project, name)} for name in envs}
    for name, e in envs.items():
        assert e["drv"] == lock_drv(project, name)
        assert (e["image_id"] == e["drv"]) is (name != "serve")  # serve has files: their content names it too
        assert e["digest"] == store.tags()[f"{name}:{drv12(e['image_id'])}"].digest
        assert e["layers"] == len(layers[name])
        expected = {o: len(layers[name] & layers[o]) for o in envs if o != name and layers[name] & layers[o]}
        assert {s["env"]: s["layers"] for s in e["shared_with"]} == expected
        assert e["shared_layers"] == len({d for d in layers[name] if any(d in layers[o] for o in expected)})
    assert envs["train"]["parent"] == "core" and envs["batch"]["parent"] is None
    assert envs["train"]["steps"] == [{"pipeline": "training", "step": "fit"}]
    training = get_json(client, "/api/graph?pipeline=training")
    assert [e["name"] for e in training["envs"]] == ["core", "train"]
    assert [p["name"] for p in training["pipelines"]] == ["training"]
    assert training["all_pipelines"] == ["serving", "training"]
    page = client.get("/ui/?pipeline=serving").text
    assert 'id="env-serve"' in page and 'id="env-core"' in page and 'id="env-train"' not in page


def test_env_lists_packages_with_their_layers_and_the_images_using_it(
    client: TestClient, project: Path
) -> None:
    e = get_json(client, "/api/envs/train")
    packages = {p["name"]: p for p in e["packages"]}
    assert {n: p["version"] for n, p in packages.items()} == {"alpha": "2.0", "beta": "2.0", "gamma": "1.0"}
    layers = dict(manifest_layers(project, "train"))
    for p in packages.values():
        assert p["layer"] in layers and p["size"] == layers[p["layer"]]
    assert len({p["layer"] for p in packages.values()}) == 3  # one layer per package
    current = [i for i in e["images"] if i["current"]]
    assert {i["tag"] for i in current} == {f"train:{drv12(e['drv'])}", "train:latest"}
    older = [i for i in e["images"] if not i["current"]]
    assert older and all(
        i["where"] == "store" for i in older
    )  # the first build's image is still in the store
    assert [r["kind"] for r in e["runs"]] == ["lock", "build", "lock", "build"]


def test_runs_are_the_commands_made_in_order(client: TestClient) -> None:
    runs = get_json(client, "/api/runs")
    assert [r["kind"] for r in runs] == ["lock", "build", "lock", "build"]
    builds = get_json(client, "/api/runs?kind=build")
    assert [r["id"] for r in builds] == [2, 4]
    assert builds[0]["layers_built"] == 5 and builds[1]["layers_built"] > 0 and builds[1]["layers_reused"] > 0
    run = get_json(client, "/api/runs/4")
    assert run["report"]["totals"]["layers_built"] == builds[1]["layers_built"]
    assert {e["env"]: e["packages"] for e in run["envs"]}["core"] == {"alpha": "2.0"}
    assert get_json(client, "/api/runs?limit=1")[0]["id"] == 4


@pytest.mark.parametrize("runs", [(2, 4), (1, 3)], ids=["builds", "lock revisions"])
def test_diff_between_two_runs(client: TestClient, runs: tuple[int, int]) -> None:
    d = get_json(client, f"/api/diff?from={runs[0]}&to={runs[1]}")
    envs = {e["env"]: e for e in d["envs"]}
    assert envs["core"]["changed"] == [{"name": "alpha", "old": "1.0", "new": "2.0"}]
    assert envs["train"]["added"] == [{"name": "beta", "version": "2.0"}]
    assert envs["train"]["changed"] == [{"name": "alpha", "old": "1.0", "new": "2.0"}]
    assert envs["batch"]["unchanged"] and not envs["core"]["unchanged"]
    assert envs["core"]["old_drv"] != envs["core"]["new_drv"]
    one = get_json(client, f"/api/diff?from={runs[0]}&to={runs[1]}&env=train")
    assert [e["env"] for e in one["envs"]] == ["train"]


def test_which_image_for_step_s_of_pipeline_p_pulls_from_the_same_server(
    client: TestClient, project: Path
) -> None:
    w = get_json(client, "/api/where/training/fit")
    drv = lock_drv(project, "train")
    assert w["env"] == "train" and w["drv"] == drv
    assert w["reference"] == f"{HOST}/train:{drv12(drv)}"
    name, _, tag = w["reference"].removeprefix(f"{HOST}/").partition(":")
    r = client.head(f"/v2/{name}/manifests/{tag}")  # the registry beside the dashboard serves that reference
    assert r.status_code == 200 and r.headers["docker-content-digest"] == w["digest"]
    assert w["pinned"] == f"{HOST}/train@{w['digest']}"
    assert len(get_json(client, "/api/where")) == 4 and len(get_json(client, "/api/where/serving")) == 2


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/api/envs/nope", 404),
        ("/api/graph?pipeline=nope", 404),
        ("/api/where/nope", 404),
        ("/api/where/training/nope", 404),
        ("/api/runs/999", 404),
        ("/api/diff?from=2", 400),
        ("/api/diff?from=2&to=x", 400),
        ("/api/diff?from=2&to=999", 404),
        ("/api/diff?from=2&to=4&env=nope", 404),
        ("/api/runs?kind=nope", 400),
        ("/ui/env/nope", 404),
        ("/ui/run/999", 404),
    ],
)
def test_bad_requests_get_one_line_errors(client: TestClient, path: str, status: int) -> None:
    r = client.get(path)
    assert r.status_code == status
    if path.startswith("/api/"):
        assert set(r.json()) == {"error"} and "\n" not in r.json()["error"]
    else:
        assert "Traceback" not in r.text


def test_openapi_document_describes_every_api_route(client: TestClient) -> None:
    doc = get_json(client, "/api/openapi.json")
    assert doc["openapi"].startswith("3.")
    routes = {"/api" + re.sub(r"\{(\w+)(:\w+)?\}", r"{\1}", path) for path, _ in API}
    assert set(doc["paths"]) == routes
    for ref in re.findall(r'"#/components/schemas/(\w+)"', str(doc).replace("'", '"')):
        assert ref in doc["components"]["schemas"]


def test_pages_render_the_graph_packages_chart_diff_and_where(client: TestClient) -> None:
    graph = client.get("/ui/").text
    for env in ("core", "train", "serve", "batch"):
        assert f'href="/ui/env/{env}"' in graph
    assert graph.count('class="node pipeline"') == 2 and "<svg" in graph
    env = client.get("/ui/env/train").text
    assert re.search(r"<td>beta</td><td>2\.0</td>", env)
    history = client.get("/ui/history").text
    assert 'id="history-chart"' in history
    assert len(re.findall(r'class="bar layers_built"', history)) == 2  # both builds built layers
    diff = client.get("/ui/diff?from=2&to=4").text
    assert "alpha 1.0 → 2.0" in diff and "+ beta 2.0" in diff
    assert "training" in client.get("/ui/where").text
    assert client.get("/", follow_redirects=False).headers["location"] == "/ui/"
    assert {p for p, _ in PAGES} >= {"/", "/env/{env}", "/history", "/diff", "/where"}


def test_a_store_without_declaration_still_shows_its_history(project: Path) -> None:
    with dashboard_client(project, declaration=False) as c:
        assert len(get_json(c, "/api/runs")) == 4
        assert "declaration" in get_json(c, "/api/graph", 404)["error"]


@pytest.mark.registry
def test_where_shows_the_digest_pushed_to_a_registry(project: Path, registry: RunningRegistry) -> None:
    proc = cli(project, "push", "train", "--registry", f"{registry.host}/dash", "--insecure", "-q")
    pushed_digest = proc.stdout.split()[-1]
    with dashboard_client(project) as c:
        w = get_json(c, "/api/where/training/fit")
        assert [p["digest"] for p in w["pushed"]] == [pushed_digest]
        p = w["pushed"][0]
        assert p["pinned"] == f"{registry.host}/dash@{pushed_digest}" and p["current"]
        import requests

        r = requests.head(
            f"{registry.url}/v2/dash/manifests/{p['tag']}",
            headers={"Accept": "application/vnd.oci.image.manifest.v1+json"},
            timeout=10,
        )
        assert r.headers["Docker-Content-Digest"] == pushed_digest
        runs = get_json(c, "/api/runs?kind=push")
        assert (
            runs[-1]["ok"]
            and get_json(c, f"/api/runs/{runs[-1]['id']}")["pushes"][0]["digest"] == pushed_digest
        )
    history = open_history(f"sqlite:///{project / '.envgraph' / 'history.sqlite'}", readonly=True)
    assert history is not None and history.latest_pushes("train")[0][0].digest == pushed_digest
