"""Structure-aware and byte-level mutations of declarations and lockfiles, as hypothesis strategies.

A document (the parsed TOML or JSON) is edited at paths drawn from the document itself: a key deleted, a
value replaced by a hostile one (wrong type, huge or odd string, path trick, long name, other unicode), a
key added or renamed, a list item duplicated. The result is written back as TOML (:func:`toml_dumps`, a
small writer of our own: inline tables only, every control character escaped) or JSON. Byte-level damage
(truncation, bit flips, invalid UTF-8, NUL bytes, lost or doubled lines) is applied to the serialised text.
"""

from __future__ import annotations

import copy
import datetime
import json
import math
import re
from typing import Any

from hypothesis import strategies as st

__all__ = [
    "toml_dumps",
    "json_dumps",
    "odd_strings",
    "toml_values",
    "json_values",
    "edited",
    "damaged",
    "paths_of",
    "sweep",
    "replaced",
]

Path_ = tuple[str | int, ...]

# -- serialisation ------------------------------------------------------------------------------------------

_BARE = re.compile(r"[A-Za-z0-9_-]+")
_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: str) -> str:
    return k if _BARE.fullmatch(k) else _toml_str(k)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, datetime.date):
        return v.isoformat()
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"not a TOML value: {v!r}")


def toml_dumps(doc: dict[str, Any]) -> str:
    """A TOML document (every table inline) that ``tomllib`` parses back to ``doc``."""
    return "".join(f"{_toml_key(k)} = {_toml_value(v)}\n" for k, v in doc.items())


def json_dumps(doc: Any) -> str:
    return json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n"


# -- hostile values -----------------------------------------------------------------------------------------

# Strings that have broken, or could break, some code path: paths, names, versions, URLs, escapes.
CURATED = [
    "",
    " ",
    ".",
    "..",
    "../..",
    "../../etc/passwd",
    "/",
    "/etc/passwd",
    "//",
    "a/../../b",
    "./",
    "~",
    "\\..\\..",
    "C:\\x",
    "-r other.txt",
    "--index-url=http://evil",
    "-e .",
    "file:///etc/passwd",
    "file:",
    "http://",
    "https://[::1",
    "http://user:pass@host/x",
    "scratch",
    "docker://",
    "oci:",
    "oci:../../x",
    "docker-daemon:",
    "3.11\n",
    "3.١١",
    "linux/amd64\n",
    "linux/arm64",
    "glibc-2.36\n",
    "glibc-99999999999999999999.1",
    "musl-1.2",
    "bookworm",
    "trixie",
    "unstable",
    "alpha",
    "alpha<2",
    "alpha @ file:///etc/passwd",
    "alpha; python_version < '3'",
    "Alpha==1.0",
    "beta[extra]>=1",
    "none",
    "deb",
    "core",
    "train",
    "serve",
    "tools",
    "app/",
    "app",
    "wheels",
    "reqs/train.txt",
    "hostile/bad-utf8.txt",
    "hostile/nul.txt",
    "hostile/fifo",
    "hostile/loop",
    "hostile/dir",
    "hostile/options.txt",
    "hostile",
    "envgraph.toml",
    "lockfiles",
    "OMP_NUM_THREADS",
    "A=B",
    "=",
    "\u202e",
    "\ufeff",
    "\u0085",
    "\u2028",
    "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "💥",
    "é",
    "\x7f",
    "\x01",
    "\x00",
    "a\x00b",
    "\n",
    "\r\n",
    "\t",
    "sha256:",
    "sha256:" + "0" * 64,
    "sha256:" + "F" * 64,
    "0" * 64,
    "application/vnd.oci.image.layer.v1.tar+gzip",
    "application/json",
    "1.0",
    "2.0",
    "0.5",
    "1.0.post1",
    "not-a-version",
    "alpha-1.0-py3-none-any.whl",
    "../alpha-1.0-py3-none-any.whl",
    "alpha-9.9-py3-none-any.whl",
    "wheels/alpha-1.0-py3-none-any.whl",
    "../../wheels/alpha-1.0-py3-none-any.whl",
    "python3-minimal",
    "3.11.2-1+b1",
    "--include=x",
    "/usr/bin/python3.11",
    "usr/bin/python3.11",
    "/app/../etc",
]

