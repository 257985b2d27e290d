"""Costs linear in the graph (issue 12, part A): a build reads ``index.json`` once, writes it at most once,
and reads each lockfile once; a no-op build writes nothing. Counted on the real files with an audit hook."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

import envgraph
from tests.support.project import copy_project, locked_template
from tests.support.wheels import make_wheel

N_LEAVES = 12


def _body() -> str:
    parts = ['[env.core]\nbase = "none"\nrequirements = ["alpha<2"]\n']
    for i in range(N_LEAVES):
        parts.append(f'[env.leaf{i}]\nparent = "core"\nrequirements = ["{("gamma", "delta")[i % 2]}"]\n')
    parts.append(
        "[pipeline.all]\nsteps = { " + ", ".join(f's{i} = "leaf{i}"' for i in range(N_LEAVES)) + " }\n"
    )
    return "\n".join(parts)


@pytest.fixture(scope="module")
def scale_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scale")
    make_wheel(root / "wheels", "delta", "0.6")
    return locked_template(root, _body())


class Opens:
    """Every ``open`` of a file in a given set of names by this process (writes included)."""

    active: Opens | None = None

    def __init__(self) -> None:
        self.paths: list[str] = []

    def count(self, suffix: str) -> int:
        return sum(1 for p in self.paths if p.endswith(suffix))


def _hook(event: str, args: tuple[object, ...]) -> None:
    opens = Opens.active
    if opens is not None and event == "open" and isinstance(args[0], (str, Path)):
        opens.paths.append(str(args[0]))


sys.addaudithook(_hook)  # audit hooks cannot be removed: it is inert unless a test activates it


@pytest.fixture
def opens() -> Iterator[Opens]:
    Opens.active = o = Opens()
    yield o
    Opens.active = None


def test_a_build_of_n_envs_reads_the_index_and_each_lockfile_once(
    scale_template: Path, tmp_path: Path, opens: Opens
) -> None:
    project = copy_project(scale_template, tmp_path / "p")
    opens.paths.clear()  # the copy opened every file
    ws = envgraph.load(project / "envgraph.toml")
    result = ws.build(jobs=2)
    assert result.ok and len(result.images) == N_LEAVES + 1
    assert opens.count("/.envgraph/index.json") == 1, opens.count("/.envgraph/index.json")
    for e in ["core", *(f"leaf{i}" for i in range(N_LEAVES))]:
        assert opens.count(f"/lockfiles/{e}.lock.json") == 1, e
    store = ws.open_store()
    assert set(store.tags()) == {f"{i.env}:latest" for i in result.images} | {
        f"{i.env}:{i.drv[7:19]}" for i in result.images
    }


def test_a_noop_build_reads_the_index_once_and_writes_nothing(
    scale_template: Path, tmp_path: Path, opens: Opens
) -> None:
    project = copy_project(scale_template, tmp_path / "p")
    envgraph.load(project / "envgraph.toml").build()
    index = project / ".envgraph" / "index.json"
    before = index.stat()
    opens.paths.clear()
    result = envgraph.load(project / "envgraph.toml").build()
    assert {i.status for i in result.images} == {"reused"}
    assert opens.count("/.envgraph/index.json") == 1
    after = index.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    # Nothing written: no blob, key record, stamp or index (temp files are where every write starts).
    written = [p for p in opens.paths if "/.envgraph/tmp/" in p]
    assert written == []


def test_tags_of_a_failed_run_are_committed_for_what_completed(scale_template: Path, tmp_path: Path) -> None:
    project = copy_project(scale_template, tmp_path / "p")
    wheels = project / "wheels"
    # gamma's wheel is damaged: the envs needing it fail, the others are built and tagged in one update.
    for w in wheels.glob("gamma-*.whl"):
        w.write_bytes(w.read_bytes()[:-1] + b"!")
    ws = envgraph.load(project / "envgraph.toml")
    result = ws.build()
    assert not result.ok
    built = {i.env for i in result.images if i.status == "built"}
    assert "core" in built and "leaf1" in built and "leaf0" not in built
    tags = ws.open_store().tags()
    assert {f"{e}:latest" for e in built} <= set(tags)
    assert "leaf0:latest" not in tags


# Modules a no-op needs none of: HTTP clients, the Docker SDK, layer writers and compressors, SQLAlchemy.
_HEAVY = ("requests", "urllib3", "docker", "sqlalchemy", "alembic", "networkx", "rich", "envgraph.registry",
          "envgraph.oci._layer", "envgraph.oci._compress", "envgraph.builder._layers", "envgraph.images")  # fmt: skip


@pytest.mark.parametrize("args", [["build", "-q"], ["build", "--dry-run"], ["lock", "--check"], ["graph"]])
def test_a_noop_command_imports_only_what_it_needs(
    scale_template: Path, tmp_path: Path, args: list[str]
) -> None:
    project = copy_project(scale_template, tmp_path / "p")
    envgraph.load(project / "envgraph.toml").build()
    code = (
        "import sys\n"
        "from envgraph.cli import main\n"
        "try:\n"
        f"    main({args!r})\n"
        "except SystemExit as e:\n"
        "    assert not e.code, e.code\n"
        f"heavy = {_HEAVY!r}\n"
        "print('loaded:', sorted(m for m in sys.modules if m.startswith(heavy)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], cwd=project, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.rstrip().endswith("loaded: []"), proc.stdout[-2000:]
