"""Instrument specs and the timeline on real captures.

- ticks and lots are inferred exactly from decimal prices (never a float tolerance), recorded in
  ``instruments``, declared specs win, ``--tick-size``/``--lot-size`` override;
- a snapshot and its diffs are stored in update-id order whatever their clocks (a spot REST
  snapshot has no venue time), and the backtest replay, the dashboard replay and the features
  agree with the stored book rows;
- every fill of a taker backtest is at a price the stored book held when the order arrived.
"""

from __future__ import annotations

import json
import random
import shutil
from decimal import Decimal
from fractions import Fraction
from functools import reduce
from math import gcd

import numpy as np
import pytest

from genesis.backtest.engine import REJ_INVALID, infer_tick, run_backtest
from genesis.backtest.events import DEPTH, CLEAR, FLAG_EXCH, KIND_MASK, store_chunks
from genesis.book.l2 import L2Book, applied_clocks
from genesis.cli import main
from genesis.feeds.binance.venues import exchange_info_path
from genesis.feeds.events import MarketEvents
from genesis.pipelines.ingest import ingest_binance_capture
from genesis.store import connect
from genesis.store.instruments import (
    EXCHANGE_INFO, INFERRED, Instrument, decimal_step, infer_instrument, instrument_at, resolve_instrument,
)
from tests.conftest import ALL_CAPTURES, capture_path

# The venues' increments on 2024-08-08 (Binance exchangeInfo); inference must find these ticks.
TRUE_TICK = {
    "spot_btcusdt_20240808.jsonl.gz": ("binance-spot:BTCUSDT", 0.01),
    "spot_ethusdt_20240808.jsonl.gz": ("binance-spot:ETHUSDT", 0.01),
    "usdm_btcusdt_20240808.jsonl.gz": ("binance-usdm:BTCUSDT", 0.1),
    "usdm_ethusdt_20240808.jsonl.gz": ("binance-usdm:ETHUSDT", 0.01),
    "cm_btcusd_perp_20240808.jsonl.gz": ("binance-coinm:BTCUSD_PERP", 0.1),
}
assert set(TRUE_TICK) == set(ALL_CAPTURES)


