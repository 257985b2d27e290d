"""What a build needs, as data: the layer tasks (one class per kind of layer) and the image plans."""

from __future__ import annotations

from typing import ClassVar

from attrs import field, frozen

from envgraph.identity import VENV, Compression, InstallTarget, image_tag
from envgraph.lock import BaseLock, Wheel

__all__ = [
    "BaseLayer",
    "VenvLayer",
    "PackageLayer",
    "MergedLayer",
    "FilesLayer",
    "LayerTask",
    "ImagePlan",
    "Plan",
    "PlanTarget",
]


@frozen
class PlanTarget:
    """What the planner needs to know of the build beyond the lockfiles."""

    python: str
    # Whether layers ship .pyc files: asked for, and an interpreter of the target version can compile them.
    bytecode: bool
    compression: Compression


class _Layer:
    # Whether this layer's paths take part in the "two packages write one path" check.
    installs_packages: ClassVar[bool] = False

    @property
    def wheels(self) -> tuple[tuple[str, Wheel], ...]:
        """(project name, wheel) of every wheel the layer is made from."""
        return ()

    @property
    def size_hint(self) -> int:
        return sum(w.size for _, w in self.wheels)


@frozen
class BaseLayer(_Layer):
    """A Debian base's root filesystem, rebuilt from its pinned package versions."""

    key: str
    base: str
    compression: Compression

    @property
    def label(self) -> str:
        return f"base {self.base}"


@frozen
class VenvLayer(_Layer):
    """``/opt/venv`` with ``pyvenv.cfg`` and ``bin/python`` linking the base's interpreter."""

    installs_packages: ClassVar[bool] = True
    key: str
    target: InstallTarget

    @property
    def label(self) -> str:
        return f"venv {VENV}"


@frozen
class PackageLayer(_Layer):
    """One wheel installed into the venv."""

    installs_packages: ClassVar[bool] = True
    key: str
    target: InstallTarget
    name: str
    version: str
    wheel: Wheel

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def wheels(self) -> tuple[tuple[str, Wheel], ...]:
        return ((self.name, self.wheel),)


@frozen
class MergedLayer(_Layer):
    """The packages beyond the layer budget, installed together into one layer."""

    installs_packages: ClassVar[bool] = True
    key: str
    target: InstallTarget
    packages: tuple[tuple[str, Wheel], ...]  # (name, wheel), sorted by name

    @property
    def label(self) -> str:
        return "merged " + ", ".join(n for n, _ in self.packages)

    @property
    def wheels(self) -> tuple[tuple[str, Wheel], ...]:
        return self.packages


@frozen
class FilesLayer(_Layer):
    """An env's ``files`` entry: a directory's contents (or one file) at ``dest``."""

    key: str
    compression: Compression
    src: str  # relative to the declaration file
    dest: str
    content: str  # tree hash the lockfile pinned

    @property
    def label(self) -> str:
        return f"files {self.dest}"


LayerTask = BaseLayer | VenvLayer | PackageLayer | MergedLayer | FilesLayer


@frozen
class ImagePlan:
    env: str
    drv: str
    parent: str | None
    base: str
    layers: tuple[str, ...]  # layer keys in image order, after the base image's own layers
    labels: tuple[str, ...]  # history comment per layer
    environment: dict[str, str]
    workdir: str | None
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None

    @property
    def tag(self) -> str:
        return image_tag(self.env, self.drv)


@frozen
class Plan:
    layers: dict[str, LayerTask]
    images: tuple[ImagePlan, ...]
    bases: dict[str, BaseLock] = field(factory=dict)
