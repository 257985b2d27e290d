"""``python -m benchmarks``: build every image of a workload with each contender through every scenario."""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import threading
import time
import zipfile
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

import attrs
from rich.console import Console
from rich.markup import escape

from benchmarks import report
from benchmarks.contenders import (
    BuildkitUv,
    DockerCache,
    Envgraph,
    PerPipelineDocker,
    Unavailable,
)
from benchmarks.records import CONTENDERS, SCENARIOS, LowerBound, Measurement, RunResult, ratios
from benchmarks.services import CpuMeter, docker_daemon, registry, registry_binary, wheel_server
from benchmarks.wheels import PIP_WHEEL, extract_uv, lower_bound, tool_wheel
from benchmarks.workloads import BASE_PACKAGES, Version, get, materialize

HERE = Path(__file__).resolve().parent
DOCKER_CONTENDERS = {
    "per-pipeline-docker": PerPipelineDocker,
    "docker-cache": DockerCache,
    "buildkit-uv": BuildkitUv,
}
BASE_MAX_AGE_S = 7 * 24 * 3600
# Free disk a Docker scenario must leave: the daemon's metadata, container layers and our own files.
DISK_RESERVE = 8 * 10**9


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--quick", action="store_true", help="small versions of each workload (a few minutes)")
    p.add_argument(
        "--workload", choices=["realistic", "synthetic", "tiny", "gpu", "gpu-tiny"], default="realistic"
    )
    p.add_argument("--contenders", nargs="+", choices=CONTENDERS, default=list(CONTENDERS), metavar="NAME",
                   help=f"any of {', '.join(CONTENDERS)} (default: all)")  # fmt: skip
    p.add_argument("--out", type=Path, default=HERE / "results", help="where the JSON and PNG go")
    p.add_argument(
        "--work", type=Path, default=HERE / ".work", help="caches and scratch (wheelhouse, base, daemon)"
    )
    p.add_argument(
        "-j", "--jobs", type=int, default=os.cpu_count() or 2, help="parallel builds where a contender can"
    )
    p.add_argument(
        "--docker-host", default=None, help="use this daemon instead of starting a private dockerd"
    )
    p.add_argument("--no-push", action="store_true", help="skip pushing to a local registry")
    return p.parse_args(argv)


def machine(docker_host: str | None) -> dict[str, object]:
    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor())  # fmt: skip
    mem = next((int(ln.split()[1]) * 1024 for ln in Path("/proc/meminfo").read_text().splitlines()
                if ln.startswith("MemTotal")), 0)  # fmt: skip
    git = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, cwd=HERE
    ).stdout.strip()
    info: dict[str, object] = {"cpu": cpu, "cores": os.cpu_count(), "memory_bytes": mem, "kernel": platform.release(),
                               "python": platform.python_version(), "envgraph_commit": git}  # fmt: skip
    if docker_host:
        v = subprocess.run(["docker", "version", "--format", "{{.Server.Version}}"], capture_output=True, text=True,
                           env=dict(os.environ, DOCKER_HOST=docker_host))  # fmt: skip
        info["docker_server"] = v.stdout.strip()
    return info


def debian_base_tar(work: Path, log: Callable[[str], None]) -> Path:
    """The bookworm rootfs envgraph's ``[bases.debian]`` builds (same function, same packages), cached a week."""
    from envgraph.debian._rootfs import build_debian_rootfs

    d = work / "base"
    d.mkdir(parents=True, exist_ok=True)
    tar = d / f"bookworm-{'-'.join(sorted(BASE_PACKAGES)).replace('.', '')[:60]}.tar"
    if tar.exists() and time.time() - tar.stat().st_mtime < BASE_MAX_AGE_S:
        return tar
    log("building the Debian base rootfs with mmdebstrap (cached for a week)")
    tmp = tar.with_suffix(".part.tar")
    build_debian_rootfs("bookworm", BASE_PACKAGES, pins=None, out_tar=tmp)
    os.replace(tmp, tar)
    return tar


def lower_bounds(versions: list[Version], wheelhouse: Path) -> list[LowerBound]:
    out, seen = [], set()
    prev: set[str] = set()
    for v in versions:
        now = {w for ws in v.wheels.values() for w in ws}
        seen |= now
        lb = lower_bound(v.scenario, [wheelhouse / w for w in now - prev])
        cumulative = lower_bound("all", [wheelhouse / w for w in seen]).installed_bytes
        out.append(attrs.evolve(lb, cumulative_installed_bytes=cumulative))
        prev = now
    return out


