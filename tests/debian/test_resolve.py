"""The resolver over synthetic indexes (pure, offline)."""

from __future__ import annotations

import pytest

from envgraph.debian._packages import PackageIndex, parse_packages
from envgraph.debian._resolve import DebPin, resolve
from envgraph.errors import DebianError
from tests.support.debian import SHA, stanza


def index(*stanzas: str) -> PackageIndex:
    return parse_packages("\n".join(stanzas), "test", "amd64")


def names(pins: list[DebPin]) -> list[str]:
    return [p.name for p in pins]


BASE = {"libc6": "2.36-9", "mawk": "1.3.4-3", "dpkg": "1.21.22"}
BASE_STANZAS = (
    stanza("libc6", "2.36-9", Multi_Arch="same"),
    stanza("mawk", "1.3.4-3", Provides="awk", Multi_Arch="foreign"),
    stanza("dpkg", "1.21.22", Breaks="oldtool (<< 2)"),
)


def test_closure_is_sorted_and_pins_carry_what_a_lock_needs() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("jq", "1.6-2", Depends="libjq1 (= 1.6-2), libc6 (>= 2.34)"),
        stanza("libjq1", "1.6-2", Depends="libonig5 (>= 6.8), libc6 (>= 2.36)", Multi_Arch="same"),
        stanza("libonig5", "6.9.8-1", Pre_Depends="libc6 (>= 2.14)", Recommends="never-followed"),
    )
    pins = resolve(["jq"], idx, BASE)
    assert names(pins) == ["jq", "libjq1", "libonig5"]
    assert pins[0] == DebPin("jq", "1.6-2", "amd64", SHA, 100, "pool/main/j/jq_1.6-2_amd64.deb")
    assert str(pins[0]) == "jq 1.6-2"


def test_base_packages_are_never_added_again() -> None:
    idx = index(*BASE_STANZAS, stanza("libc6", "2.37-1"), stanza("tool", Depends="libc6, mawk"))
    assert names(resolve(["tool", "libc6", "awk"], idx, BASE)) == ["tool"]


def test_a_base_version_that_is_too_old_is_named() -> None:
    idx = index(*BASE_STANZAS, stanza("libc6", "2.38-1"), stanza("new", Depends="libc6 (>= 2.38)"))
    with pytest.raises(DebianError) as info:
        resolve(["new"], idx, BASE)
    assert str(info.value) == (
        "Debian package new needs libc6 (>= 2.38), which test/amd64 does not provide "
        "(the base has libc6 2.36-9)"
    )


def test_unmet_dependency_names_the_chain() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("foo", Depends="baz"),
        stanza("baz", Depends="libbar (>= 2.0)"),
        stanza("libbar", "1.0"),
    )
    with pytest.raises(DebianError) as info:
        resolve(["foo"], idx, BASE)
    assert str(info.value) == (
        "Debian package foo needs libbar (>= 2.0) (via foo -> baz), which test/amd64 does not provide "
        "(test/amd64 has libbar 1.0)"
    )
    idx = index(*BASE_STANZAS, stanza("foo", Depends="ghost | phantom (>= 1)"))
    with pytest.raises(
        DebianError,
        match=r"^Debian package foo needs ghost \| phantom \(>= 1\), which test/amd64 does not provide$",
    ):
        resolve(["foo"], idx, BASE)


def test_unknown_requests() -> None:
    idx = index(*BASE_STANZAS)
    with pytest.raises(DebianError, match="^Debian package nothere is not in test/amd64$"):
        resolve(["nothere"], idx, BASE)
    with pytest.raises(DebianError, match="invalid Debian package request 'Bad Name'"):
        resolve(["Bad Name"], idx, BASE)


def test_alternatives_prefer_what_is_there_then_the_first_that_can_be_met() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("gawk", Provides="awk"),
        stanza("uses-awk", Depends="gawk | awk"),  # mawk in the base provides awk: nothing added
        stanza("first-ok", Depends="missing | second | third"),
        stanza("second"),
        stanza("third"),
        stanza("likes-third", Depends="second | third"),
    )
    assert names(resolve(["uses-awk"], idx, BASE)) == ["uses-awk"]
    assert names(resolve(["first-ok"], idx, BASE)) == ["first-ok", "second"]
    # third already chosen (requests go in sorted order: "first-ok" < "likes-third" < "third")
    assert names(resolve(["third", "likes-third"], idx, BASE)) == ["likes-third", "third"]


def test_versions_pick_the_newest_that_fits() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("lib", "1.0"),
        stanza("lib", "2.0"),
        stanza("lib", "3.0~rc1"),
        stanza("wants-old", Depends="lib (<< 2)"),
        stanza("wants-any", Depends="lib"),
    )
    assert [str(p) for p in resolve(["wants-old"], idx, BASE)] == ["lib 1.0", "wants-old 1.0"]
    assert [str(p) for p in resolve(["wants-any"], idx, BASE)] == ["lib 3.0~rc1", "wants-any 1.0"]
    assert [str(p) for p in resolve(["lib=2.0"], idx, BASE)] == ["lib 2.0"]


def test_one_version_per_package() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("lib", "1.0"),
        stanza("lib", "2.0"),
        stanza("aa", Depends="lib (>= 2)"),
        stanza("bb", Depends="lib (<< 2)"),
    )
    with pytest.raises(
        DebianError, match=r"^Debian package bb needs lib \(<< 2\), .*\(the selection has lib 2.0\)$"
    ):
        resolve(["aa", "bb"], idx, BASE)


