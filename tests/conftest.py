"""Shared fixtures: real captures (bundled or from ../shared/data) and throwaway stores."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_BINANCE = REPO.parent / "shared" / "data" / "binance"
# Captures the repository carries, so that the suite runs from a plain clone.
BUNDLED = {
    "usdm_btcusdt_20240808.jsonl.gz": REPO / "data" / "sample" / "usdm_btcusdt_20240808.jsonl.gz",
    "spot_ethusdt_20240808.jsonl.gz": REPO / "tests" / "data" / "spot_ethusdt_20240808.jsonl.gz",
    "spot_btcusdt_20240808.jsonl.gz": REPO / "tests" / "data" / "spot_btcusdt_20240808.jsonl.gz",
}
ALL_CAPTURES = (
    "usdm_btcusdt_20240808.jsonl.gz",
    "usdm_ethusdt_20240808.jsonl.gz",
    "cm_btcusd_perp_20240808.jsonl.gz",
    "spot_btcusdt_20240808.jsonl.gz",
    "spot_ethusdt_20240808.jsonl.gz",
)


def capture_path(name: str) -> Path:
    """A real capture: the bundled copy, else ../shared/data/binance, else skip with the reason."""
    if name in BUNDLED and BUNDLED[name].exists():
        return BUNDLED[name]
    shared = SHARED_BINANCE / name
    if shared.exists():
        return shared
    pytest.skip(f"{name} is not bundled and ../shared/data/binance is not beside this clone")


def capture_lines(name: str) -> list[bytes]:
    return gzip.decompress(capture_path(name).read_bytes()).splitlines()


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    """A fresh embedded store for one test."""
    return f"chdb://{tmp_path / 'store'}"


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test touches the user's GENESIS_HOME."""
    monkeypatch.setenv("GENESIS_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("GENESIS_CLICKHOUSE_URL", raising=False)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium under Playwright, one per test module (see tests/browser.py)."""
    from playwright.sync_api import sync_playwright

    from tests.browser import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory) -> Path:
    """Where browser tests save screenshots: $GENESIS_TEST_ARTIFACTS/dashboards, else a tmp dir."""
    base = os.environ.get("GENESIS_TEST_ARTIFACTS")
    path = Path(base) / "dashboards" if base else tmp_path_factory.mktemp("dashboards-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nscreenshots: {path}")
    return path


