"""`envgraph why`: known answers on a project of made wheels (markers, extras, a parent's pins)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from envgraph.cli import main
from envgraph.errors import EnvgraphError
from envgraph.lock._why import Chain
from envgraph.workspace import Workspace


def test_chains_in_each_env_with_the_parent_pin(locked: Workspace) -> None:
    results = {r.env: r for r in locked.why("alpha")}
    assert set(results) == {"core", "app"}
    assert results["core"].pinned_by == "core" and results["core"].version == "2.0"
    assert results["core"].chains == (Chain("core", "beta", ("beta", "alpha")),)
    app = results["app"]
    assert app.pinned_by == "core"
    assert app.chains == (
        Chain("core", "beta", ("beta", "alpha")),
        Chain("app", "gamma[fast]", ("gamma", "beta", "alpha")),
    )
    every = locked.why("alpha", "app", all_paths=True)[0].chains
    assert every == (
        Chain("core", "beta", ("beta", "alpha")),
        Chain("app", "gamma[fast]", ("gamma", "beta", "alpha")),
        Chain("app", "gamma[fast]", ("gamma", "epsilon", "alpha")),  # only through the [fast] extra
    )


def test_a_declared_package_is_its_own_chain_and_absent_ones_are_errors(locked: Workspace) -> None:
    [r] = locked.why("Gamma")
    assert (r.env, r.package, r.chains) == ("app", "gamma", (Chain("app", "gamma[fast]", ("gamma",)),))
    with pytest.raises(EnvgraphError, match="delta is not in any env"):  # its marker is for Python 2
        locked.why("delta")
    with pytest.raises(EnvgraphError, match="epsilon is not in env core"):
        locked.why("epsilon", "core")


def test_cli_text_and_json(locked: Workspace) -> None:
    runner = CliRunner()
    r = runner.invoke(main, ["-f", str(locked.path), "why", "alpha", "--env", "app"])
    assert r.exit_code == 0, r.output
    assert r.output.splitlines() == [
        "alpha 2.0 is in app (pinned by parent env core)",
        "  core declares beta: beta 2.0 -> alpha 2.0",
        "  app declares gamma[fast]: gamma 1.0 -> beta 2.0 -> alpha 2.0",
    ]
    r = runner.invoke(main, ["-f", str(locked.path), "why", "epsilon", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == [
        {
            "env": "app",
            "package": "epsilon",
            "version": "3.1",
            "pinned_by": "app",
            "chains": [
                {"declared_in": "app", "requirement": "gamma[fast]", "packages": ["gamma", "epsilon"]}
            ],
        }
    ]
