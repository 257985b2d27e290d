"""The PEP 517 frontend envgraph runs inside a build root: ``python _frontend.py BACKEND PATHS SRC OUT``.

It is copied into the build root and run by the base's own interpreter, so it uses the standard library only
(and nothing of envgraph). The build dependencies are already installed (on ``PYTHONPATH``), and the network
is gone: like ``pip wheel --no-build-isolation --no-index``, it only calls the backend's hooks in the
source directory (``get_requires_for_build_wheel``, then ``build_wheel``) and says which wheel it wrote.

Exit codes: 0 built (the last line of output is ``envgraph-built-wheel: <file name>``), 3 the backend asks
for a build requirement that is not installed, anything else the backend failed.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import re
import sys
from typing import Any

_NAME = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)")


def _load_backend(spec: str, paths: list[str], src: str) -> Any:
    # PEP 517: backend-path entries (inside the source tree) come first on sys.path.
    sys.path[:0] = [os.path.join(src, p) for p in paths]
    module, _, attr = spec.partition(":")
    backend: Any = importlib.import_module(module.strip())
    for part in attr.strip().split(".") if attr.strip() else ():
        backend = getattr(backend, part)
    return backend


def _missing(requirements: list[str]) -> list[str]:
    missing = []
    for req in requirements:
        match = _NAME.match(req)
        if match is None:
            continue
        try:
            importlib.metadata.version(match.group(1))
        except importlib.metadata.PackageNotFoundError:
            missing.append(req)
    return missing


def main(argv: list[str]) -> int:
    spec, paths, src, out = argv
    os.chdir(src)
    backend = _load_backend(spec, json.loads(paths), src)
    hook = getattr(backend, "get_requires_for_build_wheel", None)
    dynamic = list(hook({})) if hook is not None else []
    missing = _missing(dynamic)
    if missing:
        print(
            f"envgraph: the build backend {spec} asks for {', '.join(missing)} at build time, which the lockfile "
            "does not pin: envgraph pins a project's [build-system] requires only",
            flush=True,
        )
        return 3
    os.makedirs(out, exist_ok=True)
    name = backend.build_wheel(out, {}, None)
    print(f"envgraph-built-wheel: {name}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
