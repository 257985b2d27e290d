"""The pure planner: ``make_plan`` on hand-made lockfiles, no files, no resolver, no store.

Layer order, sharing between images, merged layers, files layers, the layer kinds and their keys, what an
image inherits along its chain, selection, and the errors for what is missing.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest

from envgraph.errors import StaleLockError
from envgraph.graph import EnvGraph, build_graph
from envgraph.identity import (
    LOCK_VERSION,
    VENV,
    Compression,
    InstallTarget,
    debian_key,
    files_key,
    image_id,
    image_tag,
    package_key,
    venv_key,
)
from envgraph.lock import (
    BaseLock,
    BaseRef,
    DebianPin,
    FilePin,
    ImagePin,
    LockedPackage,
    Lockfile,
    ParentRef,
    Resolver,
    Wheel,
)
from envgraph.plan import (
    BaseLayer,
    FilesLayer,
    ImagePlan,
    MergedLayer,
    PackageLayer,
    Plan,
    PlanTarget,
    VenvLayer,
    make_plan,
)
from envgraph.plan._planner import DEFAULT_PATH
from envgraph.spec import parse_spec

PYTHON = "/usr/bin/python3.11"
TARGET = PlanTarget(python="3.11", bytecode=False, compression=Compression.GZIP)
INSTALL = InstallTarget("3.11", PYTHON, False, Compression.GZIP)

# deb: a Debian base; img: an image base. core <- train, core <- serve (files, merged); other on img.
DECLARATION = """
[project]
name = "p"
python = "3.11"

[bases.deb]
debian = { suite = "bookworm", packages = ["python3"] }
python = "/usr/bin/python3.11"

[bases.img]
image = "docker://registry.example/base:1"
python = "/usr/local/bin/python3.11"

[env.core]
base = "deb"
requirements = ["alpha", "beta"]

[env.train]
parent = "core"
requirements = ["gamma"]

[env.serve]
parent = "core"
requirements = ["delta", "eps", "zeta"]

[env.other]
base = "img"
requirements = ["alpha"]

