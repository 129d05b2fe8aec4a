"""The live Binance client against FakeBinance serving the real captures, with faults.

The oracle is the capture reader: the same messages read from the file and applied in one
batch by the book kernel. Every top-of-book the client reports must equal the reader's row
for the same update id, and its final top-20 must equal the reader's last row.
"""

from __future__ import annotations

import asyncio
import json

import numpy as np
import pytest

from genesis.book.l2 import L2Book
from genesis.feeds.binance.capture import read_capture
from genesis.feeds.binance.fake import FakeBinance, Faults
from genesis.feeds.binance.live import BinanceClient, FeedListener, FeedMetrics
from tests.conftest import ALL_CAPTURES, capture_path

VENUE_OF_PREFIX = {"usdm": "usdm", "spot": "spot", "cm": "coinm"}


class Collector(FeedListener):
    def __init__(self):
        self.tops = []
        self.statuses = []
        self.trades = []
        self.quotes = 0
        self.rejected = []

    def on_book(self, top):
        self.tops.append(top)

    def on_trade(self, symbol, trade):
        self.trades.append(trade)

    def on_quote(self, symbol, quote):
        self.quotes += 1

    def on_status(self, symbol, status, detail):
        self.statuses.append((symbol, status, detail))

    def on_rejected(self, local_ts, raw, reason):
        self.rejected.append(reason)


def reader_rows(path):
    """Top-20 after every applied depth event, by the capture reader, keyed by update id."""
    (events,) = read_capture(path).symbols.values()
    d = events.depth
    result = L2Book(20, events.sequencing).apply_depth(
        d.is_snapshot, d.first_id, d.last_id, d.prev_id, d.level_start, d.level_count, d.side, d.price, d.qty)
    ids = d.last_id[result.top_msg]
    return events, {int(u): r for r, u in enumerate(ids)}, result


def run_feed(paths, venue, *, faults=None, speed=None, symbols=None, fake_kwargs=None, **client_kwargs):
    """Serve ``paths`` and run a client until the market is over and the client is idle."""

    async def main():
        fake = await FakeBinance(paths, faults=faults, speed=speed, **(fake_kwargs or {})).start()
        listener = Collector()
        client = BinanceClient(venue, symbols or list(fake.markets), listener, ws_url=fake.ws_url,
                               rest_url=fake.rest_url, seed=7, **client_kwargs)
        task = asyncio.create_task(client.run())
        try:
            await asyncio.wait_for(fake.done.wait(), timeout=240)
            # Drain: wait until the client has seen everything and no resync is in flight.
            last, still = -1, 0
            while still < 5:
                await asyncio.sleep(0.05)
                seen = client.metrics.messages + client.metrics.malformed
                busy = any(f.syncing is not None for f in client._feeds.values())
                still = still + 1 if seen == last and not busy else 0
                last = seen
        finally:
            client.stop()
            await task
            await fake.stop()
        return fake, client, listener

    return asyncio.run(main())


def assert_matches_reader(path, listener, client, symbol=None, min_coverage=0.95, dropped_at_end_ok=False):
    events, row_of, result = reader_rows(path)
    mine = [t for t in listener.tops if symbol is None or t.symbol == symbol]
    assert mine, "the client reported no book"
    for top in mine:
        r = row_of.get(int(top.update_id))
        assert r is not None, f"update {top.update_id} is not one the reader applied"
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            np.testing.assert_array_equal(getattr(top, name), getattr(result, name)[r],
                                          err_msg=f"{name} after update {top.update_id}")
    assert len(mine) >= min_coverage * len(row_of), f"client reported {len(mine)} of {len(row_of)} books"
    # The final book: the client's top 20 now equals the reader's last row. (A planned reconnect
    # after the market's last message drops the book, and with no message left nothing resyncs
    # it: then the client holds no book at all, never a wrong one.)
    bid_px, bid_sz, ask_px, ask_sz = client.book(events.symbol).levels()
    if dropped_at_end_ok and not len(bid_px) and not len(ask_px) and not client.book(events.symbol).is_valid:
        return events
    last = len(result.top_msg) - 1
    np.testing.assert_array_equal(bid_px[:20], result.bid_px[last])
    np.testing.assert_array_equal(bid_sz[:20], result.bid_sz[last])
    np.testing.assert_array_equal(ask_px[:20], result.ask_px[last])
    np.testing.assert_array_equal(ask_sz[:20], result.ask_sz[last])
    return events


