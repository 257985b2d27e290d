"""The four contenders. Each builds every image of a graph version and can say what it stored and push it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import attrs
import docker

from benchmarks.services import Daemon, PeakRss, Registry, disk_usage, run_with_peak_rss
from benchmarks.workloads import Version, envgraph_cmd

Log = Callable[[str], None]
REPO = "envgraph-bench"
BASE_IMPORTED = f"{REPO}/debian:rootfs"
BASE = (
    f"{REPO}/debian:pip"  # the Debian rootfs envgraph builds, plus pip: every Docker contender starts FROM it
)
IMAGE_REPO = "bench"


@attrs.frozen
class BuildOutcome:
    layers_built: int | None
    images: int
    notes: tuple[str, ...] = ()
    peak_rss_bytes: int | None = None


class Unavailable(Exception):
    """The contender cannot run here; the message says what is missing."""


def _check_stream(chunks: Iterable[Mapping[str, Any]], what: str) -> list[str]:
    lines: list[str] = []
    for chunk in chunks:
        detail = chunk.get("errorDetail")
        err = chunk.get("error") or (detail.get("message") if isinstance(detail, Mapping) else None)
        if err:
            raise RuntimeError(f"{what}: {err}")
        if isinstance(chunk.get("stream"), str):
            lines.append(chunk["stream"])
    return lines


def chain_ids(diff_ids: list[str]) -> list[str]:
    out: list[str] = []
    for d in diff_ids:
        out.append(d if not out else "sha256:" + hashlib.sha256(f"{out[-1]} {d}".encode()).hexdigest())
    return out


# --------------------------------------------------------------------------------------------- Docker


class DockerContender:
    """Shared machinery: base image, reset, stored bytes, layer counting, push."""

    name = "docker"

    def __init__(
        self, daemon: Daemon, work: Path, wheelhouse: Path, base_tar: Path, pip_wheel: Path, log: Log
    ) -> None:
        self.daemon = daemon
        self.client = docker.DockerClient(base_url=daemon.host, timeout=1800)
        self.api = self.client.api
        self.work = work / self.name
        self.wheelhouse = wheelhouse
        self.base_tar = base_tar
        self.pip_wheel = pip_wheel
        self.log = log
        self.baseline = 0
        self.env = dict(os.environ, DOCKER_HOST=daemon.host)

    # -- setup and reset

    def ensure_base(self) -> None:
        tags = {t for i in self.client.images.list() for t in i.tags}
        if BASE in tags:
            return
        if BASE_IMPORTED not in tags:
            self.log(f"importing the Debian base rootfs {self.base_tar.name} as {BASE_IMPORTED}")
            with open(self.base_tar, "rb") as f:
                self.api.import_image_from_data(f, repository=BASE_IMPORTED.split(":")[0], tag="rootfs")
        ctx = self.work.parent / "base-context"
        shutil.rmtree(ctx, ignore_errors=True)
        ctx.mkdir(parents=True)
        shutil.copyfile(self.pip_wheel, ctx / self.pip_wheel.name)
        (ctx / "Dockerfile").write_text(
            f"FROM {BASE_IMPORTED}\n"
            f"COPY {self.pip_wheel.name} /tmp/\n"
            f"RUN python3.11 /tmp/{self.pip_wheel.name}/pip install --no-cache-dir --break-system-packages "
            f"--no-index /tmp/{self.pip_wheel.name} && rm /tmp/{self.pip_wheel.name}\n"
            "ENV PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore PIP_NO_INPUT=1\n"
        )
        _check_stream(
            self.api.build(path=str(ctx), tag=BASE, rm=True, decode=True, network_mode="none"), "base build"
        )

    def reset(self) -> None:
        """Cold: no images but the base, no build cache, no stopped containers."""
        self.ensure_base()
        self.client.containers.prune()
        keep: set[str] = set()
        for ref in (BASE, BASE_IMPORTED):  # the bases and every ancestor of them (classic-builder parents)
            img_id = self.client.images.get(ref).id
            while img_id and img_id not in keep:
                keep.add(img_id)
                img_id = self.api.inspect_image(img_id).get("Parent") or ""
        for img in self.client.images.list(all=True):
            ours = any(t.startswith(f"{IMAGE_REPO}/") or f"/{self.name}/" in t for t in img.tags)
            # On a daemon we did not start, remove only what the benchmark made (and dangling layers).
            if img.id not in keep and (self.daemon.started or ours or not img.tags):
                try:
                    self.client.images.remove(img.id, force=True, noprune=False)
                except docker.errors.NotFound:
                    pass
                except docker.errors.APIError as e:
                    self.log(f"  could not remove {img.id[:19]}: {e.explanation}")
        subprocess.run(["docker", "builder", "prune", "-af"], env=self.env, capture_output=True, check=False)
        self.api.prune_builds()
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self.baseline = self.data_bytes()

    def data_bytes(self) -> int:
        return disk_usage(self.daemon.data_root) if self.daemon.data_root else 0

    def stored_bytes(self) -> int:
        return self.data_bytes() - self.baseline

    def _all_chains(self) -> set[str]:
        out: set[str] = set()
        for img in self.client.images.list(all=True):
            out.update(chain_ids(img.attrs.get("RootFS", {}).get("Layers", [])))
        return out

    def build(self, v: Version, wheel_url: str, jobs: int) -> BuildOutcome:
        before = self._all_chains()
        images = v.graph.images()
        with PeakRss(self.daemon.pid) as rss:
            self.build_images(v, images, wheel_url, jobs)
        after: set[str] = set()
        for image in images:
            after.update(chain_ids(self.client.images.get(f"{IMAGE_REPO}/{image}").attrs["RootFS"]["Layers"]))
        return BuildOutcome(
            layers_built=len(after - before), images=len(images), peak_rss_bytes=rss.peak or None
        )

    def build_images(self, v: Version, images: dict[str, str], wheel_url: str, jobs: int) -> None:
        raise NotImplementedError

    def push(self, v: Version, reg: Registry) -> None:
        for image in v.graph.images():
            src = self.client.images.get(f"{IMAGE_REPO}/{image}")
            repo = f"{reg.host}/{self.name}/{image}"
            src.tag(repo, "latest")
            _check_stream(self.api.push(repo, tag="latest", stream=True, decode=True), f"push {repo}")


class LegacyDocker(DockerContender):
    """Dockerfiles built with the Docker SDK's classic builder; wheels come from the wheelhouse over HTTP."""

    nocache = True

    def build_images(self, v: Version, images: dict[str, str], wheel_url: str, jobs: int) -> None:
        for image, env in sorted(images.items()):
            ctx = self.work / "contexts" / image
            shutil.rmtree(ctx, ignore_errors=True)
            ctx.mkdir(parents=True)
            _copy_pins(v.requirements[env], ctx / "requirements.txt")
            (ctx / "Dockerfile").write_text(
                f"FROM {BASE}\n"
                "COPY requirements.txt /tmp/requirements.txt\n"
                f"RUN python3.11 -m pip install --no-cache-dir --no-index --find-links {wheel_url} "
                "-r /tmp/requirements.txt\n"
            )
            stream = self.api.build(
                path=str(ctx),
                tag=f"{IMAGE_REPO}/{image}",
                nocache=self.nocache,
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                network_mode="host",  # only to reach the wheelhouse on 127.0.0.1
            )
            _check_stream(stream, f"docker build {image}")