[pipeline.fit]
steps = { train = "train" }
"""


def sha(n: int) -> str:
    return f"{n:064x}"


def pkg(name: str, version: str, n: int) -> LockedPackage:
    return LockedPackage(
        name, version, Wheel(f"{name}-{version}-py3-none-any.whl", sha(n), 1000 * n, f"w/{name}")
    )


ALPHA, BETA, GAMMA, DELTA, EPS, ZETA = (
    pkg("alpha", "1.0", 1),
    pkg("beta", "2.0", 2),
    pkg("gamma", "3.0", 3),
    pkg("delta", "0.5", 4),
    pkg("eps", "1.1", 5),
    pkg("zeta", "9.0", 6),
)


ENVS = ("core", "train", "serve", "other")


def lockfile(env: str, *packages: LockedPackage, **fields: object) -> Lockfile:
    lock = Lockfile(
        version=LOCK_VERSION, env=env, python="3.11", platform="linux/amd64", bytecode=False, base=None,
        parent=None,
        requirements=(), packages=tuple(sorted(packages, key=lambda p: p.name)), environment={}, files=(),
        workdir=None, entrypoint=None, cmd=None, merged=(), resolver=Resolver("25.2", "7.5.1"),
        inputs="sha256:" + sha(100), drv="sha256:" + sha(200 + sorted(ENVS).index(env)),
    )  # fmt: skip
    return attrs.evolve(lock, **fields)


LOCKS = {
    "core": lockfile("core", ALPHA, BETA, base=BaseRef("deb", "sha256:" + sha(11)),
                     environment={"A": "1", "B": "core"}, workdir="/core",
                     cmd=("python",)),
    "train": lockfile("train", GAMMA, parent=ParentRef("core", "sha256:" + sha(7)), environment={"B": "train"},
                      files=(FilePin("data/", "/data"),), entrypoint=("run",), workdir="/train"),
    "serve": lockfile("serve", DELTA, EPS, ZETA, parent=ParentRef("core", "sha256:" + sha(7)),
                      merged=("beta", "eps", "zeta"), files=(FilePin("app/", "/app"),),
                      cmd=()),
    "other": lockfile("other", ALPHA, base=BaseRef("img", "sha256:" + sha(13))),
}  # fmt: skip
BASES = {
    "deb": BaseLock(1, "deb", PYTHON, "glibc-2.36", "sha256:" + sha(10), "sha256:" + sha(11),
                    debian=DebianPin("bookworm", ("python3",), "http://deb.debian.org/debian", {"python3": "3.11.2-1"},
                                     "sha256:" + sha(15))),
    "img": BaseLock(1, "img", "/usr/local/bin/python3.11", "glibc-2.17", "sha256:" + sha(12), "sha256:" + sha(13),
                    image=ImagePin("docker://registry.example/base:1", "sha256:" + sha(14), 3)),
}  # fmt: skip
# The content of the files entries, as the workspace hashes them at build time.
FILES = {("data/", ()): "sha256:" + sha(8), ("app/", ()): "sha256:" + sha(9)}


@pytest.fixture(scope="module")
def graph() -> EnvGraph:
    # A root that does not exist: the planner must not need the project's files.
    return build_graph(parse_spec(DECLARATION, root=Path("/nonexistent/project")))


@pytest.fixture(scope="module")
def plan(graph: EnvGraph) -> Plan:
    return make_plan(graph, LOCKS, BASES, TARGET, files=FILES)


def image(plan: Plan, env: str) -> ImagePlan:
    (img,) = [i for i in plan.images if i.env == env]
    return img


def kinds(plan: Plan, env: str) -> list[str]:
    return [type(plan.layers[k]).__name__ for k in image(plan, env).layers]


def test_layer_order_base_venv_packages_by_chain_merged_then_files(plan: Plan) -> None:
    assert image(plan, "core").labels == ("base deb", "venv /opt/venv", "alpha 1.0", "beta 2.0")
    assert image(plan, "train").labels == (
        "base deb", "venv /opt/venv", "alpha 1.0", "beta 2.0", "gamma 3.0", "files /data",
    )  # fmt: skip
    # serve merges beta (an ancestor's package), eps and zeta into one layer after its own package layers.
    assert image(plan, "serve").labels == (
        "base deb", "venv /opt/venv", "alpha 1.0", "delta 0.5", "merged beta, eps, zeta", "files /app",
    )  # fmt: skip
    assert kinds(plan, "serve") == [
        "BaseLayer", "VenvLayer", "PackageLayer", "PackageLayer", "MergedLayer", "FilesLayer",
    ]  # fmt: skip
    # An image base contributes no layer task: its layers come from the pinned image.
    assert image(plan, "other").labels == ("venv /opt/venv", "alpha 1.0")
    # A child's image extends its parent's layer list (most shared first).
    core, train = image(plan, "core").layers, image(plan, "train").layers
    assert train[: len(core)] == core


def test_images_and_layers_in_selection_order(plan: Plan, graph: EnvGraph) -> None:
    assert [i.env for i in plan.images] == graph.select()
    assert set(plan.layers) == {k for i in plan.images for k in i.layers}
    for img in plan.images:
        assert [plan.layers[k].label for k in img.layers] == list(img.labels)
        assert img.tag == image_tag(img.env, img.ident)
        assert img.drv == LOCKS[img.env].drv


def test_shared_layers_are_one_task_with_one_key(plan: Plan) -> None:
    train, serve, other = (set(image(plan, e).layers) for e in ("train", "serve", "other"))
    shared = train & serve
    assert {plan.layers[k].label for k in shared} == {"base deb", "venv /opt/venv", "alpha 1.0"}
    # other is on another base with another interpreter: its venv and its alpha are other layers.
    assert not other & (train | serve)
    distinct = {k for img in plan.images for k in img.layers}
    assert len(plan.layers) == len(distinct) == 11


def test_keys_are_the_identity_rules(plan: Plan) -> None:
    core = image(plan, "core")
    base, venv, alpha, beta = (plan.layers[k] for k in core.layers)
    assert isinstance(base, BaseLayer) and base.key == debian_key("bookworm", {"python3": "3.11.2-1"}, "sha256:" + sha(15),
                                                                   Compression.GZIP)  # fmt: skip
    assert isinstance(venv, VenvLayer) and venv.key == venv_key(INSTALL) and venv.target == INSTALL
    assert isinstance(alpha, PackageLayer) and alpha.key == package_key(
        INSTALL, [(ALPHA.wheel.filename, sha(1))]
    )
    assert (alpha.name, alpha.version, alpha.wheel) == ("alpha", "1.0", ALPHA.wheel)
    assert alpha.wheels == (("alpha", ALPHA.wheel),) and alpha.size_hint == 1000
    merged = plan.layers[image(plan, "serve").layers[4]]
    assert isinstance(merged, MergedLayer)
    assert merged.packages == (("beta", BETA.wheel), ("eps", EPS.wheel), ("zeta", ZETA.wheel))
    assert merged.key == package_key(INSTALL, [(w.filename, w.sha256) for _, w in merged.packages])
    assert merged.size_hint == 2000 + 5000 + 6000
    files = plan.layers[image(plan, "train").layers[-1]]
    assert isinstance(files, FilesLayer)
    assert (files.src, files.dest, files.content) == ("data/", "/data", "sha256:" + sha(8))
    assert files.key == files_key(Compression.GZIP, "/data", "sha256:" + sha(8))
    assert files.wheels == () and files.size_hint == 0
    # Which kinds install into the venv (and so take part in the two-packages-one-path check).
    assert [type(t).installs_packages for t in (base, venv, alpha, merged, files)] == [
        False, True, True, True, False,
    ]  # fmt: skip
    other_alpha = plan.layers[image(plan, "other").layers[1]]
    assert isinstance(other_alpha, PackageLayer)
    assert other_alpha.target.interpreter == "/usr/local/bin/python3.11"


def test_config_is_inherited_along_the_chain(plan: Plan) -> None:
    core, train, serve = (image(plan, e) for e in ("core", "train", "serve"))
    path = {"PATH": f"{VENV}/bin:{DEFAULT_PATH}", "VIRTUAL_ENV": VENV}
    assert core.environment == {**path, "A": "1", "B": "core"}
    assert train.environment == {**path, "A": "1", "B": "train"}  # the child's value wins
    assert (train.workdir, train.entrypoint, train.cmd) == ("/train", ("run",), ("python",))
    assert (serve.workdir, serve.entrypoint) == ("/core", None)
    assert serve.cmd == ()  # an empty cmd clears the parent's; None inherits it
    assert (core.parent, train.parent, core.base, train.base) == (None, "core", "deb", "deb")


def test_selection_brings_ancestors_and_only_the_bases_used(graph: EnvGraph) -> None:
    plan = make_plan(graph, LOCKS, BASES, TARGET, envs=["train"], files=FILES)
    assert [i.env for i in plan.images] == ["core", "train"]
    assert set(plan.bases) == {"deb"}
    by_pipeline = make_plan(graph, LOCKS, BASES, TARGET, pipelines=["fit"], files=FILES)
    assert by_pipeline == plan
    other = make_plan(
        graph, {"other": LOCKS["other"]}, {"img": BASES["img"]}, TARGET, envs=["other"], files=FILES
    )
    assert set(other.bases) == {"img"} and [i.env for i in other.images] == ["other"]


def test_the_plan_is_a_function_of_its_inputs(graph: EnvGraph, plan: Plan) -> None:
    again = make_plan(graph, dict(reversed(list(LOCKS.items()))), BASES, TARGET, files=FILES)
    assert again == plan
    assert list(again.layers) == list(plan.layers)


def test_target_bytecode_and_compression_move_every_layer_key(graph: EnvGraph, plan: Plan) -> None:
    for target in (attrs.evolve(TARGET, bytecode=True), attrs.evolve(TARGET, compression=Compression.ZSTD)):
        other = make_plan(graph, LOCKS, BASES, target, files=FILES)
        moved = set(other.layers) & set(plan.layers)
        if target.compression is TARGET.compression:  # bytecode: base and files layers do not depend on it
            assert {other.layers[k].label for k in moved} == {"base deb", "files /data", "files /app"}
        else:
            assert moved == set()
        assert [i.labels for i in other.images] == [i.labels for i in plan.images]


def test_missing_locks_and_bases_are_stale_lock_errors(graph: EnvGraph) -> None:
    without_train = {e: lock for e, lock in LOCKS.items() if e != "train"}
    with pytest.raises(StaleLockError, match=r"^env train has no lockfile: run `envgraph lock`$"):
        make_plan(graph, without_train, BASES, TARGET, files=FILES)
    assert make_plan(
        graph, without_train, BASES, TARGET, envs=["serve"], files=FILES
    ).images  # not needed: fine
    with pytest.raises(StaleLockError, match=r"^base img has no lockfile: run `envgraph lock`$"):
        make_plan(graph, LOCKS, {"deb": BASES["deb"]}, TARGET, files=FILES)
    no_python = {**BASES, "img": attrs.evolve(BASES["img"], python=None)}
    with pytest.raises(StaleLockError, match=r"^base img declares no python interpreter: envs need one$"):
        make_plan(graph, LOCKS, no_python, TARGET, envs=["other"], files=FILES)


def test_files_content_names_the_image_not_the_drv(graph: EnvGraph, plan: Plan) -> None:
    """Code is not a dependency: an image without files is named by its drv; with files (its own or an
    ancestor's), by the drv and the files' content, so a code edit changes the files layer and the tag only."""
    assert image(plan, "core").ident == image(plan, "core").drv == LOCKS["core"].drv
    assert image(plan, "core").tag == f"core:{LOCKS['core'].drv[7:19]}"
    serve = image(plan, "serve")
    assert serve.ident == image_id(serve.drv, [("/app", "sha256:" + sha(9))]) != serve.drv
    assert serve.tag == f"serve:{serve.ident[7:19]}"
    edited = make_plan(graph, LOCKS, BASES, TARGET, files={**FILES, ("app/", ()): "sha256:" + sha(99)})
    after = image(edited, "serve")
    assert after.drv == serve.drv and after.tag != serve.tag
    assert set(after.layers) ^ set(serve.layers) == {
        files_key(Compression.GZIP, "/app", "sha256:" + sha(9)),
        files_key(Compression.GZIP, "/app", "sha256:" + sha(99)),
    }
    assert image(edited, "train") == image(plan, "train")  # another env's files: untouched
    with pytest.raises(StaleLockError, match="content of files 'app/' was not hashed"):
        make_plan(graph, LOCKS, BASES, TARGET, envs=["serve"])
