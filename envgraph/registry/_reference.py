"""Image references: ``host/repository[:tag][@digest]``, parsed and validated before any request is made."""

from __future__ import annotations

import ipaddress
import re

import attrs

from envgraph._hashing import is_digest
from envgraph.errors import RegistryError

__all__ = ["DOCKER_HUB", "DOCKER_HUB_API", "TAG_RE", "Reference", "is_local_host"]

DOCKER_HUB = "docker.io"
DOCKER_HUB_API = "registry-1.docker.io"

REPO_RE = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
TAG_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def is_local_host(host: str) -> bool:
    """``localhost``, ``127.x.y.z`` or ``::1``, with or without a port: plain HTTP is acceptable there."""
    name = host
    if name.startswith("["):
        name = name[1 : name.find("]")]
    elif name.count(":") == 1:
        name = name.split(":", 1)[0]
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


@attrs.frozen
class Reference:
    """``host/repository[:tag][@digest]``; a name without a registry host means Docker Hub."""

    host: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @classmethod
    def parse(cls, text: str) -> Reference:
        original = text
        text = re.sub(r"^(?:https?|docker)://", "", text.strip())
        head = text.split("/", 1)[0]
        if "@" in head and not is_digest(head.rsplit("@", 1)[1]):
            # Never echo it: whatever precedes the @ may be a password.
            raise RegistryError(
                "a registry reference must not carry credentials (user:password@host): set "
                "ENVGRAPH_REGISTRY_USERNAME and ENVGRAPH_REGISTRY_PASSWORD, or log in with docker login"
            )
        digest: str | None = None
        if "@" in text:
            text, digest = text.split("@", 1)
            if not is_digest(digest):
                raise RegistryError(
                    f"invalid image reference {original!r}: {digest!r} is not a sha256 digest"
                )
        first, sep, rest = text.partition("/")
        if sep and ("." in first or ":" in first or first == "localhost"):
            host, remainder = first, rest
        else:
            host, remainder = DOCKER_HUB, text
        tag: str | None = None
        name, colon, maybe_tag = remainder.rpartition(":")
        if colon and "/" not in maybe_tag:
            remainder, tag = name, maybe_tag
            if not TAG_RE.match(tag):
                raise RegistryError(f"invalid image reference {original!r}: bad tag {tag!r}")
        if host == DOCKER_HUB and "/" not in remainder:
            remainder = "library/" + remainder
        if not remainder or not REPO_RE.match(remainder):
            raise RegistryError(
                f"invalid image reference {original!r}: repository {remainder!r} must be lower-case "
                "letters, digits and separators (host:port/name[:tag])"
            )
        return cls(host, remainder, tag, digest)

    @property
    def ref(self) -> str:
        """What to ask the manifests endpoint for: the digest, else the tag, else ``latest``."""
        return self.digest or self.tag or "latest"

    def __str__(self) -> str:
        out = f"{self.host}/{self.repository}"
        if self.tag:
            out += f":{self.tag}"
        if self.digest:
            out += f"@{self.digest}"
        return out
