"""What a run record says about envs, read from the lockfiles (and, for builds, the build report)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from envgraph.errors import EnvgraphError
from envgraph.graph import EnvGraph
from envgraph.history._records import EnvRecord
from envgraph.lock import Lockfile
from envgraph.lock._lockfile import lock_and_digest

__all__ = ["LockFacts", "build_envs", "lock_envs", "package_set", "read_lock_facts"]


class LockFacts:
    """The lockfiles of some envs as read once: each lock, its file's sha256, and each env's whole package set."""

    def __init__(self, graph: EnvGraph, locks: Mapping[str, Lockfile], digests: Mapping[str, str]) -> None:
        self.graph = graph
        self.locks = locks
        self.digests = digests

    def packages(self, env: str) -> dict[str, str]:
        return package_set(self.graph.chain(env), self.locks)


def package_set(chain: Sequence[str], locks: Mapping[str, Lockfile]) -> dict[str, str]:
    """Every package an env's image holds (its ancestors' too), name -> version; Debian ones as ``deb:NAME``."""
    out: dict[str, str] = {}
    for a in chain:
        lock = locks.get(a)
        if lock is None:
            continue
        if lock.apt is not None:
            out.update({f"deb:{d.name}": d.version for d in lock.apt.packages})
        out.update({p.name: p.version for p in lock.packages})
    return out


def read_lock_facts(graph: EnvGraph, lockdir: Any, envs: Iterable[str]) -> LockFacts:
    """The lockfiles of ``envs`` and their ancestors; an env without a (readable) lockfile is left out."""
    locks: dict[str, Lockfile] = {}
    digests: dict[str, str] = {}
    for env in {a for e in envs for a in graph.chain(e)}:
        try:
            got = lock_and_digest(
                lockdir, env
            )  # what the command's freshness check parsed, unless it changed
        except EnvgraphError:
            continue
        if got is not None:
            locks[env], digests[env] = got
    return LockFacts(graph, locks, digests)


def build_envs(report: Mapping[str, Any], facts: LockFacts) -> list[EnvRecord]:
    """One record per env of a build report (``envgraph build --report``)."""
    out = []
    for e in report.get("envs", ()):
        statuses = [layer["status"] for layer in e.get("layers", ())]
        env = e["env"]
        out.append(
            EnvRecord(
                env=env,
                drv=e["drv"],
                lock_digest=facts.digests.get(env),
                packages=facts.packages(env),
                status=e.get("status") or "",
                digest=e.get("digest"),
                bytes=int(e.get("bytes") or 0),
                seconds=float(e.get("seconds") or 0.0),
                layers_built=statuses.count("built"),
                layers_reused=statuses.count("reused"),
                layers_pulled=statuses.count("pulled"),
            )
        )
    return out


def lock_envs(statuses: Mapping[str, str], facts: LockFacts) -> list[EnvRecord]:
    """One record per locked env (``statuses``: env -> outcome), with the lockfile as it is now."""
    return [
        EnvRecord(
            env=env,
            drv=facts.locks[env].drv,
            lock_digest=facts.digests.get(env),
            packages=facts.packages(env),
            status=status,
        )
        for env, status in sorted(statuses.items())
        if env in facts.locks
    ]