@pytest.mark.slow
@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_client_rebuilds_every_capture_like_the_reader(name):
    path = capture_path(name)
    fake, client, listener = run_feed(path, VENUE_OF_PREFIX[name.split("_")[0]])
    events = assert_matches_reader(path, listener, client)
    m = client.metrics
    assert (m.gaps, m.resyncs, m.reconnects, m.malformed, m.duplicates) == (0, 0, 0, 0, 0)
    assert m.messages == len(fake.messages)
    np.testing.assert_array_equal([t["trade_id"] for t in listener.trades], events.trades["trade_id"])
    assert listener.quotes == len(events.quotes)
    assert [s for _, s, _ in listener.statuses] == ["connected", "synced"]


@pytest.mark.slow
def test_dropped_messages_are_detected_and_resynced():
    path = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    # Paced at 25x: unpaced, the market outruns every snapshot fetch by a load-dependent number of
    # messages, and how many books the client reports measured the machine rather than the client.
    fake, client, listener = run_feed(path, "usdm", faults=Faults(drop_rate=0.01, seed=3), speed=25.0,
                                      backoff=(0.05, 0.2))
    assert len(fake.stats.dropped) > 50
    m = client.metrics
    assert m.gaps >= 20 and m.resyncs >= m.gaps - 1  # the last gap may still be resyncing at the end
    # Every book reported equals the truth: a missed gap would have corrupted one of them.
    assert_matches_reader(path, listener, client, min_coverage=0.6)
    statuses = [s for _, s, _ in listener.statuses]
    assert statuses.count("gap") == m.gaps and statuses.count("resynced") == m.resyncs


@pytest.mark.slow
def test_spot_gap_detection_uses_spot_chaining():
    path = capture_path("spot_ethusdt_20240808.jsonl.gz")
    depth_messages = [i for i, m in enumerate(FakeBinance(path).messages) if m.is_depth]
    drop_at = tuple(depth_messages[k] for k in (500, 1500, 2500))
    fake, client, listener = run_feed(path, "spot", faults=Faults(drop_at=drop_at))
    depth_drops = len(fake.stats.dropped)
    assert depth_drops == 3 and client.metrics.gaps == 3 and client.metrics.resyncs == 3
    assert_matches_reader(path, listener, client, min_coverage=0.8)


@pytest.mark.slow
def test_disconnects_and_stalls_reconnect_and_continue():
    path = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    faults = Faults(disconnect_after=(20_000, 50_000), stall_at=((70_000, 2.5),))
    fake, client, listener = run_feed(path, "usdm", faults=faults, stale_after=0.5, backoff=(0.05, 0.2))
    m = client.metrics
    assert fake.stats.disconnects == 2 and m.stale_disconnects == 1
    assert m.reconnects == 3 and m.disconnects == 3
    assert m.resyncs == 3  # each new connection synchronises its books afresh
    assert_matches_reader(path, listener, client, min_coverage=0.9)


@pytest.mark.slow
def test_duplicates_reorders_and_malformed_messages_never_corrupt_the_book():
    path = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    faults = Faults(duplicate_rate=0.03, reorder_rate=0.0005, malformed_rate=0.005, seed=11)
    fake, client, listener = run_feed(path, "usdm", faults=faults)
    m = client.metrics
    assert m.malformed == fake.stats.malformed > 100
    assert len(listener.rejected) == m.malformed
    # Duplicates that arrive while a book resynchronises are part of the normal overlap, not counted.
    assert len(fake.stats.duplicated) > 100 and 0.8 * len(fake.stats.duplicated) <= m.duplicates <= len(fake.stats.duplicated)
    assert m.gaps >= 1  # a reordered pair breaks the chain
    assert_matches_reader(path, listener, client, min_coverage=0.8)


@pytest.mark.slow
def test_many_symbols_on_one_connection():
    paths = [capture_path("usdm_btcusdt_20240808.jsonl.gz"), capture_path("usdm_ethusdt_20240808.jsonl.gz")]
    fake, client, listener = run_feed(paths, "usdm")
    assert client.metrics.connects == 1
    for path, symbol in zip(paths, ("binance-usdm:BTCUSDT", "binance-usdm:ETHUSDT")):
        assert_matches_reader(path, listener, client, symbol=symbol)