def wheel_sizes(versions: list[Version], wheelhouse: Path) -> dict[str, tuple[int, int]]:
    """filename -> (wheel bytes, installed bytes) of every wheel any version uses."""
    out = {}
    for name in sorted({w for v in versions for ws in v.wheels.values() for w in ws}):
        p = wheelhouse / name
        with zipfile.ZipFile(p) as zf:
            out[name] = (p.stat().st_size, sum(i.file_size for i in zf.infolist()))
    return out


def docker_disk_need(name: str, prev: Version | None, v: Version, sizes: dict[str, tuple[int, int]]) -> int:
    """Bytes a Docker contender's scenario may add at most: every image it rebuilds holds its whole env
    installed (no sharing between images), plus the wheels pip fetches into the container; the uv cache
    holds each new wheel unpacked once."""
    images = v.graph.images()
    if name != "per-pipeline-docker" and prev is not None:  # cached: unchanged requirements are hits
        old = prev.graph.images()
        images = {i: e for i, e in images.items()
                  if i not in old or prev.requirements[old[i]].read_text() != v.requirements[e].read_text()}  # fmt: skip
    need = sum(sizes[w][0] + sizes[w][1] for env in images.values() for w in v.wheels[env])
    if name == "buildkit-uv":
        seen = {w for ws in prev.wheels.values() for w in ws} if prev else set()
        need += sum(sizes[w][1] for ws in v.wheels.values() for w in ws if w not in seen)
    return need


