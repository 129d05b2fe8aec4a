"""Price-level (L2) order book in Numba, with venue sequencing.

Storage: each side is a sorted array of keys with the best level at the *end*, so the
updates that dominate real feeds (near the top of book) shift few elements:
bids are keyed by ``+price`` (ascending), asks by ``-price`` (ascending), and one insert /
delete routine serves both.

Two entry points:

* :meth:`L2Book.apply_deltas` applies raw ``(side, price, qty)`` rows and emits the top-L
  after each row: the book's mechanics alone (used to replay stored deltas and by the
  property test against a dict book).
* :meth:`L2Book.apply_depth` applies venue depth *events* with their update ids under a
  sequencing rule (Binance spot ``U/u`` or futures ``U/u/pu``): events before a snapshot
  are buffered, stale ones dropped, a broken chain is recorded as a gap and the book is
  invalid until the next snapshot, an update that crosses the book is rejected the same way.
  It emits the top-L after every applied event.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba as nb
import numpy as np

# Sequencing rules: how consecutive depth events must chain (Binance's documented procedures).
SEQ_SPOT = 0  # next U == previous u + 1; after a snapshot: drop u <= id, first has U <= id+1 <= u
SEQ_FUTURES = 1  # next pu == previous u; after a snapshot: drop u < id, first has U <= id <= u

# Sync states.
WAITING = 0  # no valid book: buffer events until a snapshot arrives
SYNCING = 1  # snapshot loaded: waiting for the first event that covers it
LIVE = 2

# Outcome of each depth message.
OUT_APPLIED = 1
OUT_SNAPSHOT = 2
OUT_STALE = 3  # older than the book: already contained in it
OUT_CROSSED = 4  # applying it crossed the book: rejected, book invalid until the next snapshot
OUT_UNAPPLIED = 5  # buffered while the book was invalid and no snapshot followed
OUT_SNAPSHOT_SKIPPED = 6  # the live book was already past this snapshot

# Why the book became invalid.
GAP_SEQUENCE = 1
GAP_NOT_COVERED = 2
GAP_CROSSED = 3
GAP_REASONS = {
    GAP_SEQUENCE: "sequence gap",
    GAP_NOT_COVERED: "first event after the snapshot does not cover it",
    GAP_CROSSED: "update crossed the book",
}

# Layout of the int64 ``state`` vector: sizes and buffer offsets of the sides, sync state,
# last applied update id, sequencing rule.
_N_BID, _N_ASK, _BID_LO, _ASK_LO, _SYNC, _LAST_ID, _RULE = range(7)
# Layout of the int64 ``counters`` vector.
_C_PENDING, _C_APPLIED, _C_TOP, _C_GAPS = range(4)
# Columns of the int64 ``gaps`` array: message, expected id, received id, GAP_* reason,
# number of top-L rows emitted before the book broke (to know which row it invalidates).
GAP_MSG, GAP_EXPECTED, GAP_RECEIVED, GAP_REASON, GAP_ROWS_BEFORE = range(5)


@nb.njit(cache=True)
def _apply_level(keys, qtys, lo, n, key, qty):
    """Set the level ``key`` to ``qty`` (0 removes it) in the side ``keys[lo:lo+n]``.

    Returns the new ``(lo, n)``. The side sits inside a larger buffer, so an insert or a
    delete moves whichever part is shorter: the top of book for updates near the touch,
    the tail for deep levels (both are frequent in real diff streams).
    """
    hi = lo + n
    i = lo + np.searchsorted(keys[lo:hi], key)
    if i < hi and keys[i] == key:
        if qty > 0.0:
            qtys[i] = qty
            return lo, n
        if i - lo < hi - 1 - i:
            for k in range(i, lo, -1):
                keys[k] = keys[k - 1]
                qtys[k] = qtys[k - 1]
            return lo + 1, n - 1
        for k in range(i, hi - 1):
            keys[k] = keys[k + 1]
            qtys[k] = qtys[k + 1]
        return lo, n - 1
    if qty <= 0.0:
        return lo, n  # removing a level the book does not hold (e.g. beyond the snapshot's depth)
    if (i - lo < hi - i and lo > 0) or hi == keys.shape[0]:
        for k in range(lo - 1, i - 1):
            keys[k] = keys[k + 1]
            qtys[k] = qtys[k + 1]
        keys[i - 1] = key
        qtys[i - 1] = qty
        return lo - 1, n + 1
    for k in range(hi, i, -1):
        keys[k] = keys[k - 1]
        qtys[k] = qtys[k - 1]
    keys[i] = key
    qtys[i] = qty
    return lo, n + 1


@nb.njit(cache=True)
def _recentered(keys, qtys, lo, n, margin):
    """Move the side to the middle of its buffer when fewer than ``margin`` free slots remain at an end."""
    if lo >= margin and keys.shape[0] - (lo + n) >= margin:
        return lo
    new_lo = (keys.shape[0] - n) // 2
    keys[new_lo : new_lo + n] = keys[lo : lo + n].copy()
    qtys[new_lo : new_lo + n] = qtys[lo : lo + n].copy()
    return new_lo


@nb.njit(cache=True)
def _write_top(state, bid_key, bid_qty, ask_key, ask_qty, row, bid_px, bid_sz, ask_px, ask_sz):
    depth = bid_px.shape[1]
    n_bid, n_ask = state[_N_BID], state[_N_ASK]
    bid_best = state[_BID_LO] + n_bid - 1
    ask_best = state[_ASK_LO] + n_ask - 1
    for j in range(depth):
        if j < n_bid:
            bid_px[row, j] = bid_key[bid_best - j]
            bid_sz[row, j] = bid_qty[bid_best - j]
        else:
            bid_px[row, j] = np.nan
            bid_sz[row, j] = np.nan
        if j < n_ask:
            ask_px[row, j] = -ask_key[ask_best - j]
            ask_sz[row, j] = ask_qty[ask_best - j]
        else:
            ask_px[row, j] = np.nan
            ask_sz[row, j] = np.nan


@nb.njit(cache=True)
def _apply_message(state, bid_key, bid_qty, ask_key, ask_qty, start, count, lvl_side, lvl_price, lvl_qty):
    n_bid, n_ask = state[_N_BID], state[_N_ASK]
    bid_lo = _recentered(bid_key, bid_qty, state[_BID_LO], n_bid, count)
    ask_lo = _recentered(ask_key, ask_qty, state[_ASK_LO], n_ask, count)
    for k in range(start, start + count):
        if lvl_side[k] > 0:
            bid_lo, n_bid = _apply_level(bid_key, bid_qty, bid_lo, n_bid, lvl_price[k], lvl_qty[k])
        else:
            ask_lo, n_ask = _apply_level(ask_key, ask_qty, ask_lo, n_ask, -lvl_price[k], lvl_qty[k])
    state[_N_BID], state[_N_ASK] = n_bid, n_ask
    state[_BID_LO], state[_ASK_LO] = bid_lo, ask_lo


@nb.njit(cache=True)
def _is_crossed(state, bid_key, ask_key):
    n_bid, n_ask = state[_N_BID], state[_N_ASK]
    return n_bid > 0 and n_ask > 0 and (
        bid_key[state[_BID_LO] + n_bid - 1] >= -ask_key[state[_ASK_LO] + n_ask - 1]
    )


@nb.njit(cache=True)
def apply_deltas_kernel(state, bid_key, bid_qty, ask_key, ask_qty, side, price, qty, bid_px, bid_sz, ask_px, ask_sz):
    """Apply raw rows in order, writing the top-L after each row. Capacity is the caller's job."""
    for k in range(side.shape[0]):
        _apply_message(state, bid_key, bid_qty, ask_key, ask_qty, k, 1, side, price, qty)
        _write_top(state, bid_key, bid_qty, ask_key, ask_qty, k, bid_px, bid_sz, ask_px, ask_sz)


