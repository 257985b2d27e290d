"""Small real images for tests: a base whose interpreter is a fake ELF file, for checks that read the ELF header
and the interpreter's name without running anything."""

from __future__ import annotations

from pathlib import Path

from envgraph.oci._image import ImageConfigSpec, ImageLayer, write_image
from envgraph.oci._layer import write_layer
from envgraph.oci._model import Descriptor
from envgraph.oci._store import Store
from envgraph.oci._tar import LayerEntry, write_tar

__all__ = ["AMD64", "ARM64", "fake_python_base"]

AMD64, ARM64 = 0x3E, 0xB7


def fake_python_base(root: Path, machine: int = AMD64, tag: str = "base") -> Descriptor:
    """An OCI layout (a store) at ``root`` tagged ``tag``: /usr/bin/python3.11 starts with an ELF header for
    ``machine`` and /usr/bin/python3 links to it. It cannot run anything; it only looks like a base."""
    elf = (
        b"\x7fELF\x02\x01\x01"
        + b"\0" * 9
        + (2).to_bytes(2, "little")
        + machine.to_bytes(2, "little")
        + b"\0" * 44
    )
    store = Store.open(root)
    entries = [
        LayerEntry.from_bytes("usr/bin/python3.11", elf, executable=True),
        LayerEntry.symlink("usr/bin/python3", "python3.11"),
        LayerEntry.directory("usr/lib/python3.11"),
    ]
    blob, _ = write_layer(store, lambda sink: write_tar(entries, sink))
    desc = write_image(store, [ImageLayer(blob.diff_id, blob.descriptor(), "python")], ImageConfigSpec())
    store.tag(tag, desc)
    return desc
