"""Building a wheel from source in the env's own base, daemonless and offline.

The build root is a directory assembled from layers the store already has (or builds): the base's root
filesystem, then the Debian packages of the env's build environment (``build-essential``, ``python3-dev`` and
the env's ``apt`` and ``build-apt`` packages, pinned in the lockfile), extracted in order with tarfile's
``tar`` filter (no absolute paths, nothing written through a link that leaves the root). envgraph adds what
maintainer scripts would have added and a build needs (``cc``/``c++`` links to ``gcc``/``g++``), installs the
pinned build dependencies with ``installer`` into ``/envgraph-build/deps``, and copies the source (an sdist
unpacked safely, a directory's files, a git checkout) into ``/envgraph-build/src``.

Then ``unshare`` gives the build a new network namespace (no network: everything it needs was fetched by
hash first), mount and PID namespaces (``/proc`` of its own; ``/dev/null`` and friends bind-mounted from the
host) and ``chroot`` runs :mod:`envgraph.builder._frontend` under the base's interpreter with a fixed
environment (``SOURCE_DATE_EPOCH``, ``PYTHONHASHSEED=0``, ``LC_ALL=C.UTF-8``, fixed paths), so the build sees
the same libc, compiler and Python as the image will. This needs root (CI runs as root) or user namespaces.

All output goes to ``<store>/logs/<name>-<version>-<key12>.log``; a failure is one line naming the package,
the log and its last lines. The wheel must have the locked name and version and fit the target's tags; it is
stored as a one-file tar under the build's key (input-addressed: a build that is not bit-for-bit
reproducible still gives one wheel per key), which a registry cache shares like any layer.
"""

from __future__ import annotations

import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from packaging.utils import InvalidWheelFilename, canonicalize_name, parse_wheel_filename
from packaging.version import Version

from envgraph._fs import atomic_write
from envgraph._hashing import digest_hex, digest_of
from envgraph._subprocess import GuardedTimeout, run_guarded
from envgraph.errors import BuildError, EnvgraphError
from envgraph.identity import Compression, compression_of_media_type, layer_mtime
from envgraph.lock._sources import copy_source, unpack_sdist
from envgraph.lock._wheels import Target, best_wheel, built_wheel_tags
from envgraph.oci._compress import open_decompressed
from envgraph.oci._layer import record_layer, write_layer
from envgraph.oci._store import LayerRecord, Store
from envgraph.oci._tar import LayerEntry, write_tar
from envgraph.plan import WheelBuild

__all__ = ["BUILD_TIMEOUT", "build_wheel", "wheel_of_record", "LOG_LINES"]

BUILD_TIMEOUT = 3600.0
LOG_LINES = 5
_WORK = "envgraph-build"
# zip cannot store times before 1980; build backends clamp SOURCE_DATE_EPOCH to this anyway.
_ZIP_EPOCH = 315532800
_DEVICES = ("null", "zero", "full", "random", "urandom", "tty")
_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _logs_dir(store: Store) -> Path:
    path = store.root / "logs"
    path.mkdir(exist_ok=True)
    return path


def log_path(store: Store, task: WheelBuild) -> Path:
    return _logs_dir(store) / f"{task.name}-{task.version}-{digest_hex(task.key)[:12]}.log"


# --- the build root --------------------------------------------------------------------------------------


