"""Wheels: tiny real synthetic ones, the shared wheelhouse every contender installs from, the unpack lower bound."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zipfile
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests

from benchmarks.records import LowerBound

PIP_VERSION = "25.2"
PIP_WHEEL = f"pip-{PIP_VERSION}-py3-none-any.whl"


def _record_hash(data: bytes) -> str:
    return "sha256=" + base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def make_wheel(directory: Path, name: str, version: str, *, payload_bytes: int, files: int = 4) -> Path:
    """A real pure-Python wheel ``name-version-py3-none-any.whl`` with ``files`` modules of seeded random data.

    The bytes depend only on (name, version, size), so regenerating a workload gives the same wheels.
    """
    dist = name.replace("-", "_")
    path = directory / f"{dist}-{version}-py3-none-any.whl"
    if path.exists():
        return path
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(f"{name}=={version}:{payload_bytes}")
    contents: dict[str, bytes] = {f"{dist}/__init__.py": f'__version__ = "{version}"\n'.encode()}
    per_file = max(payload_bytes // files, 1)
    for i in range(files):
        # Half random hex (incompressible-ish), half repeated text: wheels compress the way real code does.
        blob = rng.randbytes(per_file // 4).hex()
        contents[f"{dist}/data_{i}.py"] = f"DATA = {blob!r}\n# {'x' * (per_file // 2)}\n".encode()
    info = f"{dist}-{version}.dist-info"
    contents[f"{info}/METADATA"] = f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n".encode()
    contents[f"{info}/WHEEL"] = (
        b"Wheel-Version: 1.0\nGenerator: envgraph-benchmarks\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    )
    record = [f"{rel},{_record_hash(data)},{len(data)}" for rel, data in contents.items()]
    record.append(f"{info}/RECORD,,")
    contents[f"{info}/RECORD"] = ("\n".join(record) + "\n").encode()
    tmp = path.with_suffix(".tmp")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for rel, data in contents.items():
            zi = zipfile.ZipInfo(rel, date_time=(2020, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    os.replace(tmp, path)
    return path


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def locked_wheels(lockdir: Path) -> dict[str, tuple[str, str]]:
    """filename -> (sha256, url) of every wheel named in ``lockdir/*.lock.json`` (read loosely: any dict with those keys)."""
    found: dict[str, tuple[str, str]] = {}

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if {"filename", "sha256", "url"} <= node.keys() and str(node["filename"]).endswith(".whl"):
                found[str(node["filename"])] = (str(node["sha256"]), str(node["url"]))
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    for p in sorted(lockdir.glob("*.lock.json")):
        walk(json.loads(p.read_text()))
    return found


def fill_wheelhouse(wheelhouse: Path, wanted: Mapping[str, tuple[str, str]], root: Path, log=print) -> None:
    """Make sure every locked wheel is in ``wheelhouse`` (downloaded once, sha256 checked); find-links files are copied."""
    wheelhouse.mkdir(parents=True, exist_ok=True)
    for filename, (sha, url) in sorted(wanted.items()):
        dest = wheelhouse / filename
        if dest.exists() and file_sha256(dest) == sha:
            continue
        if url.startswith(("http://", "https://")):
            log(f"downloading {filename}")
            tmp = dest.with_suffix(".part")
            with requests.get(url, stream=True, timeout=120) as r:
                r.raise_for_status()
                with open(tmp, "wb") as f:
                    for chunk in r.iter_content(1 << 20):
                        f.write(chunk)
            os.replace(tmp, dest)
        else:
            src = (root / url).resolve()
            if src != dest.resolve():
                shutil.copyfile(src, dest)
        if file_sha256(dest) != sha:
            raise RuntimeError(f"{filename}: sha256 mismatch with the lockfile")


def tool_wheel(cache: Path, requirement: str, prefix: str) -> Path:
    """A wheel of a tool (pip, uv), downloaded once with pip into ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    have = sorted(cache.glob(f"{prefix}-*.whl"))
    if have:
        return have[-1]
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "-q",
            "--no-deps",
            "--only-binary=:all:",
            "-d",
            str(cache),
            requirement,
        ],
        check=True,
    )
    have = sorted(cache.glob(f"{prefix}-*.whl"))
    if not have:
        raise RuntimeError(f"pip download {requirement} gave no wheel")
    return have[-1]


def extract_uv(uv_wheel: Path, dest: Path) -> Path:
    """The ``uv`` binary out of its PyPI wheel."""
    if dest.exists():
        return dest
    with zipfile.ZipFile(uv_wheel) as zf:
        name = next(n for n in zf.namelist() if n.endswith(".data/scripts/uv"))
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(zf.read(name))
    dest.chmod(0o755)
    return dest


_LOCAL_HEADER = struct.Struct("<4s5H3L2H")  # a zip member's local file header (30 bytes)
_INFLATE_READ = 1 << 20


def _inflate_member(path: Path, info: zipfile.ZipInfo) -> int:
    """Inflate one member's bytes, keeping nothing; returns the inflated size."""
    from isal import isal_zlib

    with open(path, "rb") as f:
        f.seek(info.header_offset)
        fields = _LOCAL_HEADER.unpack(f.read(_LOCAL_HEADER.size))
        if fields[0] != b"PK\x03\x04":
            raise RuntimeError(f"{path.name}: bad local header for {info.filename}")
        f.seek(fields[-2] + fields[-1], os.SEEK_CUR)  # name and extra field
        left = info.compress_size
        if info.compress_type == zipfile.ZIP_STORED:
            return len(f.read(left))
        if info.compress_type != zipfile.ZIP_DEFLATED:
            raise RuntimeError(f"{path.name}: {info.filename} is not deflated")
        d = isal_zlib.decompressobj(-15)
        n = 0
        while left:
            raw = f.read(min(_INFLATE_READ, left))
            left -= len(raw)
            n += len(d.decompress(raw))
        return n + len(d.flush())


def inflate_once(wheels: Iterable[Path], threads: int) -> float:
    """Seconds to inflate every member of ``wheels`` once on ``threads`` threads, writing nothing.

    The work no builder can avoid (every installed byte comes out of a deflate stream), at the fastest
    inflate at hand (ISA-L, which releases the GIL), biggest members first so the threads finish together.
    """
    members = []
    for p in sorted(set(wheels)):
        with zipfile.ZipFile(p) as zf:
            members += [(p, i) for i in zf.infolist() if not i.is_dir()]
    members.sort(key=lambda m: -m[1].file_size)
    t0 = time.perf_counter()
    with ThreadPoolExecutor(max(1, threads)) as pool:
        total = sum(pool.map(lambda m: _inflate_member(*m), members))
    seconds = time.perf_counter() - t0
    expected = sum(i.file_size for _, i in members)
    if total != expected:
        raise RuntimeError(f"inflated {total} bytes, the zip directories say {expected}")
    return seconds


def lower_bound(scenario: str, wheels: Iterable[Path]) -> LowerBound:
    """Unpack each wheel once (zipfile into a temp dir): the time and installed bytes no builder can beat."""
    paths = sorted(set(wheels))
    installed = sum(i.file_size for p in paths for i in zipfile.ZipFile(p).infolist())
    with tempfile.TemporaryDirectory(prefix="envgraph-bench-unpack-") as tmp:
        t0 = time.perf_counter()
        for i, p in enumerate(paths):
            with zipfile.ZipFile(p) as zf:
                zf.extractall(Path(tmp) / str(i))
        seconds = time.perf_counter() - t0
    threads = len(os.sched_getaffinity(0))
    return LowerBound(
        scenario=scenario,
        unique_wheels=len(paths),
        wheel_bytes=sum(p.stat().st_size for p in paths),
        installed_bytes=installed,
        unpack_seconds=round(seconds, 3),
        inflate_seconds=round(inflate_once(paths, threads), 3),
        inflate_threads=threads,
    )
