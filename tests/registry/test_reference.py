"""Image references, parsed and validated before any request (no registry needed)."""

from __future__ import annotations

import pytest

from envgraph.errors import RegistryError
from envgraph.registry._reference import DOCKER_HUB, Reference, is_local_host

DIGEST = "sha256:" + "a" * 64


def test_reference_parse() -> None:
    ref = Reference.parse("127.0.0.1:5000/team/envs")
    assert (ref.host, ref.repository, ref.tag, ref.digest) == ("127.0.0.1:5000", "team/envs", None, None)
    assert ref.ref == "latest"
    ref = Reference.parse("localhost:5000/envs:train-v1")
    assert (ref.host, ref.repository, ref.tag) == ("localhost:5000", "envs", "train-v1")
    ref = Reference.parse(f"ghcr.io/org/team/envs:v2@{DIGEST}")
    assert (ref.host, ref.repository, ref.tag, ref.digest, ref.ref) == (
        "ghcr.io",
        "org/team/envs",
        "v2",
        DIGEST,
        DIGEST,
    )
    assert Reference.parse("python:3.11").repository == "library/python"
    assert Reference.parse("python:3.11").host == "docker.io"
    assert str(Reference.parse("127.0.0.1:5000/a/b:t")) == "127.0.0.1:5000/a/b:t"
    with pytest.raises(RegistryError, match="invalid image reference"):
        Reference.parse("127.0.0.1:5000/Team/Envs")


@pytest.mark.parametrize(
    ("text", "parsed"),
    [
        ("docker://localhost/a", ("localhost", "a", None, None)),
        ("https://registry.example/a/b:1.0", ("registry.example", "a/b", "1.0", None)),
        ("  team/envs  ", (DOCKER_HUB, "team/envs", None, None)),  # a Docker Hub user's repository
        (f"envs@{DIGEST}", (DOCKER_HUB, "library/envs", None, DIGEST)),
        ("host:5000/a__b.c-d/e", ("host:5000", "a__b.c-d/e", None, None)),
        ("[::1]:5000/envs:t", ("[::1]:5000", "envs", "t", None)),
    ],
)
def test_hosts_tags_and_digests(text: str, parsed: tuple[str, str, str | None, str | None]) -> None:
    ref = Reference.parse(text)
    assert (ref.host, ref.repository, ref.tag, ref.digest) == parsed
    assert Reference.parse(str(ref)) == ref  # str() is a reference that parses back to the same


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("r.example/envs@sha256:abc", "is not a sha256 digest"),
        ("r.example/envs@md5:" + "a" * 32, "is not a sha256 digest"),
        ("r.example/envs:-bad", "bad tag '-bad'"),
        ("r.example/envs:" + "t" * 129, "bad tag"),
        ("r.example/", "repository '' must be lower-case"),
        ("r.example/a//b", "must be lower-case"),
        ("r.example/-a", "must be lower-case"),
        ("r.example/../etc", "must be lower-case"),
    ],
)
def test_bad_references_are_one_line_errors(text: str, why: str) -> None:
    with pytest.raises(RegistryError) as info:
        Reference.parse(text)
    message = str(info.value)
    assert message.startswith(f"invalid image reference {text!r}: ") and why in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("host", "local"),
    [
        ("localhost", True),
        ("localhost:5000", True),
        ("127.0.0.1:5000", True),
        ("127.8.9.10", True),
        ("[::1]:5000", True),
        ("::1", True),
        ("registry.example:5000", False),
        ("10.0.0.1:5000", False),
        ("localhost.example", False),
    ],
)
def test_local_hosts(host: str, local: bool) -> None:
    assert is_local_host(host) is local
