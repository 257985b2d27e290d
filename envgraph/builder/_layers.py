"""Layer writers: the venv layer, one layer per package (or one merged layer), and files layers.

Each writes a layer under a key computed by :mod:`envgraph.identity` (which says exactly which inputs decide the
bytes); the store maps key -> (diff_id, digest, size, media type), so building the same key anywhere gives the
same digests.
"""

from __future__ import annotations

import contextlib
import subprocess
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import BinaryIO

from envgraph._hashing import exclude_patterns, files_content, is_excluded
from envgraph.builder._bytecode import bytecode_interpreter
from envgraph.errors import BuildError
from envgraph.identity import VENV, Compression, InstallTarget, files_key, venv_key
from envgraph.oci._layer import layer_from_directory, record_layer, write_layer
from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._tar import LayerEntry, TarStream, write_tar
from envgraph.plan import DebLayer

__all__ = [
    "build_deb_layer",
    "build_venv_layer",
    "build_package_layer",
    "build_files_layer",
    "bytecode_interpreter",
]

# installer skips (and warns about) __pycache__ files shipped in a wheel: the wheel's business, not the user's.
warnings.filterwarnings("ignore", message="Skip installing .*__pycache__", category=RuntimeWarning)


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
    wheels: Sequence[tuple[str, str, Path]],
    debs: Sequence[tuple[DebLayer, Path]] = (),
) -> LayerRecord:
    """Install wheels ((project name, file name, path)) as layer ``key``, streamed from the wheels into the store;
    a merged layer may hold Debian packages too ((task, verified .deb)), written first."""
    from envgraph.builder._install import install_wheels  # imported here: a no-op build needs no installer

    with contextlib.ExitStack() as stack:
        copies = None
        if target.bytecode:  # compileall needs the sources on disk
            copies = Path(stack.enter_context(store.temp_dir("pyc-")))

        def produce(sink: BinaryIO) -> list[str]:
            with TarStream(sink) as tar:
                for deb, path in debs:
                    extract_deb_into(tar, deb, path)
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


def extract_deb_into(tar: TarStream, deb: DebLayer, path: Path) -> None:
    """One Debian package's files (and its status.d entry) into ``tar``; errors name the package."""
    from envgraph.builder._deb_layer import extract_deb

    try:
        with open(path, "rb") as f:
            extract_deb(f, tar, merged_usr=deb.merged_usr, path_filters=deb.path_filters, pin=deb.pin)
    except BuildError as err:
        raise BuildError(f"Debian package {deb.pin}: {err}") from None


def build_deb_layer(store: Store, deb: DebLayer, path: Path) -> LayerRecord:
    """A Debian package's layer from its verified .deb."""
    from envgraph.builder._deb_layer import write_deb_layer

    blob, paths = write_deb_layer(
        store, path, pin=deb.pin, merged_usr=deb.merged_usr, compression=deb.compression,
        path_filters=deb.path_filters,
    )  # fmt: skip
    return record_layer(store, deb.key, blob, paths)


def build_files_layer(
    store: Store, compression: Compression, src: Path, dest: str, content: str, exclude: tuple[str, ...] = ()
) -> LayerRecord:
    """The env's ``files``: a directory's contents (or one file) placed at ``dest``, without what is excluded;
    ``content`` is what the plan hashed (the layer key's), checked before and after the tree is read, so a file
    edited meanwhile never goes into a layer under this key (the unrecorded blob is left to gc)."""
    patterns = exclude_patterns(src, exclude)
    changed = BuildError(f"files {src.name} changed while envgraph was building: build again")
    if files_content(src, exclude) != content:
        raise changed
    key = files_key(compression, dest, content)
    prefix = dest.strip("/")
    if src.is_dir():
        blob, paths = layer_from_directory(
            store, src, prefix, compression, skip=lambda rel: is_excluded(rel, patterns)
        )
    else:
        entries = [LayerEntry.from_file(prefix, src, executable=bool(src.stat().st_mode & 0o111))]
        blob, paths = write_layer(store, lambda sink: write_tar(entries, sink), compression)
    if files_content(src, exclude) != content:
        raise changed
    return record_layer(store, key, blob, paths)
