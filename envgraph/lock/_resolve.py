"""Running pip-compile as a subprocess, under an interpreter of the target Python version.

pip-tools has no supported Python API and resolves for the interpreter it runs under, so
envgraph runs ``python -m piptools compile`` with pinned pip/pip-tools versions in that
interpreter, isolated from the machine's pip configuration so a lock depends only on the
declaration.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from attrs import field, frozen
from packaging.utils import canonicalize_name

from envgraph._fs import cache_dir, locked_temp_dir, sweep_dead
from envgraph._subprocess import GuardedTimeout, run_guarded
from envgraph.errors import ResolutionError
from envgraph.lock._model import Resolver

__all__ = [
    "PIP_VERSION",
    "PIP_TOOLS_VERSION",
    "Pin",
    "CompileResult",
    "ResolverTimeout",
    "ResolveRequest",
    "find_interpreter",
    "resolver_versions",
    "pip_compile",
    "uv_compile",
    "UV_VERSION",
    "RESOLVERS",
    "pip_report",
]


# The pinned resolver: the versions envgraph declares in its own dependencies.
PIP_VERSION = "25.2"
PIP_TOOLS_VERSION = "7.5.1"


UV_VERSION = "0.13.9"
RESOLVERS = ("pip-tools", "uv")


def resolver_versions(resolver: str = "pip-tools") -> Resolver:
    """What resolves an env: recorded in its lockfile and its inputs (switching resolver makes locks stale)."""
    return Resolver(pip=PIP_VERSION, pip_tools=PIP_TOOLS_VERSION, uv=UV_VERSION if resolver == "uv" else None)


def find_uv() -> str:
    """The pinned uv: the ``uv`` package's binary when it is the pinned version (``pip install envgraph[uv]``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        import uv

        if version("uv") == UV_VERSION:
            return str(uv.find_uv_bin())
    except (ImportError, PackageNotFoundError, FileNotFoundError):
        pass
    raise ResolutionError(
        f'project.resolver = "uv" needs uv {UV_VERSION}: pip install "uv=={UV_VERSION}" (or envgraph[uv])'
    )


@frozen
class Pin:
    name: str  # canonical name
    version: str  # "" for a direct reference (a directory or a git URL): see pip_report
    hashes: frozenset[str]
    url: str | None = None  # a direct reference's URL, as pip-compile wrote it


@frozen
class CompileResult:
    pins: tuple[Pin, ...]
    seconds: float


class ResolverTimeout(Exception):
    def __init__(self, seconds: float, output: str) -> None:
        super().__init__(f"resolution took longer than {seconds:g} s")
        self.seconds = seconds
        self.output = output


class ResolverFailed(Exception):
    def __init__(self, output: str) -> None:
        super().__init__(output)
        self.output = output


def _interpreter_version(python: str) -> str | None:
    try:
        out = subprocess.run(
            [python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def _has_pinned_piptools(python: str) -> bool:
    probe = "from importlib.metadata import version as v; print(v('pip'), v('pip-tools'))"
    out = subprocess.run([python, "-c", probe], capture_output=True, text=True)
    return out.returncode == 0 and out.stdout.split() == [PIP_VERSION, PIP_TOOLS_VERSION]


HOST_PYTHON = f"{sys.version_info[0]}.{sys.version_info[1]}"


def find_interpreter(python: str) -> str:
    """An interpreter of the target minor version with the pinned pip-tools installed.

    The running interpreter is used when it matches and has the pinned resolver; otherwise
    ``pythonX.Y`` from PATH gets a cached virtual environment with the pinned resolver.
    """
    if python == HOST_PYTHON and _has_pinned_piptools(sys.executable):
        return sys.executable
    venv = cache_dir() / "resolvers" / f"py{python}-pip{PIP_VERSION}-piptools{PIP_TOOLS_VERSION}"
    vpython = venv / "bin" / "python"
    if vpython.exists() and _has_pinned_piptools(str(vpython)):
        return str(vpython)
    candidates = [shutil.which(f"python{python}")]
    if python == HOST_PYTHON:
        candidates.insert(0, sys.executable)
    host = next((c for c in candidates if c and _interpreter_version(c) == python), None)
    if host is None:
        raise ResolutionError(
            f"no Python {python} interpreter found (looked for python{python} on PATH): "
            f"pip-tools resolves for the interpreter it runs under, so install Python {python} to lock for it"
        )
    tmp = Path(tempfile.mkdtemp(prefix="resolver-", dir=_ensure(venv.parent)))
    try:
        subprocess.run([host, "-m", "venv", str(tmp)], check=True, capture_output=True)
        subprocess.run(
            [str(tmp / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check",
             f"pip=={PIP_VERSION}", f"pip-tools=={PIP_TOOLS_VERSION}"],
            check=True, capture_output=True, text=True, env=_clean_env(),
        )  # fmt: skip
    except subprocess.CalledProcessError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        raise ResolutionError(
            f"cannot install pip-tools {PIP_TOOLS_VERSION} for Python {python}: {_last_line(e.stderr)}"
        ) from None
    try:
        os.replace(tmp, venv)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)  # another process won the race
    return str(vpython)


def _ensure(p: Path) -> Path:
    p.mkdir(parents=True, exist_ok=True)
    return p


def _clean_env() -> dict[str, str]:
    # The machine's pip configuration (extra indexes, find-links, constraints) must not leak into a lock.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_") or k == "PIP_CERT"}
    env.update(
        PIP_CONFIG_FILE=os.devnull, PIP_DISABLE_PIP_VERSION_CHECK="1", PYTHONUTF8="1", LC_ALL="C.UTF-8"
    )
    return env


def _last_line(text: str | None) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1] if lines else "no output"


PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s\\;]+)")
URL_PIN_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)(?:\[[^\]]*\])? @ (\S+)")
HASH_RE = re.compile(r"--hash=sha256:([0-9a-f]{64})")


