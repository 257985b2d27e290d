"""Which interpreter compiles a layer's .pyc files (a module of its own: planning asks without loading the
layer writers)."""

from __future__ import annotations

import shutil
import sys

__all__ = ["bytecode_interpreter"]


def bytecode_interpreter(python: str) -> str | None:
    """An interpreter of the target version to compile .pyc files with, or None (then layers ship no .pyc)."""
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == python:
        return sys.executable
    return shutil.which(f"python{python}")
