"""Planning a build: from lockfiles to the concrete layers and images a request needs. Pure: no I/O.

Layer order in an image: the base's layers, the venv layer, then package layers env by env
along the ancestry chain (root ancestor first; by name within an env), a merged layer for
packages beyond the layer budget, then one files layer per env of the chain that has files.
Packages of an ancestor are in at least as many images as those of its descendants, so this
is "most shared first": a child image extends its parent's layer list, and Docker stores the
shared prefix once (layers are keyed by ChainID).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envgraph.errors import StaleLockError
from envgraph.graph import EnvGraph
from envgraph.identity import VENV, InstallTarget, debian_key, files_key, package_key, venv_key
from envgraph.lock import BaseLock, Lockfile, Wheel
from envgraph.plan._model import (
    BaseLayer,
    FilesLayer,
    ImagePlan,
    LayerTask,
    MergedLayer,
    PackageLayer,
    Plan,
    PlanTarget,
    VenvLayer,
)

__all__ = ["DEFAULT_PATH", "make_plan"]

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def make_plan(
    graph: EnvGraph,
    locks: Mapping[str, Lockfile],
    bases: Mapping[str, BaseLock],
    target: PlanTarget,
    envs: Iterable[str] = (),
    pipelines: Iterable[str] = (),
) -> Plan:
    """Every layer and image the selected envs (default: all) need, from their (fresh) lockfiles."""
    selected = graph.select(envs, pipelines)
    layers: dict[str, LayerTask] = {}
    used_bases: dict[str, BaseLock] = {}
    images: list[ImagePlan] = []
    for e in selected:
        if e not in locks:
            raise StaleLockError(f"env {e} has no lockfile: run `envgraph lock`")
        base_name = graph.root_base(e)
        blk = bases.get(base_name)
        if blk is None:
            raise StaleLockError(f"base {base_name} has no lockfile: run `envgraph lock`")
        used_bases[base_name] = blk
        keys: list[str] = []
        labels: list[str] = []

        def add(task: LayerTask, keys: list[str] = keys, labels: list[str] = labels) -> None:
            layers.setdefault(task.key, task)
            keys.append(task.key)
            labels.append(task.label)

        if blk.debian is not None:
            key = debian_key(blk.debian.suite, blk.debian.versions, blk.debian.diff_id, target.compression)
            add(BaseLayer(key, base_name, target.compression))
        if blk.python is None:
            raise StaleLockError(f"base {base_name} declares no python interpreter: envs need one")
        install = InstallTarget(target.python, blk.python, target.bytecode, target.compression)
        add(VenvLayer(venv_key(install), install))
        lock = locks[e]
        merged = set(lock.merged)
        merged_wheels: list[tuple[str, Wheel]] = []
        for a in graph.chain(e):
            for pkg in locks[a].packages:
                if pkg.name in merged:
                    merged_wheels.append((pkg.name, pkg.wheel))
                    continue
                key = package_key(install, [(pkg.wheel.filename, pkg.wheel.sha256)])
                add(PackageLayer(key, install, pkg.name, pkg.version, pkg.wheel))
        if merged_wheels:
            key = package_key(install, [(w.filename, w.sha256) for _, w in merged_wheels])
            add(MergedLayer(key, install, tuple(sorted(merged_wheels, key=lambda nw: nw[0]))))
        environment: dict[str, str] = {}
        workdir = entrypoint = cmd = None
        for a in graph.chain(e):
            al = locks[a]
            for f in al.files:
                key = files_key(target.compression, f.dest, f.sha256)
                add(FilesLayer(key, target.compression, f.src, f.dest, f.sha256))
            environment.update(al.environment)
            workdir = al.workdir or workdir
            entrypoint = al.entrypoint if al.entrypoint is not None else entrypoint
            cmd = al.cmd if al.cmd is not None else cmd
        images.append(
            ImagePlan(
                env=e,
                drv=lock.drv,
                parent=graph.parent(e),
                base=base_name,
                layers=tuple(keys),
                labels=tuple(labels),
                environment={"PATH": f"{VENV}/bin:{DEFAULT_PATH}", "VIRTUAL_ENV": VENV, **environment},
                workdir=workdir,
                entrypoint=entrypoint,
                cmd=cmd,
            )
        )
    return Plan(layers, tuple(images), used_bases)
