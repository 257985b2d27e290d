"""`envgraph sbom`: CycloneDX 1.6 validated by cyclonedx-python-lib, SPDX 2.3; exactly the lock's packages."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph.cli import main
from envgraph.errors import EnvgraphError
from envgraph.lock import read_lock
from envgraph.sbom import validate_cyclonedx
from envgraph.workspace import Workspace


def _closure(ws: Workspace, env: str) -> dict[str, str]:
    """name -> wheel sha256 of every package of the env and its ancestors."""
    out = {}
    for e in ws.graph.chain(env):
        lock = read_lock(ws.lockdir, e)
        assert lock is not None
        out.update({p.name: p.wheel.sha256 for p in lock.packages if p.wheel is not None})
    return out


def test_cyclonedx_lists_exactly_the_locked_packages_with_hashes_licenses_and_deps(locked: Workspace) -> None:
    text = locked.sbom("app")
    validate_cyclonedx(text)
    doc = json.loads(text)
    assert doc["specVersion"] == "1.6" and "timestamp" not in doc["metadata"]
    comps = {c["name"]: c for c in doc["components"]}
    expected = _closure(locked, "app")
    assert set(expected) == {"alpha", "beta", "gamma", "epsilon"}
    assert {n: c["hashes"][0]["content"] for n, c in comps.items()} == expected
    assert comps["alpha"]["purl"] == "pkg:pypi/alpha@2.0"
    assert comps["alpha"]["licenses"] == [{"expression": "MIT"}]
    assert comps["beta"]["licenses"] == [{"license": {"name": "BSD-3-Clause"}}]
    assert comps["gamma"]["licenses"] == [{"license": {"name": "Apache Software License"}}]
    assert "licenses" not in comps["epsilon"]
    envs = {n: {p["name"]: p["value"] for p in c["properties"]}["envgraph:env"] for n, c in comps.items()}
    assert envs == {"alpha": "core", "beta": "core", "gamma": "app", "epsilon": "app"}
    deps = {d["ref"]: d.get("dependsOn", []) for d in doc["dependencies"]}
    assert deps["envgraph-image:app"] == ["pkg:pypi/beta@2.0", "pkg:pypi/gamma@1.0"]
    assert deps["pkg:pypi/gamma@1.0"] == ["pkg:pypi/beta@2.0", "pkg:pypi/epsilon@3.1"]  # the [fast] extra
    assert deps["pkg:pypi/beta@2.0"] == ["pkg:pypi/alpha@2.0"]  # delta only on Python 2
    # Not built: the subject is the env's derivation; built, the image's manifest digest.
    assert doc["metadata"]["component"]["version"] == read_lock(locked.lockdir, "app").drv  # type: ignore[union-attr]
    assert locked.build(["app"], jobs=2).ok
    built = json.loads(locked.sbom("app"))
    digest = locked.image("app")[1].digest
    assert built["metadata"]["component"]["version"] == digest
    assert built["metadata"]["component"]["purl"] == f"pkg:oci/app@{digest}"
    assert built["serialNumber"] != doc["serialNumber"]


def test_identical_on_a_second_machine(
    locked: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = locked.sbom("app", "cyclonedx"), locked.sbom("app", "spdx")
    other = tmp_path / "other"
    shutil.copytree(locked.root, other, ignore=shutil.ignore_patterns(".envgraph"))
    monkeypatch.setenv("ENVGRAPH_CACHE", str(tmp_path / "cache2"))  # an empty wheel cache: fetched by hash
    ws2 = envgraph.load(other / "envgraph.toml", store=other / ".envgraph")
    assert (ws2.sbom("app", "cyclonedx"), ws2.sbom("app", "spdx")) == first
    assert (tmp_path / "cache2" / "wheels").is_dir()


def test_spdx_document(locked: Workspace) -> None:
    doc = json.loads(locked.sbom("core", "spdx"))
    assert doc["spdxVersion"] == "SPDX-2.3" and doc["creationInfo"]["created"] == "1970-01-01T00:00:00Z"
    pkgs = {p["name"]: p for p in doc["packages"]}
    assert set(pkgs) == {"core", "alpha", "beta"}
    assert pkgs["alpha"]["licenseDeclared"] == "MIT" and pkgs["beta"]["licenseDeclared"] == "NOASSERTION"
    assert pkgs["alpha"]["externalRefs"][0]["referenceLocator"] == "pkg:pypi/alpha@2.0"
    rels = {(r["relationshipType"], r["relatedSpdxElement"]) for r in doc["relationships"]}
    assert ("CONTAINS", pkgs["beta"]["SPDXID"]) in rels


def test_cli_writes_the_file_and_an_unknown_env_is_one_line(locked: Workspace, tmp_path: Path) -> None:
    out = tmp_path / "core.cdx.json"
    runner = CliRunner()
    r = runner.invoke(main, ["-f", str(locked.path), "sbom", "core", "--validate", "-o", str(out)])
    assert r.exit_code == 0, r.output
    validate_cyclonedx(out.read_text())
    r = runner.invoke(main, ["-f", str(locked.path), "sbom", "nope"])
    assert r.exit_code != 0 and r.output.strip() == "envgraph: error: unknown env 'nope'"


def test_the_validator_rejects_what_is_not_cyclonedx() -> None:
    with pytest.raises(EnvgraphError, match="does not validate"):
        validate_cyclonedx('{"bomFormat": "CycloneDX", "specVersion": "1.6", "components": [{"name": 1}]}')