def _apply_layer(store: Store, record: LayerRecord, root: Path) -> None:
    """Extract a stored layer over ``root`` (whiteouts honoured; devices skipped: they are bind-mounted)."""
    compression = compression_of_media_type(record.media_type)
    real_root = os.path.realpath(root)
    with (
        store.open_blob(record.digest) as raw,
        open_decompressed(raw, compression) as stream,
        tarfile.open(fileobj=stream, mode="r|", encoding="utf-8") as tf,
    ):
        for member in tf:
            path = PurePosixPath(member.name.removeprefix("./"))
            if path.is_absolute() or ".." in path.parts:
                raise BuildError(f"layer {record.key}: unsafe path {member.name!r}")
            if member.ischr() or member.isblk() or member.isfifo():
                continue
            parent = os.path.realpath(root.joinpath(*path.parent.parts))
            if parent != real_root and not parent.startswith(real_root + os.sep):
                raise BuildError(
                    f"layer {record.key}: {member.name!r} would be written outside the build root"
                )
            if path.name.startswith(".wh."):
                if path.name == ".wh..wh..opq":
                    continue  # opaque directories only matter for layers below, which a build root flattens
                victim = root.joinpath(*path.parent.parts, path.name.removeprefix(".wh."))
                if victim.is_dir() and not victim.is_symlink():
                    shutil.rmtree(victim)
                else:
                    victim.unlink(missing_ok=True)
                continue
            target = root.joinpath(*path.parts) if path.parts else root
            if target.is_symlink() or (target.exists() and not target.is_dir()):
                target.unlink()  # a later layer replaces a file (tarfile would not)
            tf.extract(member, root, set_attrs=not member.isdir(), filter="tar")


def _alternatives(root: Path) -> None:
    """What update-alternatives would have made for a toolchain: cc and c++ (Debian's gcc and g++ links)."""
    for link, target in (("cc", "gcc"), ("c++", "g++"), ("cpp", "cpp")):
        path = root / "usr" / "bin" / link
        if (
            not path.exists()
            and not path.is_symlink()
            and (root / "usr" / "bin" / target).exists()
            and link != target
        ):
            path.symlink_to(target)


def _install_deps(wheels: Sequence[tuple[str, Path]], deps: Path, interpreter: str) -> None:
    """Install the build requirements (already verified wheels) into ``deps`` with installer; scripts point at
    the build root's interpreter path, which is where they run."""
    import zipfile

    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    site = deps / "site"
    scheme = {
        "purelib": str(site),
        "platlib": str(site),
        "headers": str(deps / "include"),
        "scripts": str(deps / "bin"),
        "data": str(deps / "data"),
    }
    destination = SchemeDictionaryDestination(scheme, interpreter=interpreter, script_kind="posix")
    for filename, path in wheels:
        try:
            with open(path, "rb") as f, zipfile.ZipFile(f) as zf:
                zf.filename = (
                    filename  # installer reads the name and version from it; the cached file is a hash
                )
                install(WheelFile(zf), destination, {"INSTALLER": b"envgraph\n"})
        except Exception as e:  # installer and zipfile raise several kinds for bad wheels
            raise BuildError(f"cannot install build requirement {filename}: {e}") from None


def _assemble(store: Store, layers: Sequence[LayerRecord], root: Path) -> None:
    root.mkdir()
    for record in layers:
        _apply_layer(store, record, root)
    for d in ("proc", "dev", "tmp"):
        (root / d).mkdir(exist_ok=True)
    (root / "tmp").chmod(0o1777)
    for dev in _DEVICES:
        node = root / "dev" / dev
        if node.is_symlink() or node.exists():
            node.unlink()
        node.touch()  # bind-mount points
    _alternatives(root)


def build_root(store: Store, layers: Sequence[LayerRecord]) -> Path:
    """The assembled build root of ``layers`` (read-only; each build writes into an overlay above it), kept in
    ``<store>/build-roots/`` by the layers' content so the next build of this environment starts at once."""
    key = digest_of({"kind": "build-root", "layers": [[r.key, r.diff_id] for r in layers]})
    name = digest_hex(key)[:32]
    roots = store.root / "build-roots"
    final = roots / name
    if (final / "complete").is_file():
        return final / "root"
    roots.mkdir(exist_ok=True)
    with store.building(key):  # one process assembles it; the others wait for it
        if (final / "complete").is_file():
            return final / "root"
        shutil.rmtree(final, ignore_errors=True)  # a half-made one (killed)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=roots))
        try:
            _assemble(store, layers, tmp / "root")
            (tmp / "complete").write_text("\n".join(r.key for r in layers) + "\n")
            os.rename(tmp, final)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return final / "root"


