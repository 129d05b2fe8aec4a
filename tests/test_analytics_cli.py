"""`genesis bars export / upload / rebuild` and `genesis price-alerts` on the bundled sample."""

from __future__ import annotations

import pandas as pd

from tests.conftest import capture_path
from genesis.cli import main
from genesis.pipelines.ingest import ingest_binance_capture

BTC = "binance-usdm:BTCUSDT"


def test_bars_and_price_alert_commands(store_url, tmp_path, capsys):
    ingest_binance_capture(capture_path("usdm_btcusdt_20240808.jsonl.gz"), store_url=store_url, progress=False)
    assert main(["bars", "export", BTC, "--interval", "1m", "--store", store_url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == "ts,symbol,interval,open,high,low,close,volume,buy_volume,notional,vwap,trades"
    assert len(lines) == 1 + 6 and lines[1].startswith("2024-08-08T23:54:00.000000Z,binance-usdm:BTCUSDT,1m,61800.3,")

    out = tmp_path / "btc.csv"
    assert main(["bars", "export", BTC, "--interval", "5m", "--out", str(out), "--store", store_url]) == 0
    frame = pd.read_csv(out)
    frame["symbol"] = "binance-usdm:BTCUSDT-copy"
    frame.loc[1, "high"] = 1.0  # below its open: quarantined
    frame.to_csv(out, index=False)
    assert main(["bars", "upload", str(out), "--store", store_url]) == 0
    printed = capsys.readouterr().out
    assert "uploaded, 1 bars, 1 quarantined" in printed and "high 1 is below max(open, close, low)" in printed

    assert main(["bars", "rebuild", "--symbol", BTC, "--store", store_url]) == 0
    assert "bars rebuilt from trades" in capsys.readouterr().out

    assert main(["price-alerts", f"{BTC} cross 61810", f"{BTC} below 61770", "--save", "--store", store_url]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == ("2024-08-08 23:54:25.852000+00:00  binance-usdm:BTCUSDT  cross 61810  "
                          "up at 61810 (from 61808.9)")
    assert printed[1].endswith("cross 61810  down at 61809.9 (from 61810)")
    assert "below 61770  down at 61770 (from 61771.4)" in "\n".join(printed)
    n_alerts = int(printed[-1].split()[0])
    assert n_alerts == len(printed) - 1 > 10 and "stored as run" in printed[-1]
    assert main(["price-alerts", "BTCUSDT over 1", "--store", store_url]) == 2  # one clear line, no traceback
    assert "price rule kind 'over': choose from above, below, cross" in capsys.readouterr().err
