"""Planning a build: from lockfiles to the concrete layers and images a request needs.

Layer order in an image: the base's layers, the venv layer, then package layers env by env
along the ancestry chain (root ancestor first; by name within an env), a merged layer for
packages beyond the layer budget, then one files layer per env of the chain that has files.
Packages of an ancestor are in at least as many images as those of its descendants, so this
is "most shared first": a child image extends its parent's layer list, and Docker stores the
shared prefix once (layers are keyed by ChainID).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from attrs import field, frozen

from envgraph._hashing import digest_of
from envgraph.builder._layers import (
    VENV,
    InstallTarget,
    bytecode_interpreter,
    files_key,
    package_key,
    venv_key,
)
from envgraph.errors import StaleLockError
from envgraph.lock._lockfile import read_base_lock, read_lock
from envgraph.lock._model import BaseLock, Lockfile, Wheel
from envgraph.oci._compress import Compression

if TYPE_CHECKING:
    from envgraph.workspace import Workspace

__all__ = ["LayerTask", "ImagePlan", "Plan", "make_plan", "LABEL_ENV", "LABEL_DRV", "DEFAULT_PATH"]

LABEL_ENV = "dev.envgraph.env"
LABEL_DRV = "dev.envgraph.drv"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@frozen
class LayerTask:
    key: str
    kind: str  # "debian", "venv", "package", "merged", "files"
    label: str
    wheels: tuple[tuple[str, Wheel], ...] = ()  # (project name, wheel)
    src: str | None = None
    dest: str | None = None
    content: str | None = None
    base: str | None = None
    target: InstallTarget | None = None

    @property
    def size_hint(self) -> int:
        return sum(w.size for _, w in self.wheels)


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
        return f"{self.env}:{self.drv.removeprefix('sha256:')[:12]}"


@frozen
class Plan:
    layers: dict[str, LayerTask]
    images: tuple[ImagePlan, ...]
    bases: dict[str, BaseLock] = field(factory=dict)


def debian_key(lock: BaseLock, compression: Compression) -> str:
    assert lock.debian is not None
    return digest_of(
        {
            "kind": "debian",
            "identity": lock.identity,
            "versions": lock.debian.versions,
            "compressor": compression.compressor_id,
        }
    )


def make_plan(ws: Workspace, envs: Iterable[str] = (), pipelines: Iterable[str] = ()) -> Plan:
    """Every layer and image the request needs, from the lockfiles. Missing or stale locks are errors."""
    graph = ws.graph
    selected = graph.select(envs, pipelines)
    locks: dict[str, Lockfile] = {}
    for e in selected:
        lock = read_lock(ws.lockdir, e)
        if lock is None:
            raise StaleLockError(f"env {e} has no lockfile: run `envgraph lock`")
        locks[e] = lock
    _check_fresh(ws, selected, locks)

    compression = Compression.GZIP
    # The layer key says whether .pyc files are in the layer: only when they can really be compiled here.
    bytecode = ws.spec.project.bytecode and bytecode_interpreter(ws.spec.project.python) is not None
    layers: dict[str, LayerTask] = {}
    bases: dict[str, BaseLock] = {}
    images: list[ImagePlan] = []
    for e in selected:
        base_name = graph.root_base(e)
        if base_name not in bases:
            blk = read_base_lock(ws.lockdir, base_name)
            if blk is None:
                raise StaleLockError(f"base {base_name} has no lockfile: run `envgraph lock`")
            bases[base_name] = blk
        blk = bases[base_name]
        keys: list[str] = []
        labels: list[str] = []

        def add(task: LayerTask, keys: list[str] = keys, labels: list[str] = labels) -> None:
            layers.setdefault(task.key, task)
            keys.append(task.key)
            labels.append(task.label)

        if blk.debian is not None:
            add(LayerTask(debian_key(blk, compression), "debian", f"base {base_name}", base=base_name))
        interpreter = blk.python
        if interpreter is None:
            raise StaleLockError(f"base {base_name} declares no python interpreter: envs need one")
        target = InstallTarget(ws.spec.project.python, interpreter, bytecode, compression)
        add(LayerTask(venv_key(target), "venv", f"venv {VENV}", target=target))
        lock = locks[e]
        merged = set(lock.merged)
        merged_wheels: list[tuple[str, Wheel]] = []
        for a in graph.chain(e):
            for pkg in locks[a].packages:
                if pkg.name in merged:
                    merged_wheels.append((pkg.name, pkg.wheel))
                    continue
                key = package_key(target, [(pkg.wheel.filename, pkg.wheel.sha256)])
                add(
                    LayerTask(
                        key, "package", f"{pkg.name} {pkg.version}", ((pkg.name, pkg.wheel),), target=target
                    )
                )
        if merged_wheels:
            key = package_key(target, [(w.filename, w.sha256) for _, w in merged_wheels])
            label = "merged " + ", ".join(n for n, _ in sorted(merged_wheels))
            add(LayerTask(key, "merged", label, tuple(sorted(merged_wheels)), target=target))
        environment: dict[str, str] = {}
        workdir = entrypoint = cmd = None
        for a in graph.chain(e):
            al = locks[a]
            for f in al.files:
                add(LayerTask(files_key(target, f.dest, f.sha256), "files", f"files {f.dest}",
                              src=f.src, dest=f.dest, content=f.sha256, target=target))  # fmt: skip
            environment.update(al.environment)
            workdir = al.workdir or workdir
            entrypoint = al.entrypoint if al.entrypoint is not None else entrypoint
            cmd = al.cmd if al.cmd is not None else cmd
        env_vars = {"PATH": f"{VENV}/bin:{DEFAULT_PATH}", "VIRTUAL_ENV": VENV, **environment}
        images.append(
            ImagePlan(
                env=e,
                drv=lock.drv,
                parent=graph.parent(e),
                base=base_name,
                layers=tuple(keys),
                labels=tuple(labels),
                environment=env_vars,
                workdir=workdir,
                entrypoint=entrypoint,
                cmd=cmd,
            )  # fmt: skip
        )
    return Plan(layers, tuple(images), bases)


def _check_fresh(ws: Workspace, selected: list[str], locks: dict[str, Lockfile]) -> None:
    """Build only from lockfiles that match the declarations (what `envgraph lock --check` checks)."""
    stale = ws.lock(selected, check=True).stale
    if stale:
        names = ", ".join(f"{o.kind} {o.name} ({o.reason})" for o in stale)
        raise StaleLockError(f"stale lockfiles: {names}: run `envgraph lock`")