def test_virtual_packages() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("exim", Provides="mail-transport-agent", Priority="extra"),
        stanza("postfix", Provides="mail-transport-agent", Priority="optional"),
        stanza("zz-mta", Provides="mail-transport-agent", Priority="important"),
        stanza("mailer", Depends="mail-transport-agent"),
        stanza("newlib", Provides="libapi (= 3.0)"),
        stanza("oldlib", Provides="libapi"),
        stanza("needs-api", Depends="libapi (>= 2)"),
        stanza("single", Provides="only-one"),
        stanza("wants-one", Depends="only-one"),
    )
    # by Priority, then name
    assert names(resolve(["mailer"], idx, BASE)) == ["mailer", "zz-mta"]
    # a versioned dependency needs a versioned Provides
    assert names(resolve(["needs-api"], idx, BASE)) == ["needs-api", "newlib"]
    assert names(resolve(["wants-one"], idx, BASE)) == ["single", "wants-one"]
    # asked for directly, a virtual package with several providers is ambiguous (as in apt) ...
    with pytest.raises(DebianError, match="is virtual and provided by zz-mta, postfix, exim: request one"):
        resolve(["mail-transport-agent"], idx, BASE)
    # ... unless one provider is there already
    assert resolve(["mail-transport-agent"], idx, {**BASE, "postfix": "1.0"}) == []
    assert names(resolve(["only-one"], idx, BASE)) == ["single"]


def test_architecture_qualifiers() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("python3", Multi_Arch="allowed"),
        stanza("perl-base", Multi_Arch="foreign"),
        stanza("via-any", Depends="python3:any"),
        stanza("bad-any", Depends="perl-base:any"),
        stanza("native", Depends="perl-base:native"),
        stanza("foreign", Depends="perl-base:arm64"),
        stanza("arch-all", arch="all", Depends="perl-base"),
        stanza("other-arch", arch="arm64"),
    )
    assert names(resolve(["via-any"], idx, BASE)) == ["python3", "via-any"]
    assert names(resolve(["native"], idx, BASE)) == ["native", "perl-base"]
    assert names(resolve(["arch-all"], idx, BASE)) == ["arch-all", "perl-base"]
    with pytest.raises(DebianError, match=r"needs perl-base:any, which test/amd64 does not provide"):
        resolve(["bad-any"], idx, BASE)
    with pytest.raises(DebianError, match=r"needs perl-base:arm64"):
        resolve(["foreign"], idx, BASE)
    with pytest.raises(DebianError, match="other-arch is not in test/amd64"):
        resolve(["other-arch"], idx, BASE)


def test_conflicts_and_breaks() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("hates-mawk", Conflicts="mawk"),
        stanza("hates-awk", Conflicts="awk"),
        stanza("self", Provides="thing", Conflicts="thing"),
        stanza("oldtool", "1.0"),
        stanza("parent", Depends="child, sibling"),
        stanza("child", Breaks="sibling (<< 3)"),
        stanza("sibling", "2.0"),
    )
    with pytest.raises(DebianError) as info:
        resolve(["hates-mawk"], idx, BASE)
    assert (
        str(info.value)
        == "Debian package hates-mawk 1.0 conflicts with mawk, and mawk 1.3.4-3 is in the base"
    )
    with pytest.raises(DebianError, match="conflicts with awk, and mawk 1.3.4-3 is in the base"):
        resolve(["hates-awk"], idx, BASE)
    assert names(resolve(["self"], idx, BASE)) == ["self"]
    # the base's own Breaks count too
    with pytest.raises(
        DebianError,
        match=r"^Debian package dpkg 1.21.22 breaks oldtool \(<< 2\), and oldtool 1.0 is also needed$",
    ):
        resolve(["oldtool"], idx, BASE)
    with pytest.raises(DebianError) as info:
        resolve(["parent"], idx, BASE)
    assert str(info.value) == (
        "Debian package child 1.0 (via parent -> child) breaks sibling (<< 3), "
        "and sibling 2.0 is also needed (via parent -> sibling)"
    )


def test_result_does_not_depend_on_request_order_or_duplicates() -> None:
    idx = index(
        *BASE_STANZAS,
        stanza("aa", Depends="xx | yy"),
        stanza("bb", Depends="yy"),
        stanza("xx"),
        stanza("yy"),
    )
    first = resolve(["bb", "aa"], idx, BASE)
    assert first == resolve(["aa", "bb", "aa"], idx, BASE)
    # Dependencies without alternatives are followed first, so bb's yy also meets aa's "xx | yy".
    assert names(first) == ["aa", "bb", "yy"]


def test_base_packages_missing_from_the_index_still_count() -> None:
    idx = index(stanza("tool", Depends="oldlib (>= 1), python3:any"))
    assert names(resolve(["tool"], idx, {"oldlib": "1.5", "python3": "3.11"})) == ["tool"]


def test_malformed_relation_of_a_visited_package() -> None:
    idx = index(*BASE_STANZAS, stanza("broken", Depends="libc6 (>= )"))
    with pytest.raises(DebianError, match="^Debian package broken 1.0: malformed depends"):
        resolve(["broken"], idx, BASE)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("name", "Bad_Name", "invalid Debian package name"),
        ("version", "1.0 beta", "invalid Debian version"),
        ("sha256", "../../x", "malformed sha256"),
        ("size", -1, "malformed sha256, size"),
        ("architecture", "amd64/../x", "malformed sha256, size or architecture"),
        ("filename", "/etc/passwd.deb", "invalid Debian pool path"),
    ],
)
def test_pins_read_back_from_a_lockfile_are_checked(field: str, value: object, message: str) -> None:
    fields: dict[str, object] = dict(
        name="jq", version="1.6-2", architecture="amd64", sha256=SHA, size=1, filename="pool/j/jq.deb"
    )
    DebPin(**fields)  # type: ignore[arg-type]
    fields[field] = value
    with pytest.raises(DebianError, match=message):
        DebPin(**fields)  # type: ignore[arg-type]
