"""``envgraph init``: a starter declaration, and the store kept out of git."""

from __future__ import annotations

import re
from pathlib import Path

from envgraph._fs import atomic_write
from envgraph.errors import SpecError

__all__ = ["STARTER", "init_project"]

STORE_IGNORE = ".envgraph/"

STARTER = """\
# envgraph.toml: the environments of this project's pipelines (see `envgraph schema` for every key).
[project]
name = "{name}"
python = "3.11"              # target interpreter (major.minor) for resolution and wheel tags
platform = "linux/amd64"     # or linux/arm64

[bases.debian]               # a root filesystem made with mmdebstrap from pinned Debian packages
debian = {{ suite = "bookworm", packages = ["python3-minimal", "libpython3.11-stdlib", "libstdc++6", "ca-certificates"] }}
python = "/usr/bin/python3.11"

[env.core]
base = "debian"
requirements = ["numpy", "pandas>=2"]    # or: requirements-file = "requirements.txt"
environment = {{ PYTHONUNBUFFERED = "1" }}

[env.train]
parent = "core"              # everything of core, plus its own
requirements = ["scikit-learn"]

[pipeline.training]
steps = {{ prepare = "core", fit = "train" }}
"""


def _name(directory: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]+", "-", directory.resolve().name).strip("-.") or "project"
    return name if name[0].isalnum() else f"p{name}"


def init_project(directory: Path, *, name: str | None = None, force: bool = False) -> list[str]:
    """Write ``directory/envgraph.toml`` (refusing to overwrite one unless ``force``) and add the store to
    ``directory/.gitignore`` (created when missing); returns what was done, one line each."""
    directory.mkdir(parents=True, exist_ok=True)
    decl = directory / "envgraph.toml"
    if decl.exists() and not force:
        raise SpecError(f"{decl} exists: edit it, or run `envgraph init --force` to replace it")
    project = name or _name(directory)
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", project):
        raise SpecError(f"project name {project!r}: letters, digits, '.', '_' and '-' only")
    atomic_write(decl, STARTER.format(name=project))
    done = [f"wrote {decl}"]
    ignore = directory / ".gitignore"
    lines = ignore.read_text(encoding="utf-8").splitlines() if ignore.exists() else []
    if not any(line.strip().rstrip("/") in (".envgraph", "/.envgraph") for line in lines):
        text = "\n".join(lines) + ("\n" if lines else "")
        atomic_write(
            ignore,
            text
            + f"# envgraph's store (images, layers): large and rebuilt from lockfiles/\n{STORE_IGNORE}\n",
        )
        done.append(f"added {STORE_IGNORE} to {ignore}")
    done.append("next: envgraph lock && envgraph build")
    return done