@nb.njit(cache=True)
def _level_qty(keys, qtys, lo, n, key):
    """Quantity at ``key`` in the side ``keys[lo:lo+n]`` (0 when the level is absent)."""
    i = lo + np.searchsorted(keys[lo : lo + n], key)
    if i < lo + n and keys[i] == key:
        return qtys[i]
    return 0.0


@nb.njit(cache=True)
def apply_groups_kernel(state, bid_key, bid_qty, ask_key, ask_qty, group_start, group_count, is_snapshot,
                        side, price, qty, bid_px, bid_sz, ask_px, ask_sz, crossed, undo):
    """Apply rows in groups (one venue event each), writing the top-L after each group.

    A snapshot group replaces the book. A group that leaves the book crossed is undone (its
    levels get their previous quantities back) and flagged in ``crossed``: a bad event must
    not corrupt the book for everything after it. ``undo`` is scratch of the largest group's size.
    """
    for g in range(group_start.shape[0]):
        start, count = group_start[g], group_count[g]
        if is_snapshot[g]:
            state[_N_BID] = 0
            state[_N_ASK] = 0
            state[_BID_LO] = state[_ASK_LO] = bid_key.shape[0] // 2
        else:
            for k in range(count):
                r = start + k
                if side[r] > 0:
                    undo[k] = _level_qty(bid_key, bid_qty, state[_BID_LO], state[_N_BID], price[r])
                else:
                    undo[k] = _level_qty(ask_key, ask_qty, state[_ASK_LO], state[_N_ASK], -price[r])
        _apply_message(state, bid_key, bid_qty, ask_key, ask_qty, start, count, side, price, qty)
        crossed[g] = _is_crossed(state, bid_key, ask_key)
        if crossed[g] and not is_snapshot[g]:
            for k in range(count - 1, -1, -1):  # reverse order: a level touched twice ends as before
                _apply_message(state, bid_key, bid_qty, ask_key, ask_qty, 0, 1, side[start + k : start + k + 1],
                               price[start + k : start + k + 1], undo[k : k + 1])
        _write_top(state, bid_key, bid_qty, ask_key, ask_qty, g, bid_px, bid_sz, ask_px, ask_sz)