_LONG_UNITS = ["a", "é", "/", "a/", "../", "💥", "x" * 200 + "/", "\u0301"]
long_strings = st.builds(lambda unit, n: unit * n, st.sampled_from(_LONG_UNITS), st.integers(100, 5000))
# TOML cannot hold lone surrogates; everything else it can.
unicode_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40)
odd_strings = st.one_of(st.sampled_from(CURATED), long_strings, unicode_text)

_numbers = st.one_of(
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, -1, 1, 2, 3, 125, 126, 2**31, 2**63 - 1, 2**63, 10**30, -(2**63)]),
    st.floats(allow_nan=True, allow_infinity=True),
)
_toml_scalars = st.one_of(
    odd_strings,
    _numbers,
    st.booleans(),
    st.just(datetime.date(1979, 5, 27)),
    st.builds(list),
    st.builds(dict),
)
# Fresh containers (st.builds), never a shared one (st.just): edits append to what they insert.
_json_scalars = st.one_of(odd_strings, _numbers, st.booleans(), st.none(), st.builds(list), st.builds(dict))
_keys = st.one_of(st.sampled_from(CURATED), unicode_text, long_strings)


def _nested(scalars: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.recursive(
        scalars,
        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_keys, inner, max_size=3),
        max_leaves=5,
    )


toml_values = _nested(_toml_scalars)
json_values = _nested(_json_scalars)


# -- structure-aware edits ----------------------------------------------------------------------------------


