"""Pinned identities: refactors must not move a digest; deliberate identity changes update these pins.

Two projects are pinned. An offline one (test wheels, a scratch base with an interpreter path) is built for
real, so its lockfile hashes, layer keys and image digests are all checked on every run. The bundled
example is pinned by its lockfiles' drvs and the plan's layer keys (offline), and, with the network and
mmdebstrap, by building it to the image digests its README session shows.

When a change alters identity on purpose (a layout or format bump), update the pins here and say why in
the commit message.
"""

from __future__ import annotations

import re
import shutil
import textwrap
from pathlib import Path

import pytest

import envgraph
from envgraph._hashing import digest_of
from tests.support.project import BUILD_HEADER
from tests.support.wheels import standard_wheels

ROOT = Path(__file__).resolve().parent.parent

PROJECT = """
[env.core]
base = "none"
requirements = ["alpha<2"]
environment = { GREETING = "hola" }

[env.train]
parent = "core"
requirements = ["gamma"]

[env.serve]
parent = "core"
requirements = ["delta"]
files = [{ src = "app/", dest = "/app" }]
workdir = "/app"
entrypoint = ["python", "-m", "app"]

[pipeline.p]
steps = { a = "train", b = "serve" }
"""

# env -> (inputs, drv, digest of the plan's layer keys in image order, image manifest digest)
OFFLINE_PINS: dict[str, tuple[str, str, str, str]] = {
    "core": (
        "sha256:298bfbecae83036b53e9021e976cfc58e11da3150e2a650b62f9d20b558efb43",
        "sha256:07cfbc27fee449da15c875ac9b0ba378cd163bb459dbc720ec8d4b78d4c33837",
        "sha256:d783280609f1ed09d84a6e9200c2f675d1ff109980925f3fc2a7958e5323d288",
        "sha256:d717539298b3f4ed8659b5d65232e08379cf291ce4b026e7238d3792042914ce",
    ),
    "serve": (
        "sha256:37ba71474a434454b3f2df00fe3220e72b2f95b71c813bf40e6389d03cb45154",
        "sha256:81524317ec73b8118075253fef31575ea398bf61aa1e6ef110e6077c93a71905",
        "sha256:0b8ce64c8dc0f0409394071a73fd83c743c24201edc9b82a3ec57973547c4783",
        "sha256:9a251d32bf1eacfa5eb41faf21ab71806bcb85b1502b43ff7d3dcf8d95746516",
    ),
    "train": (
        "sha256:9ca0ad8ae6667ef4e60948f4bee5fbd19f75c2ae918e96a6834a36e781bb528f",
        "sha256:a2e66e4bee86a1d7f70289a420aa05acd522592b608ee8df7ccf414170955b2c",
        "sha256:42f99f9e70d8c25c2d3848f7287b143c2a47c08656829c8a4f6584d9dc007e17",
        "sha256:7b77e8db3999ea14eec9f64b35c79800304ed415bd95da86097b6558b929e05d",
    ),
}

# env -> (drv, digest of the plan's layer keys in image order)
BUNDLED_PINS: dict[str, tuple[str, str]] = {
    "core": (
        "sha256:7805f4d66e23fc8fa78e014e5740594083319dd6d041d787bec21a3212c68330",
        "sha256:681966c7d28024cabc9eb51adcedbb1a6f8288966bd3b453b1aa2fb8e82d51cd",
    ),
    "serve": (
        "sha256:0f1ce0dae20580e36a580420a8ab70252f7b669d998088e3ebe7490d5922f999",
        "sha256:103a06e9c57a190bd926a83064f925291230c524decaff5ac9371d5b516eb8a7",
    ),
    "train": (
        "sha256:7fd0d940b9a05c44c4733f42b59f3a6a25fdaee1d12bbf8904fffa35c8579096",
        "sha256:6a227ad26caf1f58ec8fbce65f2a8d70de169e3c2c78990efa40eb923798cc6b",
    ),
}


def _facts(ws: envgraph.Workspace) -> dict[str, tuple[str, str]]:
    plan = ws.plan()
    return {img.env: (img.drv, digest_of(list(img.layers))) for img in plan.images}


def test_offline_project_identities_are_pinned(tmp_path: Path) -> None:
    standard_wheels(tmp_path / "wheels")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "__main__.py").write_text("print('app')\n")
    (tmp_path / "envgraph.toml").write_text(textwrap.dedent(BUILD_HEADER) + textwrap.dedent(PROJECT))
    ws = envgraph.load(tmp_path / "envgraph.toml", store=tmp_path / "store")
    ws.lock()
    result = ws.build(jobs=2)
    assert result.ok, result.failures
    assert not ws.lock(check=True).stale
    facts = _facts(ws)
    got = {}
    for img in result.images:
        inputs = (tmp_path / "lockfiles" / f"{img.env}.lock.json").read_text()
        inputs_hash = re.search(r'"inputs": "(sha256:[0-9a-f]{64})"', inputs)
        assert inputs_hash is not None and img.descriptor is not None
        got[img.env] = (inputs_hash.group(1), *facts[img.env], img.descriptor.digest)
    assert got == OFFLINE_PINS


def test_bundled_example_plan_is_pinned() -> None:
    ws = envgraph.load(ROOT / "envgraph.toml")
    assert _facts(ws) == BUNDLED_PINS


def _readme_digests() -> dict[str, str]:
    """The image digests of the README's main session (its summary lines: `env  sha256:<64 hex>  layers: ...`)."""
    text = (ROOT / "README.md").read_text()
    session = text.split("## A real session (the bundled example)", 1)[1]
    return dict(re.findall(r"^(\w+)\s+(sha256:[0-9a-f]{64})  layers:", session, re.M)[:3])


@pytest.mark.network
@pytest.mark.debian
def test_bundled_example_builds_to_the_readme_digests(tmp_path: Path) -> None:
    if shutil.which("mmdebstrap") is None:
        pytest.skip("mmdebstrap is not installed")
    expected = _readme_digests()
    assert set(expected) == {"core", "serve", "train"}
    ws = envgraph.load(ROOT / "envgraph.toml", store=tmp_path / "store")
    result = ws.build()
    assert result.ok, result.failures
    assert {i.env: i.descriptor.digest for i in result.images if i.descriptor} == expected
