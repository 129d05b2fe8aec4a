"""Dashboards under load: 3 symbols replayed at 10x by `genesis serve`, watched in Chromium.

Store (a throwaway GENESIS_HOME): the two bundled real captures (USD-M BTCUSDT, spot ETHUSDT,
2024-08-08 23:54-00:00 UTC) and a simulated spoofing market over the same minutes, 3 symbols.
`genesis serve --mode replay --speed 10x` runs in a subprocess; Debian's Chromium (driven by
Playwright's Python client, never a browser downloaded by Playwright) opens the surveillance
app, and a MutationObserver in the page stamps every refresh that brings new updates.

Figures: updates received per second in the page, server-to-page latency p50/p99 (page receive
time minus the engine's publish time of the newest update it carries; same machine, same
clock; includes the session's 5 Hz drain), the server process's CPU use, and whether the engine
keeps up: market seconds per wall second (10 when it does), the engine's step lag p99 (wall time
between its steps: a slow step shows here), the backlog of events due but not processed, and the
updates dropped for the session. Baseline, same run, same rows: the engine
alone (no server, no session) replaying the 3 symbols at max speed; ``headroom`` = its
events/s over the events/s that 10x needs. Prints one JSON document. Without /usr/bin/chromium
it prints the baseline only, with the reason.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.browser import CHROMIUM, CHROMIUM_ARGS  # noqa: E402  (the test suite's launch recipe)

CAPTURES = [REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz",
            REPO / "tests" / "data" / "spot_ethusdt_20240808.jsonl.gz"]
SPEED = 10.0
MEASURE_S = 20.0

OBSERVE = """() => {
  function find(root) {
    const el = root.querySelector('#update-stats');
    if (el) return el;
    for (const node of root.querySelectorAll('*')) {
      if (node.shadowRoot) { const hit = find(node.shadowRoot); if (hit) return hit; }
    }
    return null;
  }
  const el = find(document);
  if (!el) return false;
  const root = el.getRootNode();
  window.__samples = [];
  let last = -1;
  new MutationObserver(() => {
    const e = root.querySelector('#update-stats');
    if (!e) return;
    const received = Number(e.dataset.received);
    if (received === last) return;
    last = received;
    window.__samples.push([Date.now(), Number(e.dataset.wallNs) / 1e6, received, Number(e.dataset.drops)]);
  }).observe(root, {subtree: true, childList: true, attributes: true, characterData: true});
  return true;
}"""


def build_store(url: str) -> list[str]:
    from genesis.feeds.simulator import SimConfig, simulate
    from genesis.pipelines.ingest import ingest_binance_capture
    from genesis.pipelines.ingest_events import write_market_events
    from genesis.store import connect, migrate

    symbols = []
    for path in CAPTURES:
        symbols += ingest_binance_capture(path, store_url=url, progress=False).files[0].symbols
    with connect(url) as store:
        migrate(store)
        first = store.query_rows("SELECT toUnixTimestamp64Nano(min(exch_ts)) FROM book_snapshots")[0][0]
        sim = simulate(SimConfig(symbol="sim:BENCH-1", start_ns=int(first)), seconds=360, seed=1,
                       scenarios=["spoofing"])
        write_market_events(store, sim.events, "bench-dashboards-sim")
    return symbols + ["sim:BENCH-1"]


def baseline(url: str, symbols: list[str]) -> dict:
    """The engine alone at max speed over the same rows (events/s), and what 10x needs."""
    from genesis.live import EngineConfig, LiveEngine

    engine = LiveEngine(EngineConfig(mode="replay", symbols=symbols, store_url=url, speed=0))
    began = time.perf_counter()
    events = engine.run_until_done()
    seconds = time.perf_counter() - began
    market_s = (engine.range[1] - engine.range[0]) / 1e9
    needed = events / market_s * SPEED
    return {"events": events, "market_s": round(market_s, 1), "max_speed_events_per_s": round(events / seconds),
            "events_per_s_needed_at_10x": round(needed), "headroom": round(events / seconds / needed, 1)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def measure_page(env: dict, symbols: list[str]) -> dict:
    import psutil
    from playwright.sync_api import sync_playwright

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "genesis.cli", "serve", "--mode", "replay", "--port", str(port),
                               "--speed", "10x", "--symbols", *symbols], env=env, cwd=REPO,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/liveness", timeout=2):
                    break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("genesis serve did not come up")
                time.sleep(0.5)
        proc = psutil.Process(server.pid)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1600})
            page.goto(f"http://127.0.0.1:{port}/surveillance")
            page.wait_for_selector("#update-stats", timeout=60_000)
            time.sleep(2.0)  # past the first picture
            assert page.evaluate(OBSERVE), "no #update-stats in the page"
            clock0 = int(page.locator("#clock").first.get_attribute("data-ns"))
            cpu0, wall0 = proc.cpu_times(), time.monotonic()
            time.sleep(MEASURE_S)
            cpu1, wall1 = proc.cpu_times(), time.monotonic()
            clock1 = int(page.locator("#clock").first.get_attribute("data-ns"))
            backlog = int(page.locator("#health-backlog").first.inner_text())
            step_lag_p99 = page.locator("#health-lag-p99-ms").first.inner_text()
            samples = page.evaluate("window.__samples")
            browser.close()
    finally:
        server.terminate()
        server.wait(20)
    import numpy as np

    s = np.array(samples, float)
    wall = wall1 - wall0
    latency = s[:, 0] - s[:, 1]
    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / wall
    return {
        "page_refreshes_per_s": round(len(s) / wall, 2),
        "updates_received_per_s": round((s[-1, 2] - s[0, 2]) / ((s[-1, 0] - s[0, 0]) / 1e3), 2),
        "server_to_page_latency_ms_p50": round(float(np.percentile(latency, 50)), 1),
        "server_to_page_latency_ms_p99": round(float(np.percentile(latency, 99)), 1),
        "server_cpu_percent": round(100 * cpu, 1),
        "market_s_per_wall_s": round((clock1 - clock0) / 1e9 / wall, 2),
        "backlog_events_at_end": backlog,
        "engine_step_lag_ms_p99": float(step_lag_p99.replace(",", "")),
        "session_drops": int(s[-1, 3]),
        "measured_s": round(wall, 1),
    }


def main() -> None:
    home = Path(tempfile.mkdtemp(prefix="genesis-bench-dashboards-"))
    os.environ["GENESIS_HOME"] = str(home)
    os.environ.pop("GENESIS_CLICKHOUSE_URL", None)
    url = f"chdb://{home / 'clickhouse'}"
    symbols = build_store(url)
    out = {"benchmark": "dashboards", "symbols": symbols, "speed": SPEED, "baseline_engine_alone": baseline(url, symbols)}
    if CHROMIUM.exists():
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        out["page"] = measure_page(env, symbols)
    else:
        out["page"] = "skipped: /usr/bin/chromium is absent"
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
