"""Hypothesis strategies for valid lockfile models (the strict reader accepts every value they make)."""

from __future__ import annotations

from hypothesis import strategies as st

from envgraph.lock._model import FilePin, LockedPackage, Lockfile, ParentRef, Resolver, Wheel

__all__ = ["names", "hexes", "digests", "texts", "packages", "lockfiles", "env_names"]

# Normalized package names (PEP 503): no leading, trailing or doubled '-'.
names = st.from_regex(r"[a-z][a-z0-9]{0,5}(-[a-z0-9]{1,4}){0,2}", fullmatch=True)
env_names = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,12}", fullmatch=True)
hexes = st.from_regex(r"[0-9a-f]{64}", fullmatch=True)
digests = hexes.map(lambda h: "sha256:" + h)
# Any text a lockfile may hold where free text is allowed: no NUL, no lone surrogates (not valid UTF-8).
texts = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=20)
var_names = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00="), min_size=1, max_size=20
)
versions = st.from_regex(r"[0-9]{1,3}\.[0-9]{1,3}", fullmatch=True)


@st.composite
def packages(draw: st.DrawFn) -> LockedPackage:
    name = draw(names)
    version = draw(versions)
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
    wheel = Wheel(filename, draw(hexes), draw(st.integers(0, 2**40)), url)
    return LockedPackage(name=name, version=version, wheel=wheel)


image_paths = st.from_regex(r"(/[a-z0-9_.-]{1,8}){1,3}", fullmatch=True).filter(
    lambda p: ".." not in p.split("/")
)
project_paths = st.from_regex(r"[a-z0-9_-]{1,8}(/[a-z0-9_-]{1,8}){0,2}/?", fullmatch=True)


@st.composite
def lockfiles(draw: st.DrawFn) -> Lockfile:
    has_parent = draw(st.booleans())
    return Lockfile(
        version=1,
        env=draw(env_names),
        python="3.11",
        platform=draw(st.sampled_from(["linux/amd64", "linux/arm64"])),
        base=None if has_parent else draw(env_names),
        parent=ParentRef(draw(env_names), draw(digests)) if has_parent else None,
        requirements=tuple(draw(st.lists(texts, max_size=3))),
        packages=tuple(draw(st.lists(packages(), max_size=4, unique_by=lambda p: p.name))),
        environment=draw(st.dictionaries(var_names, texts, max_size=3)),
        files=tuple(
            draw(
                st.lists(st.builds(FilePin, src=project_paths, dest=image_paths, sha256=digests), max_size=2)
            )
        ),
        workdir=draw(st.none() | image_paths),
        entrypoint=draw(st.none() | st.lists(texts, max_size=3).map(tuple)),
        cmd=draw(st.none() | st.lists(texts, max_size=3).map(tuple)),
        merged=tuple(draw(st.lists(names, max_size=3))),
        resolver=Resolver("25.2", "7.5.1"),
        inputs=draw(digests),
        drv=draw(digests),
    )
