"""A suite's ``Packages`` index: stanzas parsed strictly, and dependency relations.

Pure: text in, models out. Only the fields resolution and fetching need are kept. A stanza that is
not well-formed deb822, lacks a required field, or has a bad name, version, size, sha256 or
``Filename`` (absolute, ``..``, odd characters) is a :class:`~envgraph.errors.DebianError`: the text
is signed by the archive, so anything odd means it is not what the archive published. Relation
fields (``Depends``...) are kept as text and parsed when resolution visits the package, so a bad
relation in a package nobody asked for does not stop a lock.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Literal

import attrs

from envgraph.debian._version import parse_version, version_key
from envgraph.errors import DebianError

__all__ = [
    "DebPackage",
    "PackageIndex",
    "Relation",
    "check_filename",
    "check_package_name",
    "parse_packages",
    "parse_relations",
    "parse_stanza",
]

MultiArch = Literal["no", "same", "foreign", "allowed"]

# Debian policy 5.6.1: lowercase letters, digits, + - . ; at least two characters, starting alphanumeric.
_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
_SHA256_RE = re.compile(r"^[0-9a-f]{64}$")
# Pool paths: "pool/main/j/jq/jq_1.6-2.1_amd64.deb"; no empty, "." or ".." components.
_PART = r"[A-Za-z0-9+~_][A-Za-z0-9.+~_%-]*"
_FILENAME_RE = re.compile(rf"^(?:{_PART}/)*{_PART}\.deb$")
_RELATION_RE = re.compile(
    r"^([a-z0-9][a-z0-9+.-]+)(?::([a-z0-9-]+))?"
    r"(?:\s*\(\s*(<<|<=|=|>=|>>|<|>)\s*([A-Za-z0-9][^\s()]*)\s*\))?$"
)
_PROVIDES_RE = re.compile(r"^Provides:[ \t]*([^\n]*(?:\n[ \t][^\n]*)*)", re.M)
_NAME_PREFIX_RE = re.compile(r"[a-z0-9][a-z0-9+.-]+")
_ARCH_RE = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_FIELDS = {
    "Package",
    "Version",
    "Architecture",
    "Multi-Arch",
    "Essential",
    "Priority",
    "Depends",
    "Pre-Depends",
    "Provides",
    "Conflicts",
    "Breaks",
    "Filename",
    "Size",
    "SHA256",
}
_REQUIRED = ("Package", "Version", "Architecture", "Filename", "Size", "SHA256")


def check_package_name(name: str) -> str:
    if not _NAME_RE.match(name):
        raise DebianError(f"invalid Debian package name {name!r}")
    return name


def check_filename(filename: str) -> str:
    """A pool path that is safe to append to a mirror URL: relative, no ``..``, ends in ``.deb``."""
    if not _FILENAME_RE.match(filename):
        raise DebianError(f"invalid Debian pool path {filename!r}: not a plain relative path to a .deb")
    return filename


@attrs.frozen
class Relation:
    """One alternative of a dependency: ``name[:arch] [(op version)]``."""

    name: str
    arch: str | None = None  # "any", "native" or an architecture name; None when unqualified
    op: str | None = None
    version: str | None = None

    def __str__(self) -> str:
        qualified = f"{self.name}:{self.arch}" if self.arch else self.name
        return f"{qualified} ({self.op} {self.version})" if self.op else qualified


def parse_relations(text: str) -> tuple[tuple[Relation, ...], ...]:
    """``"a (>= 1) | b, c:any"`` -> ((a>=1, b), (c:any,)): an AND of ORs. Raises ValueError."""
    groups: list[tuple[Relation, ...]] = []
    for group in text.split(","):
        if not group.strip():
            if text.strip():
                raise ValueError(f"empty dependency in {text.strip()!r}")
            continue
        alternatives = []
        for alt in group.split("|"):
            m = _RELATION_RE.match(alt.strip())
            if m is None:
                raise ValueError(f"cannot parse the relation {alt.strip()!r}")
            name, arch, op, version = m.groups()
            if op is not None:
                op = {"<": "<=", ">": ">="}.get(op, op)
                parse_version(version)
            alternatives.append(Relation(name, arch, op, version))
        groups.append(tuple(alternatives))
    return tuple(groups)


def _field_text(value: str) -> str:
    """A folded field's value on one line (relation fields may be folded over lines)."""
    return " ".join(value.split()) if "\n" in value else value


