"""``python -m benchmarks.layer_speed WHEEL...``: one package layer per wheel, on one core and on all.

Builds each wheel's layer (no bytecode) into a fresh store with ``ENVGRAPH_COMPRESS_THREADS`` = 1 and = the
CPU count, alternately, ``--repeat`` times each in a fresh process, and prints the best wall time of each,
the CPU time (all threads, and the producer's: unzipping and tar framing), the blob size, the peak RSS and
whether the digests agree (they must: the thread count never changes the bytes).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

_ONE = """
import json, resource, shutil, sys, tempfile, time
from pathlib import Path
from envgraph.identity import InstallTarget
from envgraph.builder._layers import build_package_layer
from envgraph.oci._store import Store
wheel = Path(sys.argv[1])
root = Path(tempfile.mkdtemp(prefix="envgraph-layer-speed-", dir=sys.argv[2]))
try:
    store = Store.open(root)
    target = InstallTarget("3.11", "/usr/bin/python3.11", bytecode=False)
    r0, t0, p0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter(), time.thread_time()
    record = build_package_layer(store, target, "sha256:" + "0" * 64, [(wheel.name.split("-")[0], wheel.name, wheel)])
    wall, producer = time.perf_counter() - t0, time.thread_time() - p0
    r1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
    print(json.dumps({"wall": wall, "cpu": cpu, "producer_cpu": producer, "size": record.size,
                      "digest": record.digest, "diff_id": record.diff_id, "maxrss": r1.ru_maxrss * 1024}))
finally:
    shutil.rmtree(root)
"""


def measure(wheel: Path, threads: int, scratch: Path) -> dict[str, float | int | str]:
    env = dict(os.environ, ENVGRAPH_COMPRESS_THREADS=str(threads))
    out = subprocess.run([sys.executable, "-c", _ONE, str(wheel), str(scratch)], env=env,
                         capture_output=True, text=True, check=True).stdout  # fmt: skip
    result: dict[str, float | int | str] = json.loads(out)
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m benchmarks.layer_speed", description=__doc__)
    p.add_argument("wheels", nargs="+", type=Path)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--scratch", type=Path, default=Path("/tmp"), help="where the temporary stores go")
    args = p.parse_args(argv)
    cores = len(os.sched_getaffinity(0))
    for wheel in args.wheels:
        runs: dict[int, list[dict[str, float | int | str]]] = {1: [], cores: []}
        for _ in range(args.repeat):
            for threads in runs:
                runs[threads].append(measure(wheel, threads, args.scratch))
        digests = {r["digest"] for rs in runs.values() for r in rs}
        best = {t: min(rs, key=lambda r: float(r["wall"])) for t, rs in runs.items()}
        print(
            f"{wheel.name}: tar -> {best[1]['size'] / 1e6:.1f} MB blob, same digest every run: {len(digests) == 1}"
        )
        for t, r in best.items():
            print(f"  {t} thread{'s' if t > 1 else ''}: wall {r['wall']:.2f} s (best of {args.repeat}), "
                  f"cpu {r['cpu']:.2f} s (producer {r['producer_cpu']:.2f} s), peak RSS {int(r['maxrss']) / 1e6:.0f} MB")  # fmt: skip
        print(f"  speed-up {float(best[1]['wall']) / float(best[cores]['wall']):.2f}x "
              f"(load average {os.getloadavg()[0]:.1f} on {cores} cores)")  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
