"""genesis.backtest.report: the self-contained HTML report (offline, every chart present, and
rendered by a real browser when Chromium and Playwright are there) and the CSV exports."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest

from genesis.backtest.metrics import compute_metrics
from genesis.backtest.report import export_csv, report_layout, write_report
from genesis.backtest.result import EQUITY_DTYPE, FILL_DTYPE, BacktestResult
from tests.browser import CHROMIUM, CHROMIUM_ARGS
from tests.test_backtest_metrics import hand_result

TITLES = ("Equity (PnL, quote currency)", "Drawdown (net PnL below its peak)", "Fills over the mid",
          "Round-trip net PnL", "Holding time")


def _document(path) -> dict:
    """The Bokeh document embedded in a written report (its JSON script)."""
    text = path.read_text()
    match = re.search(r'<script type="application/json" id="[^"]+">\s*(.*?)\s*</script>', text, re.S)
    assert match, "no embedded Bokeh document"
    return json.loads(match.group(1))


def test_report_is_self_contained_and_holds_every_chart(tmp_path):
    result = hand_result(strategy="ofi", symbol="binance-usdm:BTCUSDT", latency_ms=5)
    path = write_report(result, tmp_path / "reports" / "run.html")
    text = path.read_text()
    # BokehJS inlined: no script or stylesheet fetched from anywhere.
    assert not re.search(r"<script[^>]+src=", text) and not re.search(r"<link[^>]+href=", text)
    assert "Bokeh" in text and len(text) > 500_000
    document = json.dumps(_document(path))
    for title in TITLES:
        assert title in document, title
    # The metrics table, the configuration and the per-day table are in the page.
    assert "profit_factor" in document and "latency_ms" in document and "Per UTC day" in document
    assert "ofi binance-usdm:BTCUSDT" in text  # the title


def test_report_of_a_run_without_fills_or_samples(tmp_path):
    empty = BacktestResult(np.zeros(0, FILL_DTYPE), np.zeros(0, EQUITY_DTYPE), config={"strategy": "noop"})
    path = write_report(empty, tmp_path / "empty.html")
    assert "(no closed trades)" in json.dumps(_document(path))
    with pytest.raises(ValueError, match="html"):
        write_report(empty, tmp_path / "report.pdf")


def test_long_runs_are_thinned_in_the_plots_only(tmp_path):
    n = 20_000
    fills = np.zeros(n, FILL_DTYPE)
    fills["local_ts"] = fills["exch_ts"] = np.arange(n) * 1_000_000_000
    fills["side"] = np.where(np.arange(n) % 2, -1, 1)
    fills["price"], fills["qty"] = 100.0, 1.0
    fills["position"] = np.where(np.arange(n) % 2, 0.0, 1.0)
    equity = np.zeros(n, EQUITY_DTYPE)
    equity["ts"] = fills["local_ts"]
    equity["mid"] = 100 + np.sin(np.arange(n) / 100)
    layout = report_layout(BacktestResult(fills, equity))
    fills_fig = layout.children[3]
    assert "5,000 of 20,000 fills shown" in fills_fig.title.text
    paths = export_csv(BacktestResult(fills, equity), tmp_path)
    assert len(pd.read_csv(paths["fills"])) == n


def test_csv_exports_read_back(tmp_path):
    result = hand_result()
    paths = export_csv(result, tmp_path / "csv")
    assert set(paths) == {"fills", "trades", "equity", "daily", "metrics"}
    fills = pd.read_csv(paths["fills"], parse_dates=["exch_ts", "local_ts"])
    assert len(fills) == len(result.fills)
    # ns kept exactly
    assert (fills["local_ts"].dt.as_unit("ns").astype("int64").to_numpy() == result.fills["local_ts"]).all()
    np.testing.assert_allclose(fills["position"], result.fills["position"])
    trades = pd.read_csv(paths["trades"])
    assert trades["closed"].tolist() == [True, True, False]
    np.testing.assert_allclose(trades["pnl_net"].iloc[:2], [14.8, 9.8])
    equity = pd.read_csv(paths["equity"], parse_dates=["ts"])
    assert (equity["ts"].dt.as_unit("ns").astype("int64").to_numpy() == result.equity["ts"]).all()
    metrics = pd.read_csv(paths["metrics"]).set_index("metric")["value"]
    assert float(metrics["pnl_net"]) == pytest.approx(compute_metrics(result)["pnl_net"])
    assert len(pd.read_csv(paths["daily"])) == 1


def test_report_renders_in_chromium(tmp_path):
    """Opens the report via file:// in a real (headless) Chromium: every plot draws a canvas
    and the page logs no JavaScript error."""
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed "
                                   "(pip install playwright; the system Chromium is used, no browser download)")
    path = write_report(hand_result(strategy="ofi"), tmp_path / "run.html")
    errors: list[str] = []
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.goto(path.as_uri())
            # Bokeh draws into canvases inside shadow roots; wait until all five plots have one.
            page.wait_for_function(
                """() => {
                    const canvases = [];
                    const walk = (root) => root.querySelectorAll('*').forEach((el) => {
                        if (el.tagName === 'CANVAS') canvases.push(el);
                        if (el.shadowRoot) walk(el.shadowRoot);
                    });
                    walk(document);
                    window.__canvases = canvases.filter((c) => c.width > 0 && c.height > 0).length;
                    return window.__canvases >= 5;
                }""", timeout=30_000)
            text = page.evaluate("""() => {
                const parts = [];
                const walk = (root) => root.querySelectorAll('*').forEach((el) => {
                    if (el.shadowRoot) walk(el.shadowRoot);
                    if (el.children.length === 0 && el.textContent) parts.push(el.textContent);
                });
                walk(document);
                return parts.join(' ');
            }""")
        finally:
            browser.close()
    assert not errors, errors
    assert "profit_factor" in text and "Configuration" in text
