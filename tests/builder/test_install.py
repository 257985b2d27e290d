"""Package layers installed straight from wheels into the tar: installer's schemes, shebangs, RECORD."""

from __future__ import annotations

import gzip
import io
import tarfile
import warnings
import zipfile
from pathlib import Path

import pytest

from envgraph.builder._install import _inflate_with_isal
from envgraph.builder._layers import build_package_layer
from envgraph.errors import BuildError
from envgraph.identity import InstallTarget
from envgraph.oci._store import Store
from tests.support.wheels import make_wheel, record_hash

TARGET = InstallTarget(python="3.11", interpreter="/usr/bin/python3.11", bytecode=False)
SITE = "opt/venv/lib/python3.11/site-packages"


def layer_members(store: Store, digest: str) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    with store.open_blob(digest) as f:
        data = gzip.decompress(f.read())
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tf:
        for m in tf.getmembers():
            body = tf.extractfile(m).read() if m.isfile() else b""  # type: ignore[union-attr]
            out[m.name] = (m, body)
    return out


def test_every_scheme_lands_where_installer_puts_it(tmp_path: Path) -> None:
    wheel = make_wheel(
        tmp_path / "wheels",
        "tool",
        "1.0",
        files={
            "tool/__init__.py": "def main():\n    pass\n",
            "tool-1.0.data/scripts/tool-sh": "#!/bin/sh\necho hi\n",
            "tool-1.0.data/scripts/tool-py": "#!python\nimport tool\n",
            "tool-1.0.data/data/share/tool/notes.txt": "notes\n",
            "tool-1.0.data/headers/tool.h": "int x;\n",
        },
        scripts={"tool-run": "tool:main"},
    )
    store = Store.open(tmp_path / "store")
    record = build_package_layer(store, TARGET, "sha256:" + "1" * 64, [("tool", wheel.name, wheel)])
    members = layer_members(store, record.digest)

    assert members[f"{SITE}/tool/__init__.py"][1] == b"def main():\n    pass\n"
    assert members["opt/venv/share/tool/notes.txt"][1] == b"notes\n"
    assert members["opt/venv/include/site/python3.11/tool.h"][1] == b"int x;\n"
    # Shebangs: #!python points at the venv, others are left alone; scripts are executable.
    assert members["opt/venv/bin/tool-py"][1] == b"#!/opt/venv/bin/python\nimport tool\n"
    assert members["opt/venv/bin/tool-sh"][1] == b"#!/bin/sh\necho hi\n"
    launcher = members["opt/venv/bin/tool-run"]
    assert launcher[1].startswith(b"#!/opt/venv/bin/python")
    assert b"from tool import main" in launcher[1]
    for script in ("tool-py", "tool-sh", "tool-run"):
        assert members[f"opt/venv/bin/{script}"][0].mode == 0o755
    assert members[f"{SITE}/tool/__init__.py"][0].mode == 0o644
    assert members[f"{SITE}/tool-1.0.dist-info/INSTALLER"][1] == b"envgraph\n"

    # RECORD lists every installed file with its real hash, paths relative to site-packages.
    lines = members[f"{SITE}/tool-1.0.dist-info/RECORD"][1].decode().splitlines()
    recorded = {line.rsplit(",", 2)[0]: line.rsplit(",", 2)[1] for line in lines}
    assert recorded["../../../bin/tool-py"] == record_hash(b"#!/opt/venv/bin/python\nimport tool\n")
    assert recorded["../../../share/tool/notes.txt"] == record_hash(b"notes\n")
    assert recorded["tool/__init__.py"] == record_hash(b"def main():\n    pass\n")
    assert recorded["tool-1.0.dist-info/RECORD"] == ""

    # Parents come before children, each written once; the same wheel gives the same digest.
    names = [m for m in members]
    for name in names:
        parent = name.rsplit("/", 1)[0]
        if "/" in name:
            assert names.index(parent) < names.index(name)
    again = build_package_layer(
        Store.open(tmp_path / "store2"), TARGET, "sha256:" + "1" * 64, [("tool", wheel.name, wheel)]
    )
    assert (again.diff_id, again.digest) == (record.diff_id, record.digest)


