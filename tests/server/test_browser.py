"""The dashboard in a real headless Chromium (Debian's chromium and chromium-driver, driven by Selenium), served
by the real server on a loopback port: open the graph, click an env, read its packages, look at the history chart.

With ENVGRAPH_SCREENSHOTS=DIR the pages of this test project are saved there as PNGs (docs/dashboard-*.png are of
the bundled example: docs/screenshots.py)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import envgraph
from envgraph.oci._store import Store
from envgraph.server import BackgroundServer, create_app
from envgraph.server._dashboard import Dashboard, dashboard_routes

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        shutil.which("chromium") is None or shutil.which("chromedriver") is None,
        reason="chromium and chromium-driver are not installed (CI installs them)",
    ),
]


@pytest.fixture(scope="module")
def server(dashboard_project: Path) -> Iterator[BackgroundServer]:
    store = Store.open(dashboard_project / ".envgraph", readonly=True)
    ws = envgraph.load(dashboard_project / "envgraph.toml")
    app = create_app(store, routes=dashboard_routes(Dashboard(ws.graph, ws.lockdir, store, ws.history_url)))
    with BackgroundServer(app) as s:
        yield s


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,900", "--no-proxy-server"):  # fmt: skip
        options.add_argument(arg)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=shutil.which("chromedriver")))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def screenshot(browser: Any, name: str) -> None:
    target = os.environ.get("ENVGRAPH_SCREENSHOTS")
    if target:
        Path(target).mkdir(parents=True, exist_ok=True)
        browser.save_screenshot(str(Path(target) / f"dashboard-{name}.png"))


def test_graph_click_env_packages_history_chart_and_diff(browser: Any, server: BackgroundServer) -> None:
    from selenium.webdriver.common.by import By

    browser.get(f"{server.url}/ui/")
    nodes = browser.find_elements(By.CSS_SELECTOR, "svg#graph a.node")
    assert {n.get_attribute("data-name") for n in nodes} >= {
        "none",
        "core",
        "train",
        "serve",
        "batch",
        "training",
    }
    screenshot(browser, "graph")
    train = browser.find_element(By.CSS_SELECTOR, "svg#graph a#env-train rect")
    assert train.is_displayed()
    train.click()
    assert browser.current_url == f"{server.url}/ui/env/train"
    rows = browser.find_elements(By.CSS_SELECTOR, "table#packages tbody tr")
    packages = {tuple(td.text for td in r.find_elements(By.TAG_NAME, "td"))[:2] for r in rows}
    assert packages == {("alpha", "2.0"), ("beta", "2.0"), ("gamma", "1.0")}
    screenshot(browser, "env")

    browser.get(f"{server.url}/ui/history")
    chart = browser.find_element(By.CSS_SELECTOR, "svg#history-chart")
    assert chart.is_displayed() and chart.size["width"] > 300
    bars = browser.find_elements(By.CSS_SELECTOR, "svg#history-chart rect.bar")
    assert len({b.get_attribute("x") for b in bars}) >= 2  # a bar per build (at least the two builds)
    assert all(b.size["height"] > 0 for b in bars)
    screenshot(browser, "history")

    browser.get(f"{server.url}/ui/diff?from=2&to=4")
    text = browser.find_element(By.TAG_NAME, "main").text
    assert "alpha 1.0 → 2.0" in text and "+ beta 2.0" in text
    screenshot(browser, "diff")
