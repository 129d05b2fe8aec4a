"""Book conditions: liquidity gaps near the touch, depth shocks, spread shocks, heavy imbalance.

Four detectors over the top-L book rows (``inputs=('book',)``), one kernel each, sharing the
helpers below (also used by :mod:`.stale_quotes`, :mod:`.spoofing_l2` and
:mod:`genesis.surveillance.regimes`):

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
* ``depth_shock``: per side, depth *leaving the book*, not the touch moving. The size on the
  first ``levels`` levels (those the book has) falls to at most ``1 - drop_enter`` of its
  reference: the smaller of its maximum over the last ``window_s`` (a fast drop) and its
  baseline, a time-weighted geometric mean (a large order that comes and goes is not the
  reference); *and*, comparing the row with the profile of the window's largest row level by
  level at the same prices (:func:`standing_drop`), at least ``drop_enter`` of the compared
  reference depth was withdrawn: not executed (trades at a level's price since the reference,
  from a ring of recent trades, account for its loss first) and not the touch moving away with
  its queue (the reference touch, once the touch is past its price, is not compared; levels
  past what the row shows are unknown). The reference value and profile are frozen at entry;
  the episode lasts while depth stays below ``1 - drop_exit`` of the value and at least
  ``drop_exit`` of the profile stays withdrawn. On a one-level book only a queue at a price
  that stays the touch compares. The score is scaled by ``levels_summed / full_score_levels``.
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

from genesis.surveillance.base import (KIND_CODES, SRC_BOOK, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit,
                                       emit_extra, is_final, next_source, score_from_ratio)

LN2 = math.log(2.0)
GAP = KIND_CODES["liquidity_gap"]
DEPTH = KIND_CODES["depth_shock"]
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


# -- depth shock ------------------------------------------------------------------------------
@dataclass(frozen=True)
class DepthParams:
    levels: int = 20  # depth = size on this many levels from the touch, per side (capped at the book's)
    window_s: float = 2.0  # a drop counts when it happens within this many seconds
    drop_enter: float = 0.9  # depth at most (1 - this) x reference, and withdrawn depth at least this share
    #                          of the reference levels compared, opens an episode
    drop_exit: float = 0.7  # ... which lasts while both stay at or past (1 - this) / this
    halflife_s: float = 120.0  # depth baseline half-life, seconds of exchange time
    warmup_s: float = 60.0  # no alert before this long after the first row
    merge_gap_s: float = 2.0  # episodes closer than this are one
    min_duration_s: float = 1.5  # shorter episodes are not reported (a sweep the book refills at once)
    buckets: int = 20  # the window maximum is kept in this many time buckets (resolution window_s / buckets)
    full_score_levels: int = 5  # the score counts fully from this many levels summed; a shallower book (one
    #                             level: one queue) scales it down, since one order leaving is weak evidence
    persist_s: float = 30.0  # an episode shorter than this scores at most medium (persistence_cap)


DEPTH_RING = 8192  # recent trades kept to tell executed depth from withdrawn depth (about window_s of a busy feed)
# Depth-shock state. si: first_ts, last_ts, started, trades seen | 2 episode slots | 2 x nbk bucket ids |
# 2 x nbk bucket max-row times | per side: reference row time (frozen at entry), peak row time | ring times.
# sf: 2 EWMA | 2 episode slots (metric = withdrawn share, price = touch, size = withdrawn, spare = reference at
# entry) | 2 x nbk bucket maxima | 2 x nbk bucket profiles (K prices, K sizes) | per side: frozen profile (2K),
# executed size per frozen level (K) | per side: reference depth compared, executed there, touch queue moved,
# reference touch (at the peak) | scratch (K) | ring prices, quantities, aggressor sides.
D_NX = 4


@_inline
def _depth_layout(nbk, kk):
    """Offsets in the depth detector's state arrays for ``nbk`` buckets and ``kk`` levels (shared by
    the state's allocation and the kernel)."""
    bi = 4 + 2 * EP_I
    bt = bi + 2 * nbk
    sx = bt + 2 * nbk
    ri = sx + 4
    bf = 2 * EWMA_SLOT + 2 * EP_F
    bp = bf + 2 * nbk
    fp = bp + 2 * nbk * 2 * kk
    fx = fp + 2 * 3 * kk
    sc = fx + 2 * D_NX
    rf = sc + kk
    return bi, bt, sx, ri, ri + DEPTH_RING, bf, bp, fp, fx, sc, rf, rf + 3 * DEPTH_RING