@nb.njit(cache=True)
def _record_gap(counters, gaps, i, expected, received, reason):
    g = counters[_C_GAPS]
    gaps[g, GAP_MSG] = i
    gaps[g, GAP_EXPECTED] = expected
    gaps[g, GAP_RECEIVED] = received
    gaps[g, GAP_REASON] = reason
    gaps[g, GAP_ROWS_BEFORE] = counters[_C_TOP]
    counters[_C_GAPS] = g + 1


@nb.njit(cache=True)
def _process_depth(
    i, state, bid_key, bid_qty, ask_key, ask_qty,
    first_id, last_id, prev_id, lvl_start, lvl_count, lvl_side, lvl_price, lvl_qty,
    pending, counters, outcome, applied, top_msg, bid_px, bid_sz, ask_px, ask_sz, gaps,
):
    """One depth event (not a snapshot) under the sequencing rule in ``state``."""
    sync = state[_SYNC]
    if sync == WAITING:
        pending[counters[_C_PENDING]] = i
        counters[_C_PENDING] += 1
        return
    last = state[_LAST_ID]
    spot = state[_RULE] == SEQ_SPOT
    U = first_id[i]
    u = last_id[i]
    if sync == SYNCING:
        stale = u <= last if spot else u < last
        covers = (U <= last + 1 <= u) if spot else (U <= last <= u)
        if stale:
            outcome[i] = OUT_STALE
            return
        if not covers:
            _record_gap(counters, gaps, i,
                        last + 1 if spot else last, U, GAP_NOT_COVERED)
            state[_SYNC] = WAITING
            pending[0] = i
            counters[_C_PENDING] = 1
            return
    else:
        chained = (U == last + 1) if spot else (prev_id[i] == last)
        if not chained:
            if u <= last:
                outcome[i] = OUT_STALE  # a repeat of an event the book already holds
                return
            _record_gap(counters, gaps, i,
                        last + 1 if spot else last, U if spot else prev_id[i], GAP_SEQUENCE)
            state[_SYNC] = WAITING
            pending[0] = i
            counters[_C_PENDING] = 1
            return
    _apply_message(state, bid_key, bid_qty, ask_key, ask_qty, lvl_start[i], lvl_count[i], lvl_side, lvl_price, lvl_qty)
    state[_LAST_ID] = u
    if _is_crossed(state, bid_key, ask_key):
        outcome[i] = OUT_CROSSED
        _record_gap(counters, gaps, i, u, u, GAP_CROSSED)
        state[_SYNC] = WAITING
        counters[_C_PENDING] = 0
        return
    state[_SYNC] = LIVE
    outcome[i] = OUT_APPLIED
    applied[counters[_C_APPLIED]] = i
    counters[_C_APPLIED] += 1
    row = counters[_C_TOP]
    top_msg[row] = i
    _write_top(state, bid_key, bid_qty, ask_key, ask_qty, row, bid_px, bid_sz, ask_px, ask_sz)
    counters[_C_TOP] = row + 1


