"""The content of an env's ``files``, hashed when an image is named or built, never pinned in the lockfile.

Code is not a dependency: a lockfile pins what each files entry is (src, dest, excludes); its content, hashed
here, goes into the files layer's key and the image id (:func:`envgraph.identity.image_id`). Editing code
therefore gives a new image and leaves ``lock --check`` green.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from pathlib import Path

from envgraph import identity
from envgraph._fs import os_error_text
from envgraph._hashing import files_content
from envgraph.errors import BuildError
from envgraph.lock._model import FilePin, Lockfile, image_ident

__all__ = ["FilesRef", "chain_files", "chain_ident", "chain_idents", "hash_files"]

FilesRef = tuple[str, tuple[str, ...]]
"""A locked ``files`` entry as its content is looked up: (src relative to the project, declared excludes)."""


def hash_files(
    root: Path, pins: Iterable[FilePin], known: MutableMapping[FilesRef, str] | None = None
) -> dict[FilesRef, str]:
    """The content hash of each entry, by (src, exclude), each hashed once (``known`` holds those hashed already
    and is updated). ``src`` was validated as a project-relative path when the lockfile was read."""
    out = known if known is not None else {}
    for pin in pins:
        ref = (pin.src, pin.exclude)
        if ref in out:
            continue
        src = root / pin.src
        try:
            if not src.exists():
                raise BuildError(
                    f"files {pin.src!r} does not exist (the lockfile names it): restore it or relock"
                )
            out[ref] = files_content(src, pin.exclude)
        except OSError as e:
            raise BuildError(f"files {pin.src!r}: cannot read {os_error_text(e)}") from None
    return dict(out)


def chain_files(chain: Sequence[Lockfile], contents: Mapping[FilesRef, str]) -> list[tuple[str, str]]:
    """(dest, content) of every files entry of an env's chain (root ancestor first): its image's files."""
    return [(f.dest, contents[(f.src, f.exclude)]) for lock in chain for f in lock.files]


def chain_ident(
    root: Path, chain: Sequence[Lockfile], known: MutableMapping[FilesRef, str] | None = None
) -> str:
    """The image id of the last env of ``chain`` (its lockfile and its ancestors', root first), hashing the
    chain's files now."""
    return chain_idents(root, chain, known)[0]


def chain_idents(
    root: Path, chain: Sequence[Lockfile], known: MutableMapping[FilesRef, str] | None = None
) -> list[str]:
    """Every id the store tags the last env of ``chain``'s images with: its image id first (for a
    multi-platform lock, the index's), then, for a multi-platform lock, each platform's image id."""
    lock = chain[-1]
    files = chain_files(chain, hash_files(root, (f for c in chain for f in c.files), known))
    ids = [image_ident(lock, files)]
    if lock.platforms:
        ids += [
            identity.image_id(drv, files) for drv in (lock.drv, *(p.drv for p in lock.platforms.values()))
        ]
    return ids