def paths_of(doc: Any, prefix: Path_ = ()) -> list[Path_]:
    """Every path in ``doc`` (the root first), depth first in document order."""
    out = [prefix]
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += paths_of(v, (*prefix, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += paths_of(v, (*prefix, i))
    return out


def _get(doc: Any, path: Path_) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def _set(doc: Any, path: Path_, value: Any) -> Any:
    if not path:
        return value
    _get(doc, path[:-1])[path[-1]] = value
    return doc


# Values that matter for one key (the last key on a value's path): mostly these, so that a mutation reaches
# the code that uses that key instead of failing a type check before it.
_HOSTILE_FILES = [
    "hostile/bad-utf8.txt",
    "hostile/nul.txt",
    "hostile/fifo",
    "hostile/loop",
    "hostile/dir",
    "hostile/options.txt",
    "x" * 256,
    "wheels/" + "x" * 300,
]
_PATHS = _HOSTILE_FILES + [
    "hostile",
    "reqs/train.txt",
    "app/",
    "app",
    "wheels",
    "lockfiles",
    "envgraph.toml",
    "nonexistent",
    "",
    ".",
    "..",
    "../..",
    "/",
    "/etc/passwd",
    "/proc/self/mem",
    "a/../../b",
    "x" * 255,
    "é" * 128,
    ("d" * 200 + "/") * 21,
    "\x00",
]
_NAMES = ["core", "train", "serve", "tools", "none", "deb", "", "x" * 100, "x" * 101, "a\nb", "core\n", "-x",
          ".x", "a/b", "..", "é", "OMP_NUM_THREADS"]  # fmt: skip
_REQUIREMENTS = ["alpha", "alpha<2", "alpha>=2", "beta", "gamma", "delta", "zeta", "alpha @ file:///etc/passwd",
                 "-r x", "alpha\x00", "é", "x" * 5000, "beta[", "alpha==1.0 --hash=sha256:00", "alpha==1.0",
                 "gamma; python_version<'3'", "Alpha", "alpha===1.0", "alpha==" + "9" * 5000]  # fmt: skip
_DIGESTS = ["sha256:" + "0" * 64, "sha256:" + "A" * 64, "sha256:" + "0" * 63, "sha512:" + "0" * 128, "sha256:",
            "0" * 64, "sha256:../../../etc/passwd", "sha256:" + "0" * 64 + "\n"]  # fmt: skip
_WHEELS = ["alpha-1.0-py3-none-any.whl", "alpha-2.0-py3-none-any.whl", "gamma-1.0-py3-none-any.whl",
           "../../3d/x/joblib-1.6.0-py3-none-any.whl", "x" * 300 + ".whl", "alpha-1.0-py3-none-any.whl\x00",
           "alpha-1.0-py3-none-any.whl/..", "..-1.0-py3-none-any.whl", "alpha-1.0.tar.gz",
           "alpha-1.0-py3-none-a\\ny.whl"]  # fmt: skip
_URLS = ["file:///etc/passwd", "/etc/passwd", "../../../etc/passwd", "wheels/../wheels/alpha-1.0-py3-none-any.whl",
         "https://files.example/alpha-1.0-py3-none-any.whl", "wheels/alpha-1.0-py3-none-any.whl", "hostile/fifo",
         "wheels/gamma-1.0-py3-none-any.whl", "http://127.0.0.1:1/alpha-1.0-py3-none-any.whl", "wheels/"]  # fmt: skip
_CONTEXT: dict[str, list[Any]] = {
    "requirements-file": _PATHS,
    "src": _PATHS,
    "find-links": _PATHS,
    "dest": _PATHS + ["/app", "/", "/app/../etc", "/x\ny"],
    "workdir": _PATHS + ["/app", "/"],
    "python": _PATHS + ["/usr/bin/python3.11", "3.11", "3.12", "3.١١", "2.7", "3.11\n", "3"],
    "image": [
        "scratch",
        "docker://",
        "oci:" + "x" * 300,
        "oci:hostile/fifo",
        "oci-archive:hostile/dir",
        "docker-daemon:x",
        "oci:../../etc",
        "docker-archive:\x00",
    ],  # fmt: skip
    "base": _NAMES,
    "parent": _NAMES,
    "env": _NAMES,
    "name": _NAMES,
    "fit": _NAMES,
    "api": _NAMES,
    "t": _NAMES,
    "requirements": _REQUIREMENTS,
    "merged": _REQUIREMENTS,
    "platform": ["linux/amd64", "linux/arm64", "linux/386", "windows/amd64", "linux/amd64\n"],
    "libc": ["glibc-2.36", "glibc-2.17", "musl-1.2", "glibc-3", "glibc-2.36\n"],
    "suite": ["bookworm", "trixie", "sid", "../..", "-x", "bookworm\n"],
    "packages": ["python3-minimal", "libc6", "--include=x", "x y", "Python3"],
    "mirror": ["http://deb.debian.org/debian", "file:/x", "ftp://x", "http://x y", "x"],
    "drv": _DIGESTS,
    "inputs": _DIGESTS,
    "identity": _DIGESTS,
    "digest": _DIGESTS,
    "diff-id": _DIGESTS,
    "merged-usr": ["bin", "lib", "..", "../etc", "", "a/b", "x" * 300],
    "architecture": ["amd64", "arm64", "x86 64", "", "../x"],
    "python-version": ["3.11", "3.11.2", "3", "3.11\n", "x"],
    "kind": ["sdist", "directory", "git", "svn", ""],
    "commit": ["0" * 40, "0" * 39, "master", "0" * 64, "../" * 10],
    "subdirectory": _PATHS,
    "backend": ["setuptools.build_meta", "os; rm -rf /", "", "a:b:c"],
    "backend-path": _PATHS,
    "requested": ["libgomp1", "a, b", "", "jq=1.6", "x\ny"],
    "constraints": _REQUIREMENTS,
    "sha256": _DIGESTS + ["A" * 64, "0" * 64],
    "filename": _WHEELS,
    "url": _URLS,
    "version": ["1.0", "2.0", "0.5", "not-a-version", "1.0.0", "01.0", 1, 2, 0],
    "size": [0, -1, 2**63, 2**64, 10**30, 1.5, True],
    "layers": [0, -1, 125, 126, 10**30],
    "media-type": ["application/vnd.oci.image.layer.v1.tar+gzip", "application/json", ""],
    "reference": ["scratch", "docker://x", "oci:../../etc", "ftp://x"],
    "OMP_NUM_THREADS": ["1", "", "\x00", "a=b"],
}


def _same_kind(value: Any, key: str | int | None) -> st.SearchStrategy[Any]:
    """A value of the same JSON/TOML type, often one that matters for ``key``: such edits get past the type
    checks and reach the code behind them."""
    pool = _CONTEXT.get(key) if isinstance(key, str) else None
    if pool is not None:
        picked = st.sampled_from(pool)
        if pool is _PATHS or pool[: len(_HOSTILE_FILES)] == _HOSTILE_FILES:
            picked = st.sampled_from(_HOSTILE_FILES) | picked
        if isinstance(value, list):
            return st.lists(picked, max_size=3)
        return picked
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int | float):
        return _numbers
    if isinstance(value, str):
        return odd_strings
    if isinstance(value, list):
        return st.lists(odd_strings, max_size=3)
    if isinstance(value, dict):
        return st.dictionaries(_keys, odd_strings, max_size=3)
    return st.just(value)  # a TOML date


def _key_of(path: Path_) -> str | int | None:
    """The key a value sits under (a list item's key is its list's)."""
    for p in reversed(path):
        if isinstance(p, str):
            return p
    return None


@st.composite
def edited(draw: st.DrawFn, doc: Any, values: st.SearchStrategy[Any], *, root_edits: bool) -> Any:
    """``doc`` with one to four edits at drawn paths (mostly one, mostly keeping each value's type, so that
    most mutants get past the parser and the type checks). ``root_edits``: the top level may become anything.
    """
    doc = copy.deepcopy(doc)
    for _ in range(draw(st.sampled_from([1, 1, 1, 2, 2, 3, 4]))):
        paths = paths_of(doc)
        # Values with a pool of their own are where bugs were: drawn four times as often.
        paths += [p for p in paths if _key_of(p) in _CONTEXT] * 3
        path = draw(st.sampled_from(paths))
        target = _get(doc, path)
        ops = ["set", "set", "delete", "delete"] if path else (["set"] if root_edits else [])
        if isinstance(target, dict):
            ops += ["add", "rename"] if target else ["add"]
        if isinstance(target, list) and target:
            ops += ["duplicate"]
        if not ops:
            continue
        op = draw(st.sampled_from(ops))
        if op == "set":
            kind = draw(st.sampled_from(["same", "same", "same", "any"]))
            value = draw(_same_kind(target, _key_of(path)) if kind == "same" else values)
            doc = _set(doc, path, copy.deepcopy(value))
        elif op == "delete":
            del _get(doc, path[:-1])[path[-1]]
        elif op == "add":
            target[draw(_keys)] = copy.deepcopy(draw(values))
        elif op == "rename":
            old = draw(st.sampled_from(list(target)))
            target[draw(_keys | st.sampled_from(_NAMES))] = target.pop(old)
        else:  # duplicate a list item
            target.append(copy.deepcopy(target[draw(st.integers(0, len(target) - 1))]))
    return doc


def sweep(doc: Any) -> list[tuple[Path_, Any]]:
    """Every (path, value) pair that puts a value of its key's pool at a path of ``doc``: a deterministic
    pass over the values that matter, which random edits reach only now and then."""
    out = []
    for path in paths_of(doc):
        key = _key_of(path)
        if not path or not isinstance(key, str) or key not in _CONTEXT:
            continue
        if isinstance(_get(doc, path), dict | list):
            continue
        out += [(path, v) for v in _CONTEXT[key]]
    return out


def replaced(doc: Any, path: Path_, value: Any) -> Any:
    return _set(copy.deepcopy(doc), path, value)


# -- byte-level damage --------------------------------------------------------------------------------------

_JUNK = [b"\xff", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xef\xbb\xbf", b"\r", b"\n", b"[", b"{", b'"', b"\\"]


@st.composite
def damaged(draw: st.DrawFn, data: bytes) -> bytes:
    """``data`` with one to three byte-level injuries."""
    buf = bytearray(data)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["truncate", "flip", "insert", "delete", "lines"]))
        n = len(buf)
        if kind == "truncate":
            del buf[draw(st.integers(0, n)) :]
        elif kind == "flip" and n:
            i = draw(st.integers(0, n - 1))
            buf[i] ^= 1 << draw(st.integers(0, 7))
        elif kind == "insert":
            i = draw(st.integers(0, n))
            buf[i:i] = draw(st.sampled_from(_JUNK) | st.binary(min_size=1, max_size=8))
        elif kind == "delete" and n:
            i = draw(st.integers(0, n - 1))
            del buf[i : i + draw(st.integers(1, 16))]
        elif kind == "lines":
            lines = bytes(buf).split(b"\n")
            i = draw(st.integers(0, len(lines) - 1))
            if draw(st.booleans()):
                lines.insert(i, lines[i])
            else:
                del lines[i]
            buf = bytearray(b"\n".join(lines))
    return bytes(buf)
