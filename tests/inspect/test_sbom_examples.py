"""SBOMs of the committed example lockfiles (offline: no wheel metadata, so no licenses): the Debian packages of
the base and of an env's `apt`, packages built from source, schema-valid."""

from __future__ import annotations

import json
from pathlib import Path

import envgraph
from envgraph.lock import read_base_lock
from envgraph.sbom import collect, to_cyclonedx, to_spdx, validate_cyclonedx

ROOT = Path(__file__).resolve().parents[2]


def _doc(declaration: Path, env: str) -> tuple[dict[str, object], object]:
    ws = envgraph.load(declaration)
    locks = ws.chain_locks(env)
    base = read_base_lock(ws.lockdir, ws.graph.root_base(env))
    data = collect(locks, ws.graph, env, base, None, {}, ws.markers(base))
    text = to_cyclonedx(data)
    validate_cyclonedx(text)
    json.loads(to_spdx(data))
    return json.loads(text), (locks, base)


def test_the_bundled_example_lists_the_base_debian_packages() -> None:
    doc, (locks, base) = _doc(ROOT / "envgraph.toml", "train")
    comps = doc["components"]  # type: ignore[index]
    debs = [c for c in comps if c["purl"].startswith("pkg:deb/debian/")]
    assert len(debs) == len(base.debian.versions)  # type: ignore[attr-defined]
    bash = next(c for c in debs if c["name"] == "bash")
    assert (
        bash["purl"]
        == f"pkg:deb/debian/bash@{base.debian.versions['bash'].replace('+', '%2B')}?distro=bookworm"
    )  # type: ignore[attr-defined]
    pypi = {c["name"] for c in comps if c["purl"].startswith("pkg:pypi/")}
    assert pypi == {p.name for lock in locks.values() for p in lock.packages}  # type: ignore[attr-defined]


def test_the_native_example_lists_apt_packages_and_packages_built_from_source() -> None:
    doc, (locks, _) = _doc(ROOT / "examples" / "native" / "envgraph.toml", "pipeline")
    comps = {c["name"]: c for c in doc["components"]}  # type: ignore[index]
    [pin] = [d for d in locks["gbm"].apt.packages if d.name == "libgomp1"]  # type: ignore[index,union-attr]
    gomp = comps["libgomp1"]
    assert gomp["purl"].startswith("pkg:deb/debian/libgomp1@") and f"arch={pin.architecture}" in gomp["purl"]
    assert gomp["hashes"] == [{"alg": "SHA-256", "content": pin.sha256}]
    built = [p for p in locks["pipeline"].packages if p.source is not None]  # type: ignore[index]
    assert built
    for p in built:
        props = {x["name"]: x["value"] for x in comps[p.name]["properties"]}
        assert props["envgraph:built-from"] == p.source.kind and "hashes" not in comps[p.name]  # type: ignore[union-attr]