# --- running the build -----------------------------------------------------------------------------------


def _command(lower: Path, upper: Path, task: WheelBuild) -> list[str]:
    """unshare (no network, own mounts and PIDs) + an overlay of the build root + chroot + the frontend."""
    if shutil.which("unshare") is None or shutil.which("chroot") is None:
        raise BuildError("building wheels from source needs unshare and chroot (util-linux, coreutils)")
    epoch = max(layer_mtime(), _ZIP_EPOCH)
    merged = upper.parent / "merged"
    work = upper.parent / "work"
    binds = " ".join(f'mount --bind /dev/{d} "$3/dev/{d}";' for d in _DEVICES if Path(f"/dev/{d}").exists())
    script = (
        'set -e; mount -t overlay overlay -o "lowerdir=$1,upperdir=$2,workdir=$4" "$3"; '
        f'{binds} mount -t proc proc "$3/proc"; root="$3"; shift 4; exec chroot "$root" "$@"'
    )
    user = [] if os.geteuid() == 0 else ["--map-root-user"]
    env = [
        f"PATH=/{_WORK}/deps/bin:{_PATH}", "HOME=/tmp", "LC_ALL=C.UTF-8", "LANG=C.UTF-8", "TZ=UTC",
        f"SOURCE_DATE_EPOCH={epoch}", "PYTHONHASHSEED=0", "PYTHONDONTWRITEBYTECODE=1",
        f"PYTHONPATH=/{_WORK}/deps/site",
    ]  # fmt: skip
    return [
        "unshare", *user, "--net", "--mount", "--pid", "--fork", "--kill-child",
        "/bin/sh", "-c", script, "sh", str(lower), str(upper), str(merged), str(work),
        "/usr/bin/env", "-i", *env,
        task.interpreter, f"/{_WORK}/frontend.py", task.build.backend, _json(task.build.backend_path),
        f"/{_WORK}/src", f"/{_WORK}/out",
    ]  # fmt: skip


def _json(items: Sequence[str]) -> str:
    import json

    return json.dumps(list(items))