@attrs.frozen
class DebPackage:
    """One binary package of the index (the fields envgraph uses)."""

    name: str
    version: str
    architecture: str
    filename: str
    size: int
    sha256: str
    multi_arch: MultiArch = "no"
    essential: bool = False
    priority: str = ""
    depends: str = ""
    pre_depends: str = ""
    provides: str = ""
    conflicts: str = ""
    breaks: str = ""

    def __str__(self) -> str:
        return f"{self.name} {self.version}"

    def relations(self, field: str) -> tuple[tuple[Relation, ...], ...]:
        """A relation field (``depends``, ``pre_depends``, ``provides``, ``conflicts``, ``breaks``), parsed."""
        try:
            return parse_relations(getattr(self, field))
        except ValueError as err:
            raise DebianError(f"Debian package {self}: malformed {field.replace('_', '-')}: {err}") from None

    def provided(self) -> tuple[Relation, ...]:
        """The virtual packages this one provides, each maybe with an ``=`` version."""
        out = []
        for group in self.relations("provides"):
            if len(group) != 1 or (group[0].op not in (None, "=")) or group[0].arch:
                raise DebianError(f"Debian package {self}: malformed Provides {self.provides!r}")
            out.append(group[0])
        return tuple(out)


def parse_stanza(block: str, where: str, wanted: Collection[str] = _FIELDS) -> dict[str, str]:
    """The ``wanted`` fields of one deb822 stanza (values stripped, continuation lines kept after a
    newline); raises DebianError on malformed deb822."""
    fields: dict[str, str] = {}
    current: str | None = None
    for number, line in enumerate(block.split("\n"), 1):
        if line[:1] in (" ", "\t"):
            if number == 1:
                raise DebianError(f"{where}: a continuation line starts the stanza")
            if current is not None:
                fields[current] += "\n" + line
            continue
        name, colon, value = line.partition(":")
        if not colon or not name or " " in name:
            raise DebianError(f"{where}: line {number} is not a 'Field: value' line")
        if name in wanted:
            if name in fields:
                raise DebianError(f"{where}: field {name} appears twice")
            fields[name] = value.strip()
            current = name
        else:
            current = None
    return fields


def _package(block: str, where: str) -> DebPackage:
    f = parse_stanza(block, where)
    missing = [name for name in _REQUIRED if not f.get(name)]
    if missing:
        raise DebianError(f"{where} has no {', '.join(missing)}")
    name = f["Package"]
    try:
        check_package_name(name)
        check_filename(f["Filename"])
    except DebianError as err:
        raise DebianError(f"{where}: {err}") from None
    try:
        parse_version(f["Version"])
    except ValueError as err:
        raise DebianError(f"{where}: {err}") from None
    if not f["Size"].isdigit() or not _SHA256_RE.match(f["SHA256"]) or not _ARCH_RE.match(f["Architecture"]):
        raise DebianError(f"{where}: malformed Size, SHA256 or Architecture")
    multi_arch = f.get("Multi-Arch", "no")
    if multi_arch not in ("no", "same", "foreign", "allowed"):
        raise DebianError(f"{where}: unknown Multi-Arch {multi_arch!r}")
    essential = f.get("Essential", "no")
    if essential not in ("yes", "no"):
        raise DebianError(f"{where}: Essential must be yes or no, not {essential!r}")
    return DebPackage(
        name=name,
        version=f["Version"],
        architecture=f["Architecture"],
        filename=f["Filename"],
        size=int(f["Size"]),
        sha256=f["SHA256"],
        multi_arch=multi_arch,  # type: ignore[arg-type]  # checked just above
        essential=essential == "yes",
        priority=f.get("Priority", ""),
        depends=_field_text(f.get("Depends", "")),
        pre_depends=_field_text(f.get("Pre-Depends", "")),
        provides=_field_text(f.get("Provides", "")),
        conflicts=_field_text(f.get("Conflicts", "")),
        breaks=_field_text(f.get("Breaks", "")),
    )


