"""Book conditions: liquidity gaps near the touch, spread shocks, heavy imbalance (and, in
:mod:`.depth_shock`, depth shocks).

Detectors over the top-L book rows (``inputs=('book',)``), one kernel each, sharing the
helpers below (also used by :mod:`.depth_shock`, :mod:`.stale_quotes`, :mod:`.spoofing_l2`
and :mod:`genesis.surveillance.regimes`):

* **Baselines** are exponentially weighted in *exchange time*, not rows: a value that held for
  ``dt`` seconds gets weight ``1 - exp(-dt ln2 / half_life)``. The baseline used at a row was
  built from the rows *before* it, so a shock is never part of its own baseline. A 100 ms
  Binance feed and a per-event simulator feed get the same baseline for the same market.
* **Warm-up**: nothing is reported before ``warmup_s`` seconds of exchange time after the
  first row (the baseline is meaningless before).
* **Episodes**: a persistent condition is one alert, not one per row. An episode opens at the
  first row meeting the *entry* threshold and lasts while rows meet the (lower) *exit*
  threshold; rows that miss the exit threshold for no more than ``merge_gap_s`` do not end it
  (a condition flickering at the threshold stays one episode). It is reported at the first
  row after it has ended for longer than ``merge_gap_s`` (``at_ts``), with ``start_ts`` its
  first row and ``end_ts`` its last row in condition, if it lasted ``min_duration_s``.
  The kernel contract has no end-of-stream hook, so an episode still open when the stream
  ends is not reported (as in :mod:`.crossed`).

Conditions (side 1 = bid, -1 = ask):

* ``liquidity_gap``: per side, the empty ticks between consecutive levels among the first
  ``levels`` levels, weighted ``1 / (i + 1)`` for the gap after level ``i`` (a hole next to
  the touch weighs most); a level missing from the book counts as ``empty_level_ticks``.
  The tick is the smallest positive price step seen between adjacent levels. Fires when the
  weighted gap is at least ``max(min_gap_ticks, ratio_enter x typical)``, typical being the
  time-weighted geometric mean of ``1 + gap`` less 1 (sparse books have heavy-tailed gaps).
* ``spread_shock``: z-score of the spread over its EWMA mean and deviation (the deviation
  floored at ``std_floor`` x the mean: on a one-tick market the raw deviation is ~0), with
  the spread also at least ``ratio_min`` x its mean. Rows with a side empty are skipped.
* ``heavy_imbalance``: (bid - ask) / (bid + ask) size over the first ``levels`` levels (those
  the book has: ``levels_summed`` in the evidence), its
  z-score over an EWMA baseline (deviation floored at ``std_floor``), and its absolute value
  at least ``min_abs``; the side is the heavy side. Reported only if it lasts
  ``min_duration_s``: a book leaning one way for an instant is normal.

Severity: an episode shorter than ``persist_s`` scores at most BRIEF_MAX_SCORE (medium,
:func:`persistence_cap`): on a real market such conditions come and go within seconds in
any fast move; only conditions that persist reach high or critical.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.surveillance.base import (KIND_CODES, SRC_BOOK, SRC_NONE, SRC_ORDER, Detector, emit, is_final,
                                       next_source, score_from_ratio)

LN2 = math.log(2.0)
GAP = KIND_CODES["liquidity_gap"]
SPREAD = KIND_CODES["spread_shock"]
IMBALANCE = KIND_CODES["heavy_imbalance"]

_inline = nb.njit(cache=True, inline="always")

# -- shared kernel helpers --------------------------------------------------------------------
# An EWMA slot is 3 floats in sf: mean, variance, initialised flag.
EWMA_SLOT = 3


@_inline
def ewma_update(sf, i, x, dt_ns, halflife_s):
    """Fold value ``x``, which held for ``dt_ns`` nanoseconds, into the EWMA at ``sf[i:i+3]``."""
    if x != x:
        return
    if sf[i + 2] == 0.0:
        sf[i] = x
        sf[i + 1] = 0.0
        sf[i + 2] = 1.0
        return
    a = 1.0 - np.exp(-(dt_ns / 1e9) * LN2 / halflife_s) if halflife_s > 0 else 1.0
    d = x - sf[i]
    sf[i] += a * d
    sf[i + 1] = (1.0 - a) * (sf[i + 1] + a * d * d)


@_inline
def ewma_z(sf, i, x, floor_abs):
    """z-score of ``x`` against the EWMA at ``sf[i:i+3]``, deviation floored at ``floor_abs``."""
    if sf[i + 2] == 0.0 or x != x:
        return 0.0
    sd = max(np.sqrt(max(sf[i + 1], 0.0)), floor_abs)
    if sd <= 0.0:
        return 0.0
    return (x - sf[i]) / sd


# An episode slot is EP_I ints and EP_F floats: state (0 none, 1 on, 2 off but within the merge
# gap), start_ts, last_on_ts, rows, level at peak | peak metric, price, size, spare.
EP_I, EP_F = 5, 4


@_inline
def episode_due(si, i, ts, stay, merge_ns):
    """True when the episode at ``si[i:]`` has ended and must be reported (or dropped) now."""
    state = si[i]
    if state == 0:
        return False
    if ts - si[i + 2] <= merge_ns:  # within the merge gap: not over yet
        if not stay:
            si[i] = 2
        return False
    if stay and state == 1:
        return False
    return True  # off for longer than the merge gap (or back on only after it)


@_inline
def episode_track(si, sf, i, f, ts, enter, stay, metric, price, size, level):
    """Open (on ``enter``) or extend (on ``stay``) the episode at ``si[i:]``/``sf[f:]``; returns
    1 when this row opened it."""
    if si[i] == 0:
        if not enter:
            return 0
        si[i] = 1
        si[i + 1] = ts
        si[i + 2] = ts
        si[i + 3] = 1
        si[i + 4] = level
        sf[f] = metric
        sf[f + 1] = price
        sf[f + 2] = size
        return 1
    if stay:
        si[i] = 1
        si[i + 2] = ts
        si[i + 3] += 1
        if metric > sf[f]:
            sf[f] = metric
            sf[f + 1] = price
            sf[f + 2] = size
            si[i + 4] = level
    return 0


@_inline
def skip_to_book(src, o, t):
    """Advance past a non-book event (book-only detectors)."""
    if src == SRC_ORDER:
        return o + 1, t
    return o, t + 1


@_inline
def side_depth(px, sz, b, k):
    """Total size on the first ``k`` levels of one side (NaN levels count 0)."""
    total = 0.0
    for j in range(min(k, px.shape[1])):
        if px[b, j] == px[b, j] and sz[b, j] == sz[b, j]:
            total += sz[b, j]
    return total


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))


BRIEF_MAX_SCORE = 59.0  # the top of 'medium': the most a condition that did not persist can score


@_inline
def persistence_cap(score, start_ts, end_ts, persist_s):
    """A market condition that lasted less than ``persist_s`` scores at most BRIEF_MAX_SCORE (medium):
    on a real market a spread, gap or depth shock that clears within seconds is ordinary in a fast
    move; high and critical are kept for conditions that persist."""
    if end_ts - start_ts < persist_s * 1e9:
        return min(score, BRIEF_MAX_SCORE)
    return score


# -- liquidity gap ----------------------------------------------------------------------------
@dataclass(frozen=True)
class GapParams:
    levels: int = 5  # levels from the touch whose spacing is examined
    ratio_enter: float = 12.0  # weighted gap >= this x its typical value (and >= min_gap_ticks) opens
    ratio_exit: float = 4.0  # ... and the episode lasts while >= this x typical (and >= min_gap_exit_ticks)
    min_gap_ticks: float = 15.0  # weighted empty ticks needed to open, whatever the baseline
    min_gap_exit_ticks: float = 8.0  # weighted empty ticks needed to stay open
    empty_level_ticks: float = 10.0  # a level missing from the book counts as this many empty ticks
    halflife_s: float = 120.0  # baseline half-life, seconds of exchange time
    warmup_s: float = 60.0  # no alert before this long after the first row
    merge_gap_s: float = 2.0  # episodes closer than this are one
    min_duration_s: float = 1.0  # shorter episodes are not reported (a hole refilled at once is normal)
    score_saturation: float = 8.0  # gap / threshold at which the score reaches 100 (50 at 1)
    persist_s: float = 30.0  # an episode shorter than this scores at most medium (persistence_cap)
    # The instrument's tick (the instruments table's; run_surveillance sets it); 0: the smallest
    # step seen between adjacent levels, which is the tick or a multiple of it.
    tick_size: float = 0.0


# si: first_ts, last_ts, started, 2 episode slots | sf: tick, 2 EWMA slots, 2 episode slots
def _gap_state(params: GapParams):
    tick = params.tick_size if params.tick_size > 0 else np.inf
    return np.zeros(3 + 2 * EP_I, np.int64), np.concatenate([[tick], np.zeros(2 * EWMA_SLOT + 2 * EP_F)])


@_inline
def weighted_gap(px, b, k, tick, empty_ticks):
    """Weighted empty ticks among the first ``k`` levels of one side; returns (gap, worst level, worst ticks)."""
    total = 0.0
    worst_level = -1
    worst = 0.0
    kk = min(k, px.shape[1])
    for j in range(kk - 1):
        a = px[b, j]
        c = px[b, j + 1]
        if a != a:
            empty = empty_ticks  # the side ran out before level j
        elif c != c:
            empty = empty_ticks
        else:
            empty = max(0.0, np.round(abs(a - c) / tick) - 1.0)
        w = empty / (j + 1.0)
        total += w
        if w > worst:
            worst = w
            worst_level = j
    return total, worst_level, worst


@_inline
def update_tick(sf, px, b):
    for j in range(px.shape[1] - 1):
        d = abs(px[b, j] - px[b, j + 1])
        if d == d and d > 0.0 and d < sf[0] * 0.999:
            sf[0] = d


@_inline
def _report_gap(p, si, sf, ei, ef, side, at_ts, min_dur, alerts, counts):
    if si[ei + 2] - si[ei + 1] >= min_dur:
        thr = max(p[3], p[1] * sf[ef + 3])
        score = persistence_cap(score_from_ratio(sf[ef] / thr, 1.0, p[10]), si[ei + 1], si[ei + 2], p[11])
        emit(alerts, counts, GAP, side, si[ei + 1], si[ei + 2], at_ts, score, sf[ef + 1], sf[ef + 2],
             si[ei + 4], sf[ef], si[ei + 3])
    si[ei] = 0


@nb.njit(cache=True)
def gap_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
               o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    k = int(p[0])
    warm_ns = p[7] * 1e9
    merge_ns = p[8] * 1e9
    min_dur = p[9] * 1e9
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_BOOK:
            o, t = skip_to_book(src, o, t)
            continue
        ts = book_ts[b]
        if si[2] == 0:
            si[0] = ts
            si[1] = ts
            si[2] = 1
        dt = ts - si[1]
        if p[12] <= 0.0:  # no declared tick: learn it from the book
            update_tick(sf, bid_px, b)
            update_tick(sf, ask_px, b)
        tick = sf[0]
        if tick < np.inf:
            for s in range(2):
                px = bid_px if s == 0 else ask_px
                side = 1 if s == 0 else -1
                g, lvl, worst = weighted_gap(px, b, k, tick, p[5])
                e = 1 + s * EWMA_SLOT
                # typical gap: geometric mean of (1 + gap), robust to the heavy tail of sparse books
                base = np.exp(sf[e]) - 1.0 if sf[e + 2] != 0.0 else np.inf
                warm = ts - si[0] >= warm_ns
                enter = warm and g >= max(p[3], p[1] * base)
                stay = g >= max(p[4], p[2] * base)
                ei = 3 + s * EP_I
                ef = 1 + 2 * EWMA_SLOT + s * EP_F
                if episode_due(si, ei, ts, stay, merge_ns):
                    _report_gap(p, si, sf, ei, ef, side, ts, min_dur, alerts, counts)
                price = px[b, lvl] if lvl >= 0 else np.nan
                if episode_track(si, sf, ei, ef, ts, enter, stay, g, price, worst * (lvl + 1.0), lvl) == 1:
                    sf[ef + 3] = base
                # the baseline learns the value that held until now (this row's value from the next row on)
                ewma_update(sf, e, np.log1p(g), dt, p[6])
        si[1] = ts
        b += 1
    if is_final(counts):  # episodes still open when the stream ends
        for s in range(2):
            ei = 3 + s * EP_I
            if si[ei] != 0:
                _report_gap(p, si, sf, ei, 1 + 2 * EWMA_SLOT + s * EP_F, 1 if s == 0 else -1, si[1], min_dur,
                            alerts, counts)


GAP_DETECTOR = Detector(
    name="liquidity_gap",
    kinds=("liquidity_gap",),
    inputs=("book",),
    params=GapParams(),
    new_state=_gap_state,
    kernel=gap_kernel,
    metric="weighted_empty_ticks",
    evidence={"price": "price_before_widest_gap", "size": "widest_gap_ticks", "level": "level_before_widest_gap"},
    description="empty ticks between the levels near the touch, weighted towards the touch, against their baseline",
    min_levels=2,  # a gap lies between two levels
    levels_param="levels",
)


# -- spread shock -----------------------------------------------------------------------------
@dataclass(frozen=True)
class SpreadParams:
    z_enter: float = 8.0  # spread z-score that opens an episode
    z_exit: float = 2.0  # ... which lasts while the z-score stays at or above this
    ratio_min: float = 3.0  # and the spread must be at least this x its baseline mean to open
    std_floor: float = 0.5  # the baseline deviation is at least this x the baseline mean
    halflife_s: float = 120.0  # baseline half-life, seconds of exchange time
    warmup_s: float = 60.0  # no alert before this long after the first row
    merge_gap_s: float = 2.0  # episodes closer than this are one
    min_duration_s: float = 0.5  # shorter episodes are not reported (one wide 100 ms row is not a shock)
    z_saturation: float = 40.0  # z-score at which the score reaches 100 (50 at z_enter)
    persist_s: float = 30.0  # an episode shorter than this scores at most medium (persistence_cap)


def _spread_state(params: SpreadParams):
    return np.zeros(3 + EP_I, np.int64), np.zeros(EWMA_SLOT + EP_F)


@_inline
def _report_spread(p, si, sf, at_ts, min_dur, alerts, counts):
    if si[5] - si[4] >= min_dur:
        emit(alerts, counts, SPREAD, 0, si[4], si[5], at_ts,
             persistence_cap(score_from_ratio(sf[EWMA_SLOT], p[0], p[8]), si[4], si[5], p[9]),
             sf[EWMA_SLOT + 1], sf[EWMA_SLOT + 2], 0, sf[EWMA_SLOT], si[6])
    si[3] = 0


@nb.njit(cache=True)
def spread_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                  o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    warm_ns = p[5] * 1e9
    merge_ns = p[6] * 1e9
    min_dur = p[7] * 1e9
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_BOOK:
            o, t = skip_to_book(src, o, t)
            continue
        ts = book_ts[b]
        spread = ask_px[b, 0] - bid_px[b, 0]
        if not (spread == spread and spread > 0.0):  # a side empty, or locked/crossed: crossed.py's business
            b += 1
            continue
        if si[2] == 0:
            si[0] = ts
            si[1] = ts
            si[2] = 1
        dt = ts - si[1]
        mean = sf[0]
        z = ewma_z(sf, 0, spread, p[3] * mean)
        warm = ts - si[0] >= warm_ns
        enter = warm and z >= p[0] and spread >= p[2] * mean
        stay = z >= p[1]
        if episode_due(si, 3, ts, stay, merge_ns):
            _report_spread(p, si, sf, ts, min_dur, alerts, counts)
        episode_track(si, sf, 3, EWMA_SLOT, ts, enter, stay, z, bid_px[b, 0], spread, 0)
        ewma_update(sf, 0, spread, dt, p[4])
        si[1] = ts
        b += 1
    if is_final(counts) and si[3] != 0:  # an episode still open when the stream ends
        _report_spread(p, si, sf, si[1], min_dur, alerts, counts)


SPREAD_DETECTOR = Detector(
    name="spread_shock",
    kinds=("spread_shock",),
    inputs=("book",),
    params=SpreadParams(),
    new_state=_spread_state,
    kernel=spread_kernel,
    metric="spread_z",
    evidence={"price": "best_bid_at_peak", "size": "spread_at_peak", "level": "level"},
    description="spread z-score over its EWMA baseline (deviation floored) and at least ratio_min x the mean",
)


# -- heavy imbalance --------------------------------------------------------------------------
@dataclass(frozen=True)
class ImbalanceParams:
    levels: int = 5  # imbalance of the size on this many levels per side
    min_abs: float = 0.85  # |imbalance| needed to open an episode
    min_abs_exit: float = 0.7  # ... which lasts while |imbalance| (same sign) stays at or above this
    z_enter: float = 3.0  # and the imbalance z-score must reach this (in the heavy side's direction)
    std_floor: float = 0.15  # the baseline deviation is at least this (imbalance units)
    halflife_s: float = 120.0  # baseline half-life, seconds of exchange time
    warmup_s: float = 60.0  # no alert before this long after the first row
    merge_gap_s: float = 1.0  # episodes closer than this are one
    min_duration_s: float = 5.0  # shorter episodes are not reported: a book may lean for a moment
    z_saturation: float = 8.0  # z-score at which the score reaches 100 (50 at z_enter)
    persist_s: float = 30.0  # an episode shorter than this scores at most medium (persistence_cap)


def _imbalance_state(params: ImbalanceParams):
    return np.zeros(3 + EP_I + 1, np.int64), np.zeros(EWMA_SLOT + EP_F)


@_inline
def _report_imbalance(p, si, sf, side, k, at_ts, min_dur, alerts, counts):
    if si[5] - si[4] >= min_dur:
        emit(alerts, counts, IMBALANCE, side, si[4], si[5], at_ts,
             persistence_cap(score_from_ratio(sf[EWMA_SLOT], p[3], p[9]), si[4], si[5], p[10]),
             sf[EWMA_SLOT + 1], sf[EWMA_SLOT + 2], k, sf[EWMA_SLOT], si[6])
    si[3] = 0


@nb.njit(cache=True)
def imbalance_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                     o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    k = min(int(p[0]), bid_px.shape[1])  # the levels summed: those the book has, at most ``levels``
    warm_ns = p[6] * 1e9
    merge_ns = p[7] * 1e9
    min_dur = p[8] * 1e9
    side_i = 3 + EP_I  # the open episode's side
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_BOOK:
            o, t = skip_to_book(src, o, t)
            continue
        ts = book_ts[b]
        bd = side_depth(bid_px, bid_sz, b, k)
        ad = side_depth(ask_px, ask_sz, b, k)
        if bd + ad <= 0.0:
            b += 1
            continue
        if si[2] == 0:
            si[0] = ts
            si[1] = ts
            si[2] = 1
        dt = ts - si[1]
        imb = (bd - ad) / (bd + ad)
        z = ewma_z(sf, 0, imb, p[4])
        side = 1 if imb > 0 else -1
        warm = ts - si[0] >= warm_ns
        enter = warm and abs(imb) >= p[1] and z * side >= p[3]
        open_side = si[side_i]
        stay = si[3] != 0 and imb * open_side >= p[2]
        if episode_due(si, 3, ts, stay, merge_ns):
            _report_imbalance(p, si, sf, open_side, k, ts, min_dur, alerts, counts)
            stay = False
        if si[3] == 0:
            if episode_track(si, sf, 3, EWMA_SLOT, ts, enter, stay, abs(z), imb, bd + ad, k) == 1:
                si[side_i] = side
        else:
            episode_track(si, sf, 3, EWMA_SLOT, ts, enter, stay, abs(z), imb, bd + ad, k)
        ewma_update(sf, 0, imb, dt, p[5])
        si[1] = ts
        b += 1
    if is_final(counts) and si[3] != 0:  # an episode still open when the stream ends
        _report_imbalance(p, si, sf, si[side_i], k, si[1], min_dur, alerts, counts)


IMBALANCE_DETECTOR = Detector(
    name="heavy_imbalance",
    kinds=("heavy_imbalance",),
    inputs=("book",),
    params=ImbalanceParams(),
    new_state=_imbalance_state,
    kernel=imbalance_kernel,
    metric="imbalance_abs_z",
    evidence={"price": "imbalance_at_peak", "size": "depth_both_sides_at_peak", "level": "levels_summed"},
    description="size imbalance near the touch, extreme in absolute terms and against its baseline, held for "
                "min_duration_s",
    levels_param="levels",
)

DETECTORS = [GAP_DETECTOR, SPREAD_DETECTOR, IMBALANCE_DETECTOR]

__all__ = ["GapParams", "SpreadParams", "ImbalanceParams", "GAP_DETECTOR", "SPREAD_DETECTOR", "IMBALANCE_DETECTOR",
           "DETECTORS", "ewma_update", "ewma_z", "episode_due", "episode_track", "side_depth", "persistence_cap",
           "EWMA_SLOT", "EP_I", "EP_F"]
