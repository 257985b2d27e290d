"""Small real source distributions made by the tests themselves: pure Python or with a C extension.

Their PEP 517 backend is part of the test: a few dozen lines of stdlib Python (:data:`BACKEND`) that writes
metadata and a deterministic wheel, compiling ``src/_native.c`` with ``cc`` against the interpreter's own
headers when there is one. It lives either in the source tree (``backend-path = ["."]``, no build
requirements) or in a wheel of its own (:func:`backend_wheel`), which is then the sdist's one build requirement.
"""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import textwrap
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.wheels import make_wheel

__all__ = ["BACKEND", "C_SOURCE", "backend_wheel", "make_source_tree", "make_sdist"]

BACKEND = '''
"""A tiny PEP 517 backend (envgraph's tests): metadata, and a deterministic wheel of src/."""
import base64, hashlib, json, os, subprocess, sys, sysconfig, zipfile

with open("envgraph-test-project.json") as f:
    P = json.load(f)
DIST = P["name"].replace("-", "_")
INFO = f"{DIST}-{P['version']}.dist-info"


def _metadata():
    lines = ["Metadata-Version: 2.1", f"Name: {P['name']}", f"Version: {P['version']}"]
    lines += [f"Requires-Dist: {r}" for r in P["requires"]]
    return "\\n".join(lines) + "\\n"


def get_requires_for_build_wheel(config_settings=None):
    return list(P.get("dynamic", []))


def prepare_metadata_for_build_wheel(directory, config_settings=None):
    os.makedirs(os.path.join(directory, INFO))
    with open(os.path.join(directory, INFO, "METADATA"), "w") as f:
        f.write(_metadata())
    return INFO


def build_wheel(directory, config_settings=None, metadata_directory=None):
    files = {}
    for root, dirs, names in os.walk("src"):
        dirs.sort()
        for n in sorted(names):
            if n.endswith(".py"):
                path = os.path.join(root, n)
                with open(path, "rb") as f:
                    files[os.path.relpath(path, "src")] = f.read()
    tag = "py3-none-any"
    if os.path.exists("src/_native.c"):
        suffix = sysconfig.get_config_var("EXT_SUFFIX")
        out = os.path.join(directory, "_native" + suffix)
        include = sysconfig.get_paths()["include"]
        subprocess.check_call(["cc", "-shared", "-fPIC", "-O2", "-I" + include, "src/_native.c", "-o", out])
        with open(out, "rb") as f:
            files[DIST + "/_native" + suffix] = f.read()
        os.unlink(out)
        py = f"cp{sys.version_info[0]}{sys.version_info[1]}"
        tag = f"{py}-{py}-" + sysconfig.get_platform().replace("-", "_").replace(".", "_")
    files[INFO + "/METADATA"] = _metadata().encode()
    files[INFO + "/WHEEL"] = (
        "Wheel-Version: 1.0\\nGenerator: envgraph-tests\\nRoot-Is-Purelib: "
        + ("true" if tag == "py3-none-any" else "false") + f"\\nTag: {tag}\\n"
    ).encode()
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(INFO + "/RECORD,,")
    files[INFO + "/RECORD"] = ("\\n".join(record) + "\\n").encode()
    name = f"{DIST}-{P['version']}-{tag}.whl"
    with zipfile.ZipFile(os.path.join(directory, name), "w", zipfile.ZIP_DEFLATED) as zf:
        for arc, data in files.items():
            zi = zipfile.ZipInfo(arc, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return name
'''

C_SOURCE = textwrap.dedent(
    """\
    #include <Python.h>
    static PyObject *total(PyObject *self, PyObject *args) {
        long a, b;
        if (!PyArg_ParseTuple(args, "ll", &a, &b)) return NULL;
        return PyLong_FromLong(a + b);
    }
    static PyMethodDef methods[] = {{"total", total, METH_VARARGS, "a + b, in C"}, {NULL, NULL, 0, NULL}};
    static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_native", NULL, -1, methods};
    PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
    """
)


def backend_wheel(directory: Path, name: str = "tinybackend", version: str = "1.0") -> Path:
    """A wheel whose module ``name`` is :data:`BACKEND` (for sdists that require it instead of carrying it)."""
    return make_wheel(directory, name, version, files={f"{name}/__init__.py": BACKEND})


def _files(
    name: str,
    version: str,
    *,
    requires: Sequence[str],
    c_source: str | None,
    build_requires: Sequence[str] | None,
    dynamic: Sequence[str],
    code: str | None,
) -> dict[str, str]:
    dist = name.replace("-", "_")
    files = {
        "envgraph-test-project.json": json.dumps(
            {"name": name, "version": version, "requires": list(requires), "dynamic": list(dynamic)}
        ),
        f"src/{dist}/__init__.py": code
        or (
            f'__version__ = "{version}"\n'
            + (
                "from ._native import total\n"
                if c_source is not None
                else "def total(a, b):\n    return a + b\n"
            )
        ),
    }
    if build_requires is None:  # the backend in the tree
        files["backend.py"] = BACKEND
        files["pyproject.toml"] = (
            '[build-system]\nrequires = []\nbuild-backend = "backend"\nbackend-path = ["."]\n'
        )
    else:
        reqs = ", ".join(f'"{r}"' for r in build_requires)
        files["pyproject.toml"] = f'[build-system]\nrequires = [{reqs}]\nbuild-backend = "tinybackend"\n'
    if c_source is not None:
        files["src/_native.c"] = c_source
    return files


def make_source_tree(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    c_source: str | None = None,
    build_requires: Sequence[str] | None = None,
    dynamic: Sequence[str] = (),
    code: str | None = None,
) -> Path:
    """A project directory (as a team keeps its own packages): returns ``directory``."""
    files = _files(name, version, requires=requires, c_source=c_source, build_requires=build_requires,
                   dynamic=dynamic, code=code)  # fmt: skip
    for rel, text in files.items():
        path = directory / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return directory


def make_sdist(
    directory: Path,
    name: str,
    version: str,
    *,
    requires: Sequence[str] = (),
    c_source: str | None = None,
    build_requires: Sequence[str] | None = None,
    dynamic: Sequence[str] = (),
    code: str | None = None,
    extra: Mapping[str, bytes] | None = None,
) -> Path:
    """``<name>-<version>.tar.gz`` in ``directory`` (one top directory, deterministic bytes)."""
    files = {
        k: v.encode()
        for k, v in _files(
            name,
            version,
            requires=requires,
            c_source=c_source,
            build_requires=build_requires,
            dynamic=dynamic,
            code=code,
        ).items()  # fmt: skip
    }
    files.update(extra or {})
    directory.mkdir(parents=True, exist_ok=True)
    top = f"{name.replace('-', '_')}-{version}"
    path = directory / f"{top}.tar.gz"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for rel in sorted(files):
            info = tarfile.TarInfo(f"{top}/{rel}")
            info.size = len(files[rel])
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(files[rel]))
    path.write_bytes(gzip.compress(buf.getvalue(), mtime=0))
    return path
