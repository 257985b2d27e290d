"""Hypothesis strategies for valid lockfile models (the strict reader accepts every value they make).

Built from ``text``/``binary``/``sampled_from`` rather than ``from_regex`` where it matters: the same values,
generated many times faster (regex generation was most of these tests' time).
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from envgraph.debian._resolve import DebPin
from envgraph.lock._model import (
    AptLock,
    BaseRef,
    BuildDep,
    BuildPin,
    FilePin,
    LockedPackage,
    Lockfile,
    ParentRef,
    Resolver,
    Source,
    Wheel,
)

__all__ = ["names", "hexes", "digests", "texts", "versions", "packages", "lockfiles", "env_names"]

_LOWER_DIGITS = string.ascii_lowercase + string.digits
_part = st.text(_LOWER_DIGITS, min_size=1, max_size=4)
# Normalized package names (PEP 503): [a-z][a-z0-9]{0,5}(-[a-z0-9]{1,4}){0,2}, no leading, trailing or doubled '-'.
names = st.builds(
    lambda first, rest, parts: first + rest + "".join("-" + p for p in parts),
    st.sampled_from(string.ascii_lowercase),
    st.text(_LOWER_DIGITS, max_size=5),
    st.lists(_part, max_size=2),
)
# [A-Za-z0-9][A-Za-z0-9_.-]{0,12}
env_names = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_letters + string.digits),
    st.text(string.ascii_letters + string.digits + "_.-", max_size=12),
)
# [0-9a-f]{64}
hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)
digests = hexes.map(lambda h: "sha256:" + h)
# Any text a lockfile may hold where free text is allowed: no NUL, no lone surrogates (not valid UTF-8).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
var_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00="), min_size=1, max_size=20
)
# [0-9]{1,3}\.[0-9]{1,3}
_number = st.text(string.digits, min_size=1, max_size=3)
versions = st.builds(lambda a, b: f"{a}.{b}", _number, _number)


@st.composite
def _wheel(draw: st.DrawFn, name: str, version: str) -> Wheel:
    filename = f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    url = draw(
        st.sampled_from(
            [
                f"https://files.example.org/packages/{filename}",
                f"wheels/{filename}",
                f"../../wheels/{filename}",
            ]
        )
    )
    return Wheel(filename, draw(hexes), draw(st.integers(0, 2**40)), url)


@st.composite
def _source(draw: st.DrawFn, name: str, version: str) -> Source:
    kind = draw(st.sampled_from(["sdist", "directory", "git"]))
    if kind == "sdist":
        filename = f"{name}-{version}.tar.gz"
        return Source("sdist", f"https://files.example.org/{filename}", draw(hexes), filename,
                      draw(st.integers(0, 2**40)))  # fmt: skip
    if kind == "directory":
        return Source("directory", f"src/{name}", "sha256:" + draw(hexes))
    commit = draw(st.binary(min_size=20, max_size=20).map(bytes.hex))
    sub = draw(st.none() | st.just(f"pkgs/{name}"))
    return Source("git", f"https://git.example.org/{name}.git", "sha256:" + draw(hexes), commit=commit,
                  subdirectory=sub)  # fmt: skip


@st.composite
def _build(draw: st.DrawFn) -> BuildPin:
    deps = draw(st.lists(st.tuples(names, versions), max_size=2, unique_by=lambda d: d[0]))
    packages_ = tuple(BuildDep(n, v, draw(_wheel(n, v))) for n, v in sorted(deps))
    backend = draw(
        st.sampled_from(["setuptools.build_meta", "setuptools.build_meta:__legacy__", "flit_core.buildapi"])
    )
    return BuildPin(backend, tuple(f"{n}>={v}" for n, v in sorted(deps)), packages_,
                    draw(st.sampled_from([(), (".",), ("backend",)])))  # fmt: skip


@st.composite
def packages(draw: st.DrawFn, built: bool = True) -> LockedPackage:
    name = draw(names)
    version = draw(versions)
    if built and draw(st.integers(0, 4)) == 0:  # now and then one without a wheel for the target
        return LockedPackage(
            name=name, version=version, source=draw(_source(name, version)), build=draw(_build())
        )
    return LockedPackage(name=name, version=version, wheel=draw(_wheel(name, version)))


_deb_names = st.builds(
    str.__add__, st.sampled_from(_LOWER_DIGITS), st.text(_LOWER_DIGITS + "+.-", min_size=1, max_size=8)
)


@st.composite
def _deb_pin(draw: st.DrawFn, name: str) -> DebPin:
    version = draw(st.sampled_from(["1.6-2.1", "2:1.0+dfsg-1", "12.2.0-14", "0.1~rc1-3"]))
    arch = draw(st.sampled_from(["amd64", "all"]))
    return DebPin(name, version, arch, draw(hexes), draw(st.integers(0, 2**32)),
                  f"pool/main/{name[0]}/{name}/{name}_{version.split(':')[-1]}_{arch}.deb")  # fmt: skip


@st.composite
def _apt(draw: st.DrawFn) -> AptLock:
    pin_names = sorted(draw(st.lists(_deb_names, min_size=1, max_size=3, unique=True)))
    return AptLock(tuple(pin_names[:1]), draw(digests), tuple(draw(_deb_pin(n)) for n in pin_names))


image_paths = (
    st.lists(st.text(_LOWER_DIGITS + "_.-", min_size=1, max_size=8), min_size=1, max_size=3)
    .map(lambda parts: "/" + "/".join(parts))
    .filter(lambda p: ".." not in p.split("/"))
)
project_paths = st.builds(
    lambda parts, slash: "/".join(parts) + slash,
    st.lists(st.text(_LOWER_DIGITS + "_-", min_size=1, max_size=8), min_size=1, max_size=3),
    st.sampled_from(["", "/"]),
)


@st.composite
def lockfiles(draw: st.DrawFn) -> Lockfile:
    has_parent = draw(st.booleans())
    return Lockfile(
        version=3,
        env=draw(env_names),
        python="3.11",
        platform=draw(st.sampled_from(["linux/amd64", "linux/arm64"])),
        bytecode=draw(st.booleans()),
        base=None if has_parent else BaseRef(draw(env_names), draw(digests)),
        parent=ParentRef(draw(env_names), draw(digests)) if has_parent else None,
        requirements=tuple(draw(st.lists(texts, max_size=3))),
        packages=tuple(draw(st.lists(packages(), max_size=4, unique_by=lambda p: p.name))),
        environment=draw(st.dictionaries(var_names, texts, max_size=3)),
        files=tuple(draw(st.lists(st.builds(FilePin, src=project_paths, dest=image_paths), max_size=2))),
        workdir=draw(st.none() | image_paths),
        entrypoint=draw(st.none() | st.lists(texts, max_size=3).map(tuple)),
        cmd=draw(st.none() | st.lists(texts, max_size=3).map(tuple)),
        merged=tuple(draw(st.lists(names | _deb_names.map(lambda n: "deb:" + n), max_size=3))),
        resolver=Resolver("25.2", "7.5.1"),
        inputs=draw(digests),
        drv=draw(digests),
        constraints=tuple(draw(st.lists(texts, max_size=2))),
        apt=draw(st.none() | _apt()),
        build_apt=draw(st.none() | _apt()),
    )