def run_contender(
    contender, versions: list[Version], wheel_url: str, jobs: int, meter: CpuMeter, work: Path,
    push: bool, log: Callable[[str], None], sizes: dict[str, tuple[int, int]] | None = None,
) -> list[Measurement]:  # fmt: skip
    out: list[Measurement] = []
    log(f"[bold]{contender.name}[/bold]: reset for cold")
    if isinstance(contender, Envgraph):
        contender.reset(versions[0])
    else:
        contender.reset()
    with ExitStack() as stack:
        reg = None
        push_note = None
        if push:
            if registry_binary() is None:
                push_note = "no docker-registry binary (apt-get install docker-registry)"
            else:
                reg = stack.enter_context(registry(work / "registry" / contender.name))
        else:
            push_note = "--no-push"
        prev: Version | None = None
        skipped: str | None = None
        for v in versions:
            notes: list[str] = []
            if not isinstance(contender, Envgraph) and sizes is not None and skipped is None:
                need, free = docker_disk_need(contender.name, prev, v, sizes), shutil.disk_usage(work).free
                if need + DISK_RESERVE > free:
                    skipped = (f"skipped: {v.scenario} may store {need / 1e9:.1f} GB and this disk has "
                               f"{free / 1e9:.1f} GB free (keeping {DISK_RESERVE / 1e9:.0f} GB)")  # fmt: skip
            if skipped is not None:  # later scenarios build on this one: skip them too
                log(f"  [yellow]{contender.name} {v.scenario} {skipped}[/yellow]")
                out.append(Measurement(contender.name, v.scenario, ok=False, notes=(skipped,)))
                continue
            prev = v
            snap = meter.snap()
            t0 = time.perf_counter()
            try:
                outcome = contender.build(v, wheel_url, jobs)
            except Exception as e:  # one failed build must not lose the others' numbers
                log(f"  [red]{contender.name} {v.scenario} failed: {escape(str(e))}[/red]")
                out.append(Measurement(contender.name, v.scenario, ok=False, notes=(str(e)[-500:],)))
                continue
            wall = time.perf_counter() - t0
            cpu = meter.since(snap)
            stored = contender.stored_bytes()
            pushed: int | None = None
            push_s: float | None = None
            if reg is not None:
                before = reg.stored_bytes()
                t1 = time.perf_counter()
                try:
                    contender.push(v, reg)
                    push_s = round(time.perf_counter() - t1, 3)
                    pushed = reg.stored_bytes() - before
                except Unavailable as e:
                    notes.append(f"bytes pushed: {e}")
                except Exception as e:
                    notes.append(f"push failed: {str(e)[-300:]}")
            elif push_note:
                notes.append(f"bytes pushed: {push_note}")
            notes += outcome.notes
            m = Measurement(
                contender=contender.name, scenario=v.scenario, ok=True, wall_seconds=round(wall, 3), cpu_seconds=cpu,
                bytes_stored=stored, bytes_pushed=pushed, push_seconds=push_s, layers_built=outcome.layers_built,
                images=outcome.images, peak_rss_bytes=outcome.peak_rss_bytes, notes=tuple(notes),
            )  # fmt: skip
            rss = "–" if m.peak_rss_bytes is None else f"{m.peak_rss_bytes / 1e6:.0f} MB"
            log(f"  {v.scenario}: {m.wall_seconds:.2f} s wall, {cpu:.2f} s cpu, {stored / 1e6:.1f} MB stored, "
                f"{'–' if pushed is None else f'{pushed / 1e6:.1f} MB'} pushed, {m.layers_built} layers built, "
                f"peak RSS {rss}")  # fmt: skip
            out.append(m)
    return out


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(
        128 + signum
    )  # so the private dockerd and registries are stopped by their finally blocks


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _exit_on_sigterm)
    console = Console(stderr=True)
    log = console.print
    work: Path = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    workload = get(args.workload, args.quick)
    wl_dir = work / "workloads" / f"{workload.name}{'-quick' if args.quick else ''}"
    wheelhouse = work / "wheelhouse"
    versions = materialize(workload, wl_dir, wheelhouse, log)
    lbs = lower_bounds(versions, wheelhouse)
    sizes = wheel_sizes(versions, wheelhouse)
    missing: list[str] = []
    measurements: list[Measurement] = []
    wanted = [c for c in CONTENDERS if c in args.contenders]
    docker_wanted = [c for c in wanted if c in DOCKER_CONTENDERS]

    with ExitStack() as stack:
        url = stack.enter_context(wheel_server(wheelhouse))
        daemon = None
        if docker_wanted:
            daemon = stack.enter_context(
                docker_daemon(
                    work,
                    args.docker_host,
                    lambda m: (
                        missing.append(m.removeprefix("missing: ")) if m.startswith("missing") else log(m)
                    ),
                )
            )  # noqa: E501
        meter = CpuMeter(daemon.pid if daemon else None)
        host_info = machine(daemon.host if daemon else None)  # while the daemon still answers
        for name in wanted:
            try:
                if name == "envgraph":
                    contender = Envgraph(work, wheelhouse, log)
                else:
                    if daemon is None:
                        raise Unavailable("no Docker daemon (see above)")
                    base_tar = debian_base_tar(work, log)
                    pip = tool_wheel(work / "tools", f"pip=={PIP_WHEEL.split('-')[1]}", "pip")
                    kw = {}
                    if name == "buildkit-uv":
                        uv = extract_uv(tool_wheel(work / "tools", "uv", "uv"), work / "tools" / "bin" / "uv")
                        kw["uv_binary"] = uv
                    contender = DOCKER_CONTENDERS[name](daemon, work, wheelhouse, base_tar, pip, log, **kw)
            except Unavailable as e:
                missing.append(f"{name}: {e}")
                measurements += [
                    Measurement(name, s, ok=False, notes=(f"unavailable: {e}",)) for s in SCENARIOS
                ]
                continue
            measurements += run_contender(
                contender, versions, url, args.jobs, meter, work, not args.no_push, log, sizes
            )

    date = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")
    ms = tuple(measurements)
    result = RunResult(
        workload=workload.name, quick=args.quick, date=date, machine=host_info,
        workload_info={**workload.describe, "locked_by": sorted({v.locked_by for v in versions}),
                       "images_per_scenario": {v.scenario: len(v.graph.images()) for v in versions}},
        lower_bounds=tuple(lbs), measurements=ms, ratios=ratios(ms), missing=tuple(missing),
    )  # fmt: skip
    stem = f"{date}-{workload.name}{'-quick' if args.quick else ''}"
    out: Path = args.out
    report.write_json(result, out / f"{stem}.json")
    report.chart(result, out / f"{stem}.png")
    report.table(result, Console())
    log(f"wrote {out / (stem + '.json')} and {out / (stem + '.png')}")
    json.dumps(attrs.asdict(result))  # fail loudly here rather than in a reader
    excused = ("unavailable", "skipped")
    return 0 if all(m.ok for m in ms if not any(n.startswith(excused) for n in m.notes)) else 1


if __name__ == "__main__":
    sys.exit(main())
