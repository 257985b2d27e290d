"""What the terminal shows: build and push progress (a rich display on a terminal, one plain line per finished
task otherwise, or nothing) and human-readable sizes."""

from __future__ import annotations

import sys
import threading
from typing import TYPE_CHECKING, Any, TextIO

import click

from envgraph.builder._scheduler import ImageResult, LayerResult, SilentReporter
from envgraph.plan import LayerTask
from envgraph.registry._push import BlobEvent

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import TaskID

__all__ = [
    "PlainReporter",
    "RichReporter",
    "QuietReporter",
    "make_reporter",
    "human",
    "PlainPushProgress",
    "RichPushProgress",
    "push_progress",
]


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
        self.count = 0  # a multi-platform build plans once per platform
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


# --- push progress ---------------------------------------------------------------------------------


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "kB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{n} B"  # pragma: no cover


class PlainPushProgress:
    """One line per blob uploaded or mounted (blobs already there are only counted in the summary)."""

    def __init__(self, out: Any) -> None:
        self.out = out
        self.lock = threading.Lock()

    def __call__(self, ev: BlobEvent) -> None:
        if ev.outcome in ("skipped", "planned"):
            return
        with self.lock:
            click.echo(
                f"[{ev.done}/{ev.total}] {ev.outcome} {ev.digest[:19]} {human(ev.size)}", file=self.out
            )

    def close(self) -> None:
        pass


class RichPushProgress:
    """A bar of blobs present in the target (done/total) with the bytes uploaded so far, on a terminal."""

    def __init__(self, out: Any) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

        self.progress = Progress(
            TextColumn("blobs"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[uploaded]}"),
            TimeElapsedColumn(), console=Console(file=out), transient=True,
        )  # fmt: skip
        self.task: Any = None
        self.uploaded = 0
        self.lock = threading.Lock()

    def __call__(self, ev: BlobEvent) -> None:
        with self.lock:
            if self.task is None:
                self.progress.start()
                self.task = self.progress.add_task("push", total=ev.total, uploaded="")
            if ev.outcome == "uploaded":
                self.uploaded += ev.size
            self.progress.update(self.task, completed=ev.done, uploaded=f"{human(self.uploaded)} uploaded")

    def close(self) -> None:
        if self.task is not None:
            self.progress.stop()


def push_progress(out: Any) -> PlainPushProgress | RichPushProgress:
    return RichPushProgress(out) if out.isatty() else PlainPushProgress(out)
