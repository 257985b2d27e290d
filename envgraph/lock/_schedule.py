"""Running work over a DAG: each node starts as soon as its parents are done, at most ``jobs`` at once.

Locking by generations makes a child wait for its parent's whole generation; here it waits only for its own
parents (like Bazel or make -j). Nodes ready together start in name order; the first failure stops new starts,
lets the running ones finish, and is raised (the earliest failed node in the given order, so the error a user
sees does not depend on timing).
"""

from __future__ import annotations

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
    waiting = {n: {p for p in parents.get(n, ()) if p in order} for n in nodes}
    results: dict[str, T] = {}
    failed: dict[str, BaseException] = {}
    running: dict[Future[T], str] = {}
    with ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:

        def start_ready() -> None:
            if failed:
                return
            ready = sorted((n for n, w in waiting.items() if not w), key=order.__getitem__)
            for n in ready:
                del waiting[n]
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
                results[n] = f.result()
                done(n, results[n])
                for w in waiting.values():
                    w.discard(n)
            start_ready()
    if failed:
        raise failed[min(failed, key=order.__getitem__)]
    return results
