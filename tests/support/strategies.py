"""Hypothesis strategies for lockfile models, shared by the lockfile and identity tests.

Built from ``text``/``binary`` rather than ``from_regex``: the same values, generated many times faster
(regex generation was most of these tests' time).
"""

from __future__ import annotations

import string

from hypothesis import strategies as st

from envgraph.lock._model import FilePin, LockedPackage, Lockfile, ParentRef, Resolver, Wheel

__all__ = ["names", "hexes", "texts", "versions", "packages", "lockfiles"]

# [a-z][a-z0-9-]{0,10}
names = st.builds(
    str.__add__,
    st.sampled_from(string.ascii_lowercase),
    st.text(string.ascii_lowercase + string.digits + "-", max_size=10),
)
# [0-9a-f]{64}
hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)
texts = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)
# [0-9]{1,3}\.[0-9]{1,3}
_number = st.text(string.digits, min_size=1, max_size=3)
versions = st.builds(lambda a, b: f"{a}.{b}", _number, _number)

packages = st.builds(
    LockedPackage,
    name=names,
    version=versions,
    wheel=st.builds(Wheel, filename=texts, sha256=hexes, size=st.integers(0, 2**40), url=texts),
)
lockfiles = st.builds(
    Lockfile,
    version=st.just(1),
    env=names,
    python=st.just("3.11"),
    platform=st.just("linux/amd64"),
    base=st.none() | names,
    parent=st.none() | st.builds(ParentRef, env=names, drv=hexes),
    requirements=st.lists(texts, max_size=3).map(tuple),
    packages=st.lists(packages, max_size=4).map(tuple),
    environment=st.dictionaries(texts, texts, max_size=3),
    files=st.lists(st.builds(FilePin, src=texts, dest=texts, sha256=hexes), max_size=2).map(tuple),
    workdir=st.none() | texts,
    entrypoint=st.none() | st.lists(texts, max_size=3).map(tuple),
    cmd=st.none() | st.lists(texts, max_size=3).map(tuple),
    merged=st.lists(names, max_size=3).map(tuple),
    resolver=st.just(Resolver("25.2", "7.5.1")),
    inputs=hexes,
    drv=hexes,
)
