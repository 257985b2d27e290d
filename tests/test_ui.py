"""What the terminal shows: push progress as a bar on a terminal and as plain lines elsewhere."""

from __future__ import annotations

import io

from envgraph._ui import PlainPushProgress, RichPushProgress, push_progress
from envgraph.registry._push import BlobEvent


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_push_progress_is_a_bar_on_a_terminal_and_lines_elsewhere() -> None:
    events = [BlobEvent("", 0, "planned", 0, 3), BlobEvent("sha256:" + "a" * 64, 2_000_000, "uploaded", 1, 3),
              BlobEvent("sha256:" + "b" * 64, 10, "skipped", 2, 3), BlobEvent("sha256:" + "c" * 64, 5, "mounted", 3, 3)]  # fmt: skip
    term = _Terminal()
    bar = push_progress(term)
    assert isinstance(bar, RichPushProgress)
    for ev in events:
        bar(ev)
    assert bar.uploaded == 2_000_000
    assert bar.progress.tasks[0].completed == 3
    bar.close()

    pipe = io.StringIO()
    lines = push_progress(pipe)
    assert isinstance(lines, PlainPushProgress)
    for ev in events:
        lines(ev)
    lines.close()
    assert pipe.getvalue().splitlines() == [
        "[1/3] uploaded sha256:aaaaaaaaaaaa 2.0 MB",
        "[3/3] mounted sha256:cccccccccccc 5 B",
    ]
