"""Market regimes: calm / execution-hot / stressed / manipulation-suspected, per book row.

One Numba kernel reads book rows, trade times and the raise times (``at_ts``) of
manipulation alerts, merged in time order (ties: alerts, then trades, then book rows), and
gives every book row a regime code. All memory is in two state vectors, so
:class:`RegimeTracker` fed in chunks gives exactly what :func:`classify_regimes` gives on
the whole stream.

Features (times are exchange time; EWMAs are weighted by the time a value held):

* ``spread_ratio``: spread smoothed over ``fast_halflife_s`` / spread over ``slow_halflife_s``;
* ``depth_ratio``: size on the first ``levels`` levels of both sides, smoothed in log over
  ``fast_halflife_s``, / the same over ``slow_halflife_s`` (a geometric mean: a large order
  coming and going does not set the baseline);
* ``trade_ratio``: trades per second over ``fast_trade_halflife_s`` / over
  ``slow_halflife_s`` (decayed counts, normalised for the time observed so the start is not
  read as a burst);
* ``recent alerts``: alerts of :data:`MANIPULATION_KINDS` scoring at least ``min_alert_score``
  (high severity), counted with a decay of half-life ``manip_halflife_s``; and the *usual*
  count: the instrument's alert rate over ``manip_baseline_halflife_s`` (read as if at least
  ``manip_baseline_min_s`` had been observed, so a stream's first alert is not its own
  baseline) times the mean life of a count, ``manip_halflife_s / ln 2``.

Flags, each with an entry threshold beyond its exit threshold (hysteresis: a signal
hovering around the entry value does not flicker):

* **stressed**: enters when ``spread_ratio >= stress_spread_enter`` or
  ``depth_ratio <= stress_depth_enter``; leaves when ``spread_ratio < stress_spread_exit`` and
  ``depth_ratio > stress_depth_exit``;
* **execution-hot**: enters when ``trade_ratio >= hot_enter``; leaves below ``hot_exit``;
* **manipulation-suspected**: enters when the recent count reaches
  ``max(manip_min_alerts, manip_rate_mult x usual count)``: on a quiet instrument one high
  alert; where detectors fire all day, a burst well above their usual rate. It leaves when
  the recent count falls below ``manip_exit_frac`` x the entry level (one alert on a quiet
  instrument: after one half-life).

Book and trade flags stay off for the first ``warmup_s`` (baselines are not yet meaningful).
The regime is the most severe flag on: manipulation-suspected (3) > stressed (2) >
execution-hot (1) > calm (0). Dwell: a more severe regime is entered at once; a less severe
one only after the current regime has lasted ``min_dwell_s``, so every regime shown lasts
at least that long unless something more severe interrupts it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields
from typing import Sequence

import numba as nb
import numpy as np
import pandas as pd

from genesis.surveillance.base import KIND_CODES, MANIPULATION_KINDS
from genesis.surveillance.detectors.book_conditions import EWMA_SLOT, ewma_update, side_depth
from genesis.surveillance.engine import Book, Inputs

CALM, EXECUTION_HOT, STRESSED, MANIPULATION_SUSPECTED = 0, 1, 2, 3
REGIMES = ("calm", "execution_hot", "stressed", "manipulation_suspected")  # index = code = priority
LN2 = math.log(2.0)


@dataclass(frozen=True)
class RegimeParams:
    levels: int = 10  # depth = size on this many levels of each side
    fast_halflife_s: float = 5.0  # short-horizon smoothing of spread and depth, seconds of exchange time
    slow_halflife_s: float = 300.0  # baselines of spread, depth and trade rate
    fast_trade_halflife_s: float = 10.0  # short-horizon trade rate
    stress_spread_enter: float = 2.0  # stressed when smoothed spread >= this x its baseline ...
    stress_spread_exit: float = 1.4  # ... until it is below this x baseline
    stress_depth_enter: float = 0.35  # stressed when smoothed depth <= this x its baseline ...
    stress_depth_exit: float = 0.6  # ... until it is above this x baseline
    hot_enter: float = 3.0  # execution-hot when the short trade rate >= this x its baseline ...
    hot_exit: float = 1.8  # ... until it is below this x baseline
    manip_halflife_s: float = 30.0  # recent manipulation alerts: a count decaying with this half-life
    manip_min_alerts: float = 1.0  # manipulation-suspected needs a recent count of at least this ...
    manip_rate_mult: float = 3.0  # ... and at least this x the count the instrument's usual alert rate gives
    manip_exit_frac: float = 0.5  # it ends when the recent count falls below this x the entry level
    manip_baseline_halflife_s: float = 3600.0  # the usual alert rate: decayed over this half-life ...
    manip_baseline_min_s: float = 600.0  # ... and read as if at least this long was observed (a quiet prior)
    min_dwell_s: float = 10.0  # a regime lasts at least this long before a less severe one replaces it
    warmup_s: float = 60.0  # book and trade flags stay off this long after the first row
    min_alert_score: float = 60.0  # classify_regimes counts manipulation alerts scoring at least this (high+)

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or value < 0:
                raise ValueError(f"RegimeParams.{f.name}={value!r} must be a finite number >= 0")
        pairs = (("stress_spread_enter", "stress_spread_exit", 1), ("hot_enter", "hot_exit", 1),
                 ("stress_depth_exit", "stress_depth_enter", 1))
        for enter, leave, _ in pairs:
            if getattr(self, enter) < getattr(self, leave):
                raise ValueError(f"RegimeParams.{enter} must be beyond {leave} (hysteresis): "
                                 f"{getattr(self, enter)} < {getattr(self, leave)}")
        if self.levels < 1 or self.manip_min_alerts <= 0 or not 0 < self.manip_exit_frac < 1:
            raise ValueError("RegimeParams: levels >= 1, manip_min_alerts > 0 and 0 < manip_exit_frac < 1 "
                             "(hysteresis) are needed")
        if min(self.fast_halflife_s, self.slow_halflife_s, self.fast_trade_halflife_s, self.manip_halflife_s,
               self.manip_baseline_halflife_s) <= 0:
            raise ValueError("RegimeParams half-lives must be > 0")

    @property
    def vector(self) -> np.ndarray:
        return np.array([float(getattr(self, f.name)) for f in fields(self)], np.float64)


# si: started, first_ts, last_book_ts, regime, regime_since, stressed, hot, manip, first event ts, rate_ts,
#     first_trade_ts, alert decay ts
SI_LEN = 12
# sf: spread fast / slow EWMA slots, log depth fast / slow EWMA slots, trade rate fast, slow, alert count
#     recent, alert count baseline, manipulation entry level at the last row
SF_SPREAD_FAST, SF_SPREAD_SLOW = 0, EWMA_SLOT
SF_DEPTH_FAST, SF_DEPTH_SLOW = 2 * EWMA_SLOT, 3 * EWMA_SLOT
SF_RATE_FAST, SF_RATE_SLOW = 4 * EWMA_SLOT, 4 * EWMA_SLOT + 1
SF_ALERTS_FAST, SF_ALERTS_SLOW, SF_MANIP_LEVEL = 4 * EWMA_SLOT + 2, 4 * EWMA_SLOT + 3, 4 * EWMA_SLOT + 4
SF_LEN = 4 * EWMA_SLOT + 5


def new_regime_state(params: RegimeParams) -> tuple[np.ndarray, np.ndarray]:
    """Initial (si int64, sf float64) state of the regime kernel."""
    return np.zeros(SI_LEN, np.int64), np.zeros(SF_LEN, np.float64)


@nb.njit(cache=True, inline="always")
def _decay_rates(p, si, sf, ts):
    if si[9] == 0 or ts <= si[9]:
        return
    dt = (ts - si[9]) / 1e9
    sf[SF_RATE_FAST] *= np.exp(-dt * LN2 / p[3])
    sf[SF_RATE_SLOW] *= np.exp(-dt * LN2 / p[2])
    si[9] = ts


@nb.njit(cache=True, inline="always")
def _decay_alerts(p, si, sf, ts):
    if si[11] != 0 and ts > si[11]:
        dt = (ts - si[11]) / 1e9
        sf[SF_ALERTS_FAST] *= np.exp(-dt * LN2 / p[10])
        sf[SF_ALERTS_SLOW] *= np.exp(-dt * LN2 / p[14])
    si[11] = max(si[11], ts)


@nb.njit(cache=True, inline="always")
def _rate(total, halflife_s, observed_s):
    """Decayed count -> trades per second, normalised for the time observed so far."""
    cover = 1.0 - np.exp(-observed_s * LN2 / halflife_s)
    return total / cover if cover > 0.0 else 0.0


@nb.njit(cache=True)
def regime_kernel(p, si, sf, book_ts, bid_px, bid_sz, ask_px, ask_sz, trade_ts, alert_ts,
                  b0, b1, t0, t1, a0, a1, codes):
    """Regime code of book rows ``b0:b1`` into ``codes[0:b1-b0]`` (merged with trades ``t0:t1``
    and alert times ``a0:a1``; ties: alerts, trades, book)."""
    k = int(p[0])
    dwell = p[16] * 1e9
    warm_ns = p[17] * 1e9
    b, t, a = b0, t0, a0
    while b < b1 or t < t1 or a < a1:
        # next source in time order, ties alerts < trades < book
        src = -1
        ts = np.int64(0)
        if a < a1:
            src = 0
            ts = alert_ts[a]
        if t < t1 and (src < 0 or trade_ts[t] < ts):
            src = 1
            ts = trade_ts[t]
        if b < b1 and (src < 0 or book_ts[b] < ts):
            src = 2
            ts = book_ts[b]
        if si[8] == 0:
            si[8] = ts
        if src == 0:
            _decay_alerts(p, si, sf, ts)
            sf[SF_ALERTS_FAST] += 1.0
            sf[SF_ALERTS_SLOW] += 1.0
            a += 1
            continue
        if src == 1:
            if si[9] == 0:
                si[9] = ts
                si[10] = ts
            _decay_rates(p, si, sf, ts)
            sf[SF_RATE_FAST] += LN2 / p[3]
            sf[SF_RATE_SLOW] += LN2 / p[2]
            t += 1
            continue
        # a book row: features
        if si[0] == 0:
            si[0] = 1
            si[1] = ts
            si[2] = ts
            si[4] = ts
        dt = ts - si[2]
        spread = ask_px[b, 0] - bid_px[b, 0]
        if spread == spread and spread > 0.0:
            ewma_update(sf, SF_SPREAD_FAST, spread, dt, p[1])
            ewma_update(sf, SF_SPREAD_SLOW, spread, dt, p[2])
        depth = side_depth(bid_px, bid_sz, b, k) + side_depth(ask_px, ask_sz, b, k)
        if depth > 0.0:
            ewma_update(sf, SF_DEPTH_FAST, np.log(depth), dt, p[1])
            ewma_update(sf, SF_DEPTH_SLOW, np.log(depth), dt, p[2])
        _decay_rates(p, si, sf, ts)
        warm = ts - si[1] >= warm_ns
        # stressed
        spread_ratio = sf[SF_SPREAD_FAST] / sf[SF_SPREAD_SLOW] if sf[SF_SPREAD_SLOW] > 0.0 else 1.0
        depth_ratio = np.exp(sf[SF_DEPTH_FAST] - sf[SF_DEPTH_SLOW]) if sf[SF_DEPTH_SLOW + 2] != 0.0 else 1.0
        if si[5] == 0:
            si[5] = 1 if warm and (spread_ratio >= p[4] or depth_ratio <= p[6]) else 0
        else:
            si[5] = 1 if (spread_ratio >= p[5] or depth_ratio <= p[7]) else 0
        # execution-hot
        if si[9] != 0:
            observed = (ts - si[10]) / 1e9
            slow = _rate(sf[SF_RATE_SLOW], p[2], observed)
            fast = _rate(sf[SF_RATE_FAST], p[3], observed)
            trade_ratio = fast / slow if slow > 0.0 else 0.0
        else:
            trade_ratio = 0.0
        if si[6] == 0:
            si[6] = 1 if warm and trade_ratio >= p[8] else 0
        else:
            si[6] = 1 if trade_ratio >= p[9] else 0
        # manipulation-suspected: the recent alert count against the count the usual rate gives
        _decay_alerts(p, si, sf, ts)
        observed = max((ts - si[8]) / 1e9, p[15])
        usual_rate = _rate(sf[SF_ALERTS_SLOW] * LN2 / p[14], p[14], observed)  # alerts per second
        usual_count = usual_rate * p[10] / LN2  # the recent count that rate keeps up on average
        level = max(p[11], p[12] * usual_count)
        sf[SF_MANIP_LEVEL] = level
        if si[7] == 0:
            si[7] = 1 if sf[SF_ALERTS_FAST] >= level else 0
        else:
            si[7] = 0 if sf[SF_ALERTS_FAST] < p[13] * level else 1
        want = 3 if si[7] else (2 if si[5] else (1 if si[6] else 0))
        if want > si[3] or (want < si[3] and ts - si[4] >= dwell):
            si[3] = want
            si[4] = ts
        codes[b - b0] = si[3]
        si[2] = ts
        b += 1


def manipulation_alert_times(alerts, kinds: Sequence[str] = MANIPULATION_KINDS, min_score: float = 0.0) -> np.ndarray:
    """Sorted ``at_ts`` of the alerts of ``kinds`` scoring at least ``min_score``: from an alerts
    DataFrame (``kind``, ``at_ts``, ``score``), an ALERT_DTYPE array, or int64 times (taken as they are)."""
    if alerts is None:
        return np.empty(0, np.int64)
    if isinstance(alerts, pd.DataFrame):
        if not len(alerts):
            return np.empty(0, np.int64)
        missing = {"kind", "at_ts"} - set(alerts.columns)
        if missing:
            raise ValueError(f"alerts frame lacks column(s) {sorted(missing)}")
        keep = alerts["kind"].isin(list(kinds))
        if "score" in alerts.columns:
            keep &= alerts["score"] >= min_score
        times = alerts.loc[keep, "at_ts"].to_numpy(np.int64)
    elif isinstance(alerts, np.ndarray) and alerts.dtype.names and "code" in alerts.dtype.names:
        codes = [KIND_CODES[k] for k in kinds]
        times = alerts["at_ts"][np.isin(alerts["code"], codes) & (alerts["score"] >= min_score)].astype(np.int64)
    else:
        times = np.asarray(alerts, dtype=np.int64).ravel()
    return np.ascontiguousarray(np.sort(times, kind="stable"))


def _alert_ts(value) -> np.ndarray:
    times = np.ascontiguousarray(value, dtype=np.int64).ravel()
    return times


def _trade_times(trades) -> np.ndarray:
    if trades is None:
        return np.empty(0, np.int64)
    if isinstance(trades, np.ndarray) and trades.dtype.names:
        return np.ascontiguousarray(trades["exch_ts"], dtype=np.int64)
    return np.ascontiguousarray(trades, dtype=np.int64)


class RegimeTracker:
    """Online regimes: feed book rows, trades and manipulation alert times in chunks.

    ``sources``: the inputs this tracker waits for. A row is classified once every source has
    passed its time (a watermark, as :class:`genesis.surveillance.engine.SurveillanceStream`
    does), so chunked feeding equals one batch. Alerts are sparse: pass ``alerts_through``
    (the time up to which alerts are complete) to move their watermark without an alert.
    """

    def __init__(self, params: RegimeParams | None = None, *,
                 sources: Sequence[str] = ("trades", "book", "alerts"), levels: int = 20):
        unknown = set(sources) - {"trades", "book", "alerts"}
        if unknown or "book" not in sources:
            raise ValueError(f"sources must include 'book' and be among trades/book/alerts, got {list(sources)}")
        self.params = params or RegimeParams()
        self.p = self.params.vector
        self.si, self.sf = new_regime_state(self.params)
        self.sources = tuple(sources)
        self._book = Book.empty(levels)
        self._trades = np.empty(0, np.int64)
        self._alerts = np.empty(0, np.int64)
        self._latest = {s: np.iinfo(np.int64).min for s in self.sources}

    def update(self, book: Book | None = None, trades=None, alert_ts=None,
               alerts_through: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Add rows (each source in time order); returns (ts, codes) of the book rows released."""
        for name, value in (("book", book), ("trades", trades), ("alerts", alert_ts)):
            if value is None or not len(value):
                continue
            if name not in self.sources:
                raise ValueError(f"this tracker was not set up for {name} (sources={list(self.sources)})")
            ts = value.ts if name == "book" else (_trade_times(value) if name == "trades" else _alert_ts(value))
            if np.any(np.diff(ts) < 0) or ts[0] < self._latest[name]:
                raise ValueError(f"{name} must arrive in time order (a time went backwards)")
            self._latest[name] = int(ts[-1])
            if name == "book":
                self._book = Book.concat([self._book, value]) if len(self._book) else value
            elif name == "trades":
                self._trades = np.concatenate([self._trades, ts])
            else:
                self._alerts = np.concatenate([self._alerts, ts])
        if alerts_through is not None and "alerts" in self.sources:
            self._latest["alerts"] = max(self._latest["alerts"], int(alerts_through))
        return self._release(min(self._latest.values()))

    def finish(self) -> tuple[np.ndarray, np.ndarray]:
        """Classify every row still held back (the end of the stream)."""
        return self._release(np.iinfo(np.int64).max)

    def _release(self, watermark: int) -> tuple[np.ndarray, np.ndarray]:
        end = watermark == np.iinfo(np.int64).max
        nb_ = len(self._book) if end else int(np.searchsorted(self._book.ts, watermark, "left"))
        nt = len(self._trades) if end else int(np.searchsorted(self._trades, watermark, "left"))
        na = len(self._alerts) if end else int(np.searchsorted(self._alerts, watermark, "left"))
        codes = np.zeros(nb_, np.int8)
        if nb_ or nt or na:
            b = self._book
            regime_kernel(self.p, self.si, self.sf, b.ts, b.bid_px, b.bid_sz, b.ask_px, b.ask_sz,
                          self._trades, self._alerts, 0, nb_, 0, nt, 0, na, codes)
        ts = self._book.ts[:nb_].copy()
        self._book = self._book.take(slice(nb_, None))
        self._trades, self._alerts = self._trades[nt:], self._alerts[na:]
        return ts, codes


