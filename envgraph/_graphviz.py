"""Drawing the graph with Graphviz's ``dot`` (Debian package ``graphviz``), when it is installed."""

from __future__ import annotations

import shutil
import subprocess

from envgraph.errors import EnvgraphError

__all__ = ["render_dot"]

DOT_TIMEOUT = 60.0


def render_dot(source: str, fmt: str) -> bytes:
    """``dot -T<fmt>`` of ``source``: png or svg bytes."""
    if fmt not in ("png", "svg"):
        raise EnvgraphError(f"graph format {fmt!r}: Graphviz output is png or svg")
    dot = shutil.which("dot")
    if dot is None:
        raise EnvgraphError(
            f"graph --format {fmt} needs Graphviz's dot: apt-get install graphviz "
            "(or use --format dot and render it elsewhere)"
        )
    try:
        proc = subprocess.run(
            [dot, f"-T{fmt}"],
            input=source.encode("utf-8"),
            capture_output=True,
            timeout=DOT_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise EnvgraphError(f"dot did not finish within {DOT_TIMEOUT:.0f} s") from None
    if proc.returncode != 0 or not proc.stdout:
        lines = proc.stderr.decode("utf-8", "replace").strip().splitlines()
        raise EnvgraphError(f"dot -T{fmt} failed: {lines[-1] if lines else f'exit {proc.returncode}'}")
    return proc.stdout
