"""Market regimes: hysteresis (no flicker), dwell time, priorities, manipulation alert windows,
execution-hot trade bursts, and chunked online == batch."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genesis.feeds.events import TRADE_DTYPE
from genesis.surveillance.engine import Book, Inputs
from genesis.surveillance.regimes import (CALM, EXECUTION_HOT, MANIPULATION_SUSPECTED, REGIMES, STRESSED,
                                          RegimeParams, RegimeTracker, classify_regimes, manipulation_alert_times,
                                          regime_episodes)

T0 = 1_723_075_200_000_000_000
S = 1_000_000_000
TICK = 0.01
# fast smoothing ~ the current value, a baseline that barely moves: features read off the inputs
SHARP = dict(fast_halflife_s=0.05, slow_halflife_s=1e6, warmup_s=20.0)


def book_with_spread(spread_ticks: np.ndarray, dt=0.1) -> Book:
    n = len(spread_ticks)
    ts = T0 + np.round(np.arange(n) * dt * S).astype(np.int64)
    steps = np.arange(5) * TICK
    bid = np.tile(100.0 - steps, (n, 1))
    ask = bid[:, :1] + np.asarray(spread_ticks)[:, None] * TICK + steps
    return Book(ts, bid, np.full((n, 5), 5.0), ask, np.full((n, 5), 5.0))


def secs(ts):
    return (np.asarray(ts) - T0) / S


def classify(book, trades=None, alerts=None, **params):
    trades = trades if trades is not None else np.empty(0, TRADE_DTYPE)
    return classify_regimes(Inputs("test:X", trades=trades, book=book), alerts, RegimeParams(**params))


def runs(book, codes):
    ep = regime_episodes(book.ts, codes)
    return ep.assign(start=secs(ep.start_ts), end=secs(ep.end_ts))


def test_stress_enters_and_leaves():
    t = np.arange(0, 200, 0.1)
    spread = np.where((t >= 100) & (t < 130), 4.0, 1.0)
    book = book_with_spread(spread)
    ep = runs(book, classify(book, **SHARP))
    assert list(ep.regime) == ["calm", "stressed", "calm"]
    assert ep.start.iloc[1] == pytest.approx(100.0, abs=0.2) and ep.start.iloc[2] == pytest.approx(130.0, abs=0.2)


def test_hovering_signal_does_not_flicker():
    # spread alternating 1.7 / 2.3 ticks each second: around the entry ratio 2, above the exit 1.4
    t = np.arange(0, 200, 0.1)
    spread = np.where(t < 100, 1.0, np.where((t // 1) % 2 == 0, 2.3, 1.7))
    book = book_with_spread(spread)
    with_hysteresis = runs(book, classify(book, **SHARP, min_dwell_s=0.0))
    assert list(with_hysteresis.regime) == ["calm", "stressed"]
    # the same signal without hysteresis or dwell flickers every second
    flicker = runs(book, classify(book, **SHARP, min_dwell_s=0.0, stress_spread_exit=2.0))
    assert len(flicker) > 90


def test_dwell_time_holds_a_regime():
    t = np.arange(0, 200, 0.1)
    spread = np.where((t >= 100) & (t < 101), 4.0, 1.0)  # a one-second blip
    book = book_with_spread(spread)
    ep = runs(book, classify(book, **SHARP, min_dwell_s=10.0))
    assert list(ep.regime) == ["calm", "stressed", "calm"]
    assert ep.end.iloc[1] - ep.start.iloc[1] == pytest.approx(10.0, abs=0.2)
    short = runs(book, classify(book, **SHARP, min_dwell_s=0.0))
    assert short.end.iloc[1] - short.start.iloc[1] == pytest.approx(1.0, abs=0.2)


def test_warmup_keeps_book_flags_off():
    t = np.arange(0, 100, 0.1)
    book = book_with_spread(np.where((t >= 5) & (t < 15), 4.0, 1.0))
    assert (classify(book, **SHARP) == CALM).all()


def test_manipulation_one_alert_on_a_quiet_instrument():
    book = book_with_spread(np.ones(2000))  # 200 s
    at = T0 + np.array([100]) * S
    ep = runs(book, classify(book, alerts=at, min_dwell_s=0.0))
    assert list(ep.regime) == ["calm", "manipulation_suspected", "calm"]
    assert ep.start.iloc[1] == pytest.approx(100.0, abs=0.1)
    assert ep.end.iloc[1] == pytest.approx(130.0, abs=0.2)  # the count halves in manip_halflife_s
    # a higher bar: three alerts needed; two within the half-life are not enough, three are
    strict = dict(manip_min_alerts=2.5, min_dwell_s=0.0)
    assert (classify(book, alerts=T0 + np.array([100, 110]) * S, **strict) == CALM).all()
    ep = runs(book, classify(book, alerts=T0 + np.array([100, 105, 110]) * S, **strict))
    assert list(ep.regime) == ["calm", "manipulation_suspected", "calm"]
    assert ep.start.iloc[1] == pytest.approx(110.0, abs=0.1)


def test_manipulation_adapts_to_the_usual_alert_rate():
    # a detector firing every 20 s all day is the instrument's normal; a burst of ten is not
    n = 72_000  # 2 h of rows every 100 ms
    book = book_with_spread(np.ones(n))
    steady = np.arange(0, 7200, 20.0)
    burst = 6000 + np.arange(10) * 1.0
    codes = classify(book, alerts=T0 + np.round(np.sort(np.r_[steady, burst]) * S).astype(np.int64),
                     min_dwell_s=0.0)
    t = secs(book.ts)
    late = t > 3600
    manip = codes == MANIPULATION_SUSPECTED
    assert not manip[late & ((t < 6000) | (t > 6100))].any()
    assert manip[(t > 6009) & (t < 6015)].all()
    # the same steady alerts with no history read as a surge at first (the quiet prior)
    assert manip[t < 600].any()


def test_alert_frames_count_only_manipulation_kinds_of_high_score():
    frame = pd.DataFrame({"kind": ["spoofing", "depth_shock", "layering", "spoofing_l2", "wash_trades"],
                          "at_ts": [5, 1, 3, 4, 2], "score": [70, 90, 65, 55, 100]})
    assert manipulation_alert_times(frame, min_score=60).tolist() == [2, 3, 5]
    assert manipulation_alert_times(frame).tolist() == [2, 3, 4, 5]


def test_execution_hot_on_a_trade_burst():
    book = book_with_spread(np.ones(3000))  # 300 s
    times = np.r_[np.arange(0, 200, 1.0), np.arange(200, 230, 0.1), np.arange(230, 300, 1.0)]
    trades = np.zeros(len(times), TRADE_DTYPE)
    trades["exch_ts"] = T0 + np.round(times * S).astype(np.int64)
    ep = runs(book, classify(book, trades, min_dwell_s=0.0))
    assert list(ep.regime) == ["calm", "execution_hot", "calm"]
    assert 200 < ep.start.iloc[1] < 210 and 230 < ep.start.iloc[2] < 260
    # the first seconds of a stream are not read as a burst (rates normalised for time observed)
    assert (classify(book_with_spread(np.ones(3000)), trades[times < 200]) == CALM).all()


def test_priority_manipulation_over_stressed_over_hot():
    t = np.arange(0, 200, 0.1)
    book = book_with_spread(np.where((t >= 100) & (t < 150), 4.0, 1.0))
    at = T0 + np.array([110, 111, 112]) * S
    codes = classify(book, alerts=at, **SHARP, manip_halflife_s=5.0, min_dwell_s=0.0)
    ep = runs(book, codes)
    assert list(ep.regime) == ["calm", "stressed", "manipulation_suspected", "stressed", "calm"]
    assert REGIMES[MANIPULATION_SUSPECTED] == "manipulation_suspected" and STRESSED > EXECUTION_HOT > CALM


def test_params_need_hysteresis():
    with pytest.raises(ValueError, match="hysteresis"):
        RegimeParams(hot_enter=1.5, hot_exit=2.0)
    with pytest.raises(ValueError, match="hysteresis"):
        RegimeParams(stress_depth_enter=0.8, stress_depth_exit=0.5)
    with pytest.raises(ValueError, match="hysteresis"):
        RegimeParams(manip_exit_frac=1.0)
    with pytest.raises(ValueError, match="min_dwell_s"):
        RegimeParams(min_dwell_s=-1)


def test_chunked_tracker_equals_batch():
    from genesis.feeds.simulator import simulate

    sim = simulate(seconds=400, seed=2, scenarios=["flash_crash", "momentum_ignition"])
    inputs = Inputs.from_events(sim.events)
    rng = np.random.default_rng(4)
    alert_ts = inputs.book.ts[0] + np.array([150, 155, 160, 250, 285, 290, 370]) * S + rng.integers(0, S, 7)
    params = RegimeParams(min_dwell_s=5.0, warmup_s=30.0, manip_halflife_s=10.0, stress_spread_enter=1.6,
                          stress_spread_exit=1.2, hot_enter=2.0, hot_exit=1.5)
    batch = classify_regimes(inputs, alert_ts, params)
    assert len(np.unique(batch)) >= 3  # the run goes through several regimes

    tracker = RegimeTracker(params, levels=inputs.book.levels)
    got_ts, got = [], []
    b = t = a = 0
    nb_, nt, na = len(inputs.book), len(inputs.trades), len(alert_ts)
    while b < nb_ or t < nt or a < na:
        b2, t2, a2 = min(nb_, b + int(rng.integers(1, 5000))), min(nt, t + int(rng.integers(1, 800))), \
            min(na, a + int(rng.integers(0, 4)))
        through = int(inputs.book.ts[b2 - 1]) if b2 else None
        ts, codes = tracker.update(inputs.book.take(slice(b, b2)), inputs.trades[t:t2], alert_ts[a:a2],
                                   alerts_through=min(through, int(alert_ts[a2])) if a2 < na and through
                                   else through)
        got_ts.append(ts)
        got.append(codes)
        b, t, a = b2, t2, a2
    assert sum(len(c) for c in got) > len(batch) // 2  # most rows released online, not by finish()
    ts, codes = tracker.finish()
    got_ts.append(ts)
    got.append(codes)
    assert np.array_equal(np.concatenate(got_ts), inputs.book.ts)
    assert np.array_equal(np.concatenate(got), batch)


def test_regime_episodes_frame():
    ts = T0 + np.arange(6) * S
    ep = regime_episodes(ts, np.array([0, 0, 2, 2, 2, 0], np.int8))
    assert ep.regime.tolist() == ["calm", "stressed", "calm"] and ep.rows.tolist() == [2, 3, 1]
    assert ep.end_ts.tolist() == [ts[2], ts[5], ts[5]]
    assert regime_episodes(ts[:0], np.zeros(0)).empty
