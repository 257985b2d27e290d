"""Build progress: a rich display on a terminal, one plain line per finished task otherwise, or nothing."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, TextIO

from envgraph.builder._scheduler import ImageResult, LayerResult, SilentReporter
from envgraph.plan._planner import LayerTask

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

__all__ = ["PlainReporter", "RichReporter", "QuietReporter", "make_reporter"]


# Quiet mode prints only the summary, which the CLI writes itself.
QuietReporter = SilentReporter


class PlainReporter(QuietReporter):
    """One line per finished layer or image: readable in CI logs and pipes."""

    def __init__(self, out: TextIO) -> None:
        self.out = out
        self.lock = threading.Lock()
        self.total = 0
        self.count = 0

    def _say(self, line: str) -> None:
        with self.lock:
            print(line, file=self.out, flush=True)

    def plan(self, total_layers: int, to_build: int, total_bytes: int) -> None:
        self.total = total_layers
        self._say(f"plan: {total_layers} layers, {to_build} to build, {total_layers - to_build} in the store")

    def finished(self, result: LayerResult, task: LayerTask) -> None:
        if result.status == "reused" and result.seconds == 0.0:
            self.count += 1
            return  # reused without work: the summary counts them
        self.count += 1
        extra = f": {result.error}" if result.error else ""
        size = f" {result.record.size / 1e6:.1f} MB" if result.record else ""
        self._say(
            f"[{self.count}/{self.total}] {result.status} layer {task.label}{size} in {result.seconds:.2f}s{extra}"
        )

    def image(self, result: ImageResult) -> None:
        digest = result.descriptor.digest[:19] if result.descriptor else "-"
        extra = f": {result.error}" if result.error else ""
        self._say(f"{result.status} image {result.env} {digest}{extra}")


class RichReporter(QuietReporter):
    """One overall bar (layers done/total, bytes) and a line per running task."""

    def __init__(self, console: Console) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.overall: TaskID | None = None
        self.bytes: TaskID | None = None
        self.running: dict[str, TaskID] = {}
        self.lock = threading.Lock()

    def plan(self, total_layers: int, to_build: int, total_bytes: int) -> None:
        self.progress.start()
        self.overall = self.progress.add_task("layers", total=total_layers)
        self.bytes = self.progress.add_task("bytes to build", total=total_bytes or None)

    def started(self, task: LayerTask) -> None:
        with self.lock:
            self.running[task.key] = self.progress.add_task(f"  building {task.label}", total=None)

    def finished(self, result: LayerResult, task: LayerTask) -> None:
        with self.lock:
            tid = self.running.pop(task.key, None)
            if tid is not None:
                self.progress.remove_task(tid)
            if self.overall is not None:
                self.progress.advance(self.overall)
            if self.bytes is not None and result.status in ("built", "pulled"):
                self.progress.advance(self.bytes, task.size_hint)
            if result.status == "failed":
                self.progress.console.print(f"[red]failed[/red] layer {task.label}: {result.error}")

    def image(self, result: ImageResult) -> None:
        if result.status == "failed":
            self.progress.console.print(f"[red]failed[/red] image {result.env}: {result.error}")

    def close(self) -> None:
        self.progress.stop()


def make_reporter(quiet: bool, out: TextIO | None = None) -> SilentReporter:
    out = out or sys.stdout
    if quiet:
        return QuietReporter()
    if out.isatty():
        from rich.console import Console

        return RichReporter(Console(file=out))
    return PlainReporter(out)
