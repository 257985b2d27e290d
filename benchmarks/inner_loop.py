"""The inner loop: bump one package of a leaf env, lock, build, load, run.

``load`` (and the load inside ``run``) sends a whole archive (``--via archive``, the path before
``envgraph serve``) or has the daemon pull from the store's registry endpoint (``--via serve``). The two
alternate, ``--runs`` times each; every run pins a new version, so each is a real one-package change.
A first run via serve right after a load by archive is reported on its own: the daemon learns which
blob digest is which layer only from pulls, so that one fetches every layer.

Workloads: ``example`` is the bundled example (``serve``, bumping uvicorn); ``gpu`` is the same Debian
base with a generated package of ``--gpu-gb`` GB (the size of torch with its CUDA wheels) and a small
package bumped, from local wheels.

    .venv/bin/python -m benchmarks.inner_loop [--workload example|gpu] [--runs 3] [--work DIR] [--docker-host URL]

Needs the network (wheels, the Debian base on the first run) and root for a private dockerd. The bundled
example is copied into the work directory: the repository's lockfiles are not touched.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks.services import docker_daemon
from benchmarks.wheels import make_wheel

REPO = Path(__file__).resolve().parent.parent
UVICORN = ["0.53.0", "0.52.4", "0.52.3", "0.52.2", "0.52.1", "0.52.0", "0.51.0", "0.50.2", "0.50.1"]
SMALL = [f"1.{i}" for i in range(len(UVICORN))]
STEPS = ("lock", "build", "load", "run")
GPU_TOML = """
[project]
name = "gpu"
python = "3.11"
index-url = ""
find-links = ["wheels"]

[bases.debian]
debian = { suite = "bookworm", packages = ["python3-minimal", "libpython3.11-stdlib", "libstdc++6", "ca-certificates"] }
python = "/usr/bin/python3.11"

[env.gpu]
base = "debian"
requirements = ["gpulib", "smallpkg==1.0"]
"""


def envgraph(work: Path, env: dict[str, str], *args: str) -> tuple[float, str]:
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "envgraph.cli", *args], cwd=work, env=env, capture_output=True, text=True
    )
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        raise SystemExit(f"envgraph {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return seconds, proc.stderr


def pin(work: Path, package: str, version: str) -> None:
    toml = work / "envgraph.toml"
    toml.write_text(re.sub(rf'"{package}[^"]*"', f'"{package}=={version}"', toml.read_text()))


def cycle(
    work: Path, env: dict[str, str], target: str, package: str, via: str, version: str
) -> dict[str, object]:
    pin(work, package, version)
    row: dict[str, object] = {"via": via, package: version}
    row["lock"], _ = envgraph(work, env, "lock", target)
    row["build"], _ = envgraph(work, env, "build", target, "-q")
    row["load"], said = envgraph(work, env, "load", "--via", via, target)
    row["load_summary"] = said.strip().splitlines()[-1]
    row["run"], _ = envgraph(
        work, env, "run", "--via", via, "--network", "none", target, "--", "python", "-c", "1"
    )
    print(
        f"{via:<8} {package} {version:<7} "
        + "  ".join(f"{s} {row[s]:6.2f}s" for s in STEPS)
        + f"   {row['load_summary']}",
        flush=True,
    )
    return row


def prepare(workload: str, work: Path, gpu_gb: float) -> tuple[str, str, list[str]]:
    """Write the workload's project into ``work``; returns (env, package bumped, its versions)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    (work / "lockfiles" / "bases").mkdir(parents=True)
    # Both use the bundled example's Debian base, already pinned: no relock of the base.
    shutil.copy(REPO / "lockfiles" / "bases" / "debian.lock.json", work / "lockfiles" / "bases")
    if workload == "example":
        shutil.copy(REPO / "envgraph.toml", work)
        shutil.copytree(REPO / "app", work / "app")
        shutil.copytree(REPO / "lockfiles", work / "lockfiles", dirs_exist_ok=True)
        return "serve", "uvicorn", UVICORN
    wheels = work.parent / "gpu-wheels"  # kept between invocations: generating gigabytes takes a while
    started = time.monotonic()
    make_wheel(wheels, "gpulib", "2.0", payload_bytes=int(gpu_gb * 1e9), files=max(8, int(gpu_gb * 32)))
    for v in SMALL:
        make_wheel(wheels, "smallpkg", v, payload_bytes=200_000)
    print(f"gpu wheels ready in {time.monotonic() - started:.1f}s", flush=True)
    (work / "wheels").symlink_to(wheels)
    (work / "envgraph.toml").write_text(GPU_TOML)
    return "gpu", "smallpkg", SMALL


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.inner_loop", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--workload", choices=["example", "gpu"], default="example")
    parser.add_argument(
        "--gpu-gb", type=float, default=2.5, help="uncompressed size of the gpu workload's package"
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--work", type=Path, default=REPO / "benchmarks" / ".work" / "inner-loop")
    parser.add_argument("--docker-host", default=None)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results")
    args = parser.parse_args(argv)
    if 2 * args.runs + 2 > len(UVICORN):
        parser.error(f"at most {(len(UVICORN) - 2) // 2} runs")
    work = args.work / args.workload
    target, package, versions = prepare(args.workload, work, args.gpu_gb)
    with docker_daemon(args.work, args.docker_host, print) as daemon:
        if daemon is None:
            return 1
        env = {**os.environ, "DOCKER_HOST": daemon.host, "ENVGRAPH_STORE": str(args.work / "store")}
        env.pop("ENVGRAPH_LOAD_VIA", None)
        pin(work, package, versions[0])
        for step in (("lock", target), ("build", target, "-q")):
            seconds, _ = envgraph(work, env, *step)
            print(f"initial {step[0]} of {target}: {seconds:.1f}s", flush=True)
        rows = [
            cycle(work, env, target, package, "archive", versions[0]),
            cycle(work, env, target, package, "serve", versions[1]),
        ]
        rows[1]["first_serve_after_archive"] = True
        for i in range(2 * args.runs):
            rows.append(cycle(work, env, target, package, ("archive", "serve")[i % 2], versions[i + 2]))
    measured = rows[2:]
    summary = {}
    for via in ("archive", "serve"):
        mine = [r for r in measured if r["via"] == via]
        summary[via] = {s: statistics.median(float(r[s]) for r in mine) for s in STEPS}  # type: ignore[arg-type]
        summary[via]["load_runs"] = [round(float(r["load"]), 2) for r in mine]  # type: ignore[arg-type]
    print(json.dumps(summary, indent=1))
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"{datetime.date.today().isoformat()}-inner-loop-{args.workload}.json"
    out.write_text(json.dumps({"workload": args.workload, "rows": rows, "median": summary}, indent=1) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
