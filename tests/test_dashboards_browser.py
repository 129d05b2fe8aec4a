"""The dashboards in a real browser: `genesis serve` in a subprocess, Debian's Chromium driven by
Playwright's Python client (never a browser downloaded by Playwright).

Two servers on 127.0.0.1 and free ports, over a throwaway GENESIS_HOME holding the ingested
bundled sample and one stored backtest run:

* REPLAY of the sample: every app loads without console errors and draws its charts; replay
  speed and pause; strategy start / stop / reset change its state and the PnL panel;
* SIMULATION of a spoofing scenario with ``--auth basic``: an alert appears in the feed, clicking
  it moves the replay; a guest's state change is refused, a logged-in user's is made.

Screenshots go to $GENESIS_TEST_ARTIFACTS/dashboards when set, else to the test's pytest tmp dir
(printed with -s). Skipped, with the reason, only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.browser import VIEWPORT, requires_chromium, text, wait_for
from tests.conftest import REPO

SAMPLE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"
PASSWORD = "not-a-real-secret-test-only"

pytestmark = [pytest.mark.slow, requires_chromium]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _genesis(*args: str, env: dict[str, str]) -> None:
    subprocess.run([sys.executable, "-m", "genesis.cli", *args], env=env, check=True, capture_output=True,
                   timeout=300, cwd=REPO)


class Server:
    """`genesis serve ...` in a subprocess; stopped (and waited for) by :meth:`stop`."""

    def __init__(self, env: dict[str, str], log: Path, *args: str):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        self._file = open(log, "wb")
        self.process = subprocess.Popen([sys.executable, "-m", "genesis.cli", "serve", "--port", str(self.port), *args],
                                        env=env, cwd=REPO, stdout=self._file, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"genesis serve exited ({self.process.returncode}):\n{self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(self.url + "/liveness", timeout=2) as response:  # noqa: S310 (loopback)
                    if response.status == 200:
                        return
            except OSError:
                time.sleep(0.5)
        raise TimeoutError(f"genesis serve not up after {timeout} s:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self._file.close()


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    home = tmp_path_factory.mktemp("genesis-home")
    env = {**os.environ, "GENESIS_HOME": str(home), "PYTHONPATH": str(REPO), "GENESIS_SERVE_PASSWORD": PASSWORD}
    env.pop("GENESIS_CLICKHOUSE_URL", None)
    _genesis("ingest", "binance-capture", str(SAMPLE), env=env)
    _genesis("backtest", "run", "--strategy", "ofi_signal", "--param", "entry=1", "--param", "exit=0.5",
             "--symbol", "binance-usdm:BTCUSDT", env=env)
    # A pipeline run as the runner leaves it (manifest + executed notebook), for the reports app to list.
    run_dir = home / "runs" / "demo" / "20260101T000000Z"
    run_dir.mkdir(parents=True)
    (run_dir / "run.json").write_text(json.dumps({
        "pipeline": "demo", "ok": True, "started": "2026-01-01T00:00:00Z", "finished": "2026-01-01T00:01:00Z",
        "error": None, "parameters": {}, "steps": [{"notebook": "notebooks/01_ingest.ipynb",
                                                    "output": "01_ingest.ipynb", "status": "ok"}]}))
    (run_dir / "01_ingest.ipynb").write_text('{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}')
    started = []
    try:
        # The replay engine reads the store once at start-up: the second server starts after it.
        replay = Server(env, home / "replay.log", "--mode", "replay", "--param", "entry=1", "--param", "exit=0.5")
        started.append(replay)
        replay.wait_ready()
        sim = Server(env, home / "sim.log", "--mode", "simulation", "--scenario", "spoofing", "--sim-seconds", "90",
                     "--speed", "max", "--auth", "basic")
        started.append(sim)
        sim.wait_ready()
        yield {"replay": replay, "sim": sim}
    finally:
        for server in started:
            server.stop()


def open_app(browser, url: str, errors: list[str] | None = None, context=None):
    page = context.new_page() if context is not None else browser.new_page(viewport=VIEWPORT)
    if errors is not None:
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url)
    page.wait_for_selector("canvas", timeout=60_000)
    return page


def clock(page) -> int:
    return int(page.locator("#clock").first.get_attribute("data-ns"))


@pytest.mark.parametrize("app, min_canvases", [("surveillance", 7), ("strategy", 1), ("reports", 1)])
def test_each_app_loads_without_console_errors_and_draws(servers, browser, artifacts, app, min_canvases):
    errors: list[str] = []
    page = open_app(browser, f"{servers['replay'].url}/{app}", errors)
    if app == "reports":
        page.locator("select").first.wait_for()
        page.get_by_role("button", name="Open report").click()
        wait_for(lambda: page.locator("canvas").count() >= 4, what="the report's charts")
        with page.expect_download() as download:
            page.get_by_role("button", name="Download CSV").click()
        csv = Path(download.value.path()).read_text().splitlines()
        assert download.value.suggested_filename == "fills.csv"
        assert csv[0].startswith("exch_ts,local_ts,order_id,side,price,qty") and len(csv) > 10
        with page.expect_download() as download:
            page.get_by_role("button", name="Download notebook").click()
        assert download.value.suggested_filename == "01_ingest.ipynb"
        assert json.loads(Path(download.value.path()).read_text())["nbformat"] == 4
    wait_for(lambda: page.locator("canvas").count() >= min_canvases, what=f"{min_canvases} canvases")
    if app == "surveillance":
        wait_for(lambda: text(page, "#regime") and text(page, "#health-messages-s") != "0"
                 and text(page, "#spread") not in ("", "-"), what="health and a spread")
    time.sleep(1.0)  # a few refreshes: errors from streaming updates show up too
    page.screenshot(path=str(artifacts / f"{app}.png"), full_page=True)
    page.close()
    assert errors == [], errors


def test_replay_speed_and_pause(servers, browser, artifacts):
    page = open_app(browser, f"{servers['replay'].url}/surveillance")
    wait_for(lambda: page.locator("#clock").count(), what="the clock")
    page.get_by_role("button", name="10x").click()
    wait_for(lambda: text(page, "#speed") == "10x", what="speed 10x")
    t0, w0 = clock(page), time.monotonic()
    time.sleep(2.5)
    t1, w1 = clock(page), time.monotonic()
    market_s = (t1 - t0) / 1e9
    assert market_s > 0.5 * 10 * (w1 - w0 - 0.5), (market_s, w1 - w0)  # about 10 s of market a wall second
    page.get_by_role("button", name="Pause").click()
    wait_for(lambda: text(page, "#play-state") == "paused", what="paused")
    paused = clock(page)
    time.sleep(1.0)
    assert clock(page) == paused
    page.screenshot(path=str(artifacts / "surveillance-paused.png"), full_page=True)
    page.get_by_role("button", name="Play").click()
    wait_for(lambda: clock(page) > paused, what="the clock to move again")
    page.get_by_role("button", name="1x").click()
    page.close()


def test_strategy_start_stop_reset(servers, browser, artifacts):
    sur = open_app(browser, f"{servers['replay'].url}/surveillance")
    sur.get_by_role("button", name="10x").click()  # more market per second: the strategy trades sooner
    page = open_app(browser, f"{servers['replay'].url}/strategy")
    # Elements appear before their first value: wait for the value, never read it once.
    wait_for(lambda: page.locator("#strategy-state").count() and text(page, "#strategy-state") == "stopped",
             what="the strategy, stopped")
    # The trader's terms: the tick inferred exactly from the ingested capture, and where it came from.
    wait_for(lambda: page.locator("#latency-tick").count() and text(page, "#latency-tick") == "0.1",
             what="the instrument's tick")
    assert text(page, "#latency-lot") == "0.001" and text(page, "#latency-spec-from") == "inferred"
    page.get_by_role("button", name="Start").click()
    wait_for(lambda: text(page, "#strategy-state") == "running", what="running")
    wait_for(lambda: int(text(page, "#pnl-fills")) > 0, timeout=60, what="fills")
    wait_for(lambda: "by local" in text(page, "#message"), what="the fill message")
    wait_for(lambda: page.locator("table tbody tr").count() > 0, what="the trades table")
    page.screenshot(path=str(artifacts / "strategy-running.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    wait_for(lambda: text(page, "#strategy-state") == "stopped", what="stopped")
    page.get_by_role("button", name="Reset").click()
    wait_for(lambda: text(page, "#pnl-position") == "0" and text(page, "#pnl-realized") == "0"
             and text(page, "#pnl-total") == "0", what="a flat, zeroed account")
    page.screenshot(path=str(artifacts / "strategy-reset.png"), full_page=True)
    sur.get_by_role("button", name="1x").click()
    sur.close()
    page.close()


def test_simulated_spoofing_alert_moves_the_replay_and_needs_a_login(servers, browser, artifacts):
    url = servers["sim"].url
    context = browser.new_context(viewport=VIEWPORT)  # its own cookies: the login below stays in it
    page = open_app(browser, f"{url}/surveillance", context=context)
    wait_for(lambda: page.locator("#user").count() and text(page, "#user") == "guest", what="a guest session")
    rows = page.locator(".slick-row")
    wait_for(lambda: rows.count() > 0, timeout=60, what="an alert in the feed")
    wait_for(lambda: any("spoofing" in row for row in rows.all_inner_texts()), what="a spoofing alert")
    wait_for(lambda: text(page, "#play-state") == "ended", timeout=60, what="the end of the simulated replay")
    before = clock(page)
    rows.first.locator(".slick-cell").nth(2).click()
    wait_for(lambda: page.locator("#selected-case").count(), what="the case to be selected")
    start = int(page.locator("#selected-case").first.get_attribute("data-start-ns"))
    wait_for(lambda: clock(page) == start - 2_000_000_000, what="the replay to jump to the alert")
    assert clock(page) < before
    page.screenshot(path=str(artifacts / "alert-selected.png"), full_page=True)
    # A guest (not logged in) may look but not change an alert's state.
    page.locator("input[placeholder^='why']").first.fill("checking the book")
    page.get_by_role("button", name="Change state").click()
    wait_for(lambda: "refused" in text(page, "#message"), what="the refusal")
    page.screenshot(path=str(artifacts / "alert-refused.png"), full_page=True)
    # Logged in, the same change is made and names the user.
    page.goto(f"{url}/login?next=/surveillance")
    page.fill("input[name=username]", "alice")
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("canvas", timeout=60_000)
    wait_for(lambda: text(page, "#user") == "alice", what="the logged-in user")
    rows = page.locator(".slick-row")
    wait_for(lambda: rows.count() > 0, timeout=30, what="the alert feed")
    rows.first.locator(".slick-cell").nth(2).click()
    wait_for(lambda: page.locator("#selected-case").count(), what="the case to be selected")
    page.locator("input[placeholder^='why']").first.fill("checking the book")
    page.get_by_role("button", name="Change state").click()
    wait_for(lambda: "by alice" in text(page, "#message"), what="the change by alice")
    page.screenshot(path=str(artifacts / "alert-changed.png"), full_page=True)
    context.close()
