"""The import graph flows one way (docs/ARCHITECTURE.md): every envgraph module imports only modules of its own
layer or of layers below it, and there are no import cycles. Imports inside functions count too."""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

PACKAGE = Path(__file__).resolve().parent.parent / "envgraph"

# Lowest first. A module belongs to the layer of the longest prefix listed.
LAYERS: list[tuple[str, ...]] = [
    (
        "envgraph.errors",
        "envgraph._hashing",
        "envgraph._fs",
        "envgraph._convert",
        "envgraph._lazy",
        "envgraph._subprocess",
        "envgraph._guardian",
    ),
    ("envgraph.identity", "envgraph.platforms"),
    ("envgraph.spec", "envgraph._spec_schema"),
    ("envgraph.graph",),
    ("envgraph.debian",),
    ("envgraph.lock",),
    ("envgraph.plan", "envgraph.sbom"),
    ("envgraph.oci",),
    ("envgraph.builder",),
    ("envgraph.registry", "envgraph._docker", "envgraph.history", "envgraph.server"),
    (
        "envgraph.images",
        "envgraph._image_bases",
        "envgraph._bases",
        "envgraph._ui",
        "envgraph._dask",
        "envgraph._init",
        "envgraph._graphviz",
    ),
    ("envgraph.workspace",),
    ("envgraph.cli", "envgraph.__main__", "envgraph"),
]


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _layer(module: str) -> int:
    best: tuple[int, int] | None = None
    for i, prefixes in enumerate(LAYERS):
        for p in prefixes:
            matches = module == p or module.startswith(p + ".")
            if matches and (best is None or len(p) > best[1]):
                best = (i, len(p))
    assert best is not None, f"{module} is in no layer: add it to LAYERS and docs/ARCHITECTURE.md"
    return best[0]


def _imports(path: Path, module: str) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.startswith("envgraph"))
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if not target.startswith("envgraph"):
                continue
            for alias in node.names:  # `from envgraph import identity` imports the module envgraph.identity
                sub = f"{target}.{alias.name}"
                out.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists() else target)
    return out


def _graph() -> nx.DiGraph:
    g = nx.DiGraph()
    for path in sorted(PACKAGE.rglob("*.py")):
        module = _module_name(path)
        g.add_node(module)
        for target in _imports(path, module):
            g.add_edge(module, target)
    return g


def test_imports_flow_down_the_layers() -> None:
    upward = [
        f"{a} (layer {_layer(a)}) imports {b} (layer {_layer(b)})"
        for a, b in _graph().edges
        if _layer(b) > _layer(a)
    ]
    assert upward == []


def test_no_import_cycles() -> None:
    g = _graph()
    # A package's __init__ re-exporting its own private modules is not a cycle of concepts.
    g.remove_edges_from([(a, b) for a, b in list(g.edges) if b.startswith(a + ".")])
    cycles = list(nx.simple_cycles(g))
    assert cycles == []


def test_oci_imports_nothing_from_the_builder_or_above() -> None:
    g = _graph()
    bad = [
        (a, b)
        for a, b in g.edges
        if a.startswith("envgraph.oci")
        and _layer(b) >= _layer("envgraph.oci")
        and not b.startswith("envgraph.oci")
    ]
    assert bad == []


def test_the_architecture_document_names_every_module() -> None:
    """docs/ARCHITECTURE.md says what each module owns: a module it does not name is a module nobody placed."""
    doc = (PACKAGE.parent / "docs" / "ARCHITECTURE.md").read_text()
    unnamed = sorted(
        str(p.relative_to(PACKAGE.parent))
        for p in PACKAGE.rglob("*.py")
        if p.stem != "__init__"
        and "migrations" not in p.parts
        and f"{p.stem}`" not in doc
        and f"{p.name}`" not in doc
    )
    assert unnamed == []
