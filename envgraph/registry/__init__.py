"""Registries: the distribution API client, references, transfers (push and pull), pushing images, the layer cache."""

from __future__ import annotations

from typing import TYPE_CHECKING

from envgraph._lazy import lazy_exports

if TYPE_CHECKING:
    from envgraph.registry._cache import RegistryCache as RegistryCache
    from envgraph.registry._client import RegistryClient as RegistryClient
    from envgraph.registry._push import PushedImage as PushedImage
    from envgraph.registry._push import push_images as push_images
    from envgraph.registry._records import PushRecord as PushRecord
    from envgraph.registry._records import push_records as push_records
    from envgraph.registry._reference import Reference as Reference
    from envgraph.registry._transfer import pull_image as pull_image

_EXPORTS = {
    "PushedImage": "envgraph.registry._push",
    "PushRecord": "envgraph.registry._records",
    "push_records": "envgraph.registry._records",
    "Reference": "envgraph.registry._reference",
    "RegistryCache": "envgraph.registry._cache",
    "RegistryClient": "envgraph.registry._client",
    "pull_image": "envgraph.registry._transfer",
    "push_images": "envgraph.registry._push",
}
__all__ = [
    "PushedImage",
    "PushRecord",
    "Reference",
    "RegistryCache",
    "RegistryClient",
    "pull_image",
    "push_images",
    "push_records",
]
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
