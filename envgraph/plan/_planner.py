"""Planning a build: from lockfiles to the concrete layers and images a request needs. Pure: no I/O.

Layer order in an image: the base's layers, the venv layer, then env by env along the ancestry
chain (root ancestor first) the env's Debian package layers and its Python package layers (each
by name), a merged layer for what is beyond the layer budget, then one files layer per env of the
chain that has files.
Packages of an ancestor are in at least as many images as those of its descendants, so this
is "most shared first": a child image extends its parent's layer list, and Docker stores the
shared prefix once (layers are keyed by ChainID).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from envgraph._convert import unstructure
from envgraph._hashing import digest_of
from envgraph.debian._rootfs import SLIM_DPKG_OPTIONS
from envgraph.errors import StaleLockError
from envgraph.graph import EnvGraph
from envgraph.identity import (
    VENV,
    Compression,
    InstallTarget,
    built_wheel_id,
    deb_package_key,
    debian_key,
    files_key,
    image_id,
    package_key,
    venv_key,
    wheel_build_key,
)
from envgraph.lock import AptLock, BaseLock, DebPin, FilesRef, LockedPackage, Lockfile, Wheel
from envgraph.plan._model import (
    BaseLayer,
    BuildTask,
    DebLayer,
    FilesLayer,
    ImagePlan,
    LayerTask,
    MergedLayer,
    PackageLayer,
    Plan,
    PlanTarget,
    VenvLayer,
    WheelBuild,
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
    files: Mapping[FilesRef, str] | None = None,
) -> Plan:
    """Every layer and image the selected envs (default: all) need, from their (fresh) lockfiles; ``files`` is
    the content hash of each locked ``files`` entry of the selected envs' chains, by (src, exclude), hashed by
    the caller (code is not a dependency: its content names the files layers and the images, not the drv)."""
    files = files or {}
    # A package's key is the same in every env that lists it: hashed once per plan, not once per env.
    package_keys: dict[tuple[InstallTarget, tuple[tuple[str, str], ...]], str] = {}

    def key_of(install: InstallTarget, ids: tuple[tuple[str, str], ...]) -> str:
        if (install, ids) not in package_keys:
            package_keys[install, ids] = package_key(install, ids)
        return package_keys[install, ids]

    # An ancestor's .deb and package layers are the same for every env below it (one install target, no
    # merged tail): made once per plan, not once per descendant (a core of 20 packages under 1,000 leaves).
    own_tasks: dict[tuple[str, InstallTarget], list[LayerTask]] = {}
    venv_keys: dict[InstallTarget, str] = {}

    selected = graph.select(envs, pipelines)
    layers: dict[str, LayerTask] = {}
    builds: dict[str, BuildTask] = {}
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

        base_layer = None
        if blk.debian is not None:
            key = debian_key(blk.debian.suite, blk.debian.versions, blk.debian.diff_id, target.compression)
            base_layer = BaseLayer(key, base_name, target.compression)
            add(base_layer)
        if blk.python is None:
            raise StaleLockError(f"base {base_name} declares no python interpreter: envs need one")
        install = InstallTarget(target.python, blk.python, target.bytecode, target.compression)
        if install not in venv_keys:
            venv_keys[install] = venv_key(install)
        add(VenvLayer(venv_keys[install], install))
        lock = locks[e]
        merged = set(lock.merged)
        merged_wheels: list[tuple[str, Wheel]] = []
        merged_debs: list[DebLayer] = []
        merged_built: list[WheelBuild] = []
        for a in graph.chain(e):
            cached = own_tasks.get((a, install)) if not merged else None
            if cached is not None:
                for task in cached:
                    add(task)
                continue
            tasks: list[LayerTask] = []
            for d in _debs(locks[a].apt):
                deb = _deb_layer(d, blk, target.compression)
                if f"deb:{d.name}" in merged:
                    merged_debs.append(deb)
                else:
                    tasks.append(deb)
            for pkg in locks[a].packages:
                built = None
                if pkg.wheel is None:
                    built = _wheel_build(pkg, locks[a], blk, base_layer, install, target.compression, builds)
                if pkg.name in merged:
                    if built is not None:
                        merged_built.append(built)
                    else:
                        assert pkg.wheel is not None
                        merged_wheels.append((pkg.name, pkg.wheel))
                    continue
                ids = [built_wheel_id(pkg.name, pkg.version, built.key)] if built is not None else []
                if pkg.wheel is not None:
                    ids = [(pkg.wheel.filename, pkg.wheel.sha256)]
                tasks.append(
                    PackageLayer(
                        key_of(install, tuple(ids)), install, pkg.name, pkg.version, pkg.wheel, built
                    )
                )
            for task in tasks:
                add(task)
            if not merged:
                own_tasks[a, install] = tasks
        if merged_wheels or merged_debs or merged_built:
            ids = [(w.filename, w.sha256) for _, w in merged_wheels]
            ids += [built_wheel_id(b.name, b.version, b.key) for b in merged_built]
            key = key_of(install, tuple(ids))
            if merged_debs:  # a tail that mixes both kinds: the Python part's key and every .deb's layer key
                key = digest_of(
                    {"kind": "merged", "packages": key, "debian": sorted(d.key for d in merged_debs)}
                )
            add(
                MergedLayer(
                    key,
                    install,
                    tuple(sorted(merged_wheels, key=lambda nw: nw[0])),
                    tuple(sorted(merged_debs, key=lambda d: d.pin.name)),
                    tuple(sorted(merged_built, key=lambda b: b.name)),
                )
            )
        environment: dict[str, str] = {}
        image_labels: dict[str, str] = {}
        ports: set[str] = set()
        workdir = entrypoint = cmd = user = None
        contents: list[tuple[str, str]] = []  # (dest, content) of the chain's files, in image order
        for a in graph.chain(e):
            al = locks[a]
            for f in al.files:
                content = files.get((f.src, f.exclude))
                if content is None:
                    raise StaleLockError(f"env {a}: the content of files {f.src!r} was not hashed")
                contents.append((f.dest, content))
                key = files_key(target.compression, f.dest, content)
                add(FilesLayer(key, target.compression, f.src, f.dest, content, f.exclude))
            environment.update(al.environment)
            workdir = al.workdir or workdir
            entrypoint = al.entrypoint if al.entrypoint is not None else entrypoint
            cmd = al.cmd if al.cmd is not None else cmd
            user = al.user or user
            ports.update(p if "/" in p else f"{p}/tcp" for p in al.ports)
            image_labels.update(al.labels)
        images.append(
            ImagePlan(
                env=e,
                drv=lock.drv,
                ident=image_id(lock.drv, contents),
                parent=graph.parent(e),
                base=base_name,
                layers=tuple(keys),
                labels=tuple(labels),
                environment={"PATH": f"{VENV}/bin:{DEFAULT_PATH}", "VIRTUAL_ENV": VENV, **environment},
                workdir=workdir,
                entrypoint=entrypoint,
                cmd=cmd,
                user=user,
                ports=tuple(sorted(ports)),
                image_labels=dict(sorted(image_labels.items())),
            )
        )
    return Plan(layers, tuple(images), used_bases, builds)


def _debs(apt: AptLock | None) -> tuple[DebPin, ...]:
    return apt.packages if apt is not None else ()


def _deb_layer(pin: DebPin, base: BaseLock, compression: Compression) -> DebLayer:
    if base.debian is None:
        raise StaleLockError(
            f"Debian package {pin.name} needs a Debian base, and base {base.name} is not one"
        )
    merged_usr = tuple(sorted(base.debian.merged_usr))
    key = deb_package_key(pin.sha256, merged_usr, SLIM_DPKG_OPTIONS, compression)
    return DebLayer(key, compression, pin, base.debian.mirror, merged_usr, SLIM_DPKG_OPTIONS)


def _wheel_build(
    pkg: LockedPackage,
    lock: Lockfile,
    base: BaseLock,
    base_layer: BaseLayer | None,
    install: InstallTarget,
    compression: Compression,
    builds: dict[str, BuildTask],
) -> WheelBuild:
    """The build of a package without a wheel, in the build root of the env that locked it."""
    if pkg.source is None or pkg.build is None or base.debian is None or base_layer is None:
        raise StaleLockError(
            f"env {lock.env}: {pkg.name} has neither a wheel nor a source and build to build one from, or its "
            "base is not a Debian base: run `envgraph lock`"
        )
    if lock.build_apt is None:
        raise StaleLockError(
            f"env {lock.env}: {pkg.name} is built from source but the lock pins no build-apt"
        )
    debs = [_deb_layer(d, base, compression) for d in lock.build_apt.packages]
    builds.setdefault(base_layer.key, base_layer)
    for deb in debs:
        builds.setdefault(deb.key, deb)
    environment = {
        "base": {"suite": base.debian.suite, "diff-id": base.debian.diff_id},
        "merged-usr": sorted(base.debian.merged_usr),
        "debian": sorted([d.name, d.version, d.architecture, d.sha256] for d in lock.build_apt.packages),
    }
    # What the source is, not where it was fetched from: the same sdist from a mirror builds the same wheel.
    source = {
        k: v for k, v in unstructure(pkg.source).items() if k in ("kind", "sha256", "commit", "subdirectory")
    }
    key = wheel_build_key(
        name=pkg.name,
        version=pkg.version,
        source=source,
        backend=pkg.build.backend,
        backend_path=pkg.build.backend_path,
        requires=[d.wheel.sha256 for d in pkg.build.packages],
        environment=environment,
        python=install.python,
        interpreter=install.interpreter,
        platform=lock.platform,
    )
    task = WheelBuild(
        key=key,
        name=pkg.name,
        version=pkg.version,
        source=pkg.source,
        build=pkg.build,
        environment=(base_layer.key, *[d.key for d in debs]),
        python=install.python,
        interpreter=install.interpreter,
        platform=lock.platform,
        libc=base.libc,
    )
    builds.setdefault(key, task)
    return task
