"""The cross-asset dashboard in a real browser: `genesis serve` (replay of two bundled captures
at 10x) in a subprocess, Debian's Chromium driven by Playwright (never a browser downloaded by Playwright).

The app loads without console errors and draws bars, the pair spread, the correlation heatmap;
price alerts evaluated over the stored history fill the table, and watched live they fire on the
replayed trades. Screenshots go to $GENESIS_TEST_ARTIFACTS/dashboards when set, else to the
test's tmp dir. Skipped, with the reason, only when /usr/bin/chromium is absent.
"""

from __future__ import annotations

import os

import pytest

from tests.browser import VIEWPORT, requires_chromium, text, wait_for
from tests.conftest import BUNDLED, REPO
from tests.test_dashboards_browser import Server, _genesis

PAIR = ("usdm_btcusdt_20240808.jsonl.gz", "spot_ethusdt_20240808.jsonl.gz")

pytestmark = [pytest.mark.slow, requires_chromium]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    home = tmp_path_factory.mktemp("genesis-home")
    env = {**os.environ, "GENESIS_HOME": str(home), "PYTHONPATH": str(REPO)}
    env.pop("GENESIS_CLICKHOUSE_URL", None)
    # A pair from two venues: USD-M BTCUSDT and spot ETHUSDT.
    _genesis("ingest", "binance-capture", *(str(BUNDLED[name]) for name in PAIR), env=env)
    replay = Server(env, home / "replay.log", "--mode", "replay", "--speed", "10x")
    try:
        replay.wait_ready()
        yield replay
    finally:
        replay.stop()


def test_cross_asset_app_draws_and_fires_alerts(server, browser, artifacts):
    errors: list[str] = []
    page = browser.new_page(viewport=VIEWPORT)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(f"{server.url}/cross_asset")
    page.wait_for_selector("canvas", timeout=60_000)
    # candles + volume, beta + z + position, heatmap, rolling correlation
    wait_for(lambda: page.locator("canvas").count() >= 7, timeout=60, what="the charts")
    wait_for(lambda: page.locator("#pair-beta-last").count(), what="the pair's figures")
    assert text(page, "#pair-pair") == "binance-usdm:BTCUSDT ~ binance-spot:ETHUSDT" or \
        text(page, "#pair-pair") == "binance-spot:ETHUSDT ~ binance-usdm:BTCUSDT"
    assert text(page, "#pair-beta-last") not in ("", "-")
    assert "symbol(s) with 1s bars in the store" in text(page, "#message")

    page.get_by_role("button", name="Evaluate on history").click()
    wait_for(lambda: "alert(s) over the stored trades" in text(page, "#message"), what="the history's alerts")
    n_history = int(text(page, "#message").split()[0])
    assert n_history > 0
    wait_for(lambda: page.locator("table").nth(1).locator("tbody tr").count() >= min(n_history, 50),
             what="the alerts table")

    page.get_by_role("button", name="Watch live").click()
    wait_for(lambda: text(page, "#live-alerts-state").startswith("watching"), what="watching")
    wait_for(lambda: page.locator("table").nth(2).locator("tbody tr").count() > 0, timeout=90,
             what="a live alert on the replayed trades")
    assert "live" in page.locator("table").nth(2).inner_text()
    page.screenshot(path=str(artifacts / "cross_asset.png"), full_page=True)
    page.close()
    assert errors == [], errors