class PackageIndex:
    """The packages of one suite and architecture (plus ``all``), each name's versions newest first.

    Stanzas are split and named up front and parsed (and checked) when first asked for: a suite has
    about 60,000 packages and a lock looks at a few hundred; parsing every stanza would cost seconds.
    """

    def __init__(
        self, suite: str, architecture: str, stanzas: Mapping[str, list[str]], source_sha256: str = ""
    ) -> None:
        self.suite = suite
        self.architecture = architecture
        # sha256 of the Packages file as the signed Release lists it: names the archive state.
        self.source_sha256 = source_sha256
        self._stanzas = stanzas
        self._parsed: dict[str, tuple[DebPackage, ...]] = {}
        self._providers: dict[str, list[str]] | None = None  # virtual name -> provider names

    @property
    def label(self) -> str:
        return f"{self.suite}/{self.architecture}"

    def names(self) -> list[str]:
        return sorted(self._stanzas)

    def versions(self, name: str) -> tuple[DebPackage, ...]:
        """Every version of ``name`` for this architecture (or ``all``), newest first."""
        cached = self._parsed.get(name)
        if cached is not None:
            return cached
        pkgs: list[DebPackage] = []
        seen: set[tuple[str, str]] = set()
        for block in self._stanzas.get(name, ()):
            pkg = _package(block, f"Packages index, package {name!r}")
            if pkg.name != name:
                raise DebianError(f"Packages index: the stanza of {name!r} names {pkg.name!r}")
            if pkg.architecture not in (self.architecture, "all"):
                continue  # another architecture cannot be installed on this one
            if (pkg.version, pkg.architecture) in seen:
                raise DebianError(f"Packages index lists {pkg.name} {pkg.version} {pkg.architecture} twice")
            seen.add((pkg.version, pkg.architecture))
            pkgs.append(pkg)
        pkgs.sort(key=lambda p: version_key(p.version), reverse=True)
        self._parsed[name] = result = tuple(pkgs)
        return result

    def find(self, name: str, version: str) -> DebPackage | None:
        return next((p for p in self.versions(name) if p.version == version), None)

    def providers(self, name: str) -> list[tuple[DebPackage, Relation]]:
        """Packages whose Provides names ``name`` (with that Provides entry), sorted by package name."""
        if self._providers is None:
            # Only the Provides lines are read here; the few providers asked for are parsed in full.
            table: dict[str, set[str]] = {}
            for pkg_name, blocks in self._stanzas.items():
                for block in blocks:
                    if "\nProvides:" not in block:  # a plain substring test first: most have none
                        continue
                    m = _PROVIDES_RE.search(block)
                    if m is not None:
                        for part in m.group(1).split(","):
                            virtual = _NAME_PREFIX_RE.match(part.strip())
                            if virtual is not None:
                                table.setdefault(virtual.group(0), set()).add(pkg_name)
            self._providers = {v: sorted(names) for v, names in table.items()}
        out = []
        for pkg_name in self._providers.get(name, ()):
            for pkg in self.versions(pkg_name):
                out += [(pkg, rel) for rel in pkg.provided() if rel.name == name]
        return out


_PACKAGE_PREFIX = "Package: "


def parse_packages(text: str, suite: str, architecture: str, source_sha256: str = "") -> PackageIndex:
    """Split a ``Packages`` file into stanzas by package name (parsed later, see :class:`PackageIndex`)."""
    if "\r" in text:
        raise DebianError("Packages index: carriage returns are not allowed")
    if re.search(r"\n[ \t]+(?=\n)", text):  # deb822: whitespace-only lines separate stanzas too
        text = re.sub(r"\n[ \t]+(?=\n)", "\n", text)
    stanzas: dict[str, list[str]] = {}
    for raw in text.split("\n\n"):
        block = raw.strip("\n")
        if not block:
            continue
        # dak writes Package first; anything else takes the slow, general path.
        if block.startswith(_PACKAGE_PREFIX):
            name = block[len(_PACKAGE_PREFIX) : block.find("\n") if "\n" in block else None].strip()
        else:
            name = parse_stanza(block, "Packages index").get("Package", "")
        if not name:
            raise DebianError(f"Packages index: a stanza has no Package field: {block[:60]!r}")
        check_package_name(name)
        stanzas.setdefault(name, []).append(block)
    return PackageIndex(suite, architecture, stanzas, source_sha256)