def _tail(path: Path, n: int = LOG_LINES) -> str:
    """The build's last lines, joined; a compiler's first ``error:`` line comes first when it is not among them
    (a failed extension build ends with the backend's traceback, the cause is above it)."""
    try:
        lines = [ln.strip() for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return "(no log)"
    lines = [ln for ln in lines if not ln.startswith("# ")]  # envgraph's own header and footer
    tail = lines[-n:]
    first = next((ln for ln in lines if "error:" in ln.lower()), None)
    if first is not None and first not in tail:
        tail = [f"first error: {first}", "...", *tail]
    return " | ".join(tail) or "(no output)"


def _describe(task: WheelBuild) -> str:
    s = task.source
    if s.kind == "sdist":
        return s.filename or s.url
    if s.kind == "git":
        return f"{s.url}@{(s.commit or '')[:12]}"
    return f"./{s.url}"


def _check_wheel(task: WheelBuild, out: Path, log: Path) -> Path:
    wheels = sorted(out.glob("*.whl"))
    what = f"building {task.name} {task.version}"
    if len(wheels) != 1:
        raise BuildError(f"{what}: the backend wrote {len(wheels)} wheels, not one; log: {log}")
    wheel = wheels[0]
    try:
        name, version, _, _ = parse_wheel_filename(wheel.name)
    except InvalidWheelFilename as e:
        raise BuildError(f"{what}: the backend wrote {wheel.name}, which is not a wheel name: {e}") from None
    if canonicalize_name(name) != canonicalize_name(task.name) or version != Version(task.version):
        raise BuildError(
            f"{what}: the backend built {name} {version}, but the lockfile pins {task.name} {task.version}: "
            "run `envgraph lock`"
        )
    target = Target(task.python, task.platform, task.libc)
    if best_wheel([wheel.name], built_wheel_tags(target)) is None:
        raise BuildError(
            f"{what}: the built {wheel.name} does not fit the target ({target.libc} {target.arch})"
        )
    return wheel


def build_wheel(
    store: Store,
    task: WheelBuild,
    environment: Sequence[LayerRecord],
    source: Path,
    requirements: Sequence[tuple[str, Path]],
) -> LayerRecord:
    """Build ``task``'s wheel from ``source`` (a verified sdist file or a source tree) in the build root made of
    ``environment`` with ``requirements`` ((wheel file name, verified path)) installed; store it under the key."""
    log = log_path(store, task)
    what = f"building {task.name} {task.version} from {_describe(task)}"
    lower = build_root(store, environment)
    if not (lower / task.interpreter.lstrip("/")).exists():
        raise BuildError(f"{what}: the base has no interpreter at {task.interpreter}")
    with store.temp_dir("wheel-build-") as tmp:
        upper = tmp / "upper"
        for d in ("upper", "work", "merged"):
            (tmp / d).mkdir()
        work = upper / _WORK
        (work / "out").mkdir(parents=True)
        shutil.copyfile(Path(__file__).with_name("_frontend.py"), work / "frontend.py")
        if source.is_dir():
            copy_source(
                source / task.source.subdirectory if task.source.subdirectory else source, work / "src"
            )
        else:
            unpacked = unpack_sdist(source, work / "unpack", what, BuildError)
            unpacked.rename(work / "src")
        _install_deps(requirements, work / "deps", task.interpreter)
        cmd = _command(lower, upper, task)
        start = time.monotonic()
        header = f"# envgraph: {what}\n# build key {task.key}\n# command: {' '.join(cmd)}\n"
        try:
            # Guarded: the build (and everything it starts) dies with envgraph, and its scratch goes with it.
            proc = run_guarded(cmd, timeout=BUILD_TIMEOUT, cleanup=[tmp])
        except GuardedTimeout as e:
            atomic_write(log, header + e.output + f"# timed out after {BUILD_TIMEOUT:g} s\n")
            raise BuildError(f"{what}: took longer than {BUILD_TIMEOUT:g} s; log: {log}") from None
        footer = f"# exit {proc.returncode} after {time.monotonic() - start:.1f} s\n"
        atomic_write(log, header + proc.output + ("" if proc.output.endswith("\n") else "\n") + footer)
        if proc.returncode != 0:
            raise BuildError(f"{what} failed (exit {proc.returncode}); log: {log}; last lines: {_tail(log)}")
        wheel = _check_wheel(task, work / "out", log)
        entries = [LayerEntry.from_file(wheel.name, wheel, executable=False)]
        blob, paths = write_layer(store, lambda sink: write_tar(entries, sink), Compression.NONE)
    return record_layer(store, task.key, blob, paths)


def wheel_of_record(store: Store, record: LayerRecord, dest: Path) -> Path:
    """Write the wheel a build record holds into ``dest`` (a directory); returns its path."""
    try:
        with store.open_blob(record.digest) as raw:
            stream: BinaryIO = open_decompressed(raw, compression_of_media_type(record.media_type))
            with tarfile.open(fileobj=stream, mode="r|", encoding="utf-8") as tf:
                for member in tf:
                    name = member.name
                    if not member.isreg() or "/" in name or not name.endswith(".whl"):
                        raise BuildError(f"built wheel {record.key}: unexpected member {name!r}")
                    src = tf.extractfile(member)
                    assert src is not None
                    path = dest / name
                    with open(path, "wb") as out:
                        shutil.copyfileobj(src, out)
                    return path
    except (tarfile.TarError, EnvgraphError) as e:
        raise BuildError(f"built wheel {record.key}: cannot read it from the store: {e}") from None
    raise BuildError(f"built wheel {record.key}: the store's record holds no wheel")