def parse_compiled(text: str) -> list[Pin]:
    pins: list[Pin] = []
    name = version = url = None
    hashes: set[str] = set()
    for raw in text.splitlines():
        if raw.lstrip().startswith("#"):
            continue
        # A URL may hold '#' (git+...#subdirectory=): only " #" starts a comment on a requirement line.
        line = raw.split(" #", 1)[0].rstrip() if not raw.lstrip().startswith("--hash") else raw.strip()
        if not line.strip():
            continue
        m = PIN_RE.match(line)
        u = URL_PIN_RE.match(line) if m is None else None
        if m or u:
            if name:
                pins.append(Pin(canonicalize_name(name), version or "", frozenset(hashes), url))
            if m:
                name, version, url, hashes = m.group(1), m.group(2), None, set()
            else:
                assert u is not None
                name, version, url, hashes = u.group(1), "", u.group(2).rstrip("\\").strip(), set()
        hashes.update(HASH_RE.findall(line))
    if name:
        pins.append(Pin(canonicalize_name(name), version or "", frozenset(hashes), url))
    return sorted(pins, key=lambda p: p.name)


def _index_args(index_url: str, extra_index_urls: Sequence[str], find_links: Sequence[Path]) -> list[str]:
    args = ["--index-url", index_url] if index_url else ["--no-index"]
    for u in extra_index_urls:
        args += ["--extra-index-url", u]
    for fl in find_links:
        args += ["--find-links", str(fl)]
    return args


@frozen
class ResolveRequest:
    """What one resolution is given: ``requirements`` (checked by the caller; they may be paths) with
    ``constraints`` (the parent's pins) and ``constraint_lines`` (as written), the package indexes, and the
    pins of the previous lock (``previous``, pip-compile's output format), kept unless ``upgrade``."""

    requirements: tuple[str, ...]
    index_url: str
    extra_index_urls: tuple[str, ...]
    find_links: tuple[Path, ...]
    timeout: float
    constraints: Mapping[str, str] = field(factory=dict)
    constraint_lines: tuple[str, ...] = ()
    previous: str | None = None
    upgrade: bool = False
    upgrade_packages: tuple[str, ...] = ()


def _run_resolver(
    command: Callable[[Path], list[str]], req: ResolveRequest, env: Mapping[str, str]
) -> CompileResult:
    """Run a ``pip-compile``-like resolver in a private scratch directory: ``command(scratch)`` is its command
    line up to the options both share (inputs and output in pip-compile's formats, parsed by the same code)."""
    scratch = cache_dir() / "tmp"
    sweep_dead(scratch)  # what locks killed before us left behind
    with locked_temp_dir(scratch, "lock-") as d:
        (d / "requirements.in").write_text("".join(f"{r}\n" for r in req.requirements), encoding="utf-8")
        args = [
            *command(d),
            *_index_args(req.index_url, req.extra_index_urls, req.find_links),
            "-o",
            str(d / "requirements.txt"),
        ]
        if req.constraints or req.constraint_lines:
            lines = [f"{n}=={v}\n" for n, v in sorted(req.constraints.items())]
            lines += [f"{c}\n" for c in req.constraint_lines]
            (d / "constraints.txt").write_text("".join(lines), encoding="utf-8")
            args += ["-c", str(d / "constraints.txt")]
        if req.previous and not req.upgrade:
            # Both keep the pins of an existing output file (as preferences) unless told to upgrade.
            (d / "requirements.txt").write_text(req.previous, encoding="utf-8")
        if req.upgrade:
            args.append("--upgrade")
        for p in req.upgrade_packages:
            args += ["--upgrade-package", p]
        args.append(str(d / "requirements.in"))
        start = time.monotonic()
        # The resolver (and anything it starts) dies with envgraph, even on kill -9; its scratch dir goes too.
        try:
            done = run_guarded(args, cwd=d, env=dict(env), timeout=req.timeout, cleanup=[d])
        except GuardedTimeout as e:
            raise ResolverTimeout(req.timeout, e.output) from None
        if done.returncode != 0:
            raise ResolverFailed(done.output)
        text = (d / "requirements.txt").read_text(encoding="utf-8")
    return CompileResult(tuple(parse_compiled(text)), time.monotonic() - start)


