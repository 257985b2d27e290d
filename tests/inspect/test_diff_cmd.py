"""`envgraph diff`: between envs, between an env at a git revision of its lockfiles and now, and their images."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

import envgraph
from envgraph.cli import main
from envgraph.errors import EnvgraphError
from envgraph.lock import VersionChange
from envgraph.workspace import Workspace


def _git(root: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.invalid", "-C", str(root), *args],
        check=True,
        capture_output=True,
    )


def test_two_envs(locked: Workspace) -> None:
    d = locked.diff("core", "app")
    assert d.python.added == (("epsilon", "3.1"), ("gamma", "1.0"))
    assert d.python.removed == () and d.python.changed == () and d.debian.empty
    assert d.images is None  # nothing built


def test_an_env_at_a_revision_against_now_with_its_images(locked: Workspace) -> None:
    root = locked.root
    assert locked.build(["app"], jobs=2).ok
    _git(root, "init", "-q")
    _git(root, "add", "envgraph.toml", "lockfiles")
    _git(root, "commit", "-q", "-m", "first")
    toml = root / "envgraph.toml"
    toml.write_text(
        toml.read_text()
        .replace('requirements = ["beta"]', 'requirements = ["beta", "alpha==1.0"]')
        .replace('requirements = ["gamma[fast]"]', 'requirements = ["gamma[fast]", "delta"]')
    )
    ws = envgraph.load(toml, store=locked.store_path)
    ws.lock()
    assert ws.build(["app"], jobs=2).ok

    d = ws.diff("app@HEAD", "app")
    assert d.python.added == (("delta", "0.5"),)
    assert d.python.changed == (VersionChange("alpha", "2.0", "1.0"),)
    assert d.old.drv != d.new.drv
    im = d.images
    assert im is not None
    assert sorted(x.what for x in im.removed) == ["envgraph: alpha 2.0"]
    assert sorted(x.what for x in im.added) == ["envgraph: alpha 1.0", "envgraph: delta 0.5"]
    assert {x.what for x in im.shared} >= {
        "envgraph: beta 2.0",
        "envgraph: gamma 1.0",
        "envgraph: epsilon 3.1",
    }

    r = CliRunner().invoke(main, ["-f", str(toml), "--store", str(ws.store_path), "diff", "app@HEAD", "app"])
    assert r.exit_code == 0, r.output
    assert "  + delta 0.5" in r.output and "  ~ alpha 2.0 -> 1.0" in r.output
    r = CliRunner().invoke(main, ["-f", str(toml), "diff", "core@HEAD", "core", "--json"])
    assert json.loads(r.output)["python"]["changed"] == [{"name": "alpha", "old": "2.0", "new": "1.0"}]


def test_untrusted_revisions_and_lockfiles(locked: Workspace) -> None:
    root = locked.root
    _git(root, "init", "-q")
    lock = root / "lockfiles" / "core.lock.json"
    good = lock.read_text()
    lock.write_text(good.replace('"version": "2.0"', '"version": 2'))
    _git(root, "add", "lockfiles")
    _git(root, "commit", "-q", "-m", "broken")
    lock.write_text(good)
    with pytest.raises(EnvgraphError, match=r"HEAD:lockfiles/core.lock.json: field 'version' missing or not"):
        locked.diff("core@HEAD", "core")
    with pytest.raises(EnvgraphError, match="invalid git revision"):
        locked.diff("core@--output=/tmp/x", "core")
    with pytest.raises(EnvgraphError, match="git cannot show revision 'nope'"):
        locked.diff("core@nope", "core")
    with pytest.raises(EnvgraphError, match="invalid or cyclic parent env"):
        locked.diff("../x@HEAD", "core")


def test_a_lockfile_of_an_early_format_is_read_for_names_and_versions(locked: Workspace) -> None:
    root = locked.root
    _git(root, "init", "-q")
    lock = root / "lockfiles" / "core.lock.json"
    good = lock.read_text()
    early = json.loads(good)
    del early["bytecode"]
    early["base"] = "none"  # early lockfiles named the base with a plain string
    early["packages"][0]["version"] = "0.9"
    lock.write_text(json.dumps(early))
    _git(root, "add", "lockfiles")
    _git(root, "commit", "-q", "-m", "early")
    lock.write_text(good)
    d = locked.diff("core@HEAD", "core")
    assert d.python.changed == (VersionChange("alpha", "0.9", "2.0"),)


def test_git_never_takes_a_revision_for_an_option(tmp_path: Path) -> None:
    """Revisions are validated before git runs; should one starting with '-' get through, git reads it as a
    revision anyway (--end-of-options), not as `--output=FILE` writing a file."""
    from envgraph.lock._history import _git_show

    _git(tmp_path, "init", "-q")
    (tmp_path / "f").write_text("x\n")
    _git(tmp_path, "add", "f")
    _git(tmp_path, "commit", "-q", "-m", "one")
    assert _git_show(tmp_path, "HEAD", "f") == "x\n"
    (tmp_path / "out:.").mkdir()  # so that `--output=out:./f` could write out:./f
    with pytest.raises(EnvgraphError, match="git cannot show revision"):
        _git_show(tmp_path, f"--output={tmp_path / 'out'}", "f")
    assert not (tmp_path / "out:." / "f").exists()
