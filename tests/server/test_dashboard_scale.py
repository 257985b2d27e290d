"""Pages stay fast for 1,000 envs: the synthetic project of benchmarks/dashboard_scale.py through the real app."""

from __future__ import annotations

from pathlib import Path

from benchmarks.dashboard_scale import measure


def test_every_page_answers_quickly_for_1000_envs(tmp_path: Path) -> None:
    result = measure(1000, 100, work=tmp_path)
    pages = result["pages"]
    assert set(pages) >= {"/ui/", "/api/graph", "/ui/history", "/ui/where", "/ui/diff?from=1&to=100"}
    for path, t in pages.items():
        # Generous bounds for a loaded 2-core CI machine; a quadratic slip (seconds per env) breaks them.
        assert t["best"] < 3.0, (path, t)
        assert t["first"] < 15.0, (path, t)
    assert pages["/ui/"]["bytes"] > 1000 * 200  # every env is drawn
