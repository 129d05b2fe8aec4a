"""The Numba L2 book against a plain dict book, the sequencing rules, and grid sampling."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from genesis.book.l2 import (
    GAP_CROSSED, GAP_NOT_COVERED, GAP_REASON, GAP_SEQUENCE, LIVE, OUT_APPLIED, OUT_CROSSED, OUT_SNAPSHOT,
    OUT_SNAPSHOT_SKIPPED, OUT_STALE, OUT_UNAPPLIED, SEQ_FUTURES, SEQ_SPOT, WAITING, L2Book,
)
from genesis.book.sampling import grid_rows, parse_duration


class DictBook:
    """The obviously-correct reference: a dict per side, sorted on every read."""

    def __init__(self) -> None:
        self.sides = {1: {}, -1: {}}

    def apply(self, side: int, price: float, qty: float) -> None:
        if qty > 0:
            self.sides[side][price] = qty
        else:
            self.sides[side].pop(price, None)

    def top(self, depth: int) -> tuple[np.ndarray, ...]:
        out = []
        for side in (1, -1):
            levels = sorted(self.sides[side].items(), reverse=side == 1)[:depth]
            px = np.full(depth, np.nan)
            sz = np.full(depth, np.nan)
            for j, (p, q) in enumerate(levels):
                px[j], sz[j] = p, q
            out += [px, sz]
        return tuple(out)


delta = st.tuples(
    st.sampled_from([1, -1]),
    st.integers(min_value=1, max_value=60).map(lambda tick: tick * 0.5),  # few prices: many repeats
    st.sampled_from([0.0, 0.0, 0.001, 1.0, 2.5, 7.0]),  # removals are common in real feeds
)


@settings(max_examples=200, deadline=None)
@given(deltas=st.lists(delta, min_size=1, max_size=300), depth=st.integers(1, 12), capacity=st.sampled_from([1, 4, 64]))
def test_numba_book_matches_dict_book_after_every_delta(deltas, depth, capacity):
    side, price, qty = (np.array(col) for col in zip(*deltas))
    book = L2Book(depth=depth, capacity=capacity)
    bid_px, bid_sz, ask_px, ask_sz = book.apply_deltas(side, price, qty)
    reference = DictBook()
    for k, (s, p, q) in enumerate(deltas):
        reference.apply(s, p, q)
        expected = reference.top(depth)
        for got, want in zip((bid_px[k], bid_sz[k], ask_px[k], ask_sz[k]), expected):
            np.testing.assert_array_equal(got, want)
    full = book.levels()
    assert len(full[0]) == len(reference.sides[1]) and len(full[2]) == len(reference.sides[-1])


def _messages(specs):
    """specs: (is_snapshot, U, u, pu, [(side, price, qty), ...]) -> apply_depth arguments."""
    levels = [lvl for spec in specs for lvl in spec[4]]
    counts = np.array([len(spec[4]) for spec in specs])
    starts = np.concatenate(([0], np.cumsum(counts)[:-1]))
    side, price, qty = (np.array(col, dtype=float) for col in zip(*levels)) if levels else (np.empty(0),) * 3
    return dict(
        is_snapshot=np.array([s[0] for s in specs]), first_id=np.array([s[1] for s in specs]),
        last_id=np.array([s[2] for s in specs]), prev_id=np.array([s[3] for s in specs]),
        lvl_start=starts, lvl_count=counts, lvl_side=side.astype(np.int8), lvl_price=price, lvl_qty=qty,
    )


SNAP = [(1, 100.0, 1.0), (1, 99.0, 2.0), (-1, 101.0, 1.0), (-1, 102.0, 3.0)]


def test_futures_buffers_before_snapshot_drops_stale_and_chains_on_pu():
    book = L2Book(depth=2, sequencing=SEQ_FUTURES)
    result = book.apply_depth(**_messages([
        (0, 90, 95, 89, [(1, 100.0, 9.0)]),   # buffered, then stale (u < 100)
        (0, 96, 104, 95, [(1, 100.0, 5.0)]),  # buffered, covers the snapshot id 100: applied
        (1, -1, 100, -1, SNAP),               # snapshot arrives after the diffs it must follow
        (0, 105, 110, 104, [(-1, 101.0, 0.0)]),  # chained on pu == 104
    ]))
    assert result.outcome.tolist() == [OUT_STALE, OUT_APPLIED, OUT_SNAPSHOT, OUT_APPLIED]
    assert result.top_msg.tolist() == [1, 3]
    assert result.applied.tolist() == [2, 1, 3]  # application order: snapshot, then the buffered event
    np.testing.assert_array_equal(result.bid_sz[0], [5.0, 2.0])
    np.testing.assert_array_equal(result.ask_px[1], [102.0, np.nan])
    assert book.sync_state == LIVE and book.last_update_id == 110


def test_spot_rule_uses_u_plus_one_and_a_gap_invalidates_until_the_next_snapshot():
    book = L2Book(depth=1, sequencing=SEQ_SPOT)
    result = book.apply_depth(**_messages([
        (1, -1, 100, -1, SNAP),
        (0, 95, 100, -1, [(1, 100.0, 7.0)]),   # stale: u <= 100
        (0, 101, 103, -1, [(1, 100.0, 4.0)]),  # covers 101
        (0, 105, 106, -1, [(1, 100.0, 3.0)]),  # gap: expected U = 104
        (0, 107, 108, -1, [(1, 100.0, 2.0)]),  # buffered while invalid
    ]))
    assert result.outcome.tolist() == [OUT_SNAPSHOT, OUT_STALE, OUT_APPLIED, OUT_UNAPPLIED, OUT_UNAPPLIED]
    assert len(result.gaps) == 1 and result.gaps[0, GAP_REASON] == GAP_SEQUENCE
    assert result.gaps[0, 1:3].tolist() == [104, 105]
    assert book.sync_state == WAITING and not book.is_valid


def test_resync_after_gap_replays_buffered_events_after_the_new_snapshot():
    book = L2Book(depth=1, sequencing=SEQ_FUTURES)
    result = book.apply_depth(**_messages([
        (1, -1, 100, -1, SNAP),
        (0, 99, 101, 100, [(1, 100.0, 4.0)]),
        (0, 120, 121, 119, [(1, 100.0, 3.0)]),  # gap (pu 119 != 101): buffered
        (0, 122, 130, 121, [(1, 100.0, 2.0)]),  # buffered
        (1, -1, 125, -1, SNAP),                 # new snapshot: 121 stale, 122..130 covers 125
    ]))
    assert result.outcome.tolist() == [OUT_SNAPSHOT, OUT_APPLIED, OUT_STALE, OUT_APPLIED, OUT_SNAPSHOT]
    assert book.is_valid and book.last_update_id == 130
    np.testing.assert_array_equal(result.bid_sz[:, 0], [4.0, 2.0])


def test_first_event_that_does_not_cover_the_snapshot_is_a_gap():
    book = L2Book(depth=1, sequencing=SEQ_FUTURES)
    result = book.apply_depth(**_messages([(1, -1, 100, -1, SNAP), (0, 102, 105, 101, [(1, 100.0, 1.0)])]))
    assert result.gaps[0, GAP_REASON] == GAP_NOT_COVERED
    assert result.outcome.tolist() == [OUT_SNAPSHOT, OUT_UNAPPLIED]


def test_update_that_crosses_the_book_is_rejected_and_invalidates():
    book = L2Book(depth=1, sequencing=SEQ_FUTURES)
    result = book.apply_depth(**_messages([
        (1, -1, 100, -1, SNAP),
        (0, 100, 101, 99, [(1, 101.5, 1.0)]),  # bid above the best ask 101
        (0, 102, 103, 101, [(1, 99.0, 1.0)]),
    ]))
    assert result.outcome.tolist() == [OUT_SNAPSHOT, OUT_CROSSED, OUT_UNAPPLIED]
    assert result.gaps[0, GAP_REASON] == GAP_CROSSED
    assert len(result.top_msg) == 0 and not book.is_valid


def test_older_snapshot_does_not_rewind_a_live_book():
    book = L2Book(depth=1, sequencing=SEQ_FUTURES)
    result = book.apply_depth(**_messages([
        (1, -1, 100, -1, SNAP), (0, 100, 110, 99, [(1, 100.0, 6.0)]), (1, -1, 105, -1, SNAP),
        (0, 111, 112, 110, [(1, 99.0, 0.0)]),
    ]))
    assert result.outcome.tolist() == [OUT_SNAPSHOT, OUT_APPLIED, OUT_SNAPSHOT_SKIPPED, OUT_APPLIED]
    assert result.bid_sz[-1, 0] == 6.0


def test_capacity_grows_mid_batch_without_changing_the_result():
    rng = np.random.default_rng(3)
    specs = [(1, -1, 10, -1, [(1, 100.0 - k, 1.0) for k in range(50)] + [(-1, 101.0 + k, 1.0) for k in range(50)])]
    for u in range(11, 300):
        specs.append((0, u, u, u - 1, [(1, float(rng.integers(1, 100)), float(rng.integers(0, 3))),
                                       (-1, float(rng.integers(101, 200)), float(rng.integers(0, 3)))]))
    small = L2Book(depth=5, sequencing=SEQ_SPOT, capacity=2)
    large = L2Book(depth=5, sequencing=SEQ_SPOT, capacity=4096)
    a, b = small.apply_depth(**_messages(specs)), large.apply_depth(**_messages(specs))
    np.testing.assert_array_equal(a.bid_px, b.bid_px)
    np.testing.assert_array_equal(a.ask_sz, b.ask_sz)
    assert (a.outcome == OUT_APPLIED).sum() == 289


def test_grid_rows_match_a_loop_reference():
    rng = np.random.default_rng(11)
    row_ts = np.sort(rng.integers(1_000, 50_000, 300))
    breaks_rows_before = np.array([40, 200])
    row_ts[40:] += 5_000  # the book stays broken for a while before each resync
    row_ts[200:] += 5_000
    breaks_ts = row_ts[breaks_rows_before - 1] + 7  # broke shortly after rows 39 and 199
    times, source = grid_rows(row_ts, breaks_ts, breaks_rows_before, 250)
    for t, s in zip(times, source):
        in_force = int(np.searchsorted(row_ts, t, side="right") - 1)
        broken = any(r - 1 == in_force and bt <= t for r, bt in zip(breaks_rows_before, breaks_ts))
        assert s == (-1 if broken else in_force)
    assert times[0] % 250 == 0 and times[0] >= row_ts[0] and (source == -1).any()


@pytest.mark.parametrize("text, ns", [("100ms", 100_000_000), ("1s", 10**9), ("5min", 300 * 10**9), ("250us", 250_000)])
def test_parse_duration(text, ns):
    assert parse_duration(text) == ns


@pytest.mark.parametrize("text", ["", "100", "0ms", "1 hour", "-5s"])
def test_parse_duration_rejects_unclear_input(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