def classify_regimes(inputs: Inputs, alerts=None, params: RegimeParams | None = None) -> np.ndarray:
    """Regime code (int8, :data:`REGIMES`) of every row of ``inputs.book``.

    ``alerts``: the alerts frame of :func:`genesis.surveillance.engine.detect`, an ALERT_DTYPE
    array (only manipulation kinds scoring ``min_alert_score`` or more count), or int64 ``at_ts``
    times of manipulation alerts (all count);
    None for none. When ``inputs`` has order-level events, ``spoofing_l2`` alerts are left out:
    the L3 spoofing detector sees the same thing with order ids, and L2 inference on a busy book
    fires on ordinary quote flicker.
    """
    kinds = [k for k in MANIPULATION_KINDS if not (len(inputs.orders) and k == "spoofing_l2")]
    params = params or RegimeParams()
    tracker = RegimeTracker(params, levels=inputs.book.levels)
    times = manipulation_alert_times(alerts, kinds, params.min_alert_score)
    _, first = tracker.update(inputs.book, inputs.trades, times)
    _, rest = tracker.finish()
    return np.concatenate([first, rest])


def regime_episodes(ts: np.ndarray, codes: np.ndarray) -> pd.DataFrame:
    """Runs of one regime: ``regime``, ``code``, ``start_ts`` (first row), ``end_ts`` (the next
    run's first row, or the last row's time), ``rows``."""
    ts = np.asarray(ts, np.int64)
    codes = np.asarray(codes)
    if len(ts) != len(codes):
        raise ValueError(f"ts ({len(ts)}) and codes ({len(codes)}) differ in length")
    if not len(ts):
        return pd.DataFrame(columns=["regime", "code", "start_ts", "end_ts", "rows"])
    starts = np.flatnonzero(np.r_[True, codes[1:] != codes[:-1]])
    ends = np.r_[starts[1:], len(ts)]
    end_ts = np.r_[ts[starts[1:]], ts[-1]]
    return pd.DataFrame({"regime": [REGIMES[int(c)] for c in codes[starts]], "code": codes[starts].astype(int),
                         "start_ts": ts[starts], "end_ts": end_ts, "rows": ends - starts})


__all__ = ["RegimeParams", "RegimeTracker", "classify_regimes", "regime_episodes", "regime_kernel",
           "manipulation_alert_times",
           "new_regime_state", "REGIMES", "CALM", "EXECUTION_HOT", "STRESSED", "MANIPULATION_SUSPECTED"]