class PerPipelineDocker(LegacyDocker):
    """What ML pipeline tools generate: one image per pipeline step env, each built on its own (no cache)."""

    name = "per-pipeline-docker"
    nocache = True


class DockerCache(LegacyDocker):
    """The same Dockerfiles one after another on one daemon, with its layer cache."""

    name = "docker-cache"
    nocache = False


def buildkit_cli() -> tuple[str, str | None]:
    """A docker CLI that can drive BuildKit: a 20.10 CLI (built-in client) or a newer one with buildx."""
    reasons = []
    for cli in dict.fromkeys(filter(None, [shutil.which("docker"), "/usr/bin/docker"])):
        if not os.access(cli, os.X_OK):
            continue
        ver = subprocess.run([cli, "--version"], capture_output=True, text=True).stdout
        try:
            major = int(ver.split("version ")[1].split(".")[0])
        except (IndexError, ValueError):
            continue
        if major < 23:
            return cli, None
        if subprocess.run([cli, "buildx", "version"], capture_output=True).returncode == 0:
            return cli, None
        reasons.append(f"{cli} is Docker {major} without the buildx plugin")
    return "", "; ".join(reasons) or "no docker CLI found"


class BuildkitUv(DockerContender):
    """Best practice today: BuildKit, ``uv pip install`` with a cache mount, wheels bind-mounted from the context."""

    name = "buildkit-uv"

    def __init__(self, *a: Any, uv_binary: Path, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.uv_binary = uv_binary
        self.cli, why = buildkit_cli()
        if why:
            raise Unavailable(why)

    def build_images(self, v: Version, images: dict[str, str], wheel_url: str, jobs: int) -> None:
        # One context for all images, so BuildKit sends the wheelhouse once and then only what changed.
        ctx = self.work / "context"
        (ctx / "wheels").mkdir(parents=True, exist_ok=True)
        (ctx / "tools").mkdir(exist_ok=True)
        if not (ctx / "tools" / "uv").exists():
            shutil.copy2(self.uv_binary, ctx / "tools" / "uv")
        for p in self.wheelhouse.glob("*.whl"):
            if not (ctx / "wheels" / p.name).exists():
                os.link(p, ctx / "wheels" / p.name)
        (ctx / "reqs").mkdir(exist_ok=True)
        (ctx / "dockerfiles").mkdir(exist_ok=True)
        for image, env in images.items():
            _copy_pins(v.requirements[env], ctx / "reqs" / f"{image}.txt")
            (ctx / "dockerfiles" / f"{image}.Dockerfile").write_text(
                f"FROM {BASE}\n"
                f"COPY reqs/{image}.txt /tmp/requirements.txt\n"
                "RUN --mount=type=bind,source=wheels,target=/wheels "
                "--mount=type=bind,source=tools,target=/opt/uv "
                "--mount=type=cache,target=/root/.cache/uv "
                "UV_LINK_MODE=copy /opt/uv/uv pip install --system --break-system-packages "
                "--python /usr/bin/python3.11 --no-index --find-links /wheels -r /tmp/requirements.txt\n"
            )
        env = dict(self.env, DOCKER_BUILDKIT="1")

        def one(image: str) -> None:
            cmd = [self.cli, "build", "--network", "none", "--progress", "plain", "-t", f"{IMAGE_REPO}/{image}",
                   "-f", str(ctx / "dockerfiles" / f"{image}.Dockerfile"), str(ctx)]  # fmt: skip
            p = subprocess.run(cmd, env=env, capture_output=True, text=True)
            if p.returncode != 0:
                raise RuntimeError(f"buildkit build {image}: {p.stderr.strip()[-600:]}")

        with ThreadPoolExecutor(max_workers=max(jobs, 1)) as pool:
            list(pool.map(one, sorted(images)))


# --------------------------------------------------------------------------------------------- envgraph


def envgraph_commands() -> set[str]:
    p = subprocess.run(envgraph_cmd("--help"), capture_output=True, text=True)
    cmds, on = set(), False
    for line in p.stdout.splitlines():
        if line.strip().startswith("Commands:"):
            on = True
        elif on and line.startswith("  ") and line.strip():
            cmds.add(line.split()[0])
    return cmds


class Envgraph:
    """``envgraph build`` of the same graph, into a store that is fresh for the cold scenario."""

    name = "envgraph"

    def __init__(self, work: Path, wheelhouse: Path, log: Log) -> None:
        cmds = envgraph_commands()
        if "build" not in cmds:
            raise Unavailable("`envgraph build` does not exist yet (the builder has not landed)")
        self.can_push = "push" in cmds
        self.work = work / self.name
        self.store = self.work / "store"
        self.log = log
        self.wheelhouse = wheelhouse
        self.baseline = 0
        # Its own wheel cache, filled from the shared wheelhouse: no contender downloads during a build.
        self.env = dict(os.environ, ENVGRAPH_CACHE=str(self.work / "cache"))

    def _fill_wheel_cache(self) -> None:
        from benchmarks.wheels import file_sha256

        for p in self.wheelhouse.glob("*.whl"):
            sha = file_sha256(p)
            dest = self.work / "cache" / "wheels" / sha[:2] / sha / p.name
            if not dest.exists():
                dest.parent.mkdir(parents=True, exist_ok=True)
                os.link(p, dest)

    def seed(self, v: Version) -> None:
        """Like the Docker contenders' preloaded base image: a store holding only the Debian base."""
        d = self.work / "seed"
        d.mkdir(parents=True, exist_ok=True)
        text = v.toml.read_text()
        head = text.split("\n[env.", 1)[0]
        (d / "envgraph.toml").write_text(head.replace('"../wheels"', '"' + str(v.dir.parent / "wheels") + '"')
                                         + '\n[env.base-only]\nbase = "debian"\nrequirements = []\n')  # fmt: skip
        if (v.dir / "lockfiles" / "bases").is_dir():
            shutil.copytree(v.dir / "lockfiles" / "bases", d / "lockfiles" / "bases", dirs_exist_ok=True)
        for cmd in (("lock", "-q"), ("build", "-q")):
            p = subprocess.run(envgraph_cmd("-f", str(d / "envgraph.toml"), "--store", str(self.store), *cmd),
                               capture_output=True, text=True, env=self.env)  # fmt: skip
            if p.returncode != 0:
                raise RuntimeError(
                    f"seeding the store with the base: envgraph {cmd[0]}: {p.stderr.strip()[-500:]}"
                )

    def reset(self, first: Version | None = None) -> None:
        shutil.rmtree(self.work, ignore_errors=True)
        self.work.mkdir(parents=True)
        self._fill_wheel_cache()
        if first is not None:
            self.seed(first)
        self.baseline = disk_usage(self.store)

    def stored_bytes(self) -> int:
        return disk_usage(self.store) - self.baseline

    def build(self, v: Version, wheel_url: str, jobs: int) -> BuildOutcome:
        report = self.work / f"report-{v.scenario}.json"
        cmd = envgraph_cmd("-f", str(v.toml), "--store", str(self.store), "build", "-j", str(jobs), "-q",
                           "--report", str(report))  # fmt: skip
        p, peak_rss = run_with_peak_rss(cmd, self.env)
        if p.returncode != 0:
            raise RuntimeError(f"envgraph build: {p.stderr.strip()[-800:]}")
        data = json.loads(report.read_text())
        totals = data.get("totals", {})
        notes = []
        if totals.get("layers_reused") is not None:
            notes.append(f"layers reused {totals['layers_reused']}")
        return BuildOutcome(
            layers_built=totals.get("layers_built"), images=len(data.get("envs", [])), notes=tuple(notes),
            peak_rss_bytes=peak_rss,
        )  # fmt: skip

    def push(self, v: Version, reg: Registry) -> None:
        if not self.can_push:
            raise Unavailable("`envgraph push` does not exist yet")
        cmd = envgraph_cmd("-f", str(v.toml), "--store", str(self.store), "push", "--registry",
                           f"{reg.host}/envgraph", "--insecure")  # fmt: skip
        p = subprocess.run(cmd, capture_output=True, text=True, env=self.env)
        if p.returncode != 0:
            raise RuntimeError(f"envgraph push: {p.stderr.strip()[-800:]}")


def _copy_pins(src: Path, dest: Path) -> None:
    """An envgraph requirements file without its index options (``--no-index``, ``--find-links ../wheels``:
    paths on the host); the Dockerfiles name the index themselves."""
    lines = src.read_text().splitlines(keepends=True)
    dest.write_text("".join(line for line in lines if not line.startswith("--")))