@pytest.mark.parametrize("member", ["../evil.py", "tool-1.0.data/data/../../../../etc/evil"])
def test_a_member_outside_its_scheme_is_refused(tmp_path: Path, member: str) -> None:
    wheel = make_wheel(tmp_path / "wheels", "tool", "1.0", files={"tool/__init__.py": "", member: "x"})
    store = Store.open(tmp_path / "store")
    with pytest.raises(BuildError, match="tool"):
        build_package_layer(store, TARGET, "sha256:" + "2" * 64, [("tool", wheel.name, wheel)])
    assert store.records() == []


def test_a_corrupt_member_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "tool", "1.0", files={"tool/__init__.py": "x = 1\n" * 100})
    raw = bytearray(wheel.read_bytes())
    at = raw.index(b"tool/__init__.py") + len("tool/__init__.py") + 4  # inside the deflated data
    raw[at] ^= 0xFF
    wheel.write_bytes(bytes(raw))
    store = Store.open(tmp_path / "store")
    with pytest.raises(BuildError, match="cannot install tool-1.0"):
        build_package_layer(store, TARGET, "sha256:" + "3" * 64, [("tool", wheel.name, wheel)])
    assert store.records() == []


def test_members_are_inflated_by_isal_with_zipfiles_checks(tmp_path: Path) -> None:
    """The swap must really happen (a new Python's zipfile would silently fall back to zlib: this fails
    then), and the CRC-32 check must stay zipfile's."""
    body = b"".join(b"line %d of some module\n" % i for i in range(50_000))
    wheel = make_wheel(tmp_path / "wheels", "tool", "1.0", files={"tool/big.py": body})
    with zipfile.ZipFile(wheel) as zf, zf.open("tool/big.py") as f:
        _inflate_with_isal(f)
        assert type(f._decompressor).__module__.startswith("isal")  # type: ignore[attr-defined]
        assert f.read() == body
    stored = tmp_path / "stored.zip"
    with zipfile.ZipFile(stored, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr("a.txt", b"plain")
    with zipfile.ZipFile(stored) as zf, zf.open("a.txt") as f:
        _inflate_with_isal(f)  # nothing to inflate: left alone
        assert f.read() == b"plain"
    # A member whose bytes inflate fine but do not match its CRC-32 is still refused.
    with zipfile.ZipFile(wheel) as zf:
        info = zf.getinfo("tool/big.py")
    raw = bytearray(wheel.read_bytes())
    bad = tmp_path / "bad" / wheel.name
    bad.parent.mkdir()
    swapped = bytearray(raw)
    crc_at = info.header_offset + 14  # local header CRC-32; the central directory's is checked too
    with zipfile.ZipFile(wheel) as zf:
        cd_crc = zf.getinfo("tool/big.py").CRC
    swapped[crc_at : crc_at + 4] = (cd_crc ^ 1).to_bytes(4, "little")
    central = bytes(raw).rindex(cd_crc.to_bytes(4, "little"))  # its central directory entry
    swapped[central : central + 4] = (cd_crc ^ 1).to_bytes(4, "little")
    bad.write_bytes(bytes(swapped))
    store = Store.open(tmp_path / "store")
    with pytest.raises(BuildError, match="cannot install tool-1.0.*CRC"):
        build_package_layer(store, TARGET, "sha256:" + "4" * 64, [("tool", bad.name, bad)])


def test_a_path_written_twice_by_one_wheel_is_refused(tmp_path: Path) -> None:
    wheel = make_wheel(tmp_path / "wheels", "tool", "1.0", files={"tool/__init__.py": "a = 1\n"})
    with warnings.catch_warnings(), zipfile.ZipFile(wheel, "a") as zf:
        warnings.simplefilter("ignore")  # zipfile warns about the duplicate name: that is the point
        zf.writestr("tool/__init__.py", "a = 2\n")
    store = Store.open(tmp_path / "store")
    with pytest.raises(
        BuildError, match=r"tool writes /opt/venv/lib/python3.11/site-packages/tool/__init__.py twice"
    ):
        build_package_layer(store, TARGET, "sha256:" + "4" * 64, [("tool", wheel.name, wheel)])
    assert store.records() == []
