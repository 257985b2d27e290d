"""Locking packages that are built from source: where the source is, and what builds it.

A package gets a wheel built by envgraph when its locked release has no wheel for the target (then its sdist
is pinned: file name, sha256, size, URL), or when a requirement names a directory of the project or a git
commit. For each, the lockfile pins how it is built (:class:`~envgraph.lock._model.BuildPin`): the PEP 517
backend and ``[build-system] requires`` resolved to wheels for the target (build dependencies are never
built themselves). The build runs later, offline, in the env's own base (see :mod:`envgraph.builder._sdist`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path

from envgraph.errors import LockError, ResolutionError
from envgraph.lock._index import IndexFile, PackageIndex
from envgraph.lock._model import BuildDep, BuildPin, Source, Wheel
from envgraph.lock._resolve import ResolveRequest, ResolverFailed, ResolverTimeout, pip_compile
from envgraph.lock._sources import build_system, git_checkout, source_hash
from envgraph.lock._wheelcache import WheelCache
from envgraph.lock._wheels import Target, best_wheel, target_tags

__all__ = ["SourceLocker", "choose_sdist", "wheel_for"]

# Compiles build requirements once per set of requirements (many sdists share setuptools).
Compile = Callable[[Sequence[str]], list[tuple[str, str, frozenset[str]]]]


def wheel_for(index: PackageIndex, name: str, version: str, target: Target) -> IndexFile | None:
    """The release's wheel that fits the target best, or None."""
    files = index.release_files(name, version)
    chosen = best_wheel([f.filename for f in files], target_tags(target))
    return next((f for f in files if f.filename == chosen), None) if chosen else None


def choose_sdist(files: Sequence[IndexFile]) -> IndexFile | None:
    """The release's sdist (``.tar.gz`` preferred over ``.zip``, as PEP 625 names them), skipping yanked files."""
    sdists = sorted(
        (f for f in files if f.is_sdist and not f.yanked),
        key=lambda f: (not f.filename.endswith(".tar.gz"), f.filename),
    )
    return sdists[0] if sdists else None


class SourceLocker:
    """Pins sources and build dependencies; one per lock run (results are shared between envs)."""

    def __init__(
        self,
        index: PackageIndex,
        root: Path,
        *,
        python: str,
        index_url: str,
        extra_index_urls: Sequence[str],
        find_links: Sequence[Path],
        timeout: float,
        cache: WheelCache | None = None,
    ) -> None:
        self.index = index
        self.root = root
        self.python = python
        self.index_url = index_url
        self.extra_index_urls = list(extra_index_urls)
        self.find_links = list(find_links)
        self.timeout = timeout
        self.cache = cache or WheelCache(root)
        self._lock = threading.Lock()
        self._compiled: dict[tuple[str, ...], list[BuildDep]] = {}

    # -- sources ----------------------------------------------------------------------------------------

    def sdist(self, env: str, name: str, version: str, hashes: frozenset[str], target: Target) -> Source:
        """The pinned sdist of a release that has no wheel for the target; an error when it has none either."""
        files = self.index.release_files(name, version)
        f = choose_sdist(files)
        if f is None:
            raise ResolutionError(
                f"env {env}: {name}=={version} has neither a wheel for cp{target.python.replace('.', '')} "
                f"{target.libc} {target.arch} nor an sdist to build one from"
            )
        if f.sha256 is None:
            raise ResolutionError(f"env {env}: the index gives no sha256 for {f.filename}")
        if hashes and f.sha256 not in hashes:
            raise ResolutionError(
                f"env {env}: {f.filename} sha256 {f.sha256} is not among the hashes pip-compile pinned"
            )
        size = f.size if f.size is not None else self.index.size_of(f.url)
        return Source(kind="sdist", url=f.url, sha256=f.sha256, filename=f.filename, size=size)

    def directory(self, rel: str) -> Source:
        path = self.root / rel
        return Source(kind="directory", url=rel, sha256=source_hash(path))

    def git(self, env: str, url: str, commit: str, subdirectory: str | None) -> Source:
        tree = git_checkout(url, commit, f"env {env}: {url}@{commit[:12]}")
        return Source(kind="git", url=url, sha256=source_hash(tree), commit=commit, subdirectory=subdirectory)

    def path_of(self, env: str, source: Source) -> Path:
        """Where the source is on this machine (an sdist is fetched into the cache and checked first)."""
        if source.kind == "sdist":
            assert source.filename is not None and source.size is not None
            return self.cache.fetch(Wheel(source.filename, source.sha256, source.size, source.url))
        if source.kind == "directory":
            return self.root / source.url
        assert source.commit is not None
        tree = git_checkout(source.url, source.commit, f"env {env}: {source.url}@{source.commit[:12]}")
        return tree / source.subdirectory if source.subdirectory else tree

    # -- build dependencies ---------------------------------------------------------------------------------

    def build_pin(self, env: str, name: str, source: Source, target: Target) -> BuildPin:
        """How ``name`` is built: its backend and build requirements, pinned to wheels for the target."""
        what = f"env {env}: {name}"
        path = self.path_of(env, source)
        try:
            system = build_system(path, f"{what} ({source.filename or source.url})")
        except LockError as e:
            raise LockError(str(e)) from None
        deps = self._build_deps(env, name, system.requires, target)
        return BuildPin(
            backend=system.backend,
            requires=system.requires,
            packages=tuple(deps),
            backend_path=system.backend_path,
        )

    def _build_deps(self, env: str, name: str, requires: Sequence[str], target: Target) -> list[BuildDep]:
        key = tuple(requires)
        with self._lock:
            if key in self._compiled:
                return self._compiled[key]
        deps: list[BuildDep] = []
        if requires:
            try:
                request = ResolveRequest(
                    tuple(requires), self.index_url, tuple(self.extra_index_urls), tuple(self.find_links),
                    self.timeout,
                )  # fmt: skip
                result = pip_compile(self.python, request, only_binary=True)
            except ResolverTimeout as e:
                raise ResolutionError(
                    f"env {env}: the build requirements of {name} ({', '.join(requires)}) did not resolve "
                    f"within {e.seconds:g} s"
                ) from None
            except ResolverFailed as e:
                last = [ln.strip() for ln in e.output.splitlines() if ln.strip().startswith("ERROR")]
                why = last[-1].removeprefix("ERROR: ") if last else "pip-compile failed"
                raise ResolutionError(
                    f"env {env}: cannot resolve the build requirements of {name} ({', '.join(requires)}) to "
                    f"wheels: {why}"
                ) from None
            for pin in result.pins:
                f = wheel_for(self.index, pin.name, pin.version, target)
                if f is None:
                    raise ResolutionError(
                        f"env {env}: build requirement {pin.name}=={pin.version} of {name} has no wheel for "
                        f"cp{target.python.replace('.', '')} {target.libc} {target.arch}: envgraph builds with wheels only"
                    )
                if f.sha256 is None or (pin.hashes and f.sha256 not in pin.hashes):
                    raise ResolutionError(
                        f"env {env}: {f.filename}: no sha256, or not one pip-compile pinned"
                    )
                size = f.size if f.size is not None else self.index.size_of(f.url)
                deps.append(BuildDep(pin.name, pin.version, Wheel(f.filename, f.sha256, size, f.url)))
        with self._lock:
            self._compiled[key] = deps
        return deps