def pip_compile(python: str, req: ResolveRequest, *, only_binary: bool = False) -> CompileResult:
    """Resolve ``req`` with pip-compile for the target interpreter. Wheels are preferred, but a release that has
    only an sdist may be chosen (envgraph builds it) unless ``only_binary``."""
    interpreter = find_interpreter(python)

    def command(d: Path) -> list[str]:
        return [
            interpreter, "-m", "piptools", "compile", "--quiet", "--generate-hashes", "--strip-extras",
            "--allow-unsafe", "--no-header", "--no-annotate", "--no-emit-index-url", "--no-emit-find-links",
            # fast-deps: candidates' metadata by HTTP range requests into the wheel (pip's lazy wheel) when the index
            # serves no PEP 658 metadata, instead of downloading each candidate whole (~900 MB for torch).
            "--resolver=backtracking", "--pip-args",
            ("--only-binary=:all:" if only_binary else "--prefer-binary") + " --use-feature=fast-deps",
            # pip-tools' dependency cache is one JSON file rewritten in place: concurrent pip-compiles would read
            # each other's half-written file, so each has its own. pip's download cache stays shared (it writes
            # each entry atomically), so envs resolved at once download a file once.
            "--cache-dir", str(d / "piptools-cache"),
        ]  # fmt: skip

    return _run_resolver(command, req, _clean_env())


def pip_report(
    python: str,
    lines: Sequence[str],
    *,
    index_url: str,
    extra_index_urls: Sequence[str],
    find_links: Sequence[Path],
    timeout: float,
) -> list[dict[str, object]]:
    """pip's installation report (``pip install --dry-run --report``) for direct references (directories, git
    URLs), each without its dependencies: their name, version and what pip fetched (pip-compile writes only
    ``name @ url`` for them). Each item: ``{"name", "version", "url", "commit"}``."""
    interpreter = find_interpreter(python)
    scratch = _ensure(cache_dir() / "tmp")
    with locked_temp_dir(scratch, "report-") as tmp:
        report = tmp / "report.json"
        args = [
            interpreter, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet",
            "--prefer-binary", "--report", str(report), *_index_args(index_url, extra_index_urls, find_links),
            *lines,
        ]  # fmt: skip
        try:
            done = run_guarded(args, cwd=tmp, env=_clean_env(), timeout=timeout, cleanup=[tmp])
        except GuardedTimeout as e:
            raise ResolverTimeout(timeout, e.output) from None
        if done.returncode != 0:
            raise ResolverFailed(done.output)
        doc = json.loads(report.read_text(encoding="utf-8"))
    out: list[dict[str, object]] = []
    for item in doc.get("install", []):
        meta = item.get("metadata", {})
        info = item.get("download_info", {})
        vcs = info.get("vcs_info") or {}
        out.append(
            {
                "name": str(canonicalize_name(meta.get("name", ""))),
                "version": str(meta.get("version", "")),
                "url": str(info.get("url", "")),
                "commit": vcs.get("commit_id"),
            }
        )
    return out


def uv_compile(python: str, req: ResolveRequest, *, platform: str = "linux/amd64") -> CompileResult:
    """The same resolution with ``uv pip compile``: for the target Python and platform, pip's index semantics
    (every index searched for the best match), output in pip-compile's format (parsed by the same code)."""
    uv = find_uv()
    arch = {"linux/amd64": "x86_64", "linux/arm64": "aarch64"}.get(platform, "x86_64")
    head = [
        uv, "pip", "compile", "--quiet", "--no-config", "--generate-hashes", "--no-header", "--no-annotate",
        "--python-version", python, "--python-platform", f"{arch}-unknown-linux-gnu",
        "--index-strategy", "unsafe-best-match", "--no-python-downloads",
    ]  # fmt: skip
    env = {k: v for k, v in _clean_env().items() if not k.startswith("UV_")}
    if os.environ.get("PIP_CERT"):
        env["SSL_CERT_FILE"] = os.environ["PIP_CERT"]
    return _run_resolver(lambda d: head, req, env)