@nb.njit(cache=True)
def apply_depth_kernel(
    start, state, bid_key, bid_qty, ask_key, ask_qty,
    is_snapshot, first_id, last_id, prev_id, lvl_start, lvl_count, lvl_side, lvl_price, lvl_qty,
    pending, counters, outcome, applied, top_msg, bid_px, bid_sz, ask_px, ask_sz, gaps,
):
    """Process messages ``start..n`` in arrival order. Returns the index it stopped at:
    ``n`` when done, earlier when a side could overflow its capacity (grow and call again)."""
    capacity = bid_key.shape[0]
    n = is_snapshot.shape[0]
    for i in range(start, n):
        if is_snapshot[i]:
            if state[_SYNC] == LIVE and last_id[i] <= state[_LAST_ID]:
                outcome[i] = OUT_SNAPSHOT_SKIPPED
                continue
            need = lvl_count[i]
            for p in range(counters[_C_PENDING]):
                need += lvl_count[pending[p]]
            if need > capacity:
                return i
            state[_N_BID] = 0
            state[_N_ASK] = 0
            state[_BID_LO] = state[_ASK_LO] = capacity // 2
            _apply_message(state, bid_key, bid_qty, ask_key, ask_qty, lvl_start[i], lvl_count[i], lvl_side, lvl_price, lvl_qty)
            state[_LAST_ID] = last_id[i]
            if _is_crossed(state, bid_key, ask_key):
                outcome[i] = OUT_CROSSED
                _record_gap(counters, gaps, i,
                            last_id[i], last_id[i], GAP_CROSSED)
                state[_SYNC] = WAITING
                continue
            state[_SYNC] = SYNCING
            outcome[i] = OUT_SNAPSHOT
            applied[counters[_C_APPLIED]] = i
            counters[_C_APPLIED] += 1
            # Replay what was buffered while waiting; a new gap may re-buffer part of it.
            n_buffered = counters[_C_PENDING]
            buffered = pending[:n_buffered].copy()
            counters[_C_PENDING] = 0
            for b in range(n_buffered):
                _process_depth(
                    buffered[b], state, bid_key, bid_qty, ask_key, ask_qty,
                    first_id, last_id, prev_id, lvl_start, lvl_count, lvl_side, lvl_price, lvl_qty,
                    pending, counters, outcome, applied, top_msg, bid_px, bid_sz, ask_px, ask_sz, gaps,
                )
        else:
            if state[_N_BID] + lvl_count[i] > capacity or state[_N_ASK] + lvl_count[i] > capacity:
                return i
            _process_depth(
                i, state, bid_key, bid_qty, ask_key, ask_qty,
                first_id, last_id, prev_id, lvl_start, lvl_count, lvl_side, lvl_price, lvl_qty,
                pending, counters, outcome, applied, top_msg, bid_px, bid_sz, ask_px, ask_sz, gaps,
            )
    return n


