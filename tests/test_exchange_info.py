"""Binance exchangeInfo: the parser on each venue's documented shape, the fake exchange's answer,
the sidecar reader's errors, and the live store writer recording the specs it is handed."""

from __future__ import annotations

import argparse
import json
import urllib.error
import urllib.request
from dataclasses import replace

import pytest

from genesis.feeds.binance.fake import FakeBinance, Faults
from genesis.feeds.binance.venues import exchange_info_path, instruments_from_exchange_info, read_exchange_info
from genesis.store.instruments import EXCHANGE_INFO, Instrument, read_instruments
from tests.conftest import capture_path

T0 = 1_723_075_200_000_000_000  # 2024-08-08 00:00 UTC, ns


# -- the parser ---------------------------------------------------------------------------------
def test_spot_terms_come_from_price_lot_and_notional_filters(exchange_info_docs):
    (spec,) = instruments_from_exchange_info(exchange_info_docs["spot"], "spot", T0)
    assert spec == Instrument("binance-spot:BTCUSDT", tick_size=0.01, lot_size=0.00001, min_notional=5.0,
                              contract_size=1.0, price_precision=2, qty_precision=5, valid_from=T0,
                              source=EXCHANGE_INFO)
    # baseAssetPrecision (8) is the asset's balance precision, not the order quantity's.
    assert spec.qty_precision != exchange_info_docs["spot"]["symbols"][0]["baseAssetPrecision"]


def test_usdm_terms_take_the_declared_precisions_and_min_notional(exchange_info_docs):
    specs = instruments_from_exchange_info(json.dumps(exchange_info_docs["usdm"]).encode(), "binance-usdm", T0)
    assert [s.symbol for s in specs] == ["binance-usdm:BTCUSDT", "binance-usdm:ETHUSDT"]
    btc, eth = specs
    assert (btc.tick_size, btc.lot_size, btc.min_notional, btc.contract_size) == (0.1, 0.001, 100.0, 1.0)
    assert (btc.price_precision, btc.qty_precision) == (2, 3)  # as declared (Binance's display precision)
    assert (eth.tick_size, eth.min_notional) == (0.01, 20.0)
    assert all(s.source == EXCHANGE_INFO and s.valid_from == T0 for s in specs)


def test_coinm_terms_carry_the_contract_size(exchange_info_docs):
    btc, eth = instruments_from_exchange_info(exchange_info_docs["coinm"], "coinm", T0)
    assert btc == Instrument("binance-coinm:BTCUSD_PERP", tick_size=0.1, lot_size=1.0, min_notional=0.0,
                             contract_size=100.0, price_precision=1, qty_precision=0, valid_from=T0,
                             source=EXCHANGE_INFO)
    assert (eth.symbol, eth.tick_size, eth.contract_size, eth.min_notional) == ("binance-coinm:ETHUSD_PERP", 0.01,
                                                                               10.0, 0.0)


def test_only_the_symbols_asked_for_any_case(exchange_info_docs):
    (spec,) = instruments_from_exchange_info(exchange_info_docs["usdm"], "usdm", T0, symbols=["ethusdt"])
    assert spec.symbol == "binance-usdm:ETHUSDT"
    assert instruments_from_exchange_info(exchange_info_docs["usdm"], "usdm", T0, symbols=["XRPUSDT"]) == []


def test_unusable_documents_are_refused_with_the_symbol_and_problem(exchange_info_docs):
    doc = exchange_info_docs["usdm"]
    doc["symbols"][1]["filters"] = [f for f in doc["symbols"][1]["filters"] if f["filterType"] != "PRICE_FILTER"]
    with pytest.raises(ValueError, match=r"binance-usdm: symbol 'ETHUSDT' has no usable PRICE_FILTER"):
        instruments_from_exchange_info(doc, "usdm", T0)
    doc = exchange_info_docs["spot"]
    doc["symbols"][0]["filters"][1]["stepSize"] = "n/a"
    with pytest.raises(ValueError, match="'BTCUSDT'"):
        instruments_from_exchange_info(doc, "spot", T0)
    with pytest.raises(ValueError, match="expected an object with a 'symbols' list"):
        instruments_from_exchange_info(b"[]", "spot", T0)
    with pytest.raises(ValueError):
        instruments_from_exchange_info(b"<html>502 Bad Gateway</html>", "spot", T0)
    with pytest.raises(ValueError, match="unknown Binance venue"):
        instruments_from_exchange_info(exchange_info_docs["spot"], "kraken", T0)


