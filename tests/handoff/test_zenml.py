"""``export-settings --format zenml`` checked by the real ``zenml`` package, in a venv of its own.

zenml pins click, pydantic and docker below what envgraph uses, so it cannot live in envgraph's venv. The venv
is made once (``zenml==ZENML_VERSION`` from PyPI, about 2.5 minutes on a 2-core machine) and cached under
``~/.cache/envgraph-tests/zenml-<version>``; later runs take a few seconds (importing zenml).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph.cli import main
from envgraph.lock import read_lock
from envgraph.registry._records import PushRecord, record_pushes
from tests.support.docker import cache_dir

pytestmark = [pytest.mark.zenml, pytest.mark.network, pytest.mark.timeout(900)]

ZENML_VERSION = "0.98.0"

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

CHECK = r"""
import json, sys
from pathlib import Path
from zenml.config import DockerSettings
from zenml.config.pipeline_run_configuration import PipelineRunConfiguration
from zenml.utils import yaml_utils

out = {}
for path in sorted(Path(sys.argv[1]).glob("*.yaml")):
    config = PipelineRunConfiguration.model_validate(yaml_utils.read_yaml(str(path)))
    docker = {"pipeline": DockerSettings.model_validate(config.settings["docker"].model_dump())}
    for name, step in config.steps.items():
        docker[name] = DockerSettings.model_validate(step.settings["docker"].model_dump())
    out[path.stem] = {k: [v.parent_image, v.skip_build] for k, v in docker.items()}
print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def zenml_python() -> Path:
    """The interpreter of a cached venv with zenml installed (created on first use)."""
    venv = cache_dir() / f"zenml-{ZENML_VERSION}"
    python = venv / "bin" / "python"
    done = venv / ".envgraph-complete"  # written last: a venv without it is half-made
    if not done.exists():
        shutil.rmtree(venv, ignore_errors=True)
        started = time.monotonic()
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        proc = subprocess.run(
            [
                str(python),
                "-m",
                "pip",
                "install",
                "-q",
                "--disable-pip-version-check",
                f"zenml=={ZENML_VERSION}",
            ],
            capture_output=True,
            text=True,
            timeout=840,
            check=False,
        )
        if proc.returncode != 0:
            pytest.fail(f"cannot install zenml=={ZENML_VERSION}: {proc.stderr[-2000:]}")
        done.write_text(f"{time.monotonic() - started:.0f} s\n")
    return python


def test_zenml_accepts_the_exported_settings(
    zenml_python: Path, make_project: Callable[..., Path], tmp_path: Path
) -> None:
    ws = envgraph.load(make_project(BODY))
    ws.lock()
    digests = {"core": "sha256:" + "c" * 64, "app": "sha256:" + "a" * 64}
    store = tmp_path / "store"
    (store / "tmp").mkdir(parents=True)
    (store / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    drvs = {e: read_lock(ws.lockdir, e).drv for e in digests}  # type: ignore[union-attr]
    record_pushes(
        store,
        store / "tmp",
        [
            PushRecord("reg.example:5000", "team/envs", e, drvs[e], f"{e}-x", d, "t", str(ws.path))
            for e, d in digests.items()
        ],
        now=datetime(2026, 1, 1, tzinfo=UTC),
    )
    out = tmp_path / "zenml"
    result = CliRunner().invoke(
        main,
        ["-f", str(ws.path), "--store", str(store), "export-settings", "--registry", "reg.example:5000/team/envs",
         "--format", "zenml", "-o", str(out)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output

    env = {k: v for k, v in os.environ.items() if not k.startswith("ZENML_")}
    env["ZENML_CONFIG_PATH"] = str(tmp_path / "zenml-config")  # no global state from the machine
    env["ZENML_ANALYTICS_OPT_IN"] = "false"
    proc = subprocess.run(
        [str(zenml_python), "-c", CHECK, str(out)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    image = {e: f"reg.example:5000/team/envs@{d}" for e, d in digests.items()}
    assert got == {
        "training": {
            "pipeline": [image["core"], True],
            "ingest": [image["core"], True],
            "fit": [image["app"], True],
        },
        "serving": {"pipeline": [image["app"], True], "api": [image["app"], True]},
    }
