"""Reproducible Debian root filesystems with ``mmdebstrap``.

One call gives one uncompressed tar that is usable as a Docker/OCI layer as it is, plus
the exact version of every installed package. With ``SOURCE_DATE_EPOCH`` fixed, mmdebstrap
sorts the tar, clamps every mtime and removes its known non-reproducible files (dpkg and
apt logs, ldconfig's aux-cache, machine-id), so the same inputs and the same archive
state give a bit-identical tar. We also drop the two files it copies from the host
(``/etc/resolv.conf``, ``/etc/hostname``): Docker bind-mounts its own at run time.

Choices (see the measurements in the module's tests):

- ``--variant=essential`` plus ``--include``: only ``Essential: yes`` packages and what
  was asked for; no apt, no init system.
- merged-/usr with mmdebstrap's ``merged-usr`` hook (the debootstrap method): without it
  apt picks ``usrmerge`` for ``init-system-helpers``'s dependency and pulls in perl (~40 MB).
- "slim" dpkg path excludes (man pages, info, locales, docs except copyright files), as
  Debian's own slim images do.
- ``--mode=root`` when we are root (no user namespaces needed), else ``unshare``.
- Only the suite's main component from one mirror, no ``-security``/``-updates`` suites:
  a lock then names versions that stay in the suite until the next point release (which
  folds the security fixes in). A pinned version that has left the archive is an error,
  not a silent upgrade: relock, or point ``ENVGRAPH_DEBIAN_MIRROR`` at a snapshot.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import stat
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import attrs

from envgraph._fs import locked_temp_dir, sweep_dead
from envgraph._subprocess import run_guarded
from envgraph.errors import BuildError

__all__ = [
    "DEFAULT_MIRROR",
    "MIRROR_ENV",
    "DEFAULT_EPOCH",
    "MERGED_USR",
    "SLIM_DPKG_OPTIONS",
    "DebianRootfs",
    "default_mirror",
    "mmdebstrap_command",
    "build_debian_rootfs",
    "parse_versions",
]

DEFAULT_MIRROR = "http://deb.debian.org/debian"
MIRROR_ENV = "ENVGRAPH_DEBIAN_MIRROR"
# Same default as envgraph.oci._tar's DEFAULT_MTIME, so base and package layers agree.
# Debian's py3compile writes checked-hash .pyc files, so clamped mtimes do not make them stale.
DEFAULT_EPOCH = 0

MERGED_USR = ("bin", "lib", "lib64", "sbin")
"""The top-level directories a root filesystem made here links into /usr on amd64 (mmdebstrap's merged-usr
hook, the debootstrap method); base locks record theirs when it is another set."""

SLIM_DPKG_OPTIONS: tuple[str, ...] = (
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/info/*",
    "path-exclude=/usr/share/locale/*",
    "path-include=/usr/share/locale/locale.alias",
    "path-exclude=/usr/share/doc/*",
    "path-include=/usr/share/doc/*/copyright",
)

_MERGED_USR_HOOKS = Path("/usr/share/mmdebstrap/hooks/merged-usr")
# Debian policy 5.6.1 (names) and 5.6.12 (versions); anything else would break --include's syntax.
_PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+(:[a-z0-9-]+)?$")
_VERSION_RE = re.compile(r"^[A-Za-z0-9.+~:-]+$")
_SUITE_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_NOT_FOUND_RE = re.compile(r"Version '([^']+)' for '([^']+)' was not found")
# mmdebstrap's and apt's wrap-up lines ("... failed") come after the line that says why.
_NOISE_RE = re.compile(
    r"^E: (mmdebstrap failed|setup failed|Some index files failed|.*\bapt-get\b.* failed$)"
)


@attrs.frozen
class DebianRootfs:
    """A built root filesystem: the tar and every installed package's version (sorted by name)."""

    versions: dict[str, str]
    tar_path: Path


