"""Lockfiles are untrusted input: every field is checked when read, a refusal is one line naming the file and the
key, and valid lockfiles keep their exact bytes (issue 10)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.errors import StaleLockError
from envgraph.lock._lockfile import dumps, read_base_lock, read_lock

ROOT = Path(__file__).resolve().parent.parent.parent
LOCKS = ROOT / "lockfiles"


@pytest.fixture
def lockdir(tmp_path: Path) -> Path:
    shutil.copytree(LOCKS, tmp_path / "lockfiles")
    return tmp_path / "lockfiles"


def test_the_bundled_lockfiles_are_read_and_written_back_byte_for_byte(lockdir: Path) -> None:
    for env in ("core", "serve", "train"):
        lock = read_lock(lockdir, env)
        assert lock is not None
        assert dumps(lock) == (lockdir / f"{env}.lock.json").read_text()
    base = read_base_lock(lockdir, "debian")
    assert base is not None
    assert dumps(base) == (lockdir / "bases" / "debian.lock.json").read_text()


def _wheel(d: dict[str, Any], i: int = 0) -> dict[str, Any]:
    return d["packages"][i]["wheel"]  # type: ignore[no-any-return]


Edit = Callable[[dict[str, Any]], object]
JOBLIB = "../../3d/5e/joblib-1.6.0-py3-none-any.whl"

# (what, edit of serve.lock.json, expected part of the message)
ENV_EDITS: list[tuple[str, Edit, str]] = [
    ("path filename", lambda d: _wheel(d).update(filename=JOBLIB), "packages[0].wheel.filename: must be a wheel"),
    ("slash", lambda d: _wheel(d).update(filename="a/annotated_doc-0.0.7-py3-none-any.whl"), "not a path"),
    ("backslash", lambda d: _wheel(d).update(filename="a\\annotated_doc-0.0.7-py3-none-any.whl"), "not a path"),
    ("NUL", lambda d: _wheel(d).update(filename="annotated_doc-0.0.7-py3-none-any.whl\x00"), "filename"),
    ("not a wheel", lambda d: _wheel(d).update(filename="annotated_doc-0.0.7.tar.gz"), "filename"),
    ("other package", lambda d: _wheel(d).update(filename="joblib-1.6.0-py3-none-any.whl"),
     "packages[0]: wheel filename 'joblib-1.6.0-py3-none-any.whl' is not a wheel of annotated-doc 0.0.7"),
    ("other version", lambda d: _wheel(d).update(filename="annotated_doc-0.0.8-py3-none-any.whl"), "is not a wheel of"),
    ("uppercase sha256", lambda d: _wheel(d).update(sha256=_wheel(d)["sha256"].upper()), "64 lowercase hex"),
    ("short sha256", lambda d: _wheel(d).update(sha256="abc"), "packages[0].wheel.sha256"),
    ("negative size", lambda d: _wheel(d).update(size=-1), "packages[0].wheel.size: must be a size"),
    ("boolean size", lambda d: _wheel(d).update(size=True), "packages[0].wheel.size: expected an integer, got true"),
    ("float size", lambda d: _wheel(d).update(size=5286.0), "expected an integer, got 5286.0"),
    ("huge size", lambda d: _wheel(d).update(size=2**64), "must be a size"),
    ("file url", lambda d: _wheel(d).update(url="file:///etc/passwd"), "url must be an http(s):// URL"),
    ("ftp url", lambda d: _wheel(d).update(url="ftp://x/annotated_doc-0.0.7-py3-none-any.whl"), "url must be"),
    ("absolute url", lambda d: _wheel(d).update(url="/etc/annotated_doc-0.0.7-py3-none-any.whl"), "url must be"),
    ("inner ..", lambda d: _wheel(d).update(url="wheels/../../annotated_doc-0.0.7-py3-none-any.whl"), "no '.', '..'"),
    ("url of another file", lambda d: _wheel(d).update(url="wheels/joblib-1.6.0-py3-none-any.whl"),
     "must end with the wheel's file name"),
    ("url with spaces", lambda d: _wheel(d).update(url="https://x/a b.whl"), "url must be"),
    ("package name", lambda d: d["packages"][0].update(name="Annotated_Doc"), "normalized package name"),
    ("version", lambda d: d["packages"][0].update(version="zero"), "PEP 440"),
    ("duplicate package", lambda d: d["packages"].append(d["packages"][0]), "annotated-doc is listed twice"),
    ("env", lambda d: d.update(env="core"), "env is 'core', not 'serve'"),
    ("drv", lambda d: d.update(drv="sha256:" + "0" * 63), "drv: must be sha256:<64 lowercase hex digits>"),
    ("inputs", lambda d: d.update(inputs="0" * 64), "inputs: must be sha256:"),
    ("parent drv", lambda d: d["parent"].update(drv="md5:x"), "parent.drv"),
    ("parent name", lambda d: d["parent"].update(env="../core"), "parent.env: names may use"),
    ("base and parent", lambda d: d.update(base={"name": "debian", "identity": "sha256:" + "0" * 64}),
     "exactly one of 'base' or 'parent'"),
    ("base as a string", lambda d: d.update(base="debian"), "base: expected an object, got 'debian'"),
    ("bytecode", lambda d: d.update(bytecode="yes"), "bytecode: expected true or false, got 'yes'"),
    ("NUL in constraints", lambda d: d.update(constraints=["a<2\x00"]), "constraints[0]: must not contain a NUL"),
    ("merged deb", lambda d: d.update(merged=["deb:../x"]), "merged[0]: must be a Debian package name"),
    ("python", lambda d: d.update(python="3.11\n"), 'python: must be a major.minor version such as "3.11"'),
    ("platform", lambda d: d.update(platform="linux/386"), "platform: must be"),
    ("files src", lambda d: d["files"][0].update(src="../secrets"), "files[0].src: must be a path inside"),
    ("files dest", lambda d: d["files"][0].update(dest="app"), "files[0].dest: must be an absolute path"),
    # Lockfiles from before code stopped being a dependency pinned the content: now an unknown key.
    ("files sha256", lambda d: d["files"][0].update(sha256="sha256:" + "0" * 64), "unknown key(s) sha256 in files[0]"),
    ("workdir", lambda d: d.update(workdir="/app/../etc"), "workdir: must be an absolute path"),
    ("environment", lambda d: d["environment"].update({"A=B": "1"}), "environment: must be NAME = value"),
    ("NUL in cmd", lambda d: d.update(cmd=["a\x00b"]), "cmd: an argument holds a NUL"),
    ("merged", lambda d: d.update(merged=["Not Normal"]), "merged[0]: must be a normalized package name"),
    ("resolver", lambda d: d["resolver"].update({"pip-tools": "latest"}), "resolver.pip-tools: must be a PEP 440"),
    ("unknown nested key", lambda d: _wheel(d).update(mirror="x"), "unknown key(s) mirror in packages[0].wheel"),
    ("missing nested key", lambda d: _wheel(d).pop("size"), "missing required key packages[0].wheel.size"),
    ("unknown key", lambda d: d.update(extra=1), "unknown key(s) extra in the top level"),
    ("missing key", lambda d: d.pop("merged"), "missing required key merged"),
    ("packages not a list", lambda d: d.update(packages={}), "packages: expected an array, got an object"),
    ("package not an object", lambda d: d["packages"].__setitem__(0, "x"), "packages[0]: expected an object, got 'x'"),
    ("version 2", lambda d: d.update(version=2), "lockfile version 2 is not 3"),
    # Image settings and per-platform pins (issues 14 and 16) follow the declaration's rules.
    ("user", lambda d: d.update(user="root;rm -rf /"), "user: must be NAME or UID"),
    ("port", lambda d: d.update(ports=["99999"]), "ports: must be a number 1-65535"),
    ("label key", lambda d: d.update(labels={"dev.envgraph.drv": "x"}), "labels: 'dev.envgraph.drv' is not a label key"),
    ("label NUL", lambda d: d.update(labels={"org.opencontainers.image.title": "a\x00"}), "holds a NUL"),
    ("created", lambda d: d.update(labels={"org.opencontainers.image.created": "yesterday"}), "RFC 3339"),
    ("platform key", lambda d: d.update(version=4, platforms={"linux/s390x": {"drv": d["drv"], "base": d.get("base")}}),
     "platforms: 'linux/s390x' is not a further platform"),
    ("platform drv", lambda d: d.update(version=4, platforms={"linux/arm64": {"drv": "x"}}), 'platforms."linux/arm64".drv: must be sha256'),
    ("package platform", lambda d: d["packages"][0].update(platforms={"linux/arm64": _wheel(d)}),
     "not a platform of this lock"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "expected"), ENV_EDITS, ids=[e[0] for e in ENV_EDITS])
def test_a_tampered_lockfile_is_one_line_naming_file_and_key(
    lockdir: Path, what: str, edit: Edit, expected: str
) -> None:
    path = lockdir / "serve.lock.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(StaleLockError) as info:
        read_lock(lockdir, "serve")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and message.endswith(": run `envgraph lock`"), message
    assert expected in message, message
    assert "\n" not in message


NATIVE_LOCKS = ROOT / "examples" / "native" / "lockfiles"
_SDIST = (
    0  # pipeline.lock.json: packages[0] is built from an sdist, packages[1] from a directory of the project
)


def _source(d: dict[str, Any], i: int = _SDIST) -> dict[str, Any]:
    return d["packages"][i]["source"]  # type: ignore[no-any-return]


def _deb(d: dict[str, Any], key: str = "build-apt") -> dict[str, Any]:
    return d[key]["packages"][0]  # type: ignore[no-any-return]


# (what, edit of the native example's pipeline.lock.json, expected part of the message): lock format 3's fields
NATIVE_EDITS: list[tuple[str, Edit, str]] = [
    ("sdist sha256", lambda d: _source(d).update(sha256="sha256:" + "0" * 64), "packages[0].source: sha256 must be"),
    ("sdist filename path", lambda d: _source(d).update(filename="../x-1.tar.gz"), "filename must be a plain"),
    ("sdist not a tarball", lambda d: _source(d).update(filename="x-1.whl"), "filename must be a plain"),
    ("sdist without size", lambda d: _source(d).pop("size"), "an sdist needs a filename and a size"),
    ("sdist negative size", lambda d: _source(d).update(size=-1), "packages[0].source.size: must be a size"),
    ("sdist file url", lambda d: _source(d).update(url="file:///etc/x.tar.gz"), "url must be an http(s)"),
    ("sdist url of another file", lambda d: _source(d).update(url="sdists/other-1.tar.gz"),
     "must end with the sdist's file name"),
    ("source kind", lambda d: _source(d).update(kind="svn"), "kind must be one of sdist, directory, git"),
    ("directory outside", lambda d: _source(d, 1).update(url="../elsewhere"), "must be a path inside the project"),
    ("directory absolute", lambda d: _source(d, 1).update(url="/etc"), "must be a path inside the project"),
    ("git without commit", lambda d: _source(d, 1).update(kind="git", url="https://example.org/r.git"),
     "commit of a git source must be a full commit id"),
    ("git url", lambda d: _source(d, 1).update(kind="git", url="ext::sh -c evil", commit="0" * 40),
     "url of a git source must be"),
    ("git subdirectory", lambda d: _source(d, 1).update(kind="git", url="https://example.org/r.git",
                                                        commit="0" * 40, subdirectory="../.."),
     "subdirectory must be a path inside the repository"),
    ("wheel and source", lambda d: d["packages"][0].update(wheel=d["packages"][2]["wheel"]),
     "a package has either a wheel or a source and build, not both"),
    ("neither wheel nor source", lambda d: d["packages"][0].pop("source"), "needs a wheel, or a source and a build"),
    ("build backend", lambda d: d["packages"][0]["build"].update(backend="os; rm -rf /"), "backend must be"),
    ("build backend-path", lambda d: d["packages"][0]["build"].update({"backend-path": ["../up"]}),
     "backend-path must stay inside the project"),
    ("build dependency wheel", lambda d: d["packages"][0]["build"]["packages"][0]["wheel"].update(sha256="x"),
     "packages[0].build.packages[0].wheel.sha256: must be 64 lowercase hex"),
    ("build dependency of another wheel",
     lambda d: d["packages"][0]["build"]["packages"][0].update(name="wheel"), "is not a wheel of wheel"),
    ("build requires NUL", lambda d: d["packages"][0]["build"].update(requires=["a\x00"]), "must not contain a NUL"),
    ("apt inputs", lambda d: d["build-apt"].update(inputs="0" * 64), "build-apt.inputs: must be sha256:"),
    ("apt request", lambda d: d["build-apt"].update(requested=["a, b"]), "build-apt.requested[0]: must be one"),
    ("deb pool path", lambda d: _deb(d).update(filename="../../etc/passwd.deb"), "invalid Debian pool path"),
    ("deb name", lambda d: _deb(d).update(name="Bad Name"), "invalid Debian package name"),
    ("deb sha256", lambda d: _deb(d).update(sha256="0" * 63), "malformed sha256, size or architecture"),
    ("deb twice", lambda d: d["build-apt"]["packages"].append(_deb(d)), "build-apt: packages: binutils is listed twice"),
    ("deb unknown key", lambda d: _deb(d).update(priority="required"), "unknown key(s) priority"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "expected"), NATIVE_EDITS, ids=[e[0] for e in NATIVE_EDITS])
def test_a_tampered_native_lockfile_is_one_line_naming_file_and_key(
    tmp_path: Path, what: str, edit: Edit, expected: str
) -> None:
    lockdir = tmp_path / "lockfiles"
    shutil.copytree(NATIVE_LOCKS, lockdir)
    path = lockdir / "pipeline.lock.json"
    assert read_lock(lockdir, "pipeline") is not None
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(StaleLockError) as info:
        read_lock(lockdir, "pipeline")
    message = str(info.value)
    assert message.startswith(f"{path}: ") and message.endswith(": run `envgraph lock`"), message
    assert expected in message, message
    assert "\n" not in message


def test_the_native_lockfiles_are_read_and_written_back_byte_for_byte(tmp_path: Path) -> None:
    for env in ("gbm", "pipeline"):
        lock = read_lock(NATIVE_LOCKS, env)
        assert lock is not None
        assert dumps(lock) == (NATIVE_LOCKS / f"{env}.lock.json").read_text()
    base = read_base_lock(NATIVE_LOCKS, "debian")
    assert base is not None
    assert dumps(base) == (NATIVE_LOCKS / "bases" / "debian.lock.json").read_text()


def test_a_find_links_url_may_climb_out_of_the_project_only_at_its_start(lockdir: Path) -> None:
    path = lockdir / "serve.lock.json"
    data = json.loads(path.read_text())
    _wheel(data)["url"] = "../../wheels/annotated_doc-0.0.7-py3-none-any.whl"
    path.write_text(json.dumps(data))
    lock = read_lock(lockdir, "serve")
    assert lock is not None and lock.packages[0].wheel.url.startswith("../../wheels/")


BASE_EDITS: list[tuple[str, Edit, str]] = [
    ("name", lambda d: d.update(name="slim"), "name is 'slim', not 'debian'"),
    ("libc", lambda d: d.update(libc="glibc"), "libc: must look like"),
    ("python", lambda d: d.update(python="python3"), "python: must be an absolute path"),
    ("identity", lambda d: d.update(identity="sha256:xyz"), "identity: must be sha256:"),
    ("suite", lambda d: d["debian"].update(suite="../bookworm"), "debian.suite: must be a Debian suite name"),
    ("package", lambda d: d["debian"]["packages"].append("--include=evil"), "debian.packages[4]: must be a Debian"),
    ("mirror", lambda d: d["debian"].update(mirror="http://x y"), "debian.mirror: must be a URL"),
    ("pinned version", lambda d: d["debian"]["versions"].update(bash="5.2 evil"), "not a Debian version for bash"),
    ("diff-id", lambda d: d["debian"].update({"diff-id": "sha256:" + "A" * 64}), "debian.diff-id: must be sha256:"),
    ("merged-usr", lambda d: d["debian"].update({"merged-usr": ["bin", "../etc"]}),
     "debian.merged-usr[1]: must be a top-level directory name"),
    ("architecture", lambda d: d.update(architecture="x86 64"), "architecture: must be an architecture name"),
    ("python-version", lambda d: d.update({"python-version": "3.11;"}), "python-version: must be a version"),
    ("debian and image", lambda d: d.update(image={"reference": "scratch"}), "exactly one of 'debian' or 'image'"),
    ("unknown key", lambda d: d["debian"].update(urls=[]), "unknown key(s) urls in debian"),
]  # fmt: skip


@pytest.mark.parametrize(("what", "edit", "expected"), BASE_EDITS, ids=[e[0] for e in BASE_EDITS])
def test_a_tampered_base_lock_is_one_line(lockdir: Path, what: str, edit: Edit, expected: str) -> None:
    path = lockdir / "bases" / "debian.lock.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=2))
    with pytest.raises(StaleLockError) as info:
        read_base_lock(lockdir, "debian")
    assert expected in str(info.value) and str(info.value).startswith(f"{path}: "), str(info.value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("[]", "not a lockfile (an array, not a JSON object)"),
        ("null", "not a lockfile (null, not a JSON object)"),
        ("1", "not a lockfile (a number, not a JSON object)"),
        ('"core"', "not a lockfile (a string, not a JSON object)"),
        ("true", "not a lockfile (a boolean, not a JSON object)"),
        ("", "unreadable lockfile ("),
        ("{", "unreadable lockfile ("),
        ('{"version": 1, "version": 1}', "duplicate key 'version'"),
        ("[" * 100_000, "nested too deeply"),
        ("1" * 5000, "unreadable lockfile ("),
    ],
)
def test_a_lockfile_that_is_not_an_object_is_one_line_naming_the_file(
    lockdir: Path, text: str, expected: str
) -> None:
    for path, read in (
        (lockdir / "core.lock.json", lambda: read_lock(lockdir, "core")),
        (lockdir / "bases" / "debian.lock.json", lambda: read_base_lock(lockdir, "debian")),
    ):
        path.write_text(text)
        with pytest.raises(StaleLockError) as info:
            read()
        assert str(info.value).startswith(f"{path}: ") and expected in str(info.value), str(info.value)


def test_undecodable_and_special_lockfiles(lockdir: Path) -> None:
    path = lockdir / "core.lock.json"
    path.write_bytes(b'{"version": 3, "env": "\xff"}')
    with pytest.raises(StaleLockError, match=r"not UTF-8: byte 0xff at offset 23"):
        read_lock(lockdir, "core")
    path.unlink()
    path.mkdir()
    with pytest.raises(StaleLockError, match="unreadable lockfile"):
        read_lock(lockdir, "core")
    path.rmdir()
    os.mkfifo(path)  # nobody writes to it: reading must not wait forever
    with pytest.raises(StaleLockError, match="not a regular file"):
        read_lock(lockdir, "core")


def test_lock_replaces_an_unreadable_lockfile_and_check_reports_it(make_project: Callable[..., Path]) -> None:
    path = make_project('[env.a]\nbase = "none"\nrequirements = ["alpha<2"]\n')
    ws = envgraph.load(path)
    ws.lock()
    lockdir = path.parent / "lockfiles"
    good = {p: p.read_text() for p in (lockdir / "a.lock.json", lockdir / "bases" / "none.lock.json")}
    for p in good:
        p.write_text("[]")
    stale = ws.lock(check=True).stale  # reported as stale (with the reason), changing nothing
    assert {(o.kind, o.name) for o in stale} == {("base", "none"), ("env", "a")}, stale
    assert all("not a lockfile" in o.reason for o in stale), stale
    assert all(p.read_text() == "[]" for p in good)
    said: list[str] = []
    ws.lock(log=said.append)  # the advice of every lockfile error ("run envgraph lock") must work
    assert {p: p.read_text() for p in good} == good
    assert sum("replacing an unreadable lockfile" in m for m in said) == 2, said
    assert not ws.lock(check=True).stale