def applied_clocks(exch_ts: np.ndarray, local_ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both clocks of depth messages given in the order they were applied (update-id order),
    made consistent with that order: (n,) int64 ``exch_ts`` and ``local_ts`` in, the same out.

    The update ids are the truth about order; the clocks are not always. A REST snapshot may
    carry no venue time (spot: <= 0), or one stamped after the diffs it already contains, and a
    diff received before the snapshot is applied after it. So:

    * venue clock: a message happened no later than any message applied after it (the book at
      a snapshot's id exists before the first diff past it): a backward running minimum, with
      an unknown time taking the next known one (trailing unknowns take the last known one;
      with none known at all they stay as given);
    * local clock: a message is usable no sooner than every message applied before it was
      received (a buffered diff waits for its snapshot): a forward running maximum.

    Stored rows, replays and feature rows all take their times from here, so ordering any of
    them by time orders them by update id.
    """
    exch = np.asarray(exch_ts, np.int64)
    local = np.maximum.accumulate(np.asarray(local_ts, np.int64)) if len(local_ts) else np.asarray(local_ts, np.int64)
    known = exch > 0
    if not known.any():
        return exch.copy(), local
    later = np.minimum.accumulate(np.where(known, exch, np.iinfo(np.int64).max)[::-1])[::-1]
    last_known = exch[np.flatnonzero(known)[-1]]
    return np.where(later == np.iinfo(np.int64).max, last_known, later), local


@dataclass
class DepthResult:
    """What :meth:`L2Book.apply_depth` did with a batch of depth messages.

    ``outcome[i]`` is one of the ``OUT_*`` codes for message i. ``applied`` lists the
    messages (snapshots included) in the order they were applied: the delta stream that
    rebuilds the book. ``top_msg[r]`` is the message after which top-L row r was taken.
    ``gaps`` has one row per time the book became invalid, columns ``GAP_*`` (message,
    expected and received update id, reason, top-L rows emitted before it).
    """

    outcome: np.ndarray
    applied: np.ndarray
    top_msg: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    gaps: np.ndarray


class L2Book:
    """A price-level book for one instrument; state persists across calls (files, live chunks).

    Parameters
    ----------
    depth : number of levels per side in emitted top-L rows (default 20).
    sequencing : ``SEQ_SPOT`` or ``SEQ_FUTURES``, the rule depth events must chain by.
    capacity : initial levels per side; grows by doubling as needed.
    """

    def __init__(self, depth: int = 20, sequencing: int = SEQ_FUTURES, capacity: int = 4096):
        if depth < 1:
            raise ValueError(f"depth={depth}: need at least one level")
        if sequencing not in (SEQ_SPOT, SEQ_FUTURES):
            raise ValueError(f"sequencing={sequencing!r}: expected SEQ_SPOT or SEQ_FUTURES")
        self.depth = depth
        self._state = np.zeros(7, dtype=np.int64)
        self._state[_RULE] = sequencing
        self._bid_key = np.empty(capacity)
        self._bid_qty = np.empty(capacity)
        self._ask_key = np.empty(capacity)
        self._ask_qty = np.empty(capacity)
        self.reset()

    # -- state ---------------------------------------------------------------------------
    @property
    def sync_state(self) -> int:
        return int(self._state[_SYNC])

    @property
    def is_valid(self) -> bool:
        return self.sync_state != WAITING

    @property
    def last_update_id(self) -> int:
        return int(self._state[_LAST_ID])

    def reset(self) -> None:
        """Forget the book: wait for the next snapshot."""
        middle = self._bid_key.shape[0] // 2
        self._state[[_N_BID, _N_ASK, _BID_LO, _ASK_LO, _SYNC, _LAST_ID]] = (0, 0, middle, middle, WAITING, 0)

    def levels(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """The whole book: bid prices, bid sizes, ask prices, ask sizes, best level first."""
        bids = slice(self._state[_BID_LO], self._state[_BID_LO] + self._state[_N_BID])
        asks = slice(self._state[_ASK_LO], self._state[_ASK_LO] + self._state[_N_ASK])
        return (
            self._bid_key[bids][::-1].copy(), self._bid_qty[bids][::-1].copy(),
            -self._ask_key[asks][::-1], self._ask_qty[asks][::-1].copy(),
        )

    def load(self, bid_px, bid_sz, ask_px, ask_sz, last_update_id: int) -> None:
        """Restore a live book (e.g. from the checkpoint the previous file left)."""
        self.reset()
        side = np.concatenate([np.ones(len(bid_px), np.int8), -np.ones(len(ask_px), np.int8)])
        self.apply_deltas(side, np.concatenate([bid_px, ask_px]), np.concatenate([bid_sz, ask_sz]))
        self._state[_LAST_ID] = last_update_id
        self._state[_SYNC] = LIVE

    def _ensure_capacity(self, needed: int) -> None:
        capacity = self._bid_key.shape[0]
        if needed <= capacity:
            return
        while capacity < needed:
            capacity *= 2
        for side, lo_at, n_at in (("bid", _BID_LO, _N_BID), ("ask", _ASK_LO, _N_ASK)):
            lo, n = self._state[lo_at], self._state[n_at]
            new_lo = (capacity - n) // 2  # room to grow at both ends
            for name in (f"_{side}_key", f"_{side}_qty"):
                grown = np.empty(capacity)
                grown[new_lo : new_lo + n] = getattr(self, name)[lo : lo + n]
                setattr(self, name, grown)
            self._state[lo_at] = new_lo

    def _top_arrays(self, rows: int):
        return tuple(np.empty((rows, self.depth)) for _ in range(4))

    # -- applying ------------------------------------------------------------------------
    def apply_deltas(self, side, price, qty):
        """Apply raw ``(side, price, qty)`` rows (side 1 bid, -1 ask; qty 0 removes).

        Returns the top-L after each row as ``(bid_px, bid_sz, ask_px, ask_sz)``, each
        of shape ``(len(side), depth)``, NaN where a side has fewer levels. No sequencing.
        """
        side = np.ascontiguousarray(side, dtype=np.int8)
        price = np.ascontiguousarray(price, dtype=np.float64)
        qty = np.ascontiguousarray(qty, dtype=np.float64)
        self._ensure_capacity(int(max(self._state[_N_BID], self._state[_N_ASK]) + len(side)))
        top = self._top_arrays(len(side))
        apply_deltas_kernel(self._state, self._bid_key, self._bid_qty, self._ask_key, self._ask_qty,
                            side, price, qty, *top)
        return top

    def apply_groups(self, group_start, group_count, is_snapshot, side, price, qty):
        """Apply rows grouped into events (rows ``group_start[g] : + group_count[g]``), for
        sources without venue update ids (simulator, stored deltas). A snapshot group replaces
        the book; a group that would cross the book is undone and reported.

        Returns ``(bid_px, bid_sz, ask_px, ask_sz, crossed)``: the top-L after each group
        (``(n_groups, depth)``) and a boolean per group.
        """
        group_start = np.ascontiguousarray(group_start, dtype=np.int64)
        group_count = np.ascontiguousarray(group_count, dtype=np.int64)
        side = np.ascontiguousarray(side, dtype=np.int8)
        price = np.ascontiguousarray(price, dtype=np.float64)
        qty = np.ascontiguousarray(qty, dtype=np.float64)
        self._ensure_capacity(int(max(self._state[_N_BID], self._state[_N_ASK]) + len(side)))
        top = self._top_arrays(len(group_start))
        crossed = np.zeros(len(group_start), np.bool_)
        undo = np.empty(int(group_count.max()) if len(group_count) else 0)
        apply_groups_kernel(self._state, self._bid_key, self._bid_qty, self._ask_key, self._ask_qty,
                            group_start, group_count, np.ascontiguousarray(is_snapshot, dtype=np.bool_),
                            side, price, qty, *top, crossed, undo)
        self._state[_SYNC] = LIVE
        return (*top, crossed)

    def apply_depth(self, is_snapshot, first_id, last_id, prev_id, lvl_start, lvl_count,
                    lvl_side, lvl_price, lvl_qty) -> DepthResult:
        """Apply depth messages in arrival order under the book's sequencing rule.

        Message arrays have one entry per message (``prev_id`` is -1 where the venue sends
        none); message i's levels are ``lvl_*[lvl_start[i] : lvl_start[i] + lvl_count[i]]``.
        Messages still buffered at the end (book invalid, no snapshot followed) are
        reported ``OUT_UNAPPLIED``; the buffer does not carry into the next call.
        """
        n = len(is_snapshot)
        pending = np.empty(n, np.int64)
        counters = np.zeros(4, np.int64)
        outcome = np.zeros(n, np.int8)
        applied = np.empty(n, np.int64)
        top_msg = np.empty(n, np.int64)
        top = self._top_arrays(n)
        gaps = np.empty((n, 5), np.int64)
        args = (np.ascontiguousarray(is_snapshot, dtype=np.bool_),
                *(np.ascontiguousarray(a, dtype=np.int64) for a in (first_id, last_id, prev_id, lvl_start, lvl_count)),
                np.ascontiguousarray(lvl_side, dtype=np.int8),
                np.ascontiguousarray(lvl_price, dtype=np.float64),
                np.ascontiguousarray(lvl_qty, dtype=np.float64))
        start = 0
        while start < n:
            start = apply_depth_kernel(
                start, self._state, self._bid_key, self._bid_qty, self._ask_key, self._ask_qty,
                *args, pending, counters, outcome, applied, top_msg, *top, gaps,
            )
            if start < n:  # a side could overflow: grow and resume at that message
                count = args[5]
                need = count[start] + sum(int(count[p]) for p in pending[: counters[_C_PENDING]])
                self._ensure_capacity(int(max(self._state[_N_BID], self._state[_N_ASK]) + need))
        outcome[pending[: counters[_C_PENDING]]] = OUT_UNAPPLIED
        counters_applied, counters_top, counters_gaps = counters[_C_APPLIED], counters[_C_TOP], counters[_C_GAPS]
        return DepthResult(
            outcome=outcome,
            applied=applied[:counters_applied],
            top_msg=top_msg[:counters_top],
            bid_px=top[0][:counters_top], bid_sz=top[1][:counters_top],
            ask_px=top[2][:counters_top], ask_sz=top[3][:counters_top],
            gaps=gaps[:counters_gaps],
        )