def _scratch_root() -> Path:
    """Where mmdebstrap's chroots go: a directory of ours in the system temp dir, which every user (apt's _apt
    sandbox user included) can traverse, unlike a home directory."""
    root = Path(tempfile.gettempdir()) / f"envgraph-debian-{os.getuid()}"
    root.mkdir(mode=0o755, exist_ok=True)
    st = os.lstat(root)
    if not stat.S_ISDIR(st.st_mode) or st.st_uid != os.getuid():
        raise BuildError(f"{root} is not a directory of ours: remove it")
    root.chmod(0o755)
    return root


def default_mirror() -> str:
    return os.environ.get(MIRROR_ENV) or DEFAULT_MIRROR


def _default_mode() -> str:
    return "root" if os.geteuid() == 0 else "unshare"


def _includes(packages: Sequence[str], pins: Mapping[str, str] | None) -> list[str]:
    pins = pins or {}
    names = sorted(set(packages) | set(pins))
    for name in names:
        if not _PACKAGE_RE.match(name):
            raise BuildError(f"invalid Debian package name {name!r}")
    for name, version in pins.items():
        if not _VERSION_RE.match(version):
            raise BuildError(f"invalid Debian version {version!r} for package {name}")
    return [f"{n}={pins[n]}" if n in pins else n for n in names]


def mmdebstrap_command(
    suite: str,
    packages: Sequence[str],
    *,
    pins: Mapping[str, str] | None,
    out_tar: Path,
    versions_file: Path,
    mirror: str,
    arch: str = "amd64",
    mode: str | None = None,
    extract: bool = False,
) -> list[str]:
    """The mmdebstrap argv; ``versions_file`` receives ``status<TAB>package<TAB>version`` lines.

    ``extract``: a root filesystem for a foreign architecture (this machine cannot run its maintainer scripts:
    no binfmt_misc here): mmdebstrap's ``extract`` variant unpacks exactly ``packages`` and their dependencies
    (not the Essential set) and configures nothing; the versions are read from the downloaded .debs."""
    cmd = [
        "mmdebstrap",
        "--variant=extract" if extract else "--variant=essential",
        f"--mode={mode or _default_mode()}",
        "--format=tar",
        f"--architectures={arch}",
        "--components=main",
    ]
    if _MERGED_USR_HOOKS.is_dir():
        cmd.append(f"--hook-dir={_MERGED_USR_HOOKS}")
    cmd += [f"--dpkgopt={opt}" for opt in SLIM_DPKG_OPTIONS]
    includes = _includes(packages, pins)
    if includes:
        cmd.append("--include=" + ",".join(includes))
    if extract:
        # The extract variant runs no customize hooks: the same clean-up after extracting, and the versions
        # from the .debs apt downloaded (nothing is installed, so dpkg has no database to ask).
        quoted = shlex.quote(str(versions_file))
        cmd.append(
            '--extract-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname" "$1/var/lib/apt/extended_states"; '
            'for f in "$1"/var/cache/apt/archives/*.deb; do '
            "dpkg-deb --show --showformat='ii\\t${Package}\\t${Version}\\n' \"$f\"; done"
            f" > {quoted}"
        )
        cmd += [suite, str(out_tar), mirror]
        return cmd
    # "$1" is the chroot directory; the hooks run on the host, so dpkg-query reads the new root's database.
    # resolv.conf and hostname are copied from the host; extended_states only records which packages
    # were asked for, so without it a build pinned from a lock gives the same bytes as the first build.
    cmd.append(
        '--customize-hook=rm -f "$1/etc/resolv.conf" "$1/etc/hostname" "$1/var/lib/apt/extended_states"'
    )
    cmd.append(
        "--customize-hook=dpkg-query --admindir \"$1/var/lib/dpkg\" -W -f='${db:Status-Abbrev}\\t${Package}\\t${Version}\\n'"
        f" > {shlex.quote(str(versions_file))}"
    )
    cmd += [suite, str(out_tar), mirror]
    return cmd


