"""Live Binance client throughput: messages/s sustained from FakeBinance at maximum speed.

The exchange runs in its own process (``genesis fake binance --speed 0``) on the other
cores; the client runs here, pinned to one core, doing everything it does live: websocket
frames, JSON parsing, validation, book synchronisation and updates, one callback per
book/trade/quote. Baseline, on the same messages: the capture reader (the batch path that
ingest uses: Numba scanner + one book kernel call). Prints one JSON document.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from genesis.book.l2 import L2Book  # noqa: E402
from genesis.feeds.binance.capture import read_capture  # noqa: E402
from genesis.feeds.binance.live import BinanceClient, FeedListener  # noqa: E402

CAPTURE = REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz"


class Counting(FeedListener):
    def __init__(self):
        self.books = 0

    def on_book(self, top):
        self.books += 1


def start_exchange(cpus: set[int]) -> tuple[subprocess.Popen, dict[str, str], int]:
    exchange = subprocess.Popen(
        [sys.executable, "-m", "genesis.cli", "fake", "binance", str(CAPTURE), "--speed", "0"],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(REPO)},
        preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
    )
    first = exchange.stdout.readline()  # "serving N messages of ..."
    total = int(first.split()[1].replace(",", ""))
    urls = dict(exchange.stdout.readline().strip().split("=", 1) for _ in range(2))
    return exchange, urls, total


def measure_client(urls: dict[str, str], total: int) -> dict:
    async def main():
        listener = Counting()
        client = BinanceClient("usdm", ["BTCUSDT"], listener, ws_url=urls["GENESIS_BINANCE_USDM_WS"],
                               rest_url=urls["GENESIS_BINANCE_USDM_REST"])
        task = asyncio.create_task(client.run())
        while client.metrics.messages == 0:
            await asyncio.sleep(0.001)
        began = time.perf_counter()
        first = client.metrics.messages
        while client.metrics.messages < total and not task.done():
            await asyncio.sleep(0.01)
        seconds = time.perf_counter() - began
        client.stop()
        await task
        return client, listener, (client.metrics.messages - first) / seconds, seconds

    client, listener, rate, seconds = asyncio.run(main())
    return {"messages": client.metrics.messages, "seconds": round(seconds, 3), "messages_per_s": round(rate),
            "books": listener.books, "gaps": client.metrics.gaps, "resyncs": client.metrics.resyncs}


def measure_reader() -> dict:
    best = None
    for _ in range(3):
        began = time.perf_counter()
        capture = read_capture(CAPTURE)
        (events,) = capture.symbols.values()
        d = events.depth
        L2Book(20, events.sequencing).apply_depth(d.is_snapshot, d.first_id, d.last_id, d.prev_id,
                                                  d.level_start, d.level_count, d.side, d.price, d.qty)
        seconds = time.perf_counter() - began
        best = seconds if best is None else min(best, seconds)
    return {"messages": capture.n_lines, "seconds": round(best, 3), "messages_per_s": round(capture.n_lines / best)}


def main() -> None:
    cpus = sorted(os.sched_getaffinity(0))
    client_cpu = {cpus[0]}
    exchange_cpus = set(cpus[1:]) or client_cpu
    measure_reader()  # compile and warm the file cache
    exchange, urls, total = start_exchange(exchange_cpus)
    os.sched_setaffinity(0, client_cpu)
    try:
        client = measure_client(urls, total)
    finally:
        exchange.terminate()
        exchange.wait(10)
        os.sched_setaffinity(0, set(cpus))
    reader = measure_reader()
    print(json.dumps({
        "benchmark": "live_client",
        "capture": CAPTURE.name,
        "client_cpu": sorted(client_cpu),
        "exchange_cpus": sorted(exchange_cpus),
        "live_client": client,
        "baseline_capture_reader": reader,
        "reader_over_client": round(reader["messages_per_s"] / max(client["messages_per_s"], 1), 1),
        "note": "live client: websocket + JSON + book per message, pinned to one core; "
                "reader: the same messages from the file in one batch (the ingest path)",
    }, indent=2))


if __name__ == "__main__":
    main()
