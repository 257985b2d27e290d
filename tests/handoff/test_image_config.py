"""Image config from the declaration: a non-root ``user``, ``ports``, and OCI ``labels`` (revision from git)."""

from __future__ import annotations

import json
import subprocess
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

import envgraph
from envgraph.errors import SpecError
from envgraph.oci._image import read_manifest
from envgraph.workspace import Workspace
from tests.conftest import BUILD_HEADER

BODY = """
[env.core]
base = "none"
requirements = ["alpha"]
user = "1000:1000"
ports = ["8000"]
labels = { source = "https://example.org/team/repo", version = "1.2", "com.example.team" = "ml" }

[env.app]
parent = "core"
requirements = ["gamma"]
ports = ["9000/udp"]
labels = { version = "1.3", title = "the app" }
"""

OCI = "org.opencontainers.image."


def config_of(ws: Workspace, env: str) -> dict[str, object]:
    store = ws.open_store()
    manifest = read_manifest(store, store.tags()[f"{env}:latest"].digest)
    return json.loads(store.read_blob(manifest.config.digest))  # type: ignore[no-any-return]


def test_user_ports_and_labels_reach_the_image(make_project: Callable[..., Path]) -> None:
    ws = envgraph.load(make_project(BODY, header=BUILD_HEADER))
    ws.lock()
    assert ws.build(jobs=2).ok
    core, app = config_of(ws, "core"), config_of(ws, "app")
    assert "created" not in core  # never a build time: the digest stays reproducible
    c = core["config"]
    assert isinstance(c, dict)
    assert c["User"] == "1000:1000"
    assert c["ExposedPorts"] == {"8000/tcp": {}}
    assert c["Labels"][f"{OCI}source"] == "https://example.org/team/repo"
    assert c["Labels"]["com.example.team"] == "ml"
    assert c["Labels"]["dev.envgraph.env"] == "core"
    a = app["config"]
    assert isinstance(a, dict)
    assert a["User"] == "1000:1000"  # inherited
    assert a["ExposedPorts"] == {"8000/tcp": {}, "9000/udp": {}}  # added to the parent's
    assert a["Labels"][f"{OCI}version"] == "1.3" and a["Labels"][f"{OCI}title"] == "the app"  # overridden
    assert a["Labels"][f"{OCI}source"] == "https://example.org/team/repo"  # inherited

    lock = json.loads((ws.root / "lockfiles" / "core.lock.json").read_text())
    assert lock["user"] == "1000:1000" and lock["ports"] == ["8000"]
    assert lock["labels"][f"{OCI}version"] == "1.2"


def test_label_edits_change_the_drv_and_check_notices(make_project: Callable[..., Path]) -> None:
    path = make_project(BODY, header=BUILD_HEADER)
    ws = envgraph.load(path)
    ws.lock()
    drvs = {i.env: i.drv for i in ws.plan().images}
    path.write_text(path.read_text().replace('version = "1.2"', 'version = "1.2.1"'))
    ws = envgraph.load(path)
    assert {o.name for o in ws.lock(check=True).stale} >= {"core"}
    ws.lock()
    after = {i.env: i.drv for i in ws.plan().images}
    assert after["core"] != drvs["core"] and after["app"] != drvs["app"]  # a child's drv follows its parent's


def test_created_only_when_declared(make_project: Callable[..., Path]) -> None:
    body = BODY.replace('version = "1.2",', 'version = "1.2", created = "2026-01-31T12:00:00Z",')
    ws = envgraph.load(make_project(body, header=BUILD_HEADER))
    ws.lock()
    assert ws.build(jobs=2).ok
    cfg = config_of(ws, "core")
    assert cfg["created"] == "2026-01-31T12:00:00Z"
    assert cfg["config"]["Labels"][f"{OCI}created"] == "2026-01-31T12:00:00Z"  # type: ignore[index]


def test_revision_from_git_is_kept_until_relocked(make_project: Callable[..., Path], tmp_path: Path) -> None:
    header = BUILD_HEADER.replace("[bases.none]", '[project.labels]\nrevision = "git"\n\n[bases.none]')
    path = make_project('[env.core]\nbase = "none"\nrequirements = ["alpha"]\n', header=header)

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(tmp_path), "-c", "user.name=t", "-c", "user.email=t@e", *args],
            check=True, capture_output=True, text=True,
        ).stdout.strip()  # fmt: skip

    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "one")
    first = git("rev-parse", "HEAD")
    ws = envgraph.load(path)
    ws.lock()
    lock = json.loads((tmp_path / "lockfiles" / "core.lock.json").read_text())
    assert lock["labels"] == {f"{OCI}revision": first}
    git("add", "-A")
    git("commit", "-qm", "lockfiles")
    # A new commit neither makes the lock stale nor moves the image.
    assert not envgraph.load(path).lock(check=True).stale


@pytest.mark.parametrize(
    ("snippet", "message"),
    [
        ('user = "a b"', "user 'a b' must be NAME or UID"),
        ('ports = ["http"]', "port 'http' must be a number"),
        ('ports = ["70000"]', "port '70000' must be a number"),
        ('labels = { colour = "red" }', "label 'colour' is neither"),
        ('labels = { "dev.envgraph.drv" = "x" }', "label 'dev.envgraph.drv' is neither"),
        ('labels = { created = "yesterday" }', "label created must be an RFC 3339 time"),
    ],
)
def test_bad_image_settings_are_one_line_errors(
    make_project: Callable[..., Path], snippet: str, message: str
) -> None:
    body = textwrap.dedent(f"""
    [env.core]
    base = "none"
    requirements = ["alpha"]
    {snippet}
    """)
    with pytest.raises(SpecError, match=message) as info:
        envgraph.load(make_project(body))
    assert "\n" not in str(info.value)
