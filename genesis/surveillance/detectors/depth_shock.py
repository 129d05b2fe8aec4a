"""``depth_shock``: depth *leaving the book*, not the touch moving.

Over the top-L book rows (``inputs=('book',)``), with the baselines, warm-up, episodes and
severity rules of :mod:`.book_conditions` (whose helpers it shares). Per side, the size on the
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
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.surveillance.base import (KIND_CODES, SRC_NONE, SRC_ORDER, SRC_TRADE, Detector, emit, emit_extra,
                                       is_final, next_source, score_from_ratio)
from genesis.surveillance.detectors.book_conditions import (EP_F, EP_I, EWMA_SLOT, episode_due, episode_track,
                                                            ewma_update, persistence_cap, side_depth)

DEPTH = KIND_CODES["depth_shock"]

_inline = nb.njit(cache=True, inline="always")


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


DETECTOR = DEPTH_DETECTOR

__all__ = ["DepthParams", "DEPTH_DETECTOR", "DETECTOR", "standing_drop", "executed_at_levels"]
