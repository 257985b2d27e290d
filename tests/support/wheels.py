"""Small real wheels built by the tests themselves, so unit tests need no network."""

from __future__ import annotations

import base64
import hashlib
import importlib.metadata
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path

__all__ = ["make_wheel", "record_hash", "standard_wheels", "installed_wheel"]


def record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    files: Mapping[str, str | bytes] | None = None,
    scripts: Mapping[str, str] | None = None,
    tag: str = "py3-none-any",
    metadata: Sequence[str] = (),
) -> Path:
    """Write ``name-version-tag.whl`` into ``directory``; by default it holds ``<name>/__init__.py`` with ``__version__``."""
    dist = name.replace("-", "_")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{dist}-{version}-{tag}.whl"
    contents: dict[str, bytes] = {}
    for rel, text in (files or {f"{dist}/__init__.py": f'__version__ = "{version}"\n'}).items():
        contents[rel] = text.encode() if isinstance(text, str) else text
    info = f"{dist}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Requires-Dist: {r}" for r in requires]
    meta += list(metadata)  # further METADATA lines, e.g. "License-Expression: MIT"
    contents[f"{info}/METADATA"] = ("\n".join(meta) + "\n").encode()
    py, abi, plat = tag.split("-")
    contents[f"{info}/WHEEL"] = (
        f"Wheel-Version: 1.0\nGenerator: envgraph-tests\nRoot-Is-Purelib: {'true' if abi == 'none' else 'false'}\n"
        f"Tag: {tag}\n"
    ).encode()
    if scripts:
        lines = ["[console_scripts]", *(f"{k} = {v}" for k, v in scripts.items())]
        contents[f"{info}/entry_points.txt"] = ("\n".join(lines) + "\n").encode()
    record = [f"{rel},{record_hash(data)},{len(data)}" for rel, data in contents.items()]
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    _write_zip(path, contents)
    return path


def _write_zip(path: Path, contents: Mapping[str, bytes]) -> None:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in contents.items():
            zi = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)


def installed_wheel(directory: Path, name: str) -> Path:
    """A distribution installed in the running interpreter packed back into a wheel (its files as installed,
    without caches and installer records): a real build backend such as setuptools for offline tests."""
    dist = importlib.metadata.distribution(name)
    version = dist.version
    info = f"{dist.metadata['Name'].replace('-', '_')}-{version}.dist-info"
    skip = {f"{info}/{n}" for n in ("RECORD", "INSTALLER", "REQUESTED", "direct_url.json")}
    files: dict[str, bytes] = {}
    for f in sorted(dist.files or (), key=str):
        rel = f.as_posix()
        if rel.startswith("..") or "__pycache__" in f.parts or rel in skip:
            continue
        files[rel] = Path(str(dist.locate_file(f))).read_bytes()
    tags = [ln[5:].strip() for ln in files[f"{info}/WHEEL"].decode().splitlines() if ln.startswith("Tag: ")]
    record = [f"{rel},{record_hash(data)},{len(data)}" for rel, data in files.items()]
    files[f"{info}/RECORD"] = ("\n".join([*record, f"{info}/RECORD,,"]) + "\n").encode()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{info.removesuffix('.dist-info')}-{tags[0]}.whl"
    _write_zip(path, files)
    return path


def standard_wheels(wh: Path) -> Path:
    """alpha 1.0/2.0, beta 1.0/2.0 (beta 2 needs alpha>=2), gamma 1.0 (needs alpha, script gamma-hello), delta 0.5."""
    make_wheel(wh, "alpha", "1.0")
    make_wheel(wh, "alpha", "2.0")
    make_wheel(wh, "beta", "1.0", requires=["alpha"])
    make_wheel(wh, "beta", "2.0", requires=["alpha>=2"])
    make_wheel(wh, "gamma", "1.0", requires=["alpha"], scripts={"gamma-hello": "gamma:main"},
               files={"gamma/__init__.py": "def main():\n    print('hello from gamma')\n"})  # fmt: skip
    make_wheel(wh, "delta", "0.5")
    return wh
