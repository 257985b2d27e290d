"""Push records and ``envgraph export-settings``: what push recorded, read strictly, turned into step settings."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph.cli import main
from envgraph.errors import RegistryError, StoreError
from envgraph.registry import PushRecord, push_records
from envgraph.registry._records import PUSH_RECORDS_FILE, record_pushes
from envgraph.workspace import Workspace
from tests.support.project import BUILD_HEADER
from tests.support.registry import RunningRegistry

BODY = """
[env.core]
base = "none"
requirements = ["alpha"]

[env.app]
parent = "core"
requirements = ["gamma"]

[pipeline.training]
steps = { ingest = "core", fit = "app" }

[pipeline.serving]
steps = { api = "app" }
"""

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def record(**kw: object) -> PushRecord:
    base: dict[str, object] = dict(
        registry="r:5000", repository="team/envs", env="core", drv=D1, tag="core-111111111111", digest=D2,
        project="t", declaration="/p/envgraph.toml", steps=(("training", "ingest"),),
    )  # fmt: skip
    base.update(kw)
    return PushRecord(**base)  # type: ignore[arg-type]


def test_records_round_trip_and_merge(tmp_path: Path) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    assert push_records(tmp_path) == []
    record_pushes(tmp_path, tmp, [record()], now=datetime(2026, 1, 1, tzinfo=UTC))
    record_pushes(tmp_path, tmp, [record(env="app", tag="app-1")], now=datetime(2026, 1, 2, tzinfo=UTC))
    # A re-push of the same image updates its time, never duplicates it.
    record_pushes(tmp_path, tmp, [record()], now=datetime(2026, 1, 3, tzinfo=UTC))
    got = push_records(tmp_path)
    assert [(r.env, r.pushed_at) for r in got] == [
        ("app", "2026-01-02T00:00:00Z"),
        ("core", "2026-01-03T00:00:00Z"),
    ]
    assert got[1].pinned == f"r:5000/team/envs@{D2}"
    assert got[1].reference == "r:5000/team/envs:core-111111111111"
    assert got[1].steps == (("training", "ingest"),)
    assert not list(tmp.glob("*.tmp"))


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{", "not valid JSON"),
        ("[]", "not a push record file"),
        ('{"version": 9, "records": []}', "has format 9"),
        ('{"version": 1, "records": [1]}', r"records\[0\] is not an object"),
        ('{"version": 1, "records": [{}]}', "no 'digest'"),
    ],
)
def test_damaged_records_are_one_line_errors(tmp_path: Path, content: str, message: str) -> None:
    (tmp_path / PUSH_RECORDS_FILE).write_text(content)
    with pytest.raises(StoreError, match=message) as info:
        push_records(tmp_path)
    assert "\n" not in str(info.value)


def test_a_record_with_a_bad_digest_or_extra_key_is_refused(tmp_path: Path) -> None:
    good = record(pushed_at="2026-01-01T00:00:00Z").to_json()
    for bad in (
        {**good, "digest": "sha256:zz"},
        {**good, "extra": 1},
        {**good, "steps": [{"pipeline": "p"}]},
    ):
        (tmp_path / PUSH_RECORDS_FILE).write_text(json.dumps({"version": 1, "records": [bad]}))
        with pytest.raises(StoreError):
            push_records(tmp_path)


@pytest.fixture
def built(make_project: Callable[..., Path]) -> Workspace:
    ws = envgraph.load(make_project(BODY, header=BUILD_HEADER))
    ws.lock()
    assert ws.build(jobs=2).ok
    return ws


@pytest.mark.registry
def test_push_records_then_export_settings(
    built: Workspace, registry: RunningRegistry, tmp_path: Path
) -> None:
    repo = f"handoff/{uuid.uuid4().hex[:8]}"
    target = f"{registry.host}/{repo}"
    with pytest.raises(RegistryError, match=r"not pushed to .*: core \(image [0-9a-f]{12}\), app"):
        built.export_settings(target)
    pushed = {p.env: p for p in built.push([], [], target, insecure=True)}

    records = {r.env: r for r in envgraph.registry.push_records(built.open_store(readonly=True))}
    assert set(records) == {"core", "app"}
    assert records["app"].steps == (("serving", "api"), ("training", "fit"))
    assert records["core"].digest == pushed["core"].digest
    assert records["core"].reference == pushed["core"].reference
    assert records["core"].declaration == str(built.path.absolute())

    doc = built.export_settings(target)
    fit = doc["pipelines"]["training"]["steps"]["fit"]
    assert fit["image"] == f"{target}@{pushed['app'].digest}"
    assert fit["env"] == "app" and fit["reference"] == pushed["app"].reference
    assert set(doc["pipelines"]) == {"training", "serving"}

    zen = built.export_settings(target, "zenml", ["training"])["training"]
    assert zen["steps"]["ingest"] == {
        "settings": {"docker": {"parent_image": f"{target}@{pushed['core'].digest}", "skip_build": True}}
    }
    assert zen["settings"]["docker"]["skip_build"] is True

    # Through the CLI: one pipeline to stdout, several to a directory.
    runner = CliRunner()
    args = ["-f", str(built.path), "export-settings", "--registry", target, "--format", "zenml"]
    one = runner.invoke(main, [*args, "--pipeline", "serving"])
    assert one.exit_code == 0, one.output
    assert json.loads(one.stdout)["steps"]["api"]["settings"]["docker"]["parent_image"].endswith(
        pushed["app"].digest
    )
    both = runner.invoke(main, args)
    assert both.exit_code != 0 and "choose one with --pipeline P or give -o DIR" in both.output
    out = tmp_path / "zenml"
    assert runner.invoke(main, [*args, "-o", str(out)]).exit_code == 0
    assert sorted(p.name for p in out.iterdir()) == ["serving.yaml", "training.yaml"]

    # Another registry, or a newer lock than what was pushed, is not silently answered with old images.
    with pytest.raises(RegistryError, match="not pushed to"):
        built.export_settings(f"{registry.host}/elsewhere")