# -- Binance exchangeInfo -------------------------------------------------------------------------
# Small literal answers shaped like Binance's documented ones (GET /api/v3/exchangeInfo,
# /fapi/v1/exchangeInfo, /dapi/v1/exchangeInfo), with the terms the venues gave in August 2024:
# spot writes decimals padded to 8 places, declares no price/quantity precision (its
# baseAssetPrecision is the asset's) and puts the minimum notional in NOTIONAL.minNotional;
# USD-M declares pricePrecision/quantityPrecision and MIN_NOTIONAL.notional; COIN-M has a
# contractSize (USD per contract) and no notional filter.
EXCHANGE_INFO_DOCS = {
    "spot": {
        "timezone": "UTC", "serverTime": 1723075200000,
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000}],
        "exchangeFilters": [],
        "symbols": [{
            "symbol": "BTCUSDT", "status": "TRADING", "baseAsset": "BTC", "baseAssetPrecision": 8,
            "quoteAsset": "USDT", "quotePrecision": 8, "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
            "quoteCommissionPrecision": 8, "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT"],
            "icebergAllowed": True, "ocoAllowed": True, "otoAllowed": True, "quoteOrderQtyMarketAllowed": True,
            "allowTrailingStop": True, "cancelReplaceAllowed": True, "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": True,
            "filters": [
                {"filterType": "PRICE_FILTER", "minPrice": "0.01000000", "maxPrice": "1000000.00000000",
                 "tickSize": "0.01000000"},
                {"filterType": "LOT_SIZE", "minQty": "0.00001000", "maxQty": "9000.00000000", "stepSize": "0.00001000"},
                {"filterType": "ICEBERG_PARTS", "limit": 10},
                {"filterType": "MARKET_LOT_SIZE", "minQty": "0.00000000", "maxQty": "83.37806105",
                 "stepSize": "0.00000000"},
                {"filterType": "TRAILING_DELTA", "minTrailingAboveDelta": 10, "maxTrailingAboveDelta": 2000,
                 "minTrailingBelowDelta": 10, "maxTrailingBelowDelta": 2000},
                {"filterType": "PERCENT_PRICE_BY_SIDE", "bidMultiplierUp": "5", "bidMultiplierDown": "0.2",
                 "askMultiplierUp": "5", "askMultiplierDown": "0.2", "avgPriceMins": 5},
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "applyMinToMarket": True,
                 "maxNotional": "9000000.00000000", "applyMaxToMarket": False, "avgPriceMins": 5},
                {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "maxNumAlgoOrders": 5},
            ],
            "permissions": [], "permissionSets": [["SPOT", "MARGIN"]],
            "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
            "allowedSelfTradePreventionModes": ["EXPIRE_TAKER", "EXPIRE_MAKER", "EXPIRE_BOTH"],
        }],
    },
    "usdm": {
        "timezone": "UTC", "serverTime": 1723075200000, "futuresType": "U_MARGINED",
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
        "exchangeFilters": [],
        "assets": [{"asset": "USDT", "marginAvailable": True, "autoAssetExchange": "-10000"}],
        "symbols": [
            {"symbol": symbol, "pair": symbol, "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
             "onboardDate": 1569398400000, "status": "TRADING", "maintMarginPercent": "2.5000",
             "requiredMarginPercent": "5.0000", "baseAsset": symbol[:3], "quoteAsset": "USDT", "marginAsset": "USDT",
             "pricePrecision": 2, "quantityPrecision": 3, "baseAssetPrecision": 8, "quotePrecision": 8,
             "underlyingType": "COIN", "underlyingSubType": ["PoW"], "triggerProtect": "0.0500",
             "liquidationFee": "0.012500", "marketTakeBound": "0.05",
             "filters": [
                 {"filterType": "PRICE_FILTER", "minPrice": min_price, "maxPrice": "4529764", "tickSize": tick},
                 {"filterType": "LOT_SIZE", "minQty": "0.001", "maxQty": "1000", "stepSize": "0.001"},
                 {"filterType": "MARKET_LOT_SIZE", "minQty": "0.001", "maxQty": "120", "stepSize": "0.001"},
                 {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                 {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                 {"filterType": "MIN_NOTIONAL", "notional": notional},
                 {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                  "multiplierDecimal": "4"},
             ],
             "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
             "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"]}
            for symbol, tick, min_price, notional in (("BTCUSDT", "0.10", "556.80", "100"),
                                                      ("ETHUSDT", "0.01", "39.86", "20"))
        ],
    },
    "coinm": {
        "timezone": "UTC", "serverTime": 1723075200000,
        "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 2400}],
        "exchangeFilters": [],
        "symbols": [
            {"symbol": "BTCUSD_PERP", "pair": "BTCUSD", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
             "onboardDate": 1597042800000, "contractStatus": "TRADING", "contractSize": 100, "marginAsset": "BTC",
             "maintMarginPercent": "2.5000", "requiredMarginPercent": "5.0000", "baseAsset": "BTC",
             "quoteAsset": "USD", "pricePrecision": 1, "quantityPrecision": 0, "baseAssetPrecision": 8,
             "quotePrecision": 8, "equalQtyPrecision": 4, "triggerProtect": "0.0500", "maxMoveOrderLimit": 10000,
             "underlyingType": "COIN", "underlyingSubType": [], "liquidationFee": "0.015000",
             "marketTakeBound": "0.05",
             "filters": [
                 {"filterType": "PRICE_FILTER", "minPrice": "1000", "maxPrice": "4520958", "tickSize": "0.1"},
                 {"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "1000000", "stepSize": "1"},
                 {"filterType": "MARKET_LOT_SIZE", "minQty": "1", "maxQty": "60000", "stepSize": "1"},
                 {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                 {"filterType": "PERCENT_PRICE", "multiplierUp": "1.0500", "multiplierDown": "0.9500",
                  "multiplierDecimal": 4},
             ],
             "orderTypes": ["LIMIT", "MARKET", "STOP", "STOP_MARKET", "TAKE_PROFIT", "TAKE_PROFIT_MARKET"],
             "timeInForce": ["GTC", "IOC", "FOK", "GTX"]},
            {"symbol": "ETHUSD_PERP", "pair": "ETHUSD", "contractType": "PERPETUAL", "deliveryDate": 4133404800000,
             "onboardDate": 1597042800000, "contractStatus": "TRADING", "contractSize": 10, "marginAsset": "ETH",
             "baseAsset": "ETH", "quoteAsset": "USD", "pricePrecision": 2, "quantityPrecision": 0,
             "baseAssetPrecision": 8, "quotePrecision": 8,
             "filters": [
                 {"filterType": "PRICE_FILTER", "minPrice": "50", "maxPrice": "306177", "tickSize": "0.01"},
                 {"filterType": "LOT_SIZE", "minQty": "1", "maxQty": "1000000", "stepSize": "1"},
             ]},
        ],
    },
}


@pytest.fixture
def exchange_info_docs() -> dict:
    """Binance-shaped exchangeInfo answers of spot, usdm and coinm (a fresh copy per test)."""
    import copy

    return copy.deepcopy(EXCHANGE_INFO_DOCS)


def run_client_until(paths, venue: str, until, *, listener=None, faults=None, speed=None, fake_kwargs=None,
                     timeout: float = 60.0, **client_kwargs):
    """Serve ``paths`` with a :class:`FakeBinance` on 127.0.0.1 (a free port; ``speed`` times
    real time, None: unpaced), run a client of ``venue`` with ``listener`` until
    ``until(fake, client)`` holds, then stop both.
    Returns (fake, client); fails the test when ``until`` never holds within ``timeout`` s."""
    import asyncio
    import time

    from genesis.feeds.binance.fake import FakeBinance
    from genesis.feeds.binance.live import BinanceClient

    async def main():
        fake = await FakeBinance(paths, faults=faults, speed=speed, **(fake_kwargs or {})).start()
        try:
            client = BinanceClient(venue, list(fake.markets), listener, ws_url=fake.ws_url, rest_url=fake.rest_url,
                                   seed=7, **client_kwargs)
        except BaseException:
            await fake.stop()
            raise
        task = asyncio.create_task(client.run())
        try:
            deadline = time.monotonic() + timeout
            while not until(fake, client):
                if task.done() or time.monotonic() > deadline:
                    pytest.fail(f"no expected state within {timeout:g} s; client metrics {client.metrics.as_dict()}, "
                                f"fake {fake.stats}")
                await asyncio.sleep(0.02)
        finally:
            client.stop()
            await task
            await fake.stop()
        return fake, client

    return asyncio.run(main())
