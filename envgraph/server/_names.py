"""What the distribution API accepts as repository names, tags and digests, checked before any lookup.

Path parameters come from the network: nothing reaches the file system (or even a dictionary lookup)
unless it matches these patterns, which admit no ``/`` in tags and digests and no ``.``/``..`` path
components in names. The patterns are the registry client's (``registry._reference``), matched whole here
(so no trailing newline slips through ``$``); digests go through ``_hashing.is_digest``.
"""

from __future__ import annotations

from envgraph.registry._reference import REPO_RE, TAG_RE

__all__ = ["is_repository", "is_tag", "split_ref"]

_NAME_MAX = 255


def is_repository(name: str) -> bool:
    return len(name) <= _NAME_MAX and REPO_RE.fullmatch(name) is not None


def is_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def split_ref(ref: str) -> tuple[str, str] | None:
    """A store tag ``<env>:<tag>`` as (repository, tag); None when either part is not servable."""
    name, sep, tag = ref.partition(":")
    if not sep or not is_repository(name) or not is_tag(tag):
        return None
    return name, tag
