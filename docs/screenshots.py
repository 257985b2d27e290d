"""Take docs/dashboard-*.png from the bundled example (the repository's envgraph.toml), as a user would see it.

    .venv/bin/python docs/screenshots.py [--work /tmp/dash] [--out docs]

Needs what `envgraph build` of the example needs (mmdebstrap, the network the first time: wheels and Debian
packages are cached in ~/.cache/envgraph), the network for one `envgraph lock`, and Debian's chromium and
chromium-driver. In a copy of the example under WORK (a git repository, so lockfile revisions can be compared):
build it into a fresh store (WORK/store), pin a package of serve and of train one minor version lower, lock,
commit and build again, then run `envgraph serve` on it and save the graph, the serve env, the history and the diff between the
two lockfile revisions of serve at 1280x800, as 256-colour PNGs (each well under 200 KB).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
SIZE = (1280, 800)
MAX_BYTES = 200_000
# The second build: (env, its declared requirements, a package it gets pinned one minor version lower).
PINS = [("serve", ["fastapi", "uvicorn"], "uvicorn"), ("train", ["scikit-learn>=1.5"], "threadpoolctl")]


def envgraph(project: Path, store: Path, *args: str) -> None:
    cmd = [sys.executable, "-m", "envgraph.cli", *args]
    print("$ envgraph", " ".join(args), flush=True)
    subprocess.run(cmd, cwd=project, env={**os.environ, "ENVGRAPH_STORE": str(store)}, check=True)


def git(project: Path, *args: str) -> str:
    cmd = ["git", "-c", "user.name=envgraph", "-c", "user.email=envgraph@example.invalid", "-C", str(project)]
    return subprocess.run([*cmd, *args], check=True, capture_output=True, text=True).stdout


def make_history(work: Path) -> tuple[Path, Path]:
    """The example copied to WORK/project (a git repository), built twice into WORK/store with a pin between."""
    project, store = work / "project", work / "store"
    for path in (project, store):
        shutil.rmtree(path, ignore_errors=True)
    project.mkdir(parents=True)
    for name in ("envgraph.toml", "lockfiles", "app"):
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy2)(src, project / name)
    git(project, "init", "-q")
    git(project, "add", ".")
    git(project, "commit", "-q", "-m", "the bundled example")
    envgraph(project, store, "build")

    toml = project / "envgraph.toml"
    body = toml.read_text()
    for env, declared, package in PINS:
        old = f"requirements = {json.dumps(declared)}"
        assert old in body, f"the example's {env} env changed: update PINS in docs/screenshots.py"
        body = body.replace(old, f"requirements = {json.dumps([*declared, below(project, env, package)])}")
    toml.write_text(body)
    envgraph(project, store, "lock")
    git(project, "commit", "-q", "-am", "pins one minor version lower")
    envgraph(project, store, "build")
    return project, store


def below(project: Path, env: str, package: str) -> str:
    """A requirement for ``package`` below the minor version ``env`` locks now."""
    locked = json.loads((project / "lockfiles" / f"{env}.lock.json").read_text())
    version = next(p["version"] for p in locked["packages"] if p["name"] == package)
    major, minor = version.split(".")[:2]
    return f"{package}<{major}.{minor}"


class Serving:
    """`envgraph serve --port 0` in the project until stopped; ``url`` once it listens."""

    def __init__(self, project: Path, store: Path) -> None:
        cmd = [sys.executable, "-m", "envgraph.cli", "serve", "--port", "0"]
        env = {**os.environ, "ENVGRAPH_STORE": str(store)}
        self.proc = subprocess.Popen(cmd, cwd=project, env=env, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        ready, _, _ = select.select([self.proc.stdout], [], [], 60)
        line = self.proc.stdout.readline() if ready else ""
        m = re.search(r" at (http://\S+) ", line)
        if m is None:
            self.stop()
            raise SystemExit(f"envgraph serve did not start: {line!r}")
        self.url = m.group(1)

    def get_json(self, path: str) -> object:
        with urllib.request.urlopen(self.url + path, timeout=30) as r:
            return json.load(r)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)


def browser() -> Any:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                f"--window-size={SIZE[0]},{SIZE[1]}", "--hide-scrollbars", "--no-proxy-server"):  # fmt: skip
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))


def save_small(png: bytes, target: Path) -> None:
    """256 colours are plenty for these pages and keep each file small."""
    import io

    from PIL import Image

    image = Image.open(io.BytesIO(png)).convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT)
    image.save(target, optimize=True)
    size = target.stat().st_size
    print(f"{target} {image.size[0]}x{image.size[1]} {size // 1000} kB", flush=True)
    if size > MAX_BYTES:
        raise SystemExit(f"{target} is {size} bytes, more than {MAX_BYTES}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--work", type=Path, default=Path("/tmp/dash"), help="scratch directory (default /tmp/dash)"
    )
    parser.add_argument("--out", type=Path, default=REPO / "docs", help="where the PNGs go (default docs/)")
    args = parser.parse_args()
    start = time.monotonic()
    project, store = make_history(args.work.resolve())
    server = Serving(project, store)
    try:
        where = server.get_json("/api/where/serving/api")
        print("which image for step api of pipeline serving:", json.dumps(where)[:200], flush=True)
        pages = {
            "graph": "/ui/",
            "env": "/ui/env/serve",
            "history": "/ui/history",
            "diff": "/ui/diff?from=train@HEAD~1&to=train@HEAD",  # train has no files: images compared too
        }
        driver = browser()
        try:
            driver.get(server.url + "/ui/")  # the window is the viewport plus the browser's own bars
            inner = driver.execute_script("return [window.innerWidth, window.innerHeight]")
            driver.set_window_size(2 * SIZE[0] - inner[0], 2 * SIZE[1] - inner[1])
            args.out.mkdir(parents=True, exist_ok=True)
            for name, path in pages.items():
                driver.get(server.url + path)
                assert "Not available" not in driver.title + driver.page_source[:2000], path
                save_small(driver.get_screenshot_as_png(), args.out / f"dashboard-{name}.png")
        finally:
            driver.quit()
    finally:
        server.stop()
    print(f"done in {time.monotonic() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main()