def parse_versions(text: str) -> dict[str, str]:
    """``status<TAB>package<TAB>version`` lines -> {package: version} for installed packages, sorted."""
    versions: dict[str, str] = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) == 3 and parts[0].startswith("ii"):
            versions[parts[1]] = parts[2]
    return dict(sorted(versions.items()))


def _failure_message(stderr: str, suite: str, mirror: str) -> str:
    missing = _NOT_FOUND_RE.search(stderr)
    if missing:
        version, name = missing.groups()
        return (
            f"Debian package {name}={version} is not in {suite} at {mirror}: "
            "relock, or set ENVGRAPH_DEBIAN_MIRROR to an archive snapshot that has it"
        )
    lines = [" ".join(ln.split()) for ln in stderr.splitlines() if ln.strip()]
    causes = [ln.removeprefix("E: ") for ln in lines if ln.startswith("E: ") and not _NOISE_RE.match(ln)]
    cause = causes[0] if causes else (lines[-1] if lines else "no output")
    return f"mmdebstrap failed for {suite}: {cause}"


def build_debian_rootfs(
    suite: str,
    packages: Sequence[str],
    *,
    pins: Mapping[str, str] | None,
    out_tar: Path,
    mirror: str | None = None,
    epoch: int = DEFAULT_EPOCH,
    arch: str = "amd64",
    mode: str | None = None,
    extract: bool = False,
) -> DebianRootfs:
    """Build ``suite`` with ``packages`` (pinned to ``pins`` where given) into the tar ``out_tar``.

    ``out_tar`` appears only when the build succeeded (written beside it, then renamed).
    """
    # Refuse what would be read as an option or break --include's syntax before anything runs.
    if not _SUITE_RE.match(suite) or not _SUITE_RE.match(arch):
        raise BuildError(f"invalid Debian suite or architecture {suite!r}/{arch!r}")
    _includes(packages, pins)
    if shutil.which("mmdebstrap") is None:
        raise BuildError("mmdebstrap is not installed: apt-get install mmdebstrap")
    mirror = mirror or default_mirror()
    out_tar = Path(out_tar)
    out_tar.parent.mkdir(parents=True, exist_ok=True)
    # mmdebstrap picks a compressor from the file name, so the partial file keeps the suffixes.
    partial = out_tar.with_name(f".{out_tar.name}.{os.getpid()}.partial{''.join(out_tar.suffixes)}")
    scratch = _scratch_root()
    sweep_dead(scratch)  # chroots of builds killed before us
    with locked_temp_dir(scratch, "debian-") as tmp:
        # apt drops privileges to _apt, which must reach the chroot: otherwise apt's partial/ dirs end up owned
        # by root instead of _apt and the root filesystem's bytes change with where it was built.
        tmp.chmod(0o755)
        versions_file = tmp / "versions.tsv"
        cmd = mmdebstrap_command(
            suite,
            packages,
            pins=pins,
            out_tar=partial,
            versions_file=versions_file,
            mirror=mirror,
            arch=arch,
            mode=mode,
            extract=extract,
        )
        # mmdebstrap's own chroot goes under our scratch dir too (TMPDIR), so a kill leaves nothing elsewhere.
        env = dict(os.environ, SOURCE_DATE_EPOCH=str(epoch), LC_ALL="C.UTF-8", TMPDIR=str(tmp))
        try:
            done = run_guarded(cmd, env=env, cleanup=[tmp, partial])
            if done.returncode != 0:
                raise BuildError(_failure_message(done.output, suite, mirror))
            if not versions_file.exists():
                raise BuildError(f"mmdebstrap built {suite} but recorded no package versions")
            versions = parse_versions(versions_file.read_text())
            os.replace(partial, out_tar)
        finally:
            partial.unlink(missing_ok=True)
    return DebianRootfs(versions=versions, tar_path=out_tar)