@pytest.mark.slow
def test_planned_reconnect_before_the_connection_age_limit_and_server_pings():
    path = capture_path("spot_ethusdt_20240808.jsonl.gz")
    fake, client, listener = run_feed(path, "spot", speed=150.0, max_connection_age=1.0,
                                      fake_kwargs={"ping_interval": 0.2})
    m = client.metrics
    assert m.planned_reconnects >= 1 and m.stale_disconnects == 0
    assert m.disconnects == 0  # answered the server's pings: it never dropped us
    assert_matches_reader(path, listener, client, min_coverage=0.5, dropped_at_end_ok=True)


def test_reconnect_delay_grows_exponentially_with_jitter():
    client = BinanceClient("usdm", ["BTCUSDT"], backoff=(0.5, 8.0), seed=1)
    for failures, ceiling in ((0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        delays = [client.reconnect_delay(failures) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 10  # jittered


def test_unreachable_server_is_retried_with_backoff():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed once we leave: nothing listens there

    async def main():
        client = BinanceClient("usdm", ["BTCUSDT"], ws_url=f"ws://127.0.0.1:{port}",
                               rest_url=f"http://127.0.0.1:{port}", backoff=(0.05, 0.1))
        task = asyncio.create_task(client.run())
        await asyncio.sleep(0.8)
        client.stop()
        await task
        return client.metrics

    metrics = asyncio.run(main())
    assert metrics.connects == 0 and metrics.disconnects >= 4
    assert "Connect" in metrics.last_error or "refused" in metrics.last_error.lower()


def test_metrics_rates_and_lag_quantiles():
    m = FeedMetrics()
    start = 1_700_000_000 * 10**9
    for k in range(3000):  # 1000 messages a second for 3 s, lag 5 ms (a tenth at 50 ms)
        local = start + k * 1_000_000
        m.count_message(local, local - (50_000_000 if k % 10 == 0 else 5_000_000))
    assert m.messages == 3000
    assert m.messages_per_second() == pytest.approx(1000.0)
    assert m.lag_ms(0.5) == pytest.approx(5.0)
    assert m.lag_ms(0.99) == pytest.approx(50.0)
    assert set(m.as_dict()) >= {"messages_per_s", "lag_p50_ms", "lag_p99_ms", "resyncs", "reconnects", "dropped"}


def test_fake_exchange_answers_rest_like_binance():
    import json
    import urllib.error
    import urllib.request

    path = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    with FakeBinance(path) as fake:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(f"{fake.rest_url}/fapi/v1/depth?symbol=BTCUSDT&limit=1000") as response:
            snapshot = json.loads(response.read())
        assert {"lastUpdateId", "bids", "asks"} <= set(snapshot) and len(snapshot["bids"]) == 1000
        with pytest.raises(urllib.error.HTTPError) as bad:
            opener.open(f"{fake.rest_url}/fapi/v1/depth?symbol=NOPE")
        assert bad.value.code == 400


def test_client_rejects_bad_arguments():
    with pytest.raises(ValueError, match="unknown Binance venue"):
        BinanceClient("kraken", ["BTCUSDT"])
    with pytest.raises(ValueError, match="no symbols"):
        BinanceClient("spot", [])
    with pytest.raises(ValueError, match="unknown channel"):
        BinanceClient("spot", ["BTCUSDT"], channels=("depth", "candles"))
    with pytest.raises(ValueError, match="ws_url"):
        BinanceClient("spot", ["BTCUSDT"], ws_url="http://example.com")
    with pytest.raises(ValueError, match="probability"):
        Faults(drop_rate=2.0)


def test_stop_interrupts_the_reconnect_backoff():
    async def main():
        client = BinanceClient("usdm", ["BTCUSDT"], ws_url="ws://127.0.0.1:9", rest_url="http://127.0.0.1:9",
                               backoff=(600.0, 600.0))
        task = asyncio.create_task(client.run())
        await asyncio.sleep(0.2)  # the first connection has failed: the client now waits 5-10 minutes
        client.stop()
        await asyncio.wait_for(task, timeout=30)  # raises TimeoutError if stop() did not cut the wait
        return client.metrics

    assert asyncio.run(main()).disconnects == 1


# -- trading terms (exchangeInfo) ------------------------------------------------------------------
class TermsCollector(Collector):
    def __init__(self):
        super().__init__()
        self.terms = []  # (specs, local_ts, raw) per exchangeInfo handed over

    def on_instruments(self, specs, local_ts, raw):
        self.terms.append((specs, local_ts, raw))


def synced_with_terms(listener, n=1):
    return lambda fake, client: len(listener.terms) >= n and any(s == "synced" for _, s, _ in listener.statuses)


@pytest.mark.parametrize("name, given", [
    ("spot_ethusdt_20240808.jsonl.gz", None),
    ("usdm_btcusdt_20240808.jsonl.gz", None),
    ("usdm_btcusdt_20240808.jsonl.gz", {"BTCUSDT": {"tick_size": 0.1, "lot_size": 0.001, "min_notional": 100}}),
    ("cm_btcusd_perp_20240808.jsonl.gz", None),
])
def test_client_reports_the_terms_the_exchange_serves(name, given):
    from dataclasses import replace

    from tests.conftest import run_client_until

    listener = TermsCollector()
    fake, client = run_client_until(capture_path(name), VENUE_OF_PREFIX[name.split("_")[0]],
                                    synced_with_terms(listener), listener=listener, speed=20.0,
                                    fake_kwargs={"instruments": given})
    ((specs, local_ts, raw),) = listener.terms
    (symbol,) = fake.markets
    served = fake.instruments[symbol]
    assert specs == [replace(served, source="exchangeInfo", valid_from=local_ts)]
    assert client.instruments == {served.symbol: specs[0]}
    assert served.source == ("exchangeInfo" if given else "inferred")
    if name.startswith("cm_"):
        assert specs[0].contract_size == 100.0 and specs[0].lot_size == 1.0
    if given:
        assert specs[0].min_notional == 100.0
    # The response is handed over as received.
    assert json.loads(raw)["symbols"] == fake.exchange_info()["symbols"]
    m = client.metrics
    assert (m.exchange_infos, m.exchange_info_errors, fake.stats.exchange_info) == (1, 0, 1)


def test_terms_are_fetched_again_on_each_new_connection():
    from tests.conftest import run_client_until

    listener = TermsCollector()
    fake, client = run_client_until(capture_path("usdm_btcusdt_20240808.jsonl.gz"), "usdm",
                                    synced_with_terms(listener, 2), listener=listener,
                                    faults=Faults(disconnect_after=(3_000,)), backoff=(0.05, 0.1))
    assert client.metrics.reconnects == 1 and fake.stats.exchange_info == 2
    first, second = listener.terms
    assert second[1] > first[1] and [replace_ts(s) for s in second[0]] == [replace_ts(s) for s in first[0]]


def replace_ts(spec):
    from dataclasses import replace

    return replace(spec, valid_from=0)


def test_a_failing_exchange_info_never_holds_up_the_depth_stream():
    from tests.conftest import run_client_until

    path = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    listener = TermsCollector()
    # exchangeInfo always fails: the book syncs and streams regardless, and the fetch keeps being retried.
    fake, client = run_client_until(
        path, "usdm", lambda fake, client: client.metrics.exchange_info_errors >= 4 and len(listener.tops) >= 500,
        listener=listener, faults=Faults(exchange_info_errors=10**9), speed=20.0, backoff=(0.05, 0.1))
    m = client.metrics
    assert listener.terms == [] and m.exchange_infos == 0 and client.instruments == {}
    # (one request may still be in flight when the client stops)
    assert m.exchange_info_errors <= fake.stats.exchange_info_failed <= m.exchange_info_errors + 1
    assert [s for _, s, _ in listener.statuses] == ["connected", "synced"]
    assert (m.gaps, m.disconnects, m.snapshot_errors) == (0, 0, 0)
    _, row_of, result = reader_rows(path)  # every book reported is right
    for top in listener.tops:
        np.testing.assert_array_equal(top.bid_px, result.bid_px[row_of[int(top.update_id)]])
        np.testing.assert_array_equal(top.ask_sz, result.ask_sz[row_of[int(top.update_id)]])
    assert "HTTP 500" in m.last_error and "exchangeInfo" in m.last_error


def test_exchange_info_is_retried_until_it_answers():
    from tests.conftest import run_client_until

    listener = TermsCollector()
    fake, client = run_client_until(capture_path("spot_ethusdt_20240808.jsonl.gz"), "spot",
                                    synced_with_terms(listener), listener=listener, speed=20.0,
                                    faults=Faults(exchange_info_errors=3), backoff=(0.05, 0.1))
    m = client.metrics
    assert (m.exchange_info_errors, m.exchange_infos) == (3, 1)
    assert (fake.stats.exchange_info_failed, fake.stats.exchange_info) == (3, 1)
    ((specs, _, _),) = listener.terms
    assert [s.symbol for s in specs] == ["binance-spot:ETHUSDT"]
