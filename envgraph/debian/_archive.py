"""A suite's package index from a mirror, trusted only through the archive's signature.

1. ``dists/<suite>/InRelease`` is checked with ``gpgv`` against the keyring (Debian's archive keyring
   by default); only the text gpgv says is signed is used from then on.
2. That Release text must name the suite (as ``Suite`` or ``Codename``), the architecture and the
   component, must not be past its ``Valid-Until``, and gives the sha256 and size of
   ``<component>/binary-<arch>/Packages`` and its compressed forms.
3. ``Packages.xz`` (else ``.gz``, else the plain file) is downloaded (by hash when the archive offers
   ``Acquire-By-Hash``), checked, decompressed and checked again against the uncompressed entry.
4. The uncompressed file is cached under its sha256 (``<cache>/debian/packages/<hex>``) and rehashed
   on every use, so a later lock of the same archive state downloads only ``InRelease``.

Everything else about the archive is untrusted: any mismatch is a one-line :class:`DebianError`.
"""

from __future__ import annotations

import bz2
import contextlib
import email.utils
import gzip
import hashlib
import lzma
import os
import re
import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import attrs

from envgraph._fs import cache_dir
from envgraph._hashing import CHUNK
from envgraph.debian._download import check_mirror, download, fetch_bytes
from envgraph.debian._packages import PackageIndex, parse_packages, parse_stanza
from envgraph.debian._rootfs import default_mirror
from envgraph.errors import DebianError

__all__ = [
    "DEFAULT_KEYRING",
    "KEYRING_ENV",
    "Release",
    "default_keyring",
    "load_index",
    "parse_release",
    "verify_inrelease",
]

DEFAULT_KEYRING = Path("/usr/share/keyrings/debian-archive-keyring.gpg")
KEYRING_ENV = "ENVGRAPH_DEBIAN_KEYRING"
_INRELEASE_LIMIT = 16 << 20
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]*$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# gpg's hash algorithm ids (RFC 4880 9.4) we accept: SHA256, SHA384, SHA512, SHA224. apt refuses SHA1/MD5 too.
_STRONG_HASHES = {"8", "9", "10", "11"}
_RELEASE_FIELDS = {
    "Origin",
    "Suite",
    "Codename",
    "Date",
    "Valid-Until",
    "Architectures",
    "Components",
    "Acquire-By-Hash",
    "SHA256",
}


def default_keyring() -> Path:
    return Path(os.environ.get(KEYRING_ENV) or DEFAULT_KEYRING)


@attrs.frozen
class Release:
    """The fields of a (verified) Release file that envgraph uses."""

    suite: str
    codename: str
    architectures: tuple[str, ...]
    components: tuple[str, ...]
    acquire_by_hash: bool
    valid_until: datetime | None
    sha256: dict[str, tuple[str, int]]  # path under dists/<suite>/ -> (hex, size)


def _gpg_signatures(status: str) -> tuple[list[str], list[str]]:
    """(good signer fingerprints, problems) from gpgv's ``--status-fd`` lines, one block per signature."""
    good: list[str] = []
    problems: list[str] = []
    blocks: list[list[list[str]]] = []
    for line in status.splitlines():
        if not line.startswith("[GNUPG:] "):
            continue
        words = line.split()[1:]
        if not words:
            continue
        if words[0] == "NEWSIG" or not blocks:
            blocks.append([])
        blocks[-1].append(words)
    for block in blocks:
        kinds = {w[0]: w for w in block}
        if "BADSIG" in kinds:
            problems.append(f"BAD signature by key {kinds['BADSIG'][1]}")
        elif "GOODSIG" in kinds and "VALIDSIG" in kinds:
            valid = kinds["VALIDSIG"]
            if {"EXPKEYSIG", "REVKEYSIG", "EXPSIG"} & kinds.keys():
                problems.append(f"signature by an expired or revoked key {valid[1]}")
            elif len(valid) < 9 or valid[8] not in _STRONG_HASHES:
                problems.append(f"signature by {valid[1]} uses a weak hash algorithm")
            else:
                good.append(valid[1])
        elif "ERRSIG" in kinds:
            err = kinds["ERRSIG"]
            why = "its key is not in the keyring" if "NO_PUBKEY" in kinds else "gpgv could not check it"
            problems.append(f"signature by key {err[1]} cannot be checked ({why})")
        elif {"EXPKEYSIG", "REVKEYSIG", "EXPSIG"} & kinds.keys():
            problems.append("signature by an expired or revoked key")
    return good, problems