def _depth_state(params: DepthParams):
    bi, bt, sx, ri, n_si, bf, bp, fp, fx, sc, rf, n_sf = _depth_layout(int(params.buckets), int(params.levels))
    si = np.zeros(n_si, np.int64)
    si[bi:bt] = -(2 ** 62)
    sf = np.zeros(n_sf)
    sf[bp:fx] = np.nan
    return si, sf


@_inline
def executed_at_levels(si, sf, ri, rf, ref, r0, kk, side, since_ts, out):
    """Size traded against ``side`` (aggressor -side, or unknown) after ``since_ts`` at each reference
    level price ``ref[r0 + j]``, from the ring of recent trades, into ``out[0:kk]`` (sf offsets)."""
    for j in range(kk):
        sf[out + j] = 0.0
    n = si[3]
    m = min(n, DEPTH_RING)
    for q in range(m):
        i = (n - 1 - q) % DEPTH_RING
        if si[ri + i] <= since_ts:
            break
        agg = sf[rf + 2 * DEPTH_RING + i]
        if agg == side:
            continue  # bought (sold) by an aggressor on this side: it took the other side
        price = sf[rf + i]
        for j in range(kk):
            if ref[r0 + j] == price:
                sf[out + j] += sf[rf + DEPTH_RING + i]
                break


@_inline
def standing_drop(ref, r0, kk, ex0, px, sz, b, k, side):
    """Compare one side of book row ``b`` (first ``k`` levels) with a reference profile of the same side
    (``ref[r0 : r0 + kk]`` prices, ``ref[r0 + kk : r0 + 2 kk]`` sizes, best first, NaN past its end), with
    ``ref[ex0 + j]`` the size traded at reference level ``j``'s price since.

    Returns ``(withdrawn_share, ref_depth, executed, withdrawn, moved)``. Over the reference levels that
    can be compared, ``ref_depth`` is their reference size; a level's loss (reference size less its size
    now at the same price, at least 0) was ``executed`` up to the size traded at its price and
    ``withdrawn`` (cancelled) for the rest; ``withdrawn_share = withdrawn / ref_depth``. Not compared: a
    level past the row's last level while the row shows all ``k`` (unknown), and the reference touch
    once the touch has moved away past its price (the touch moving away with its queue: ``moved``).
    Deeper levels now behind the touch left the book (size 0 now). An empty side shows every level left."""
    sgn = 1.0 if side > 0 else -1.0
    n = 0
    for j in range(k):
        if px[b, j] == px[b, j]:
            n = j + 1
        else:
            break
    ref_depth = 0.0
    executed = 0.0
    withdrawn = 0.0
    moved = 0.0
    for j in range(kk):
        p = ref[r0 + j]
        r = ref[r0 + kk + j]
        if p != p or r != r:
            break
        c = 0.0
        if n > 0:
            q = sgn * p
            if q > sgn * px[b, 0]:  # now behind the touch: the level left the book
                if j == 0:
                    moved += r  # the touch moved away with its queue
                    continue
            elif n == k and q < sgn * px[b, n - 1]:
                continue  # past the levels the row shows: unknown
            else:
                for i in range(n):
                    if px[b, i] == p:
                        if sz[b, i] == sz[b, i]:
                            c = sz[b, i]
                        break
        lost = max(r - c, 0.0)
        ex = min(lost, ref[ex0 + j])
        ref_depth += r
        executed += ex
        withdrawn += lost - ex
    share = withdrawn / ref_depth if ref_depth > 0.0 else 0.0
    return share, ref_depth, executed, withdrawn, moved


@_inline
def _keep_profile(sf, base, kk, px, sz, b, k):
    for j in range(kk):
        if j < k:
            sf[base + j] = px[b, j]
            sf[base + kk + j] = sz[b, j]
        else:
            sf[base + j] = np.nan
            sf[base + kk + j] = np.nan


