"""Layer builders: the venv layer, one layer per package (or one merged layer), and files layers.

Every layer has a **key**: a hash of exactly the inputs that decide its bytes (wheel sha256s,
install prefix, interpreter path and version, bytecode mode, tar and compressor format, layer
format version). The store maps key -> (diff_id, digest, size, media type); building the same
key anywhere gives the same digests.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.metadata
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from attrs import frozen

from envgraph._hashing import digest_of, tree_sha256
from envgraph.errors import BuildError
from envgraph.oci._compress import Compression
from envgraph.oci._layer import layer_format, layer_from_directory, record_layer, write_layer
from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._tar import LayerEntry, TarStream, write_tar

__all__ = [
    "LAYER_FORMAT",
    "VENV",
    "InstallTarget",
    "venv_key",
    "package_key",
    "files_key",
    "build_venv_layer",
    "build_package_layer",
    "build_files_layer",
    "bytecode_interpreter",
]

# installer skips (and warns about) __pycache__ files shipped in a wheel: the wheel's business, not the user's.
warnings.filterwarnings("ignore", message="Skip installing .*__pycache__", category=RuntimeWarning)

# Bump when what goes into a layer changes (scheme, pyc policy, venv contents).
LAYER_FORMAT = 2  # 2: package layers streamed from the wheel, in its member order
VENV = "/opt/venv"


@frozen
class InstallTarget:
    """Where and for what interpreter packages are installed; part of every package layer key."""

    python: str  # "3.11"
    interpreter: str  # the base's interpreter path, e.g. /usr/bin/python3.11
    bytecode: bool = True
    compression: Compression = Compression.GZIP

    @property
    def site_packages(self) -> str:
        return f"{VENV}/lib/python{self.python}/site-packages"

    def scheme(self) -> dict[str, str]:
        return {
            "purelib": self.site_packages,
            "platlib": self.site_packages,
            "headers": f"{VENV}/include/site/python{self.python}",
            "scripts": f"{VENV}/bin",
            "data": VENV,
        }

    def identity(self) -> dict[str, object]:
        return {
            "prefix": VENV,
            "python": self.python,
            "interpreter": self.interpreter,
            # pyc files are only deterministic with hash-based invalidation from the target's own version.
            "bytecode": f"cp{self.python.replace('.', '')}-checked-hash" if self.bytecode else "none",
            "layer": layer_format(self.compression),
            "format": LAYER_FORMAT,
            # installer writes the launchers and RECORD: its version decides bytes too.
            "installer": _installer_version(),
        }


@functools.cache
def _installer_version() -> str:
    return importlib.metadata.version("installer")  # not `import installer`: a no-op build need not load it


def bytecode_interpreter(python: str) -> str | None:
    """An interpreter of the target version to compile .pyc files with, or None (then layers ship no .pyc)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        return sys.executable
    return shutil.which(f"python{python}")


def venv_key(target: InstallTarget) -> str:
    return digest_of({"kind": "venv", **target.identity()})


def package_key(target: InstallTarget, wheels: Sequence[tuple[str, str]]) -> str:
    """``wheels`` are (filename, sha256); several for a merged layer."""
    return digest_of({"kind": "packages", "wheels": sorted([list(w) for w in wheels]), **target.identity()})


def files_key(target: InstallTarget, dest: str, content: str) -> str:
    return digest_of(
        {"kind": "files", "dest": dest, "content": content, "layer": layer_format(target.compression)}
    )


def build_venv_layer(store: Store, target: InstallTarget) -> LayerRecord:
    """``/opt/venv`` with ``pyvenv.cfg`` and ``bin/python`` pointing at the base's interpreter."""
    home = str(Path(target.interpreter).parent)
    cfg = f"home = {home}\ninclude-system-site-packages = false\nversion = {target.python}\n"
    v = VENV.strip("/")
    entries = [
        LayerEntry.from_bytes(f"{v}/pyvenv.cfg", cfg.encode()),
        LayerEntry.symlink(f"{v}/bin/python", target.interpreter),
        LayerEntry.symlink(f"{v}/bin/python3", "python"),
        LayerEntry.symlink(f"{v}/bin/python{target.python}", "python"),
        LayerEntry.directory(f"{v}/lib/python{target.python}/site-packages"),
        LayerEntry.symlink(f"{v}/lib64", "lib"),
        LayerEntry.directory(f"{v}/include"),
    ]
    blob, paths = write_layer(store, lambda sink: write_tar(entries, sink), target.compression)
    return record_layer(store, venv_key(target), blob, paths)


def build_package_layer(
    store: Store,
    target: InstallTarget,
    key: str,
    wheels: Sequence[tuple[str, Path]],
    work_dir: Path | None = None,
) -> LayerRecord:
    """Install wheels ((project name, path) pairs) as layer ``key``, streamed from the wheels into the store."""
    from envgraph.builder._install import install_wheels  # imported here: a no-op build needs no installer

    with contextlib.ExitStack() as stack:
        copies = None
        if target.bytecode:  # compileall needs the sources on disk
            copies = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="envgraph-pyc-", dir=work_dir))
            )

        def produce(sink: BinaryIO) -> list[str]:
            with TarStream(sink) as tar:
                install_wheels(tar, wheels, target.scheme(), f"{VENV}/bin/python", copies)
                if copies is not None:
                    _add_bytecode(tar, copies, target)
            return tar.paths

        blob, paths = write_layer(store, produce, target.compression)
    return record_layer(store, key, blob, paths)


def _add_bytecode(tar: TarStream, copies: Path, target: InstallTarget) -> None:
    python = bytecode_interpreter(target.python)
    site = copies / target.site_packages.lstrip("/")
    if python is None or not site.is_dir():
        return
    # Hash-based pycs are reproducible; -s/-p make the embedded source paths the runtime ones.
    subprocess.run(
        [python, "-m", "compileall", "-q", "-j", "1", "--invalidation-mode", "checked-hash",
         "-s", str(copies), "-p", "/", str(site)],
        capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "PYTHONHASHSEED": "0", "SOURCE_DATE_EPOCH": "0"},
    )  # fmt: skip
    # A package may ship files that do not compile for this version (tests, templates): those just get no .pyc.
    for pyc in sorted(site.rglob("*.pyc"), key=lambda p: p.as_posix().encode()):
        tar.add(LayerEntry.from_file(pyc.relative_to(copies).as_posix(), pyc, executable=False))


def build_files_layer(store: Store, target: InstallTarget, src: Path, dest: str, content: str) -> LayerRecord:
    """The env's ``files``: a directory's contents (or one file) placed at ``dest``."""
    actual = tree_sha256(src)
    if actual != content:
        raise BuildError(f"files {src.name} changed since the lockfile was written: run `envgraph lock`")
    key = files_key(target, dest, content)
    prefix = dest.strip("/")
    if src.is_dir():
        blob, paths = layer_from_directory(store, src, prefix, target.compression)
    else:
        entries = [LayerEntry.from_file(prefix, src, executable=bool(src.stat().st_mode & 0o111))]
        blob, paths = write_layer(store, lambda sink: write_tar(entries, sink), target.compression)
    return record_layer(store, key, blob, paths)