def test_an_unreadable_sidecar_is_named(tmp_path, exchange_info_docs):
    capture = tmp_path / "usdm_btcusdt_20240808.jsonl.gz"
    assert read_exchange_info(capture) == []  # none recorded
    exchange_info_path(capture).write_text('{"local_ts": 1, "venue": "usdm"}')
    with pytest.raises(ValueError, match="usdm_btcusdt_20240808.exchangeinfo.json"):
        read_exchange_info(capture)
    exchange_info_path(capture).write_text(json.dumps({"local_ts": T0, "venue": "usdm",
                                                       "response": exchange_info_docs["usdm"]}))
    assert [s.symbol for s in read_exchange_info(capture)] == ["binance-usdm:BTCUSDT", "binance-usdm:ETHUSDT"]


# -- the fake exchange --------------------------------------------------------------------------
def _get(url):
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=10) as response:
        return json.loads(response.read())


def test_fake_serves_the_terms_inferred_from_the_capture_in_binances_format():
    path = capture_path("spot_ethusdt_20240808.jsonl.gz")
    with FakeBinance(path, faults=Faults(exchange_info_errors=1)) as fake:
        served = fake.instruments["ETHUSDT"]
        with pytest.raises(urllib.error.HTTPError) as failed:  # the injected fault
            _get(f"{fake.rest_url}/api/v3/exchangeInfo")
        assert failed.value.code == 500
        doc = _get(f"{fake.rest_url}/api/v3/exchangeInfo?symbols=%5B%22ETHUSDT%22%5D")
        assert _get(f"{fake.rest_url}/api/v3/exchangeInfo?symbol=ethusdt")["symbols"] == doc["symbols"]
        with pytest.raises(urllib.error.HTTPError) as unknown:
            _get(f"{fake.rest_url}/api/v3/exchangeInfo?symbol=BTCUSDT")
        assert unknown.value.code == 400
        assert (fake.stats.exchange_info, fake.stats.exchange_info_failed) == (2, 1)
    (entry,) = doc["symbols"]
    filters = {f["filterType"]: f for f in entry["filters"]}
    # Spot writes 8-place decimal strings and declares no price/quantity precision.
    assert filters["PRICE_FILTER"]["tickSize"] == "0.01000000" and "pricePrecision" not in entry
    assert filters["LOT_SIZE"]["stepSize"] == f"{served.lot_size:.8f}"
    assert served.source == "inferred" and served.tick_size == 0.01
    (parsed,) = instruments_from_exchange_info(doc, "spot", T0)
    assert parsed == replace(served, valid_from=T0, source=EXCHANGE_INFO)