def verify_inrelease(data: bytes, keyring: Path, what: str = "InRelease") -> str:
    """The signed text of an ``InRelease`` file, if a key of ``keyring`` made a good signature over it.

    A bad signature anywhere is refused, as are signatures by expired or revoked keys and weak hashes;
    signatures by keys not in the keyring are ignored as long as one good signature remains (as apt does).
    """
    gpgv = shutil.which("gpgv")
    if gpgv is None:
        raise DebianError("gpgv is not installed: apt-get install gpgv")
    keyring = Path(keyring)
    if not keyring.is_file():
        raise DebianError(
            f"Debian archive keyring {keyring} does not exist: apt-get install debian-archive-keyring"
        )
    with tempfile.TemporaryDirectory(prefix="envgraph-gpgv-") as tmp:
        signed, out = Path(tmp) / "InRelease", Path(tmp) / "Release"
        signed.write_bytes(data)
        proc = subprocess.run(
            [
                gpgv,
                "--homedir",
                tmp,
                "--keyring",
                str(keyring.absolute()),
                "--status-fd",
                "1",
                "--output",
                str(out),
                str(signed),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
        )
        good, problems = _gpg_signatures(proc.stdout)
        bad = [p for p in problems if p.startswith("BAD")]
        if bad:
            raise DebianError(f"{what}: {bad[0]}: refusing to use it")
        if not good:
            reason = problems[0] if problems else "it carries no signature gpgv can check"
            raise DebianError(f"{what} is not signed by a key in {keyring}: {reason}")
        try:
            text = out.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise DebianError(f"{what}: the signed text cannot be read: {err}") from None
    if not text.strip():
        raise DebianError(f"{what}: the signed text is empty")
    return text


def _parse_date(value: str, what: str) -> datetime:
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        raise DebianError(f"{what}: cannot read the date {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def parse_release(text: str, what: str = "Release") -> Release:
    """Parse a Release file's text (one deb822 stanza). Raises DebianError when malformed."""
    f = parse_stanza(text.strip("\n"), what, _RELEASE_FIELDS)
    files: dict[str, tuple[str, int]] = {}
    for line in f.get("SHA256", "").splitlines():
        if not line.strip():
            continue
        parts = line.split()
        if len(parts) != 3 or not _SHA256_RE.match(parts[0]) or not parts[1].isdigit():
            raise DebianError(f"{what}: malformed SHA256 line {line.strip()!r}")
        files[parts[2]] = (parts[0], int(parts[1]))
    if not files:
        raise DebianError(f"{what} lists no SHA256 checksums")
    valid_until = f.get("Valid-Until")
    return Release(
        suite=f.get("Suite", ""),
        codename=f.get("Codename", ""),
        architectures=tuple(f.get("Architectures", "").split()),
        components=tuple(f.get("Components", "").split()),
        acquire_by_hash=f.get("Acquire-By-Hash", "no").lower() == "yes",
        valid_until=_parse_date(valid_until, what) if valid_until else None,
        sha256=files,
    )


def _check_release(release: Release, suite: str, arch: str, component: str, url: str, now: datetime) -> None:
    if suite not in (release.suite, release.codename):
        raise DebianError(
            f"{url} is for suite {release.suite or '?'} ({release.codename or '?'}), not {suite}"
        )
    if release.architectures and arch not in release.architectures:
        raise DebianError(f"{url} has no architecture {arch} (it has {' '.join(release.architectures)})")
    if release.components and component not in release.components:
        raise DebianError(f"{url} has no component {component}")
    if release.valid_until is not None and release.valid_until < now:
        raise DebianError(f"{url} expired at {release.valid_until:%Y-%m-%d %H:%M} UTC (Valid-Until)")


def _reader(suffix: str, raw: BinaryIO) -> BinaryIO:
    """A decompressing reader over ``raw`` (closed by the caller's ``with``)."""
    if suffix == ".xz":
        return lzma.LZMAFile(raw)  # type: ignore[return-value]  # noqa: SIM115
    if suffix == ".gz":
        return gzip.GzipFile(fileobj=raw)  # type: ignore[return-value]  # noqa: SIM115
    if suffix == ".bz2":
        return bz2.BZ2File(raw)  # type: ignore[return-value]  # noqa: SIM115
    return raw


def _decompress_into(source: Path, suffix: str, dest: Path, sha256: str, size: int, what: str) -> None:
    """Decompress ``source`` into ``dest`` (visible only when it has ``size`` bytes hashing to ``sha256``)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".part-", dir=dest.parent)
    try:
        h = hashlib.sha256()
        got = 0
        with os.fdopen(fd, "wb") as out, open(source, "rb") as raw, _reader(suffix, raw) as reader:
            try:
                while chunk := reader.read(CHUNK):
                    got += len(chunk)
                    if got > size:  # also stops a decompression bomb early
                        break
                    h.update(chunk)
                    out.write(chunk)
            except (OSError, EOFError, lzma.LZMAError) as err:
                raise DebianError(f"{what}: cannot decompress: {err}") from None
        if got != size or h.hexdigest() != sha256:
            raise DebianError(f"{what}: the decompressed index does not match the Release's sha256 and size")
        os.replace(tmp, dest)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


def _cache_root(cache: Path | None) -> Path:
    if cache is not None:
        return Path(cache)
    return cache_dir() / "debian"


def load_index(
    suite: str,
    architecture: str = "amd64",
    *,
    mirror: str | None = None,
    keyring: Path | None = None,
    component: str = "main",
    cache: Path | None = None,
    now: datetime | None = None,
) -> PackageIndex:
    """The verified package index of ``suite``/``architecture`` (``component`` only) at ``mirror``."""
    for value in (suite, architecture, component):
        if not _NAME_RE.match(value):
            raise DebianError(f"invalid Debian suite, architecture or component {value!r}")
    base = check_mirror(mirror or default_mirror(), DebianError)
    dists = f"{base}/dists/{suite}"
    url = f"{dists}/InRelease"
    signed = fetch_bytes(url, limit=_INRELEASE_LIMIT, what="InRelease", error=DebianError)
    text = verify_inrelease(signed, keyring or default_keyring(), url)
    release = parse_release(text, url)
    _check_release(release, suite, architecture, component, url, now or datetime.now(UTC))

    path = f"{component}/binary-{architecture}/Packages"
    if path not in release.sha256:
        raise DebianError(f"{url} lists no sha256 for {path}")
    plain_sha, plain_size = release.sha256[path]
    cached = _cache_root(cache) / "packages" / plain_sha
    what = f"{suite}/{path}"
    data = _read_verified(cached, plain_sha)
    if data is None:
        _download_packages(release, dists, path, cached, what)
        data = _read_verified(cached, plain_sha)
        if data is None:
            raise DebianError(f"{what}: the cached index {cached} changed while it was read")
    try:
        packages = data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise DebianError(f"{what} is not UTF-8: {err}") from None
    return parse_packages(packages, suite, architecture, plain_sha)


def _read_verified(path: Path, sha256: str) -> bytes | None:
    """The file's bytes if it exists and hashes to ``sha256`` (the very bytes that are then parsed:
    the cache is not trusted either); a corrupt entry is removed."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        path.unlink(missing_ok=True)
        return None
    return data


def _download_packages(release: Release, dists: str, path: str, dest: Path, what: str) -> None:
    plain_sha, plain_size = release.sha256[path]
    for suffix in (".xz", ".gz", ".bz2", ""):
        entry = release.sha256.get(path + suffix)
        if entry is None:
            continue
        sha, size = entry
        directory = path.rsplit("/", 1)[0]
        urls = [f"{dists}/{path}{suffix}"]
        if release.acquire_by_hash:
            urls.insert(0, f"{dists}/{directory}/by-hash/SHA256/{sha}")
        dest.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix=".download-", dir=dest.parent) as tmp:
            compressed = Path(tmp) / "Packages"
            for url in urls:
                try:
                    download(
                        url, compressed, sha256=sha, size=size, what=what + suffix,
                        error=DebianError, mismatch=DebianError,
                    )  # fmt: skip
                    break
                except FileNotFoundError:
                    continue
            else:
                continue  # none of the URLs exists: try the next compression
            _decompress_into(compressed, suffix, dest, plain_sha, plain_size, what)
            return
    raise DebianError(f"{what}: the mirror has none of the files the Release lists for it")
