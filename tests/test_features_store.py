"""Features in the store: build from ingested data, read back, rebuild, warm-up, chunks, CLI.

Every test ingests the bundled capture (USD-M BTCUSDT, ~6 minutes, 6547 event rows) into its
own throwaway store, so that what is compared is what a user would get.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.conftest import capture_path
from genesis.cli import main
from genesis.features import FeatureSpec, compute_features, from_capture
from genesis.features.sampling import sample
from genesis.features.store import build_features, feature_set_info, load_inputs, read_features, spec_items
from genesis.pipelines.ingest import ingest_binance_capture
from genesis.store import connect

SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"
BTC = "binance-usdm:BTCUSDT"
N_EVENT_ROWS = 6547
# Finite windows only (no EWMA), so that a warm-up of `lookback` rows makes them exact.
WINDOWED = ["mid", "spread", "ofi(level=1, window=20)", "trade_volume(window=30)", "log_return(horizon=10)",
            "realized_vol(window=50)", "message_rate(window=40)"]

pytestmark = pytest.mark.slow


@pytest.fixture
def url(store_url):
    """A store holding the ingested sample."""
    ingest_binance_capture(capture_path(SAMPLE), store_url=store_url, progress=False)
    return store_url


@pytest.fixture(scope="module")
def capture_inputs():
    return from_capture(capture_path(SAMPLE))


def feature_rows(url: str) -> int:
    with connect(url) as store:
        return store.query_rows("SELECT count() FROM features")[0][0]


def assert_frames_equal(got: pd.DataFrame, want: pd.DataFrame, rtol: float = 0.0) -> None:
    assert list(got.columns) == list(want.columns)
    assert np.array_equal(got["ts"].to_numpy(), want["ts"].to_numpy())
    for column in want.columns[1:]:
        a, b = got[column].to_numpy(), want[column].to_numpy()
        if rtol:
            scale = max(1.0, float(np.nanmax(np.abs(b)))) if np.isfinite(b).any() else 1.0
            np.testing.assert_allclose(a, b, rtol=rtol, atol=1e-12 * scale, equal_nan=True, err_msg=column)
        else:
            assert np.array_equal(a, b, equal_nan=True), f"{column} differs"


def test_stored_inputs_are_the_capture_rebuilt(url, capture_inputs):
    """load_inputs over the store gives what from_capture rebuilds from the file."""
    snaps, trades = capture_inputs
    with connect(url) as store:
        got, got_trades, n_warmup = load_inputs(store, "BTCUSDT", "2024-08-08", "2024-08-10")
    assert n_warmup == 0 and len(got) == N_EVENT_ROWS
    for name in ("ts", "bid_px", "bid_sz", "ask_px", "ask_sz", "updates"):
        assert np.array_equal(getattr(got, name), getattr(snaps, name), equal_nan=True), name
    for name in ("ts", "price", "qty", "side"):
        assert np.array_equal(getattr(got_trades, name), getattr(trades, name)), name


def test_build_then_read_back_equals_one_batch(url, capture_inputs):
    report = build_features("BTCUSDT", store_url=url, chunk="1min", progress=False)
    assert report.symbol == BTC and report.rows == N_EVENT_ROWS and report.chunks == 7
    assert report.columns == FeatureSpec.default().columns and report.warmup_rows == 0

    frame = read_features("BTCUSDT", store_url=url)
    assert str(frame["ts"].dtype) == "datetime64[ns, UTC]"
    assert_frames_equal(frame, compute_features(*capture_inputs))

    some = read_features(BTC, "2024-08-08 23:56", "2024-08-08T23:57:00Z", columns=["spread", "mid"], store_url=url)
    assert list(some.columns) == ["ts", "spread", "mid"] and 500 < len(some) < 2000
    assert some["ts"].min() >= pd.Timestamp("2024-08-08 23:56", tz="UTC")
    assert some["ts"].max() < pd.Timestamp("2024-08-08 23:57", tz="UTC")


def test_rebuild_replaces_rows_never_duplicates(url):
    spec = "mid;spread;ofi(level=2, window=5)"
    first = build_features("BTCUSDT", spec=spec, store_url=url, progress=False)
    before = read_features("BTCUSDT", store_url=url)
    second = build_features("BTCUSDT", spec=spec, store_url=url, chunk="2min", progress=False)
    assert first.rows == second.rows == feature_rows(url) == N_EVENT_ROWS
    assert_frames_equal(read_features("BTCUSDT", store_url=url), before)

    # A rebuild of a part replaces that part only.
    part = build_features("BTCUSDT", "2024-08-08 23:57", "2024-08-08 23:58", spec, store_url=url, progress=False)
    assert 0 < part.rows < N_EVENT_ROWS and feature_rows(url) == N_EVENT_ROWS
    # (warmed up, so equal but for the last bits of windowed sums)
    assert_frames_equal(read_features("BTCUSDT", store_url=url), before, rtol=1e-9)


def test_subrange_with_warmup_equals_whole_range(url):
    spec = FeatureSpec.coerce(WINDOWED)
    build_features("BTCUSDT", spec=spec, feature_set="w", store_url=url, progress=False)
    whole = read_features("BTCUSDT", "2024-08-08 23:57", feature_set="w", store_url=url)

    part = build_features("BTCUSDT", "2024-08-08 23:57", None, spec, feature_set="w", store_url=url, progress=False)
    assert part.warmup_rows == spec.lookback >= 50 and part.rows == len(whole)
    # Ring-buffer sums are re-summed on their own schedule, so the last bits may differ.
    assert_frames_equal(read_features("BTCUSDT", "2024-08-08 23:57", feature_set="w", store_url=url), whole,
                        rtol=1e-9)
    assert feature_rows(url) == N_EVENT_ROWS

    # Without warm-up the first rows' windows are short: the check above is not vacuous.
    cold = build_features("BTCUSDT", "2024-08-08 23:57", None, spec, feature_set="w", store_url=url,
                          progress=False, warmup=0)
    assert cold.warmup_rows == 0
    got = read_features("BTCUSDT", "2024-08-08 23:57", feature_set="w", store_url=url)
    first, want = got["realized_vol_w50"].iloc[0], whole["realized_vol_w50"].iloc[0]
    assert np.isnan(first) or first != want
    assert not np.array_equal(got["log_return_h10"].to_numpy()[:10], whole["log_return_h10"].to_numpy()[:10],
                              equal_nan=True)


@pytest.mark.parametrize("sampling", ["event", "100ms", "volume:2"])
def test_chunked_build_equals_unchunked(url, sampling):
    spec = None if sampling == "event" else WINDOWED
    one = build_features("BTCUSDT", spec=spec, sampling=sampling, feature_set="one", store_url=url, chunk=None,
                         progress=False)
    many = build_features("BTCUSDT", spec=spec, sampling=sampling, feature_set="many", store_url=url, chunk="20s",
                          progress=False)
    assert one.chunks == 1 and many.chunks >= 18 and one.rows == many.rows > 100
    assert_frames_equal(read_features("BTCUSDT", sampling=sampling, feature_set="many", store_url=url),
                        read_features("BTCUSDT", sampling=sampling, feature_set="one", store_url=url))


def test_resampled_build_equals_compute_on_resampled_capture(url, capture_inputs):
    snaps, trades = capture_inputs
    report = build_features("BTCUSDT", spec=WINDOWED, sampling="100ms", feature_set="grid", store_url=url,
                            chunk="1min", progress=False)
    want = compute_features(sample(snaps, trades, "100ms"), trades, WINDOWED)
    assert report.rows == len(want) > 3000
    assert_frames_equal(read_features("BTCUSDT", sampling="100ms", feature_set="grid", store_url=url), want)
    assert (want["ts"].diff().dropna() == pd.Timedelta("100ms")).all()

    # A part with warm-up gives the whole range's grid rows.
    build_features("BTCUSDT", "2024-08-08 23:58", None, WINDOWED, sampling="100ms", feature_set="grid",
                   store_url=url, progress=False)
    tail = want[want["ts"] >= pd.Timestamp("2024-08-08 23:58", tz="UTC")].reset_index(drop=True)
    assert_frames_equal(read_features("BTCUSDT", "2024-08-08 23:58", sampling="100ms", feature_set="grid",
                                      store_url=url), tail, rtol=1e-9)


def test_a_changed_spec_is_refused_unless_replaced(url):
    build_features("BTCUSDT", spec="mid;spread", feature_set="s", store_url=url, progress=False)
    build_features("BTCUSDT", spec="mid;spread", feature_set="s", sampling="1s", store_url=url, progress=False)
    rows = feature_rows(url)
    # The same items in another order are the same set.
    build_features("BTCUSDT", spec="spread;mid", feature_set="s", store_url=url, progress=False)
    with pytest.raises(ValueError, match=r"feature set 's' is stored with another spec.*adds obi.*drops spread"):
        build_features("BTCUSDT", spec="mid;obi", feature_set="s", store_url=url, progress=False)
    with pytest.raises(ValueError, match="same columns, other parameters"):
        build_features("BTCUSDT", spec="mid;spread_bps as spread", feature_set="s", store_url=url, progress=False)
    assert feature_rows(url) == rows

    report = build_features("BTCUSDT", spec="mid;obi", feature_set="s", store_url=url, progress=False, replace=True)
    assert report.replaced and feature_rows(url) == N_EVENT_ROWS  # the 1s rows went with the old spec
    assert list(read_features("BTCUSDT", feature_set="s", store_url=url).columns) == ["ts", "mid", "obi"]
    info = feature_set_info(url)
    assert info.loc[info["feature_set"] == "s", "spec"].iloc[0] == ["mid", "obi"]
    assert spec_items("microprice;vwap_bid(notional=5e5) as v;mid") == [
        "microprice(levels=1)", "vwap_bid(notional=500000) as v", "mid"]


def test_read_and_load_errors_name_what_exists(url):
    build_features("BTCUSDT", spec="mid;spread", feature_set="s", store_url=url, progress=False)
    with pytest.raises(ValueError, match=r"no column\(s\) 'obi'.*its columns: mid, spread"):
        read_features("BTCUSDT", columns=["mid", "obi"], feature_set="s", store_url=url)
    with pytest.raises(ValueError, match=r"no feature set 'nope'.*sets there: s"):
        read_features("BTCUSDT", feature_set="nope", store_url=url)
    with pytest.raises(ValueError, match=r"no rows sampled '100ms' \(its samplings: event\)"):
        read_features("BTCUSDT", feature_set="s", sampling="100ms", store_url=url)
    with pytest.raises(ValueError, match=r"no symbol 'ETHUSDT'.*binance-usdm:BTCUSDT"):
        build_features("ETHUSDT", store_url=url, progress=False)
    with connect(url) as store:
        with pytest.raises(ValueError, match=r"binance-usdm:BTCUSDT has no book snapshots in "
                                             r"\[2024-08-10T00:00:00Z, 2024-08-11T00:00:00Z\); its rows span"):
            load_inputs(store, "BTCUSDT", "2024-08-10", "2024-08-11")
    with pytest.raises(ValueError, match="every='tick'"):
        build_features("BTCUSDT", sampling="tick", store_url=url, progress=False)
    empty = read_features("BTCUSDT", "2030-01-01", feature_set="s", store_url=url)
    assert list(empty.columns) == ["ts", "mid", "spread"] and len(empty) == 0


def test_ambiguous_bare_symbol_needs_the_venue(url):
    from genesis.features.store import resolve_symbol

    known = ["binance-spot:BTCUSDT", "binance-usdm:BTCUSDT", "binance-usdm:ETHUSDT"]
    assert resolve_symbol("ethusdt", known) == "binance-usdm:ETHUSDT"
    assert resolve_symbol("binance-spot:BTCUSDT", known) == "binance-spot:BTCUSDT"
    with pytest.raises(ValueError, match="ambiguous.*binance-spot:BTCUSDT, binance-usdm:BTCUSDT"):
        resolve_symbol("BTCUSDT", known)


# -- command line ---------------------------------------------------------------------------

def test_cli_list(capsys):
    assert main(["features", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "family", "unit", "parameters"]
    assert any(line.split()[:3] == ["mid", "prices", "price"] for line in lines)
    assert main(["features", "list", "--format", "json", "--family", "prices"]) == 0
    rows = json.loads(capsys.readouterr().out)
    microprice = next(row for row in rows if row["name"] == "microprice")
    assert {row["family"] for row in rows} == {"prices"}
    assert microprice["parameters"] == [{"name": "levels", "default": 1, "doc": microprice["parameters"][0]["doc"]}]
    assert microprice["doc"].startswith("Imbalance-weighted price")
    assert main(["features", "list", "--format", "csv"]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "name,family,unit,parameters,doc"


def test_cli_build_and_sets(url, tmp_path, capsys):
    assert main(["features", "build", "--symbol", "BTCUSDT", "--store", url, "--no-progress",
                 "--spec", "mid;ofi(level=3)"]) == 0
    out = capsys.readouterr().out
    assert f"{BTC}: 6,547 rows x 2 columns of feature set 'default' (event)" in out

    spec_file = tmp_path / "spec.yaml"
    spec_file.write_text("features:\n  - mid\n  - {feature: ofi, level: 2, as: ofi2}\n  - realized_vol(window=20)\n")
    assert main(["features", "build", "--symbol", BTC, "--from", "2024-08-08 23:56", "--to", "2024-08-08T23:58",
                 "--sampling", "1s", "--spec-file", str(spec_file), "--set", "mine", "--store", url,
                 "--no-progress"]) == 0
    assert "120 rows x 3 columns of feature set 'mine' (1s)" in capsys.readouterr().out
    assert list(read_features("BTCUSDT", feature_set="mine", sampling="1s", store_url=url).columns) == [
        "ts", "mid", "ofi2", "realized_vol_w20"]

    assert main(["features", "sets", "--store", url]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["set", "symbol", "sampling", "rows", "from", "to", "columns", "built_at"]
    assert lines[2].split()[:4] == ["default", BTC, "event", "6547"]
    assert lines[3].split()[:6] == ["mine", BTC, "1s", "120", "2024-08-08T23:56:00Z", "2024-08-08T23:57:59Z"]
    assert main(["features", "sets", "--store", url, "--format", "json"]) == 0
    sets = json.loads(capsys.readouterr().out)
    assert sets[1]["spec"] == ["mid", "ofi(level=2, window=1) as ofi2", "realized_vol(window=20)"]


@pytest.mark.parametrize("argv, message", [
    (["--symbol", "DOGEUSDT"], "no symbol 'DOGEUSDT'"),
    (["--symbol", "BTCUSDT", "--spec", "mid;nosuch(level=2)"], "unknown feature 'nosuch'"),
    (["--symbol", "BTCUSDT", "--spec", "ofi(level=two)"], "parameter level='two' is not a number"),
    (["--symbol", "BTCUSDT", "--from", "2030-01-01", "--to", "2030-01-02"], "has no book snapshots in"),
    (["--symbol", "BTCUSDT", "--from", "yesterday-ish"], "not a time"),
    (["--symbol", "BTCUSDT", "--spec-file", "/no/such/spec.yaml"], "no such file"),
])
def test_cli_build_errors_are_one_line(url, capsys, argv, message):
    assert main(["features", "build", *argv, "--store", url, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("genesis: error: ") and message in err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_cli_spec_files(url, tmp_path, capsys):
    good = tmp_path / "spec.json"
    good.write_text(json.dumps(["mid", {"feature": "spread_bps", "as": "sbps"}]))
    assert main(["features", "build", "--symbol", "BTCUSDT", "--spec-file", str(good), "--set", "j", "--store", url,
                 "--no-progress"]) == 0
    assert "x 2 columns of feature set 'j'" in capsys.readouterr().out
    for name, text, message in [("bad.yaml", "features: [mid", "not valid YAML"),
                                ("bad.json", "{", "not valid JSON"),
                                ("map.yaml", "mid: 1\n", "expected a list of feature items"),
                                ("spec.txt", "mid", "expected a .yaml, .yml or .json file")]:
        (tmp_path / name).write_text(text)
        assert main(["features", "build", "--symbol", "BTCUSDT", "--spec-file", str(tmp_path / name),
                     "--store", url]) == 2
        err = capsys.readouterr().err
        assert message in err and err.count("\n") == 1, err


def test_cli_sets_on_an_empty_store(store_url, capsys):
    assert main(["features", "sets", "--store", store_url]) == 0
    assert "no feature sets yet" in capsys.readouterr().out
