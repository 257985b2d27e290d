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
# The inputs moved with LOCK_VERSION 3 (Debian packages and packages built from source, issue 13); the lock
# version is part of every inputs hash. The drvs, layer keys and digests did not move. When files stopped being
# pinned by content (code is not a dependency, issue 12), the drvs of envs with files moved (and with them their
# images' drv label, hence digests); their layer keys did not.
OFFLINE_PINS: dict[str, tuple[str, str, str, str]] = {
    "core": (
        "sha256:1720dc5c73d85c6c5c345bb2d727d700808cec5f85d4172a5e55a83d141ea136",
        "sha256:4ef357dec9c84e08c8b616edd07b08f05f83d58764788986c43c123c3af7d21e",
        "sha256:cdae2aaf23ada39327e67f374a5acd3bd8f345256bb07f15c7fad1fff5511ae4",
        "sha256:5667fae9ea3eaf2c4a2d90d247e26ffb44d4ac8c7c69e2e5b73b2d941ba46707",
    ),
    "serve": (
        "sha256:55c56fd6bb156da2c76fe8b60928b78ecde737dd5e17a75460d800cef3b12769",
        "sha256:b06d30ff4362e1b2aab472903e09cbd1e2572561e06f73986c3786fa482f6f63",
        "sha256:e630be97c0ee81683472f2a456a328d437e8232df79c334ddbae017db37bf220",
        "sha256:e594d798f3f927438bcb58161610e5439165addf90a03f9cb9d96767ce755eee",
    ),
    "train": (
        "sha256:99de636a3d6c5b534e08447d96966a600746b3ae96d048622ffa7ffb7bcd28d1",
        "sha256:d867ad85dbe7447a744288ffc7eee167662c392a9dfec8f84aa1457403b5392c",
        "sha256:cbcce4cae4ed9e832b28b6c8de96e54c3fdd8987c916574447fbc0ccb98dfb5f",
        "sha256:e41d345613f7a008a8b2ab1226f0f7029c4ee4165aa1e1be110483e75c321986",
    ),
}

# env -> (drv, digest of the plan's layer keys in image order)
BUNDLED_PINS: dict[str, tuple[str, str]] = {
    "core": (
        "sha256:607f2c7a3192ac224bc27e48a7ae3690d0a6161aaf91fe5becb87639e513e19c",
        "sha256:0923115e5b90b74e7e23591c1d8129cd5a532dbb6a8a59cb58088a19525921a4",
    ),
    "serve": (
        "sha256:a408ec4eb20adce5220f10c86bfa81e326798eab4bfe1fd017c22e98d541d353",
        "sha256:29a9c003db7bb73262b0516494e6c5da2a4c860800cdebb86b0a00a996fffcea",
    ),
    "train": (
        "sha256:2f28fb057427018719f2aaec6ff57f0d4f838cfc74fb2610239fd5d11e99dac0",
        "sha256:b0c9d62823d0a8334bad22dfc6182355263ad073724664e2c321ce0e9cf9611a",
    ),
}


# The native example (examples/native: Debian packages, wheels built from an sdist and a directory): env ->
# (drv, digest of the plan's layer keys in image order), and the digest of its wheel builds' keys.
NATIVE_PINS: dict[str, tuple[str, str]] = {
    "gbm": (
        "sha256:de36593b7aaafb34e699950da70fd61977cfcf3cb201844aac94e23929e1f4c2",
        "sha256:34ed354c1c6a12bd737262166d579e7fe21e8ac04d6dd1b89ebfb6e53342e575",
    ),
    "pipeline": (
        "sha256:d4eedcef861fface4f84e64e078c48ab54c7413043a8e052b00d3b81ea6cee4b",
        "sha256:d77b344a7cc548cb60082f79c1344c6911c5cda8cbd37f3077256aed6fc29515",
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


def test_native_example_plan_is_pinned() -> None:
    ws = envgraph.load(ROOT / "examples" / "native" / "envgraph.toml")
    assert _facts(ws) == NATIVE_PINS


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


# Image settings (issue 16): user, ports and labels are hashed into the drv only when declared, so the pins
# above did not move; this project pins what they add. env -> (drv, image manifest digest)
IMAGE_CONFIG_PROJECT = """
[env.core]
base = "none"
requirements = ["alpha<2"]
user = "1000:1000"
ports = ["8000"]
labels = { source = "https://example.org/repo", revision = "0123456789abcdef0123456789abcdef01234567", created = "2026-01-31T12:00:00Z" }

[env.train]
parent = "core"
requirements = ["gamma"]
labels = { title = "train" }
"""
IMAGE_CONFIG_PINS: dict[str, tuple[str, str]] = {
    "core": (
        "sha256:8fac582283ffe2eda0d4a9a97daa2ddfbafeeb57a22936607f744a6e3339055a",
        "sha256:525d27c4832cbabe4c50f3b5fa13474cf07235762cae73c6d6d67cab2e32b241",
    ),
    "train": (
        "sha256:8eaec5e077d7f33ed1eefbf21b1dfcc255291728fc676585dc80e4c3932802f2",
        "sha256:b020050fea8af8daf188f26aa0ed014d33708dbeefa910160e30ba6599cf9b08",
    ),
}


def test_image_settings_identities_are_pinned(tmp_path: Path) -> None:
    standard_wheels(tmp_path / "wheels")
    (tmp_path / "envgraph.toml").write_text(
        textwrap.dedent(BUILD_HEADER) + textwrap.dedent(IMAGE_CONFIG_PROJECT)
    )
    ws = envgraph.load(tmp_path / "envgraph.toml", store=tmp_path / "store")
    ws.lock()
    result = ws.build(jobs=2)
    assert result.ok, result.failures
    got = {img.env: (img.drv, img.descriptor.digest) for img in result.images if img.descriptor is not None}
    assert got == IMAGE_CONFIG_PINS
