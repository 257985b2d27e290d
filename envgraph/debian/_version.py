"""Debian version numbers and dpkg's comparison of them (Debian policy 5.6.12, dpkg's ``verrevcmp``).

``[epoch:]upstream[-revision]``: the epoch is compared as a number, then upstream and revision with
dpkg's algorithm: alternating non-digit runs (letters sort before other characters, ``~`` before
everything, even the end of the string) and digit runs (compared as numbers). A missing revision
equals ``0``. Tested against ``dpkg --compare-versions``.
"""

from __future__ import annotations

import functools
import re
from typing import Any

import attrs

__all__ = ["DebVersion", "compare_versions", "parse_version", "version_key", "satisfies"]

_EPOCH_RE = re.compile(r"^[0-9]+$")
_UPSTREAM_RE = re.compile(r"^[A-Za-z0-9.+~:-]+$")
_REVISION_RE = re.compile(r"^[A-Za-z0-9.+~]+$")

# Relation operators; dpkg still reads the obsolete "<" and ">" as "<=" and ">=".
OPERATORS = ("<<", "<=", "=", ">=", ">>")


@attrs.frozen
class DebVersion:
    epoch: int
    upstream: str
    revision: str

    def __str__(self) -> str:
        epoch = f"{self.epoch}:" if self.epoch else ""
        revision = f"-{self.revision}" if self.revision else ""
        return f"{epoch}{self.upstream}{revision}"


@functools.lru_cache(maxsize=65536)
def parse_version(text: str) -> DebVersion:
    """Split and validate like dpkg's ``parseversion``; raises ValueError with the reason."""
    if not text or text != text.strip():
        raise ValueError(f"invalid Debian version {text!r}: empty or surrounded by spaces")
    epoch_s, colon, rest = text.partition(":")
    if not colon:
        epoch_s, rest = "0", text
    if not _EPOCH_RE.match(epoch_s):
        raise ValueError(f"invalid Debian version {text!r}: the epoch is not a number")
    upstream, hyphen, revision = rest.rpartition("-")
    if not hyphen:
        upstream, revision = rest, ""
    elif not revision:
        raise ValueError(f"invalid Debian version {text!r}: empty revision")
    if not upstream or not _UPSTREAM_RE.match(upstream):
        raise ValueError(f"invalid Debian version {text!r}: bad upstream version")
    if revision and not _REVISION_RE.match(revision):
        raise ValueError(f"invalid Debian version {text!r}: bad revision")
    return DebVersion(int(epoch_s), upstream, revision)


def _order(c: str) -> int:
    """dpkg's ``order()`` for one non-digit character (ASCII only: versions are validated)."""
    if c == "~":
        return -1
    if ("a" <= c <= "z") or ("A" <= c <= "Z"):
        return ord(c)
    return ord(c) + 256


def _isdigit(c: str) -> bool:
    return "0" <= c <= "9"


def _verrevcmp(a: str, b: str) -> int:
    i = j = 0
    la, lb = len(a), len(b)
    while i < la or j < lb:
        first_diff = 0
        while (i < la and not _isdigit(a[i])) or (j < lb and not _isdigit(b[j])):
            ac = 0 if i >= la or _isdigit(a[i]) else _order(a[i])
            bc = 0 if j >= lb or _isdigit(b[j]) else _order(b[j])
            if ac != bc:
                return ac - bc
            i += 1
            j += 1
        while i < la and a[i] == "0":
            i += 1
        while j < lb and b[j] == "0":
            j += 1
        while i < la and _isdigit(a[i]) and j < lb and _isdigit(b[j]):
            if not first_diff:
                first_diff = ord(a[i]) - ord(b[j])
            i += 1
            j += 1
        if i < la and _isdigit(a[i]):
            return 1
        if j < lb and _isdigit(b[j]):
            return -1
        if first_diff:
            return first_diff
    return 0


def _sign(n: int) -> int:
    return (n > 0) - (n < 0)


def compare_versions(a: str, b: str) -> int:
    """-1, 0 or 1 as ``a`` sorts before, equal to or after ``b``. Raises ValueError for invalid versions."""
    va, vb = parse_version(a), parse_version(b)
    if va.epoch != vb.epoch:
        return _sign(va.epoch - vb.epoch)
    return _sign(_verrevcmp(va.upstream, vb.upstream)) or _sign(_verrevcmp(va.revision, vb.revision))


version_key: Any = functools.cmp_to_key(compare_versions)
"""``sorted(versions, key=version_key)`` sorts version strings as dpkg does."""


def satisfies(version: str, op: str, wanted: str) -> bool:
    """Whether ``version`` meets the relation ``(op wanted)``; op is one of :data:`OPERATORS`."""
    c = compare_versions(version, wanted)
    if op == "<<":
        return c < 0
    if op == "<=":
        return c <= 0
    if op == "=":
        return c == 0
    if op == ">=":
        return c >= 0
    if op == ">>":
        return c > 0
    raise ValueError(f"unknown version relation {op!r}")
