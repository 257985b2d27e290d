"""The downgrade guard on an index that serves no PEP 658 metadata: a local index server over small real wheels,
metadata read by HTTP range requests, blockers followed through dependencies of dependencies."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

import envgraph
from envgraph.errors import ResolutionError
from envgraph.lock._index import IndexFile, PackageIndex
from envgraph.lock._lazywheel import remote_metadata
from tests.support.index_server import IndexServer, index_server
from tests.support.wheels import make_wheel


def header(url: str) -> str:
    return f'[project]\nname = "t"\npython = "3.11"\nindex-url = "{url}"\n\n[bases.none]\nimage = "scratch"\n'


@pytest.fixture
def index(tmp_path: Path) -> Iterator[tuple[IndexServer, Path]]:
    files = tmp_path / "files"
    make_wheel(files, "alpha", "1.0")
    make_wheel(files, "alpha", "2.0")
    make_wheel(files, "mid", "1.0", requires=["alpha"])
    make_wheel(files, "mid", "2.0", requires=["alpha>=2"])
    # top 2.0 needs mid>=2, and mid 2 needs alpha>=2: only a dependency of a dependency meets the parent's pin.
    make_wheel(files, "top", "1.0", requires=["mid"])
    make_wheel(files, "top", "2.0", requires=["mid>=2"])
    make_wheel(files, "old", "1.0")
    make_wheel(files, "old", "2.0")
    with index_server(files) as server:
        yield server, files


def write(tmp_path: Path, url: str, body: str) -> Path:
    path = tmp_path / "envgraph.toml"
    path.write_text(header(url) + body, encoding="utf-8")
    return path


CHILD = (
    '[env.p]\nbase = "none"\nrequirements = ["alpha<2"]\n[env.c]\nparent = "p"\nrequirements = ["{req}"]\n'
)


def test_metadata_by_range_requests_reads_a_fraction_of_the_wheel(tmp_path: Path) -> None:
    big = make_wheel(
        tmp_path / "files", "heavy", "1.0", requires=["alpha>=2"],
        files={"heavy/blob.bin": os.urandom(2 * 1024 * 1024), "heavy/__init__.py": ""},
    )  # fmt: skip
    with index_server(tmp_path / "files") as server:
        text, fetched = remote_metadata(requests.Session(), f"{server.url[:-7]}/files/{big.name}", timeout=10)
        assert "Requires-Dist: alpha>=2" in text
        assert server.range_requests >= 1
        assert fetched == server.file_bytes[big.name] < big.stat().st_size // 10


def test_metadata_without_range_support_streams_the_wheel_once(tmp_path: Path) -> None:
    w = make_wheel(tmp_path / "files", "heavy", "1.0", requires=["alpha>=2"])
    with index_server(tmp_path / "files", ranges=False) as server:
        idx = PackageIndex([server.url])
        (f,) = idx.files("heavy")
        assert f.metadata_url is None  # the index serves no PEP 658 metadata
        assert idx.requires_dist(f) == ["alpha>=2"]
        assert idx.requires_dist(f) == ["alpha>=2"]  # cached: the file was fetched once
        assert server.file_bytes[w.name] == w.stat().st_size


def test_metadata_comes_from_the_wheel_cache_when_the_file_is_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ENVGRAPH_CACHE", str(tmp_path / "cache"))
    w = make_wheel(tmp_path / "files", "cached", "1.0", requires=["alpha"])
    from envgraph._hashing import file_sha256

    sha, size = file_sha256(w)
    dest = tmp_path / "cache" / "wheels" / sha[:2] / f"{sha}.whl"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(w.read_bytes())
    f = IndexFile(w.name, "http://127.0.0.1:9/nowhere/" + w.name, sha, size)  # unreachable: must not be asked
    assert PackageIndex([]).requires_dist(f) == ["alpha"]


def lock_failure(tmp_path: Path, url: str, body: str) -> str:
    """Lock the declaration ``body`` against the index at ``url``; the resolution error it must end in."""
    path = write(tmp_path, url, body)
    with pytest.raises(ResolutionError) as info:
        envgraph.load(path).lock()
    return str(info.value)


def test_blocking_parent_pin_is_named_without_pep658(tmp_path: Path, index: tuple[IndexServer, Path]) -> None:
    server, _ = index
    msg = lock_failure(tmp_path, server.url, CHILD.format(req="mid"))
    assert "env c: 'mid' resolved to 1.0, far older than 2.0" in msg
    assert (
        "mid 2.0 (newest release allowed by 'mid') requires 'alpha>=2', but parent env p pins alpha==1.0"
        in msg
    )
    assert server.range_requests >= 1


def test_blocker_two_dependencies_deep_is_named(tmp_path: Path, index: tuple[IndexServer, Path]) -> None:
    server, _ = index
    msg = lock_failure(tmp_path, server.url, CHILD.format(req="top"))
    assert "env c: 'top' resolved to 1.0, far older than 2.0" in msg
    assert (
        "top 2.0 requires 'mid>=2' (newest release allowed by 'top'); and mid 2.0, the newest release that "
        "allows, requires 'alpha>=2', but parent env p pins alpha==1.0" in msg
    )


def test_unexplained_downgrade_still_stops(tmp_path: Path, index: tuple[IndexServer, Path]) -> None:
    server, files = index
    # holder (a sibling requirement, not the parent) keeps old below 2: no parent pin explains it; stop anyway.
    make_wheel(files, "holder", "1.0", requires=["old<2"])
    body = CHILD.format(req="old").replace('["old"]', '["old", "holder"]')
    msg = lock_failure(tmp_path, server.url, body)
    assert "env c: 'old' resolved to 1.0, far older than 2.0: no parent pin explains it" in msg
    assert 'allow-old = ["old"] in env.c, or --allow-old old' in msg
    assert not (tmp_path / "lockfiles" / "c.lock.json").exists()


def test_allow_old_accepts_a_deliberate_old_release(tmp_path: Path, index: tuple[IndexServer, Path]) -> None:
    server, _ = index
    body = CHILD.format(req="mid")
    path = write(tmp_path, server.url, body)
    envgraph.load(path).lock(allow_old=["mid"])  # on the command line
    assert json.loads((tmp_path / "lockfiles" / "c.lock.json").read_text())["packages"][0]["version"] == "1.0"
    for p in (tmp_path / "lockfiles").glob("c.*"):
        p.unlink()
    path = write(tmp_path, server.url, body + 'allow-old = ["Mid"]\n')  # in the env (any spelling)
    statuses = {o.name: o.status for o in envgraph.load(path).lock().outcomes}
    assert statuses["c"] == "resolved"


def test_time_budget_names_the_constraining_parent_pin(
    tmp_path: Path, index: tuple[IndexServer, Path]
) -> None:
    # Like torchvision under a core that pins torch: the budget runs out, the message names the pin that constrains.
    server, _ = index
    path = write(tmp_path, server.url, CHILD.format(req="mid"))
    envgraph.load(path).lock(["p"])
    path.write_text(
        path.read_text().replace('python = "3.11"\n', 'python = "3.11"\nresolve-timeout = 0.001\n')
    )
    with pytest.raises(ResolutionError) as info:
        envgraph.load(path).lock()
    assert str(info.value) == (
        "env c: resolution did not finish within 0.001 s: mid 2.0 (newest release allowed by 'mid') requires "
        "'alpha>=2', but parent env p pins alpha==1.0"
    )


def test_resolution_reads_candidates_metadata_without_downloading_them(tmp_path: Path) -> None:
    # Like torch candidates under a parent's pin: heavy 3.0 and 2.0 are rejected by their metadata alone.
    files = tmp_path / "files"
    make_wheel(files, "alpha", "1.0")
    make_wheel(files, "alpha", "2.0")
    blob = os.urandom(4 * 1024 * 1024)
    rejected = [
        make_wheel(
            files, "heavy", v, requires=["alpha>=2"], files={"heavy/blob.bin": blob, "heavy/__init__.py": ""}
        )
        for v in ("2.0", "3.0")
    ]
    make_wheel(files, "heavy", "1.0", requires=["alpha"])
    with index_server(files) as server:
        body = CHILD.format(req="heavy") + 'allow-old = ["heavy"]\n'
        path = write(tmp_path, server.url, body)
        lines: list[str] = []
        envgraph.load(path).lock(log=lines.append)
        assert (
            json.loads((tmp_path / "lockfiles" / "c.lock.json").read_text())["packages"][0]["version"]
            == "1.0"
        )
        # pip-compile (fast-deps) read the rejected candidates' metadata by range requests: a fraction of each.
        for w in rejected:
            assert server.file_bytes.get(w.name, 0) < w.stat().st_size // 4, w.name
