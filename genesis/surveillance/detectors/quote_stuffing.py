"""Quote stuffing (L3): a burst of order messages made of orders that live only milliseconds.

Messages (adds, cancels, deletes) and *short-lived deletes* (an order deleted within
``short_life_s`` of its add) are counted in a sliding window of ``window_s`` made of
``buckets`` time buckets. Baselines (per window) are EWMAs over completed buckets with
half-life ``baseline_halflife_s``, frozen during a burst. A burst starts when, with the
baseline warmed up (``warmup_s``), the window holds at least ``max(min_short, short_ratio x
baseline)`` short-lived deletes and ``rate_ratio`` x the baseline message count; it ends when
short-lived deletes in the window fall below ``exit_fraction`` of the entry threshold, and
the alert is raised then (or at the end of the stream, for a burst still running).

Order lifetimes need each order's add time: an open-addressing hash table (linear probing,
backward-shift deletion) of ``2 ** table_bits`` slots keyed by order id holds add time,
side and remaining size. An entry leaves on delete or full execution; an entry older than
``10 * short_life_s`` can no longer make a short-lived delete, so an insert may overwrite it.
When an insert finds no free or stale slot (more than the capacity of orders added within
``10 * short_life_s``) the order is not remembered (its delete is then not short-lived):
the documented degradation, flagged in state.

Evidence: price NaN, size = mean lifetime of the burst's short-lived orders (ms), level -1,
metric = peak messages in the window / baseline, n_events = short-lived orders (add + delete
each), order ids = the first 64 short-lived orders. Side: the side of at least 80% of them,
else 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

from genesis.feeds.events import EV_ADD, EV_CANCEL, EV_DELETE, EV_EXECUTE, EV_EXECUTE_HIDDEN
from genesis.surveillance.base import (
    KIND_CODES, MAX_IDS_PER_ALERT, SRC_NONE, SRC_ORDER, Detector, emit, emit_id, is_final, next_source,
    score_from_ratio,
)

QUOTE_STUFFING = KIND_CODES["quote_stuffing"]
EMPTY = np.iinfo(np.int64).min
HASH_MULT = 2654435761  # Knuth's multiplicative constant (2**32 / golden ratio)


@dataclass(frozen=True)
class QuoteStuffingParams:
    window_s: float = 1.0  # s: sliding window of the counts
    buckets: float = 20.0  # time buckets the window is made of
    short_life_s: float = 0.02  # s: an order deleted within this long of its add is short-lived
    min_short: float = 40.0  # short-lived deletes in the window to start a burst, at least ...
    short_ratio: float = 5.0  # ... and this x their baseline per window
    rate_ratio: float = 1.5  # messages in the window >= this x baseline messages per window
    exit_fraction: float = 0.5  # the burst ends below this share of the entry threshold
    baseline_halflife_s: float = 120.0  # s: half-life of the baselines
    warmup_s: float = 10.0  # s of baseline before any burst
    saturation: float = 10.0  # peak short-lived deletes / entry threshold scoring 100 (50 at 1)
    table_bits: float = 16.0  # order table of 2 ** table_bits slots


# si scalars
I_CUR, I_STARTED, I_NFOLD, I_INBURST, I_BSTART, I_BLAST, I_BNSHORT, I_BSIDE_BID, I_BSIDE_ASK, I_NIDS, \
    I_FULL, I_WMSGS, I_WSHORT, I_LASTTS = range(14)
SI_IDS = 16
SI_BUCKETS = SI_IDS + MAX_IDS_PER_ALERT
NBI = 3  # per bucket: messages, short-lived deletes, earliest add of those
# sf scalars
F_BMSGS, F_BSHORT, F_LIFESUM, F_ENTRY, F_PEAKMSGS, F_PEAKSHORT = range(6)
SF_HEAD = 8
NTI = 3  # table (si): key, add ts, side
NTF = 2  # table (sf): remaining size, added size


def _sizes(params: QuoteStuffingParams) -> tuple[int, int, int]:
    buckets = int(params.buckets)
    cap = 1 << int(params.table_bits)
    return buckets, cap, SI_BUCKETS + buckets * NBI


def _new_state(params: QuoteStuffingParams) -> tuple[np.ndarray, np.ndarray]:
    buckets, cap, table_at = _sizes(params)
    if buckets < 1 or not 4 <= params.table_bits <= 26:
        raise ValueError(f"QuoteStuffingParams: buckets={params.buckets} must be >= 1 and "
                         f"table_bits={params.table_bits} in 4..26")
    si = np.zeros(table_at + cap * NTI, np.int64)
    si[table_at::NTI] = EMPTY
    si[SI_BUCKETS + 2:table_at:NBI] = np.iinfo(np.int64).max
    sf = np.zeros(SF_HEAD + cap * NTF, np.float64)
    return si, sf


@nb.njit(cache=True, inline="always")
def _slot(key, mask):
    # fold the id to 31 bits, then multiply: the product stays below 2**63 (no overflow, so the
    # same numbers in plain Python); consecutive ids land on a fixed odd stride of slots
    folded = (key ^ (key >> 31)) & 0x7FFFFFFF
    return ((folded * HASH_MULT) >> 7) & mask


@nb.njit(cache=True)
def _find(tab, mask, key):
    i = _slot(key, mask)
    for _ in range(mask + 1):
        k = tab[i, 0]
        if k == key:
            return i
        if k == EMPTY:
            return -1
        i = (i + 1) & mask
    return -1


@nb.njit(cache=True)
def _insert(tab, mask, key, ts, stale_before):
    """A free slot, or one holding an entry too old to matter; -1 when none."""
    i = _slot(key, mask)
    for _ in range(mask + 1):
        if tab[i, 0] == EMPTY or tab[i, 1] < stale_before:
            tab[i, 0] = key
            tab[i, 1] = ts
            return i
        i = (i + 1) & mask
    return -1


@nb.njit(cache=True)
def _remove(tab, tabf, mask, i):
    """Backward-shift deletion: later entries of the probe run move up, so no tombstones are needed."""
    j = i
    while True:
        j = (j + 1) & mask
        if tab[j, 0] == EMPTY:
            break
        home = _slot(tab[j, 0], mask)
        # the entry at j may fill the hole at i unless its home lies cyclically in (i, j]
        if (i < j and (home <= i or home > j)) or (i > j and home <= i and home > j):
            tab[i, :] = tab[j, :]
            tabf[i, :] = tabf[j, :]
            i = j
    tab[i, 0] = EMPTY


@nb.njit(cache=True)
def _advance(p, si, sf, bk, bucket_id):
    """Move the window to ``bucket_id``: completed buckets feed the baselines, recycled ones leave the sums."""
    cur = si[I_CUR]
    if si[I_STARTED] == 0:
        si[I_STARTED] = 1
        si[I_CUR] = bucket_id
        return
    if bucket_id <= cur:
        return
    nb_ = bk.shape[0]
    steps = bucket_id - cur
    alpha = 1.0 - 0.5 ** (p[0] / p[1] / p[7])
    if si[I_INBURST] == 0:
        slot = cur % nb_
        # the completed bucket, then the empty ones after it
        sf[F_BMSGS] += alpha * (bk[slot, 0] - sf[F_BMSGS])
        sf[F_BSHORT] += alpha * (bk[slot, 1] - sf[F_BSHORT])
        if steps > 1:
            decay = (1.0 - alpha) ** (steps - 1)
            sf[F_BMSGS] *= decay
            sf[F_BSHORT] *= decay
        si[I_NFOLD] += steps
    first = max(cur + 1, bucket_id - nb_ + 1)
    for q in range(first, bucket_id + 1):
        slot = q % nb_
        si[I_WMSGS] -= bk[slot, 0]
        si[I_WSHORT] -= bk[slot, 1]
        bk[slot, 0] = 0
        bk[slot, 1] = 0
        bk[slot, 2] = np.iinfo(np.int64).max
    si[I_CUR] = bucket_id


@nb.njit(cache=True)
def _close(p, si, sf, ts, alerts, ids, counts):
    n_short = si[I_BNSHORT]
    seen = si[I_BSIDE_BID] + si[I_BSIDE_ASK]  # short-lived deletes seen since the burst started
    side = 0
    if si[I_BSIDE_BID] >= 0.8 * seen:
        side = 1
    elif si[I_BSIDE_ASK] >= 0.8 * seen:
        side = -1
    mean_life_ms = sf[F_LIFESUM] / max(seen, 1) / 1e6
    base = max(sf[F_BMSGS] * p[1], 1.0)
    score = score_from_ratio(sf[F_PEAKSHORT] / sf[F_ENTRY], 1.0, p[9])
    row = emit(alerts, counts, QUOTE_STUFFING, side, si[I_BSTART], si[I_BLAST], ts, score, np.nan, mean_life_ms, -1,
               sf[F_PEAKMSGS] / base, 2 * n_short)
    for a in range(si[I_NIDS]):
        emit_id(alerts, ids, counts, row, si[SI_IDS + a])
    si[I_INBURST] = 0


@nb.njit(cache=True)
def quote_stuffing_kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
                          o0, o1, t0, t1, b0, b1, alerts, ids, counts):
    n_buckets = np.int64(p[1])
    cap = np.int64(1) << np.int64(p[10])
    mask = cap - 1
    table_at = SI_BUCKETS + n_buckets * NBI
    bk = si[SI_BUCKETS:table_at].reshape((n_buckets, NBI))
    tab = si[table_at:table_at + cap * NTI].reshape((cap, NTI))
    tabf = sf[SF_HEAD:SF_HEAD + cap * NTF].reshape((cap, NTF))
    bucket_ns = max(np.int64(p[0] * 1e9 / p[1]), np.int64(1))
    short_ns = np.int64(p[2] * 1e9)
    stale_ns = 10 * short_ns
    warm_buckets = p[8] / p[0] * p[1]
    o, t, b = o0, t0, b0
    while True:
        src = next_source(orders, trades, book_ts, o, t, b, o1, t1, b1)
        if src == SRC_NONE:
            break
        if src != SRC_ORDER:
            if src == 1:
                t += 1
            else:
                b += 1
            continue
        ev = orders[o]
        o += 1
        kind = ev["event"]
        if kind != EV_ADD and kind != EV_DELETE and kind != EV_CANCEL and kind != EV_EXECUTE \
                and kind != EV_EXECUTE_HIDDEN:
            continue
        ts = ev["exch_ts"]
        si[I_LASTTS] = ts
        _advance(p, si, sf, bk, ts // bucket_ns)
        slot = si[I_CUR] % n_buckets
        if kind == EV_ADD:
            i = _insert(tab, mask, ev["order_id"], ts, ts - stale_ns)
            if i >= 0:
                tab[i, 2] = ev["side"]
                tabf[i, 0] = ev["qty"]
                tabf[i, 1] = ev["qty"]
            else:
                si[I_FULL] = 1
        else:
            i = _find(tab, mask, ev["order_id"])
            if i >= 0:
                if kind == EV_DELETE:
                    life = ts - tab[i, 1]
                    if life <= short_ns:
                        bk[slot, 1] += 1
                        si[I_WSHORT] += 1
                        bk[slot, 2] = min(bk[slot, 2], tab[i, 1])
                        if si[I_INBURST] == 1:
                            si[I_BNSHORT] += 1
                            si[I_BLAST] = ts
                            sf[F_LIFESUM] += life
                            if tab[i, 2] > 0:
                                si[I_BSIDE_BID] += 1
                            else:
                                si[I_BSIDE_ASK] += 1
                            if si[I_NIDS] < MAX_IDS_PER_ALERT:
                                si[SI_IDS + si[I_NIDS]] = ev["order_id"]
                                si[I_NIDS] += 1
                    _remove(tab, tabf, mask, i)
                else:
                    tabf[i, 0] -= ev["qty"]
                    if tabf[i, 0] <= 1e-9 * tabf[i, 1]:
                        _remove(tab, tabf, mask, i)
        if kind == EV_EXECUTE or kind == EV_EXECUTE_HIDDEN:
            continue  # executions are not messages of the order's owner
        bk[slot, 0] += 1
        si[I_WMSGS] += 1
        entry = max(p[3], p[4] * sf[F_BSHORT] * p[1])
        if si[I_INBURST] == 0:
            if si[I_NFOLD] >= warm_buckets and si[I_WSHORT] >= entry and si[I_WMSGS] >= p[5] * sf[F_BMSGS] * p[1]:
                si[I_INBURST] = 1
                start = np.iinfo(np.int64).max
                for q in range(n_buckets):
                    start = min(start, bk[q, 2])
                si[I_BSTART] = start
                si[I_BLAST] = ts
                si[I_BNSHORT] = si[I_WSHORT]
                si[I_BSIDE_BID] = 0
                si[I_BSIDE_ASK] = 0
                si[I_NIDS] = 0
                sf[F_LIFESUM] = 0.0
                sf[F_ENTRY] = entry
                sf[F_PEAKMSGS] = si[I_WMSGS]
                sf[F_PEAKSHORT] = si[I_WSHORT]
        else:
            sf[F_PEAKMSGS] = max(sf[F_PEAKMSGS], si[I_WMSGS])
            sf[F_PEAKSHORT] = max(sf[F_PEAKSHORT], si[I_WSHORT])
            if si[I_WSHORT] < p[6] * sf[F_ENTRY]:
                _close(p, si, sf, ts, alerts, ids, counts)
    if is_final(counts) and si[I_INBURST] == 1:  # the stream ends inside a burst: report it as it stands
        _close(p, si, sf, si[I_LASTTS], alerts, ids, counts)


DETECTOR = Detector(
    name="quote_stuffing",
    kinds=("quote_stuffing",),
    inputs=("orders",),
    params=QuoteStuffingParams(),
    new_state=_new_state,
    kernel=quote_stuffing_kernel,
    metric="peak messages in window / baseline",
    evidence={"size": "mean_short_lifetime_ms"},
    description="a burst of order messages whose orders live only milliseconds",
)