def reference_step(values) -> Fraction:
    """The increment by exact rational arithmetic on the decimal strings: gcd of numerators over
    the common denominator."""
    fractions = [Fraction(Decimal(repr(float(v)))) for v in values if v > 0]
    den = reduce(lambda a, b: a * b // gcd(a, b), (f.denominator for f in fractions), 1)
    return Fraction(reduce(gcd, (int(f * den) for f in fractions)), den)


# -- exact inference --------------------------------------------------------------------------------

def test_a_cent_tick_on_five_digit_prices_is_a_cent():
    assert decimal_step([61837.63, 61837.64]) == (1, 100)
    assert infer_tick(np.array([61837.63, 61837.64, np.nan])) == (1, 100)
    # A float tolerance would call these the same price; the decimals say 1e-7 apart.
    assert decimal_step([1.0, 1.0000001]) == (1, 10**7)


def test_decimal_step_equals_exact_rational_reference():
    rng = random.Random(7)
    for _ in range(300):
        tick = Fraction(rng.choice((1, 2, 5, 25)), 10 ** rng.randint(0, 8))
        base = rng.randint(1, 10**7)
        multiples = [base, base + 1] + [rng.randint(1, 10**7) for _ in range(rng.randint(0, 20))]
        prices = [float(Decimal(m * tick.numerator) / Decimal(tick.denominator)) for m in multiples]
        num, den = decimal_step(prices)
        assert Fraction(num, den) == reference_step(prices) == tick * reduce(gcd, multiples)


def test_values_off_any_decimal_grid_are_refused_by_name():
    with pytest.raises(ValueError, match="prices: .* not on a decimal grid"):
        decimal_step([0.1 + 0.2, 1.0], "prices")
    with pytest.raises(ValueError, match="sizes: no positive values"):
        decimal_step([0.0, np.nan, -1.0], "sizes")


def test_declared_spec_wins_and_overrides_say_so():
    inferred = infer_instrument("x:Y", [100.5, 101.0], [0.002, 0.004], valid_from=10)
    assert (inferred.tick_size, inferred.lot_size, inferred.source) == (0.5, 0.002, INFERRED)
    declared = Instrument("x:Y", 0.1, 0.001, valid_from=20, source=EXCHANGE_INFO)
    assert instrument_at([inferred, declared], 30) is declared
    assert instrument_at([inferred, declared], 15) is inferred  # the declared one is not valid yet
    assert instrument_at([inferred, declared], None) is declared
    assert instrument_at([inferred, declared], 5) is declared  # nothing valid yet: the earliest declared
    over = declared.with_overrides(tick_size=0.01)
    assert (over.tick_size, over.lot_size, over.source, over.price_precision) == (0.01, 0.001, "override", 2)


def test_orders_off_the_lot_are_rejected():
    lot = 0.001
    events = MarketEvents(symbol="x:Y", deltas=_two_sided_book())
    ok = run_backtest("taker_only", {"interval_ns": 1e9, "qty": 2 * lot}, events, lot_size=lot)
    off = run_backtest("taker_only", {"interval_ns": 1e9, "qty": 1.5 * lot}, events, lot_size=lot)
    assert len(ok.fills) > 0 and ok.meta["rejected_orders"] == 0
    assert len(off.fills) == 0 and off.meta["rejected_orders"] == ok.meta["orders_sent"]
    assert REJ_INVALID < 0


def _two_sided_book():
    from genesis.feeds.events import DELTA_DTYPE

    rows = []
    for k in range(10):  # a quote refreshed every second for 10 s
        t = (k + 1) * 1_000_000_000
        rows += [(t, t, k, 1, 100.0, 5.0, k == 0), (t, t, k, -1, 100.1, 5.0, k == 0)]
    return np.array(rows, DELTA_DTYPE)


# -- real captures: one store per capture, shared by the module ------------------------------------

@pytest.fixture(scope="module")
def ingested(tmp_path_factory):
    stores: dict[str, str] = {}

    def get(name: str) -> str:
        if name not in stores:
            path = capture_path(name)
            url = f"chdb://{tmp_path_factory.mktemp('instruments') / 'store'}"
            ingest_binance_capture(path, store_url=url, progress=False)
            stores[name] = url
        return stores[name]

    return get


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_ingest_infers_the_true_tick(ingested, name):
    symbol, tick = TRUE_TICK[name]
    with connect(ingested(name)) as store:
        spec = resolve_instrument(store, symbol)
    assert spec is not None and spec.source == INFERRED
    assert spec.tick_size == tick
    if symbol.startswith("binance-coinm"):
        assert spec.lot_size == 1.0  # whole contracts


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_stored_book_is_in_update_id_order_and_every_replay_agrees(ingested, name):
    symbol, _ = TRUE_TICK[name]
    url = ingested(name)
    with connect(url) as store:
        deltas = store.query_df(
            "SELECT toUnixTimestamp64Nano(exch_ts) AS t, seq, side, price, qty, is_snapshot FROM depth_deltas"
            " WHERE symbol = {s:String} ORDER BY exch_ts, seq", {"s": symbol})
        rows = store.query_df(
            "SELECT toUnixTimestamp64Nano(exch_ts) AS t, seq, bid_px[1] AS bid, ask_px[1] AS ask FROM book_snapshots"
            " WHERE symbol = {s:String} AND sampling = 'event' ORDER BY exch_ts, seq", {"s": symbol})
    # Time order is update-id order, the snapshot first with a real time (spot's REST snapshot has none).
    assert deltas["is_snapshot"].iloc[0] and deltas["t"].iloc[0] > 0
    assert np.all(np.diff(deltas["seq"].to_numpy().astype(np.int64)) >= 0)
    assert np.all(np.diff(rows["seq"].to_numpy().astype(np.int64)) > 0)

    # The stored deltas, replayed in that order, give the stored book rows.
    seq = deltas["seq"].to_numpy()
    starts = np.flatnonzero(np.r_[True, seq[1:] != seq[:-1]])
    counts = np.diff(np.r_[starts, len(seq)])
    book = L2Book(depth=1)
    bid_px, _, ask_px, _, _ = book.apply_groups(starts, counts, deltas["is_snapshot"].to_numpy()[starts],
                                                deltas["side"].to_numpy(), deltas["price"].to_numpy(),
                                                deltas["qty"].to_numpy())
    # (a snapshot alone gives no row: the book is emitted once the first diff covering it applies)
    group_seq = seq[starts].astype(np.int64)
    at = np.searchsorted(group_seq, rows["seq"].to_numpy().astype(np.int64), side="right") - 1
    np.testing.assert_array_equal(bid_px[at, 0], rows["bid"].to_numpy())
    np.testing.assert_array_equal(ask_px[at, 0], rows["ask"].to_numpy())

    # The backtest replay from the store: the venue book after each message, as stored.
    replay = np.concatenate(list(store_chunks(symbol, int(rows["t"].iloc[0]), int(rows["t"].iloc[-1]) + 1,
                                              chunk="1min", store_url=url)))
    venue = replay[(replay["kind"] & FLAG_EXCH) != 0]
    tops = _tops_after_messages(venue)
    stored = {int(t): (b, a) for t, b, a in zip(rows["t"], rows["bid"], rows["ask"])}  # last row at each time
    assert tops == {t: stored[t] for t in tops}

    # The dashboard replay reads the same deltas in the same order.
    from genesis.live.sources import load_replay

    events = load_replay([symbol], store_url=url)[symbol]
    np.testing.assert_array_equal(events.deltas["seq"], seq)

    # Features from the capture file stamp their rows as the store does.
    from genesis.features.sources import from_capture

    snaps, _ = from_capture(capture_path(name), symbol)
    np.testing.assert_array_equal(snaps.ts, rows["t"].to_numpy())


def _tops_after_messages(venue_rows) -> dict[int, tuple[float, float]]:
    """Best bid and ask after the last depth message at each venue time of a replay's venue rows."""
    from genesis.backtest.events import FLAG_LAST

    kind = venue_rows["kind"] & KIND_MASK
    rows = venue_rows[(kind == DEPTH) | (kind == CLEAR)]
    kind = rows["kind"] & KIND_MASK
    last = np.flatnonzero(rows["kind"] & FLAG_LAST)
    first = np.r_[0, last[:-1] + 1]
    is_snapshot = kind[first] == CLEAR
    level = kind == DEPTH
    n_levels_before = np.r_[0, np.cumsum(level)]
    starts, stops = n_levels_before[first], n_levels_before[last + 1]
    levels = rows[level]
    bid_px, _, ask_px, _, _ = L2Book(depth=1).apply_groups(starts, stops - starts, is_snapshot, levels["side"],
                                                           levels["price"], levels["qty"])
    return {int(t): (b, a) for t, b, a in zip(rows["exch_ts"][last], bid_px[:, 0], ask_px[:, 0])
            if np.isfinite(b) and np.isfinite(a)}


@pytest.mark.parametrize("name", ALL_CAPTURES)
def test_every_taker_fill_was_in_the_stored_book(ingested, name):
    from genesis.backtest.store import run_stored

    symbol, tick = TRUE_TICK[name]
    url = ingested(name)
    with connect(url) as store:
        lot = resolve_instrument(store, symbol).lot_size
        rows = store.query_df(
            "SELECT toUnixTimestamp64Nano(exch_ts) AS t, bid_px, ask_px FROM book_snapshots"
            " WHERE symbol = {s:String} AND sampling = 'event' ORDER BY exch_ts, seq", {"s": symbol})
    result = run_stored("taker_only", {"interval_ns": 2e9, "qty": lot}, symbol, latency_ms=1.000137,
                        store_url=url, progress=False)
    assert result.config["tick_size"] == tick and result.config["instrument"]["source"] == INFERRED
    fills = result.fills
    assert len(fills) > 100 and result.meta["rows_off_tick"] == 0
    # The book the order met: the last stored row at or before its arrival at the venue.
    at = np.searchsorted(rows["t"].to_numpy(), fills["exch_ts"], side="right") - 1
    assert np.all(at >= 0)
    for fill, k in zip(fills, at):
        levels = rows["ask_px"].iloc[k] if fill["side"] > 0 else rows["bid_px"].iloc[k]
        assert fill["price"] in set(levels), (name, int(fill["exch_ts"]), fill["price"], levels[:3])


def test_cli_backtest_uses_the_cent_tick_and_overrides(ingested, capsys):
    url = ingested("spot_btcusdt_20240808.jsonl.gz")
    base = ["backtest", "run", "--strategy", "taker_only", "--symbol", "binance-spot:BTCUSDT",
            "--start", "2024-08-08 23:54:15", "--no-store", "--no-progress", "--store", url]
    assert main([*base, "--param", "qty=0.00001"]) == 0
    out = capsys.readouterr().out
    assert "instrument: tick 0.01, lot 1e-06, from inferred" in out
    assert main([*base, "--param", "qty=0.000015", "--tick-size", "0.01", "--lot-size", "0.00001"]) == 0
    out = capsys.readouterr().out
    assert "instrument: tick 0.01, lot 1e-05, from override" in out and ", 0 fills" in out


def test_declared_exchange_info_beside_a_capture_wins(tmp_path, store_url):
    source = capture_path("spot_ethusdt_20240808.jsonl.gz")
    path = tmp_path / source.name
    shutil.copy(source, path)
    info = {"symbols": [{"symbol": "ETHUSDT", "baseAssetPrecision": 8, "filters": [
        {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
         "tickSize": "0.01000000"},
        {"filterType": "LOT_SIZE", "minQty": "0.00010000", "maxQty": "9000.00000000", "stepSize": "0.00010000"},
        {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True}]}]}
    exchange_info_path(path).write_text(json.dumps({"local_ts": 1723161250000000000, "venue": "spot",
                                                    "response": info}))
    ingest_binance_capture(path, store_url=store_url, progress=False)
    with connect(store_url) as store:
        spec = resolve_instrument(store, "binance-spot:ETHUSDT", 1723161300000000000)
        sources = sorted(r[0] for r in store.query_rows("SELECT source FROM instruments"))
    assert sources == [EXCHANGE_INFO, INFERRED]
    assert (spec.source, spec.tick_size, spec.lot_size, spec.min_notional) == (EXCHANGE_INFO, 0.01, 0.0001, 5.0)


def test_applied_clocks_order_by_update_id():
    # A snapshot with no venue time, then diffs; one diff received before the snapshot.
    exch, local = applied_clocks(np.array([0, 50, 60, 0]), np.array([40, 30, 45, 70]))
    assert exch.tolist() == [50, 50, 60, 60]  # unknown: the next known time; trailing: the last known
    assert local.tolist() == [40, 40, 45, 70]  # usable no sooner than what was applied before it
    # A venue time stamped after the diffs it contains is brought back before them.
    assert applied_clocks(np.array([90, 50, 60]), np.array([1, 2, 3]))[0].tolist() == [50, 50, 60]


def test_surveillance_counts_gaps_in_the_instruments_tick():
    from genesis.surveillance.detectors import default_detectors
    from genesis.surveillance.store import with_instrument

    spec = Instrument("binance-spot:BTCUSDT", 0.01, 0.00001, source=EXCHANGE_INFO)
    plain = {d.name: d for d in default_detectors()}
    given = {d.name: d for d in with_instrument(default_detectors(), spec)}
    assert plain["liquidity_gap"].params.tick_size == 0.0  # learnt from the book when no spec is known
    assert given["liquidity_gap"].params.tick_size == 0.01
    assert given["liquidity_gap"].params_version != plain["liquidity_gap"].params_version
    assert all(given[n] == plain[n] for n in plain if n != "liquidity_gap")
    assert with_instrument(default_detectors(), None) == default_detectors()
