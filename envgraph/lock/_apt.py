"""Pinning an env's Debian packages (``apt``) and its build environment's (``build-apt``) at lock time.

The suite's index is loaded once per lock run (signature checked, see :mod:`envgraph.debian._archive`),
and requests are resolved against what the image already has: the base's installed set (every version its
lock pins) plus the Debian packages the env's ancestors pin. Only what is missing is added, and the result
is recorded as :class:`~envgraph.lock._model.AptLock`.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence

from envgraph import identity
from envgraph.debian import PackageIndex, load_index, resolve
from envgraph.errors import DebianError, LockError
from envgraph.lock._model import AptLock, BaseLock, DebPin

__all__ = ["AptResolver", "architecture_of"]


def architecture_of(platform: str) -> str:
    """Debian's name for a platform's architecture: linux/amd64 -> amd64."""
    return platform.partition("/")[2]


class AptResolver:
    """Resolves Debian package requests for envs of one project; the index is fetched once per suite."""

    def __init__(self, platform: str) -> None:
        self.architecture = architecture_of(platform)
        self._indexes: dict[tuple[str, str], PackageIndex] = {}
        self._lock = threading.Lock()

    def index(self, base: BaseLock) -> PackageIndex:
        assert base.debian is not None
        key = (base.debian.suite, base.debian.mirror)
        with self._lock:
            if key not in self._indexes:
                self._indexes[key] = load_index(
                    base.debian.suite, self.architecture, mirror=base.debian.mirror
                )
            return self._indexes[key]

    def inputs(self, requested: Sequence[str], base: BaseLock, have: Mapping[str, DebPin]) -> str:
        return identity.apt_inputs(
            requested=requested,
            base=base.identity,
            have={n: f"{p.version} {p.sha256}" for n, p in have.items()},
            architecture=self.architecture,
        )

    def resolve(
        self, what: str, requested: Sequence[str], base: BaseLock, have: Mapping[str, DebPin]
    ) -> AptLock:
        """Pin ``requested`` on top of ``base`` and the packages in ``have`` (name -> pin)."""
        if base.debian is None:
            raise LockError(
                f"{what}: Debian packages need a Debian base (debian = {{ suite = ... }}), and base {base.name} "
                "is an image"
            )
        installed = dict(base.debian.versions)
        installed.update({n: p.version for n, p in have.items()})
        try:
            pins = resolve(requested, self.index(base), installed) if requested else []
        except DebianError as e:
            raise DebianError(f"{what}: {e}") from None
        return AptLock(
            requested=tuple(sorted(requested)),
            inputs=self.inputs(requested, base, have),
            packages=tuple(pins),
        )