def test_fake_serves_given_terms_and_refuses_bad_ones():
    path = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    fake = FakeBinance(path, instruments={"btcusdt": {"tick_size": 0.1, "lot_size": 0.001, "min_notional": 100}})
    (entry,) = fake.exchange_info()["symbols"]
    filters = {f["filterType"]: f for f in entry["filters"]}
    assert (filters["PRICE_FILTER"]["tickSize"], filters["LOT_SIZE"]["stepSize"]) == ("0.1", "0.001")
    assert filters["MIN_NOTIONAL"] == {"filterType": "MIN_NOTIONAL", "notional": "100"}
    assert (entry["pricePrecision"], entry["quantityPrecision"]) == (1, 3)
    (parsed,) = instruments_from_exchange_info(fake.exchange_info(), "usdm", T0)
    assert parsed == replace(fake.instruments["BTCUSDT"], valid_from=T0)
    with pytest.raises(ValueError, match="'ETHUSDT' is not served"):
        FakeBinance(path, instruments={"ETHUSDT": {"tick_size": 0.01}})
    with pytest.raises(ValueError, match=r"unknown term\(s\) \['tick'\]"):
        FakeBinance(path, instruments={"BTCUSDT": {"tick": 0.01}})
    with pytest.raises(ValueError, match="tick_size=0 must be a positive number"):
        FakeBinance(path, instruments={"BTCUSDT": {"tick_size": 0}})
    with pytest.raises(ValueError, match="exchange_info_errors"):
        Faults(exchange_info_errors=-1)


def test_fake_cli_takes_instrument_terms_and_the_exchange_info_fault():
    from genesis.feeds import cli

    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    args = parser.parse_args(["fake", "binance", "x.jsonl.gz", "--instrument", "btcusdt:tick_size=0.01,lot_size=1e-5",
                              "--exchange-info-errors", "2"])
    assert dict(args.instrument) == {"BTCUSDT": {"tick_size": 0.01, "lot_size": 1e-5}}
    assert args.exchange_info_errors == 2
    for bad in ("BTCUSDT", "BTCUSDT:tick=0.01", "BTCUSDT:tick_size=abc"):
        with pytest.raises(argparse.ArgumentTypeError, match="BTCUSDT"):
            cli._instrument_terms(bad)


# -- the live store writer ----------------------------------------------------------------------
def test_live_writer_records_the_terms_once(store_url, exchange_info_docs):
    from genesis.live.writer import StoreWriter
    from genesis.store import connect

    writer = StoreWriter(store_url, "usdm")
    raw = json.dumps(exchange_info_docs["usdm"]).encode()
    specs = instruments_from_exchange_info(raw, "usdm", T0)
    writer.on_instruments(specs, T0, raw)
    assert writer.flush() == 2 and writer.inserted["instruments"] == 2
    writer.on_instruments(specs, T0, raw)  # the same terms again (a reconnect): nothing new
    assert writer.flush() == 0 and writer.inserted["instruments"] == 2
    with connect(store_url) as store:
        assert read_instruments(store) == specs
        assert store.query_rows("SELECT DISTINCT source_id FROM instruments") == [(writer.source_id,)]


@pytest.mark.slow
def test_live_engine_records_the_terms_to_the_store_and_beside_the_captures(tmp_path, store_url):
    """`genesis serve --mode live`: the client's terms reach the writer (instruments table) and the recorder."""
    import time

    from genesis.live import EngineConfig, LiveEngine
    from genesis.store import connect

    path = capture_path("spot_ethusdt_20240808.jsonl.gz")
    with FakeBinance(path, speed=20.0) as fake:
        engine = LiveEngine(EngineConfig(mode="live", venue="spot", symbols=["ETHUSDT"], ws_url=fake.ws_url,
                                         rest_url=fake.rest_url, record_dir=str(tmp_path / "rec"), tick_s=0.02,
                                         store_url=store_url, insert_live=True, insert_every_s=0.2))
        engine.start()
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and (engine.writer is None or not engine.writer.inserted["instruments"]):
                time.sleep(0.05)
        finally:
            engine.stop()
        served = fake.instruments["ETHUSDT"]
    assert engine.writer.inserted["instruments"] == 1
    assert engine.collector.instruments["binance-spot:ETHUSDT"].tick_size == served.tick_size
    with connect(store_url) as store:
        (spec,) = read_instruments(store, "binance-spot:ETHUSDT")
    assert spec == replace(served, source=EXCHANGE_INFO, valid_from=spec.valid_from)
    (capture,) = (tmp_path / "rec").glob("spot_ethusdt_*.jsonl.gz")
    assert read_exchange_info(capture) == [spec]
