"""Running work over a DAG: each node starts as soon as its parents are done, at most ``jobs`` at once.

Locking by generations makes a child wait for its parent's whole generation; here it waits only for its own
parents (like Bazel or make -j). Nodes ready together start in name order; the first failure stops new starts,
lets the running ones finish, and is raised (the earliest failed node in the given order, so the error a user
sees does not depend on timing).
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TypeVar

__all__ = ["run_dag"]

T = TypeVar("T")


def run_dag(
    nodes: Sequence[str],
    parents: Mapping[str, Sequence[str]],
    work: Callable[[str], T],
    *,
    jobs: int,
    done: Callable[[str, T], None] = lambda _n, _r: None,
) -> dict[str, T]:
    """``work(node)`` for each node once its parents among ``nodes`` are done; ``done(node, result)`` runs in the
    calling thread as each finishes (before any child starts). Returns the results by node."""
    order = {n: i for i, n in enumerate(nodes)}
    # Linear bookkeeping (``lock --check`` runs this over every env): counts of unfinished parents, children
    # by parent, and the ready nodes in a heap by their place in ``nodes``.
    waiting = {n: len({p for p in parents.get(n, ()) if p in order}) for n in nodes}
    children: dict[str, list[str]] = {}
    for n in nodes:
        for p in {p for p in parents.get(n, ()) if p in order}:
            children.setdefault(p, []).append(n)
    ready = [order[n] for n in nodes if not waiting[n]]
    heapq.heapify(ready)
    results: dict[str, T] = {}

    def finish(n: str, result: T) -> None:
        results[n] = result
        done(n, result)
        for c in children.get(n, ()):
            waiting[c] -= 1
            if not waiting[c]:
                heapq.heappush(ready, order[c])

    if jobs <= 1:
        # One at a time in the calling thread, in the same order a one-thread pool would run them (no thread
        # hand-offs: a thousand cheap checks cost what they cost); the first failure is the earliest in order.
        while ready:
            n = nodes[heapq.heappop(ready)]
            finish(n, work(n))
        return results
    failed: dict[str, BaseException] = {}
    running: dict[Future[T], str] = {}
    with ThreadPoolExecutor(max_workers=jobs) as pool:

        def start_ready() -> None:
            while ready and not failed:
                n = nodes[heapq.heappop(ready)]
                running[pool.submit(work, n)] = n

        start_ready()
        while running:
            finished, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for f in sorted(finished, key=lambda f: order[running[f]]):
                n = running.pop(f)
                err = f.exception()
                if err is not None:
                    failed[n] = err
                    continue
                finish(n, f.result())
            start_ready()
    if failed:
        raise failed[min(failed, key=order.__getitem__)]
    return results