@_inline
def _report_depth(p, si, sf, ei, ef, side, at_ts, min_dur, sxi, fxi, alerts, counts):
    if si[ei + 2] - si[ei + 1] >= min_dur:
        peak = sf[ef]
        score = score_from_ratio(peak, p[2], 1.0)  # 50 at drop_enter, 100 when every compared level was withdrawn
        score *= min(1.0, si[ei + 4] / max(1.0, p[9]))  # a shallow book is weaker evidence
        score = persistence_cap(score, si[ei + 1], si[ei + 2], p[10])
        row = emit(alerts, counts, DEPTH, side, si[ei + 1], si[ei + 2], at_ts, score, sf[ef + 1], sf[ef + 2],
                   si[ei + 4], peak, si[ei + 3])
        emit_extra(alerts, row, si[sxi], si[sxi + 1], sf[fxi], sf[fxi + 1], sf[fxi + 2], sf[fxi + 3])
    si[ei] = 0


@nb.njit(cache=True)
def depth_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                 o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    kk = int(p[0])
    k = min(kk, bid_px.shape[1])
    window_ns = p[1] * 1e9
    warm_ns = p[5] * 1e9
    merge_ns = p[6] * 1e9
    min_dur = p[7] * 1e9
    nbk = int(p[8])
    width = max(1.0, window_ns / nbk)
    bi0, bt0, sx0, ri0, _, bf0, bp0, fp0, fx0, sc0, rf0, _ = _depth_layout(nbk, kk)
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src == SRC_ORDER:
            o += 1
            continue
        if src == SRC_TRADE:
            tr = trades[t]
            i = si[3] % DEPTH_RING
            si[ri0 + i] = tr["exch_ts"]
            sf[rf0 + i] = tr["price"]
            sf[rf0 + DEPTH_RING + i] = tr["qty"]
            sf[rf0 + 2 * DEPTH_RING + i] = tr["aggressor"]
            si[3] += 1
            for s in range(2):  # an open episode counts what trades execute at its reference levels
                side = 1 if s == 0 else -1
                if si[3 + 1 + s * EP_I] != 0 and tr["aggressor"] != side:
                    fpi = fp0 + s * 3 * kk
                    for j in range(kk):
                        if sf[fpi + j] == tr["price"]:
                            sf[fpi + 2 * kk + j] += tr["qty"]
                            break
            t += 1
            continue
        ts = book_ts[b]
        if si[2] == 0:
            si[0] = ts
            si[1] = ts
            si[2] = 1
        dt = ts - si[1]
        bucket = np.int64(ts // width)
        warm = ts - si[0] >= warm_ns
        for s in range(2):
            side = 1 if s == 0 else -1
            px = bid_px if s == 0 else ask_px
            sz = bid_sz if s == 0 else ask_sz
            d = side_depth(px, sz, b, k)
            # the window maximum of the rows before this one, and the bucket holding it
            wmax = 0.0
            jmax = -1
            for j in range(nbk):
                bid_ = si[bi0 + s * nbk + j]
                if bucket - bid_ <= nbk and sf[bf0 + s * nbk + j] > wmax:
                    wmax = sf[bf0 + s * nbk + j]
                    jmax = j
            e = s * EWMA_SLOT
            # typical depth: geometric mean (a large order that comes and goes does not set the reference)
            base = np.exp(sf[e]) if sf[e + 2] != 0.0 else 0.0
            ref = min(wmax, base)
            drop = 1.0 - d / ref if ref > 0.0 else 0.0
            ei = 4 + s * EP_I
            ef = 2 * EWMA_SLOT + s * EP_F
            sxi = sx0 + 2 * s
            fxi = fx0 + D_NX * s
            fpi = fp0 + s * 3 * kk
            ref_in = sf[ef + 3]
            stay = False
            share, sref, sex, swd, smoved = 0.0, 0.0, 0.0, 0.0, 0.0
            if si[ei] != 0 and ref_in > 0.0 and d <= (1.0 - p[3]) * ref_in:
                # still far below the reference: is the depth still withdrawn from the compared levels?
                share, sref, sex, swd, smoved = standing_drop(sf, fpi, kk, fpi + 2 * kk, px, sz, b, k, side)
                stay = share >= p[3]
            if episode_due(si, ei, ts, stay, merge_ns):
                _report_depth(p, si, sf, ei, ef, side, ts, min_dur, sxi, fxi, alerts, counts)
                stay = False
            touch = px[b, 0]
            if si[ei] == 0:
                if warm and drop >= p[2] and jmax >= 0:
                    pi = bp0 + (s * nbk + jmax) * 2 * kk
                    ref_ts = si[bt0 + s * nbk + jmax]
                    executed_at_levels(si, sf, ri0, rf0, sf, pi, kk, side, ref_ts, sc0)
                    share, sref, sex, swd, smoved = standing_drop(sf, pi, kk, sc0, px, sz, b, k, side)
                    if share >= p[2]:  # depth withdrawn from the book, not executed nor the touch moving
                        episode_track(si, sf, ei, ef, ts, True, False, share, touch, swd, k)
                        sf[ef + 3] = ref
                        for j in range(2 * kk):
                            sf[fpi + j] = sf[pi + j]
                        for j in range(kk):
                            sf[fpi + 2 * kk + j] = sf[sc0 + j]
                        si[sxi] = ref_ts
                        si[sxi + 1] = ts
                        sf[fxi], sf[fxi + 1], sf[fxi + 2], sf[fxi + 3] = sref, sex, smoved, sf[pi]
            elif stay:
                before = sf[ef]
                episode_track(si, sf, ei, ef, ts, False, True, share, touch, swd, k)
                if share > before:  # a new peak
                    si[sxi + 1] = ts
                    sf[fxi], sf[fxi + 1], sf[fxi + 2] = sref, sex, smoved
            if d > 0.0:
                ewma_update(sf, e, np.log(d), dt, p[4])
            # this row's depth (and profile, when it is the bucket's largest) into its time bucket
            j = int(bucket % nbk)
            slot = bi0 + s * nbk + j
            fslot = bf0 + s * nbk + j
            if si[slot] != bucket or d > sf[fslot]:
                si[slot] = bucket
                sf[fslot] = d
                si[bt0 + s * nbk + j] = ts
                _keep_profile(sf, bp0 + (s * nbk + j) * 2 * kk, kk, px, sz, b, k)
        si[1] = ts
        b += 1
    if is_final(counts):  # episodes still open when the stream ends
        for s in range(2):
            ei = 4 + s * EP_I
            if si[ei] != 0:
                _report_depth(p, si, sf, ei, 2 * EWMA_SLOT + s * EP_F, 1 if s == 0 else -1, si[1], min_dur,
                              sx0 + 2 * s, fx0 + D_NX * s, alerts, counts)


DEPTH_DETECTOR = Detector(
    name="depth_shock",
    kinds=("depth_shock",),
    inputs=("book",),
    params=DepthParams(),
    new_state=_depth_state,
    kernel=depth_kernel,
    metric="depth_withdrawn_fraction",
    evidence={"price": "touch_price_at_peak", "size": "depth_withdrawn", "level": "levels_summed",
              "x_ts": "reference_ts", "y_ts": "peak_ts", "x0": "reference_depth_compared",
              "x1": "depth_executed", "x2": "touch_queue_moved_away", "x3": "reference_touch_price"},
    description="size withdrawn (not executed) from levels near the touch within window_s: at least drop_enter of "
                "the levels compared, with depth down by drop_enter (vs the smaller of the window maximum and "
                "the baseline); the touch moving away with its queue is not a shock",
    optional=("trades",),
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

DETECTORS = [GAP_DETECTOR, DEPTH_DETECTOR, SPREAD_DETECTOR, IMBALANCE_DETECTOR]

__all__ = ["GapParams", "DepthParams", "SpreadParams", "ImbalanceParams", "GAP_DETECTOR", "DEPTH_DETECTOR",
           "SPREAD_DETECTOR", "IMBALANCE_DETECTOR", "DETECTORS", "ewma_update", "ewma_z", "episode_due",
           "episode_track", "side_depth", "EWMA_SLOT", "EP_I", "EP_F"]
