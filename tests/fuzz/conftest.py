"""The fuzzed project: an offline, locked project over test wheels, with hostile files beside it.

Profiles: the default (CI) one runs 7,800 hypothesis examples, a deterministic sweep of 1,800 hostile values
and 50 hostile files through the CLI in about 85 s on the 2-core CI machine (measured at a load average of ~2);
``ENVGRAPH_FUZZ=long`` multiplies every example count by 20 for a local run (156,000 examples and 400 CLI
files, about half an hour). The hypothesis database stays in ``.hypothesis/`` (git-ignored), so a failure found
once is replayed first.
"""

from __future__ import annotations

import os
import shutil
import textwrap
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from attrs import evolve
from hypothesis import HealthCheck, settings

import envgraph
from envgraph.identity import LOCK_VERSION
from envgraph.lock._locker import base_inputs
from envgraph.lock._lockfile import base_identity, write_base_lock
from envgraph.lock._model import BaseLock, DebianPin
from tests.support.project import SCRATCH_PYTHON
from tests.support.wheels import standard_wheels

LONG = os.environ.get("ENVGRAPH_FUZZ") == "long"


def fuzz_settings(examples: int) -> settings:
    """``examples`` in the CI profile, twenty times as many in the long one; no deadline, no shrink limit."""
    return settings(
        max_examples=examples * (20 if LONG else 1),
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
        print_blob=True,
    )


DECLARATION = f"""
[project]
name = "fuzz"
python = "3.11"
index-url = ""
find-links = ["wheels"]
max-layers = 20

[bases.none]
image = "scratch"
python = "{SCRATCH_PYTHON}"

[bases.deb]
debian = {{ suite = "bookworm", packages = ["python3-minimal"] }}
python = "/usr/bin/python3.11"

[env.core]
base = "none"
requirements = ["alpha<2"]
environment = {{ OMP_NUM_THREADS = "1", GREETING = "hola" }}

[env.train]
parent = "core"
requirements-file = "reqs/train.txt"

[env.serve]
parent = "core"
requirements = ["delta"]
files = [{{ src = "app/", dest = "/app" }}]
workdir = "/app"
entrypoint = ["python", "-m", "app"]
cmd = ["--port", "8000"]

[env.tools]
base = "deb"
requirements = ["beta<2"]

[pipeline.p]
steps = {{ fit = "train", api = "serve" }}

[pipeline.q]
steps = {{ t = "tools" }}
"""


@attrs.frozen
class FuzzProject:
    root: Path
    declaration: dict = attrs.field(repr=False)  # type: ignore[type-arg]
    text: str = attrs.field(repr=False)
    # lockfiles/<...>.json, relative to root -> their valid text
    locks: dict[str, str] = attrs.field(repr=False)

    def restore(self) -> None:
        """Put back the valid declaration and lockfiles (an example may have replaced any of them)."""
        (self.root / "envgraph.toml").write_text(self.text, encoding="utf-8")
        for rel, text in self.locks.items():
            (self.root / rel).write_text(text, encoding="utf-8")


def _hostile_files(root: Path) -> None:
    h = root / "hostile"
    h.mkdir()
    (h / "bad-utf8.txt").write_bytes(b"alpha\n\xff\xfe beta\n")
    (h / "nul.txt").write_bytes(b"alpha\n\x00\n")
    (h / "options.txt").write_text("-r other.txt\n")
    (h / "dir").mkdir()
    os.mkfifo(h / "fifo")
    (h / "loop").symlink_to("loop")


def make_fuzz_project(root: Path) -> FuzzProject:
    """Write, lock (real pip-compile over the test wheels) and return the fuzzed project."""
    standard_wheels(root / "wheels")
    (root / "app").mkdir()
    (root / "app" / "__main__.py").write_text("print('app')\n")
    (root / "reqs").mkdir()
    (root / "reqs" / "train.txt").write_text("# train\ngamma  # needs alpha\n")
    _hostile_files(root)
    text = textwrap.dedent(DECLARATION)
    (root / "envgraph.toml").write_text(text)
    ws = envgraph.load(root / "envgraph.toml", store=root / "store")
    # The Debian base is pinned by hand (no mmdebstrap here): lock --check and plan never rebuild it.
    deb = BaseLock(
        version=LOCK_VERSION,
        name="deb",
        python="/usr/bin/python3.11",
        libc="glibc-2.36",
        inputs=base_inputs(ws.spec.bases["deb"], ws.spec.project.platform),
        identity="",
        debian=DebianPin(
            suite="bookworm",
            packages=("python3-minimal",),
            mirror="http://deb.debian.org/debian",
            versions={"libc6": "2.36-9+deb12u14", "python3-minimal": "3.11.2-1+b1"},
            diff_id="sha256:" + "1" * 64,
        ),
        architecture="amd64",
        python_version="3.11",
    )
    write_base_lock(ws.lockdir, evolve(deb, identity=base_identity(deb)))
    ws.lock()
    assert not ws.lock(check=True).stale
    ws.plan()
    locks = {
        p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
        for p in sorted((root / "lockfiles").rglob("*.json"))
    }
    return FuzzProject(root, tomllib.loads(text), text, locks)


@pytest.fixture(scope="session")
def fuzz_template(tmp_path_factory: pytest.TempPathFactory) -> FuzzProject:
    return make_fuzz_project(tmp_path_factory.mktemp("fuzz-template"))


@pytest.fixture(scope="module")
def fuzz_project(
    fuzz_template: FuzzProject, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[FuzzProject]:
    """A private copy of the template for one test module."""
    root = tmp_path_factory.mktemp("fuzz") / "project"
    shutil.copytree(fuzz_template.root, root, symlinks=True, ignore=shutil.ignore_patterns("store", "fifo"))
    os.mkfifo(root / "hostile" / "fifo")
    yield attrs.evolve(fuzz_template, root=root)
