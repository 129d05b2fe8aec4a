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
