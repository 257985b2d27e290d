"""Parsing the Packages index and dependency relations (pure, offline)."""

from __future__ import annotations

import pytest

from envgraph.debian._packages import (
    Relation,
    check_filename,
    parse_packages,
    parse_relations,
    parse_stanza,
)
from envgraph.errors import DebianError
from tests.support.debian import SHA, stanza


def test_relations_parse_alternatives_versions_and_qualifiers() -> None:
    groups = parse_relations(
        "libc6 (>= 2.34), python3:any | python3-minimal (<< 3.12~), foo:native,bar (=1.0)"
    )
    assert groups == (
        (Relation("libc6", None, ">=", "2.34"),),
        (Relation("python3", "any"), Relation("python3-minimal", None, "<<", "3.12~")),
        (Relation("foo", "native"),),
        (Relation("bar", None, "=", "1.0"),),
    )
    assert str(groups[1][1]) == "python3-minimal (<< 3.12~)"
    assert str(groups[1][0]) == "python3:any"
    # dpkg still reads the obsolete < and > as <= and >=
    assert parse_relations("aa (< 2), bb (> 1)") == (
        (Relation("aa", None, "<=", "2"),),
        (Relation("bb", None, ">=", "1"),),
    )
    assert parse_relations("") == ()


@pytest.mark.parametrize(
    "bad",
    ["aa,,bb", "AA", "aa (>= )", "aa (~= 1)", "aa [amd64]", "aa <!nocheck>", "aa | ", "aa (>= 1.0_x)", "a"],
)
def test_malformed_relations_are_refused(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_relations(bad)


def test_index_parses_lazily_sorts_versions_and_skips_other_architectures() -> None:
    text = "\n".join(
        [
            stanza("foo", "1.0", Depends="libc6 (>= 2.34),\n libbar"),
            stanza("foo", "1:0.5"),
            stanza("foo", "2.0~rc1"),
            stanza("arm-only", arch="arm64"),
            stanza("data", arch="all", Multi_Arch="foreign", Essential="yes", Priority="required"),
        ]
    )
    index = parse_packages(text, "test", "amd64", "cd" * 32)
    assert index.label == "test/amd64"
    assert index.source_sha256 == "cd" * 32
    assert [p.version for p in index.versions("foo")] == ["1:0.5", "2.0~rc1", "1.0"]
    oldest = index.find("foo", "1.0")
    assert oldest is not None
    assert oldest.depends == "libc6 (>= 2.34), libbar"  # folded over two lines in the index
    assert oldest.filename == "pool/main/f/foo_1.0_amd64.deb"
    assert (oldest.size, oldest.sha256, oldest.multi_arch) == (100, SHA, "no")
    assert index.versions("arm-only") == ()
    (data,) = index.versions("data")
    assert (data.architecture, data.multi_arch, data.essential, data.priority) == (
        "all",
        "foreign",
        True,
        "required",
    )
    assert index.versions("missing") == ()


def test_providers_with_and_without_versions() -> None:
    text = "\n".join(
        [
            stanza("mawk", Provides="awk"),
            stanza("gawk", Provides="awk, gawk-doc (= 5.2)"),
            stanza("plain"),
        ]
    )
    index = parse_packages(text, "test", "amd64")
    assert [(p.name, str(r)) for p, r in index.providers("awk")] == [("gawk", "awk"), ("mawk", "awk")]
    assert [(p.name, r.version) for p, r in index.providers("gawk-doc")] == [("gawk", "5.2")]
    assert index.providers("plain") == []


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (stanza("foo", SHA256="xyz"), "malformed Size, SHA256 or Architecture"),
        (stanza("foo", Size="-1"), "malformed Size"),
        (stanza("foo", Filename="../../etc/passwd.deb"), "invalid Debian pool path"),
        (stanza("foo", Filename="/pool/main/f/foo.deb"), "invalid Debian pool path"),
        (stanza("foo", Filename="pool/main/f/foo.tar"), "invalid Debian pool path"),
        (stanza("foo", "1.0 beta", Filename="pool/f/foo.deb"), "invalid Debian version"),
        (stanza("foo", Multi_Arch="sometimes"), "unknown Multi-Arch"),
        (stanza("foo", Essential="maybe"), "Essential must be yes or no"),
        (stanza("foo").replace("SHA256: " + SHA + "\n", ""), "has no SHA256"),
        (stanza("foo") + "Depends: a\n", "field Depends appears twice"),
        (
            stanza("foo").replace("Description", "Description without colon\nX"),
            "is not a 'Field: value' line",
        ),
    ],
)
def test_malformed_stanzas_are_one_line_errors(text: str, message: str) -> None:
    if "Depends appears twice" in message:
        text = text.replace("Description", "Depends: b\nDescription")
    index = parse_packages(text, "test", "amd64")
    with pytest.raises(DebianError, match=message) as info:
        index.versions("foo")
    assert "\n" not in str(info.value)
    assert "'foo'" in str(info.value)


def test_structural_problems_fail_at_parse_time() -> None:
    with pytest.raises(DebianError, match="no Package field"):
        parse_packages("Version: 1\nFilename: x.deb\n", "test", "amd64")
    with pytest.raises(DebianError, match="invalid Debian package name"):
        parse_packages(stanza("Foo_Bar"), "test", "amd64")
    with pytest.raises(DebianError, match="carriage returns"):
        parse_packages(stanza("foo").replace("\n", "\r\n"), "test", "amd64")
    with pytest.raises(DebianError, match="continuation line starts"):
        parse_stanza(" x\nPackage: foo", "here")


def test_duplicate_entries_and_renamed_stanzas_are_refused() -> None:
    index = parse_packages(stanza("foo") + "\n" + stanza("foo"), "test", "amd64")
    with pytest.raises(DebianError, match="lists foo 1.0 amd64 twice"):
        index.versions("foo")


def test_whitespace_only_lines_separate_stanzas() -> None:
    index = parse_packages(stanza("foo") + "  \n" + stanza("bar"), "test", "amd64")
    assert index.names() == ["bar", "foo"]


def test_bad_relations_fail_only_when_used() -> None:
    index = parse_packages(stanza("foo", Depends="libc6 (>= )") + "\n" + stanza("bar"), "test", "amd64")
    (bar,) = index.versions("bar")
    assert bar.relations("depends") == ()
    (foo,) = index.versions("foo")
    with pytest.raises(
        DebianError,
        match="^Debian package foo 1.0: malformed depends: cannot parse the relation 'libc6 \\(>= \\)'$",
    ):
        foo.relations("depends")
    odd = parse_packages(stanza("odd", Provides="aa | bb"), "test", "amd64")
    (pkg,) = odd.versions("odd")
    with pytest.raises(DebianError, match="malformed Provides"):
        pkg.provided()


@pytest.mark.parametrize(
    "good", ["pool/main/j/jq/jq_1.6-2.1+deb12u2_amd64.deb", "a.deb", "pool/x/y%3a1~b_all.deb"]
)
def test_pool_paths_accepted(good: str) -> None:
    assert check_filename(good) == good


@pytest.mark.parametrize(
    "bad", ["", "pool/../x.deb", "./x.deb", "pool//x.deb", "pool/x.deb/", "pool/x y.deb", "pool/.x.deb"]
)
def test_pool_paths_refused(bad: str) -> None:
    with pytest.raises(DebianError):
        check_filename(bad)
