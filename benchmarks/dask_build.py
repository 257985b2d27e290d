"""Local pool vs a Dask cluster on this machine: ``python -m benchmarks.dask_build [--workload NAME]``.

A workload's first graph (generated wheels, offline) on a scratch base with an interpreter path (no Debian
base, so no mmdebstrap), built cold four ways: the local pool (``-j 2``), the local pool publishing to the
registry cache (what every Dask worker does too), and Dask with one worker of two threads and with two
workers of one thread (the same two cores). Every run starts with an empty store, wheel cache and cache
repository; the Dask runs with fresh workers. Reports wall time, bytes in the client's store and bytes
the registry received, and checks that every run ends with the same image digests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.services import disk_usage, registry
from benchmarks.workloads import get, render_toml
from tests.support.dask import start_cluster

SCRATCH_BASE = '[bases.none]\nimage = "scratch"\npython = "/usr/bin/python3.11"\n'


def _project(workload_name: str, work: Path) -> Path:
    workload = get(workload_name, quick=True)
    assert workload.offline and workload.prepare_wheels is not None, "needs an offline workload"
    workload.prepare_wheels(work / "wheels")
    toml = render_toml(workload, workload.versions[0])
    head, _, rest = toml.partition("[bases.debian]")
    rest = rest.split("\n\n", 1)[1]  # drop the Debian base section
    toml = head + SCRATCH_BASE + "\n" + rest.replace('base = "debian"', 'base = "none"')
    proj = work / "project"
    proj.mkdir(parents=True)
    (proj / "envgraph.toml").write_text(toml)
    _envgraph(proj, work / "lock-cache", "lock")
    return proj


def _envgraph(proj: Path, cache: Path, *args: str) -> float:
    env = {**os.environ, "ENVGRAPH_CACHE": str(cache)}
    t0 = time.monotonic()
    subprocess.run(
        [sys.executable, "-m", "envgraph.cli", "-f", str(proj / "envgraph.toml"), *args], check=True, env=env
    )
    return time.monotonic() - t0


def _digests(report: Path) -> dict[str, str]:
    return {e["env"]: e["digest"] for e in json.loads(report.read_text())["envs"]}


def run(workload_name: str, jobs: int) -> dict[str, object]:
    out: dict[str, object] = {"workload": workload_name, "cpus": os.cpu_count(), "runs": {}}
    with tempfile.TemporaryDirectory(prefix="envgraph-dask-bench-") as tmp:
        work = Path(tmp)
        proj = _project(workload_name, work)
        with registry(work / "registry") as reg:
            runs: dict[str, dict[str, object]] = {}

            def one(name: str, *extra: str) -> None:
                store, report = work / f"store-{name}", work / f"report-{name}.json"
                before = reg.stored_bytes()
                seconds = _envgraph(
                    proj, work / f"cache-{name}", "--store", str(store), "build", "-q", "-j", str(jobs),
                    "--report", str(report), *extra,
                )  # fmt: skip
                rows = {r["key"]: r for e in json.loads(report.read_text())["envs"] for r in e["layers"]}
                runs[name] = {
                    "seconds": round(seconds, 2),
                    # summed over layers: where the time went (on workers, for Dask: fetch, build, publish)
                    "layer_seconds": round(sum(r["seconds"] for r in rows.values()), 2),
                    "layers": len(rows),
                    "workers": sorted({r["worker"] for r in rows.values() if r["worker"]}),
                    "client_store_bytes": disk_usage(store),
                    "registry_bytes_received": reg.stored_bytes() - before,
                    "digests": _digests(report),
                }
                print(f"{name:24} {seconds:7.2f} s  client store {disk_usage(store) >> 10:7} KiB", flush=True)

            one("local")
            one("local+cache", "--cache", f"{reg.host}/cache/local", "--insecure")
            for n_workers, nthreads in ((1, jobs), (jobs, 1)):
                name = f"dask-{n_workers}x{nthreads}"
                with start_cluster(work / name, n_workers, nthreads) as cluster:
                    one(
                        name,
                        "--executor",
                        cluster.executor,
                        "--cache",
                        f"{reg.host}/cache/{name}",
                        "--insecure",
                    )
            digests = {json.dumps(r.pop("digests"), sort_keys=True) for r in runs.values()}
            out["same_digests"] = len(digests) == 1
            out["runs"] = runs
            shutil.rmtree(work / "registry", ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.dask_build", description=__doc__)
    p.add_argument("--workload", default="synthetic", choices=["synthetic", "gpu-tiny", "tiny"])
    p.add_argument("-j", "--jobs", type=int, default=2, help="local jobs, and the cluster's total threads")
    p.add_argument("--out", type=Path, default=None, help="write the JSON result here")
    args = p.parse_args(argv)
    result = run(args.workload, args.jobs)
    text = json.dumps(result, indent=2, sort_keys=True)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0 if result["same_digests"] else 1


if __name__ == "__main__":
    sys.exit(main())
