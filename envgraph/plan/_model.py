"""What a build needs, as data: the layer tasks (one class per kind of layer) and the image plans."""

from __future__ import annotations

from typing import ClassVar

from attrs import field, frozen

from envgraph.identity import VENV, Compression, InstallTarget, image_tag
from envgraph.lock import BaseLock, BuildPin, DebPin, Source, Wheel

__all__ = [
    "BaseLayer",
    "VenvLayer",
    "DebLayer",
    "WheelBuild",
    "PackageLayer",
    "MergedLayer",
    "FilesLayer",
    "LayerTask",
    "BuildTask",
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
    def builds(self) -> tuple[WheelBuild, ...]:
        """The wheels built from source the layer installs."""
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
class DebLayer(_Layer):
    """One Debian package, extracted without maintainer scripts (see :mod:`envgraph.debian`)."""

    installs_packages: ClassVar[bool] = True
    key: str
    compression: Compression
    pin: DebPin
    mirror: str  # where the pinned pool path is fetched from (by sha256)
    merged_usr: tuple[str, ...]  # the base's top-level directories linked into /usr
    path_filters: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"deb:{self.pin.name} {self.pin.version}"

    @property
    def size_hint(self) -> int:
        return self.pin.size


@frozen
class WheelBuild(_Layer):
    """A wheel built from source in the env's own base (stored and cached like a layer, never in an image):
    the build root is the layers ``environment`` (the base's root filesystem, then Debian packages)."""

    key: str
    name: str
    version: str
    source: Source
    build: BuildPin
    environment: tuple[str, ...]  # keys of the build root's layers, bottom first
    python: str  # the target version, "3.11"
    interpreter: str  # the base's interpreter path
    platform: str  # "linux/amd64"
    libc: str  # "glibc-2.36": the built wheel's tags must fit the target

    @property
    def label(self) -> str:
        return f"wheel {self.name} {self.version} (built from {self.source.kind})"

    @property
    def wheels(self) -> tuple[tuple[str, Wheel], ...]:
        """The build requirements (the source comes separately)."""
        return tuple((d.name, d.wheel) for d in self.build.packages)

    @property
    def size_hint(self) -> int:
        return (self.source.size or 0) + sum(d.wheel.size for d in self.build.packages)


@frozen
class PackageLayer(_Layer):
    """One wheel installed into the venv: a downloaded one, or one built from source (``built``)."""

    installs_packages: ClassVar[bool] = True
    key: str
    target: InstallTarget
    name: str
    version: str
    wheel: Wheel | None
    built: WheelBuild | None = None

    @property
    def label(self) -> str:
        return f"{self.name} {self.version}"

    @property
    def wheels(self) -> tuple[tuple[str, Wheel], ...]:
        return ((self.name, self.wheel),) if self.wheel is not None else ()

    @property
    def builds(self) -> tuple[WheelBuild, ...]:
        return (self.built,) if self.built is not None else ()


@frozen
class MergedLayer(_Layer):
    """The packages beyond the layer budget, installed together into one layer (Debian packages first)."""

    installs_packages: ClassVar[bool] = True
    key: str
    target: InstallTarget
    packages: tuple[tuple[str, Wheel], ...]  # (name, wheel), sorted by name
    debs: tuple[DebLayer, ...] = ()  # sorted by name
    built: tuple[WheelBuild, ...] = ()  # sorted by name

    @property
    def label(self) -> str:
        names = [f"deb:{d.pin.name}" for d in self.debs] + sorted(
            [n for n, _ in self.packages] + [b.name for b in self.built]
        )
        return "merged " + ", ".join(names)

    @property
    def wheels(self) -> tuple[tuple[str, Wheel], ...]:
        return self.packages

    @property
    def builds(self) -> tuple[WheelBuild, ...]:
        return self.built

    @property
    def size_hint(self) -> int:
        return sum(w.size for _, w in self.packages) + sum(d.pin.size for d in self.debs)


@frozen
class FilesLayer(_Layer):
    """An env's ``files`` entry: a directory's contents (or one file) at ``dest``."""

    key: str
    compression: Compression
    src: str  # relative to the declaration file
    dest: str
    content: str  # tree hash when planned (checked again when the layer is built)
    exclude: tuple[str, ...] = ()  # the declared globs (the defaults always apply)

    @property
    def label(self) -> str:
        return f"files {self.dest}"


LayerTask = BaseLayer | VenvLayer | DebLayer | PackageLayer | MergedLayer | FilesLayer
"""A layer of an image."""
BuildTask = WheelBuild | BaseLayer | DebLayer
"""What building packages from source needs: the wheel builds and the layers of their build roots."""


@frozen
class ImagePlan:
    env: str
    drv: str
    ident: str  # identity.image_id: the drv, and the content of the chain's files
    parent: str | None
    base: str
    layers: tuple[str, ...]  # layer keys in image order, after the base image's own layers
    labels: tuple[str, ...]  # history comment per layer
    environment: dict[str, str]
    workdir: str | None
    entrypoint: tuple[str, ...] | None
    cmd: tuple[str, ...] | None
    user: str | None = None
    ports: tuple[str, ...] = ()  # "8000/tcp"
    image_labels: dict[str, str] = field(factory=dict)  # the declared labels, by full key

    @property
    def tag(self) -> str:
        return image_tag(self.env, self.ident)


@frozen
class Plan:
    layers: dict[str, LayerTask]
    images: tuple[ImagePlan, ...]
    bases: dict[str, BaseLock] = field(factory=dict)
    # Built only when a layer that needs them is built (a layer found in a cache needs none of them).
    builds: dict[str, BuildTask] = field(factory=dict)
