"""Features in the store: build them from the stored book rows and trades, read them back.

>>> from genesis.features.store import build_features, read_features
>>> build_features("BTCUSDT", "2024-08-08", "2024-08-09")          # the default set, event rows
>>> frame = read_features("BTCUSDT", columns=["mid", "ofi_l1_w1"])  # ts (UTC) + the columns

Inputs (:func:`load_inputs`) are the ``'event'`` rows of ``book_snapshots`` (one per applied
depth event) in ``[start, end)``, preceded by up to ``warmup_rows`` rows before ``start`` so
that windowed features are exact from ``start``. A row's ``updates`` is the number of
``depth_deltas`` rows of its depth event (same ``seq``). The trades are those with
``exch_ts`` in ``(t0, t1]``: t0 the time of the stored row just before the first loaded row,
t1 the last loaded row's. These are exactly the trades a batch over every stored row hands the
loaded rows (a row takes the trades after the previous row, up to its own time); with no
earlier row, every trade up to t1 is taken, as such a batch would. Other samplings resample
these rows with :func:`genesis.features.sampling.sample`.

:func:`build_features` reads the range in time chunks (an hour by default). The chunks
continue one another (:class:`_ChunkReader`) and a :class:`~genesis.features.engine.FeatureStream`
carries the kernels' state across them: memory stays bounded over months of data, and the
values equal one batch over the range. Rows go to the ``features`` table
(``clickhouse/003_features.sql``), a Float64 column per feature column; each set's spec is
recorded in ``feature_sets``.
"""

from __future__ import annotations

import json
import math
import re
import time
from dataclasses import dataclass
from typing import Any, Iterable

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from tqdm.auto import tqdm

from genesis.features.engine import FeatureStream, Snapshots, Trades
from genesis.features.registry import FeatureInstance, FeatureSpec
from genesis.store.queries import add_time_range, to_ns

DEFAULT_CHUNK = "1h"
KEY_COLUMNS = ("symbol", "feature_set", "sampling", "ts", "row_in_ts")
# Feature columns become SQL identifiers (ALTER TABLE ... ADD COLUMN, SELECT) and identifiers
# cannot be bound as parameters: every name must match this before it goes into SQL text.
_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")
_BOOK = ("bid_px", "bid_sz", "ask_px", "ask_sz")
_NO_TS = np.iinfo(np.int64).min  # "no lower bound" for the trades


# -- reading the inputs ----------------------------------------------------------------------

def load_inputs(store, symbol: str, start: Any = None, end: Any = None, sampling: str = "event", warmup_rows: int = 0,
                levels: int | None = None) -> tuple[Snapshots, Trades, int]:
    """The snapshots and trades of ``symbol`` for ``[start, end)``, from an open store.

    Returns ``(snapshots, trades, n_warmup)``; the first ``n_warmup`` rows (at most
    ``warmup_rows``) lie before ``start``, the rest in ``[start, end)``. ``symbol`` may be bare
    (``BTCUSDT``) when one venue has it; ``start``/``end`` anything :class:`pandas.Timestamp`
    reads (naive means UTC), None for the symbol's first row / past its last. ``sampling`` is ``'event'`` or what
    :func:`genesis.features.sampling.sample` takes (``'100ms'``, ``'volume:5'``,
    ``'notional:1e6'``); ``warmup_rows`` then counts resampled rows. Volume and notional bars
    count the traded amount from the first trade read, so their boundaries depend on where
    reading starts. ``levels`` keeps that many book levels (NaN-padded); None keeps all stored.
    Raises ValueError when the symbol has no event rows in the range.
    """
    _check_sampling(sampling)
    symbol = stored_symbol(store, symbol)
    lo, hi = _range(store, symbol, start, end)
    loaded = _ChunkReader(symbol, sampling.strip(), levels, int(warmup_rows)).read(store, lo, hi)
    if loaded is None:
        raise _empty_range_error(store, symbol, lo, hi)
    return loaded


class _ChunkReader:
    """Reads ``[lo, hi)`` ranges one after another (the first with warm-up rows) so that each
    continues the previous: :class:`FeatureStream` over the chunks equals one batch over the
    whole range (``load_inputs`` is a single read).

    Event rows: a chunk's trades are those after the previous chunk's last row. Resampled rows
    also carry, from chunk to chunk, the last event row (the book in force for the next grid
    times, holding the updates that no sampled row has counted yet), the trades after the last
    sampled row, and for bars the traded amount since the last bar boundary.
    """

    def __init__(self, symbol: str, sampling: str, levels: int | None, warmup_rows: int):
        self.symbol, self.sampling, self.levels, self.warmup_rows = symbol, sampling, levels, warmup_rows
        self.bars = sampling.split(":", 1)[0] if sampling.startswith(("volume:", "notional:")) else None
        self.started = False
        self.last_event_ts = _NO_TS  # trades after it belong to the next chunk
        self.carry_row: Snapshots | None = None
        self.carry_trades = Trades.empty()
        self.last_sampled_ts = _NO_TS
        self.residual = 0.0

    def read(self, store, lo: int, hi: int) -> tuple[Snapshots, Trades, int] | None:
        """The chunk's ``(snapshots, trades, n_warmup)``; None when it adds no rows to compute."""
        rows, seq = _event_rows(store, self.symbol, lo, hi, self.levels)
        if not len(rows):
            return None
        first = not self.started
        self.started = True
        if self.sampling == "event":
            return self._read_events(store, lo, rows, seq, first)
        return self._read_resampled(store, lo, rows, seq, first)

    def _read_events(self, store, lo, rows, seq, first):
        after, n_warmup = self.last_event_ts, 0
        if first:
            before, before_seq, after = self._rows_before(store, lo, self.warmup_rows)
            rows, seq, n_warmup = _concat(before, rows), np.concatenate([before_seq, seq]), len(before)
        rows.updates = _updates(store, self.symbol, rows.ts, seq)
        self.last_event_ts = int(rows.ts[-1])
        return rows, _trades(store, self.symbol, after, self.last_event_ts), n_warmup

    def _rows_before(self, store, lo: int, n: int) -> tuple[Snapshots, np.ndarray, int]:
        """The last ``n`` event rows before ``lo`` and the time of the row before them
        (``_NO_TS`` when there is none): the lower bound of their trades."""
        before, seq = _event_rows_before(store, self.symbol, lo, n + 1, self.levels)
        if len(before) > n:
            return before.take(slice(1, None)), seq[1:], int(before.ts[0])
        return before, seq, _NO_TS

    def _read_resampled(self, store, lo, rows, seq, first):
        from genesis.features.sampling import sample

        rows.updates = _updates(store, self.symbol, rows.ts, seq)
        last_ts = int(rows.ts[-1])
        if first:
            # Event rows before `lo`: enough for warmup_rows + 1 sampled rows (the extra one
            # bounds the first warm-up row's trades and updates) and at least the row in
            # force at `lo`; read more until there are, or the data runs out.
            n = self.warmup_rows + 2
            while True:
                before, before_seq, after = self._rows_before(store, lo, n)
                before.updates = _updates(store, self.symbol, before.ts, before_seq)
                events = _concat(before, rows)
                new_trades = _trades(store, self.symbol, after, last_ts)
                sampled = sample(events, new_trades, self.sampling)
                n_before = int(np.searchsorted(sampled.ts, lo, side="left"))
                if n_before > self.warmup_rows or len(before) < n:
                    break
                n *= 4
            drop = n_before - min(n_before, self.warmup_rows)
            n_warmup = n_before - drop
            self.last_sampled_ts = int(sampled.ts[drop - 1]) if drop else after
        else:
            events = _concat(self.carry_row, rows)
            new_trades = _trades(store, self.symbol, self.last_event_ts, last_ts)
            bar_trades = new_trades
            if self.bars:
                # Continue the running traded amount where the previous chunk left it.
                carried = Trades(events.ts[:1], [1.0], [self.residual], [0.0])
                bar_trades = _concat_trades(carried, new_trades)
            sampled = sample(events, bar_trades, self.sampling)
            # A grid time equal to the carried row's time was the previous chunk's last sample.
            drop = int(np.searchsorted(sampled.ts, self.last_sampled_ts, side="right"))
            n_warmup = 0
        self.last_event_ts = last_ts
        if self.bars:
            self.residual = self._bar_residual(new_trades, self.residual)
        # The last event row is in force until the next chunk's first; it carries the updates
        # of the rows after the last sampled one, which the next sampled row covers.
        uncovered = float(events.updates.sum() - sampled.updates.sum())
        self.carry_row = events.take(slice(len(events) - 1, None))
        self.carry_row.updates = np.array([uncovered])

        pending = _concat_trades(self.carry_trades, new_trades)
        kept = sampled.take(slice(drop, None))
        if not len(kept):
            self.carry_trades = pending
            return None
        # The kept rows take the trades after the previous sampled row up to the last kept
        # row; later trades wait for the next chunk's rows.
        lower = 0 if self.last_sampled_ts == _NO_TS else int(np.searchsorted(pending.ts, self.last_sampled_ts, "right"))
        upper = int(np.searchsorted(pending.ts, kept.ts[-1], side="right"))
        trades = _take_trades(pending, slice(lower, upper))
        self.carry_trades = _take_trades(pending, slice(upper, None))
        self.last_sampled_ts = int(kept.ts[-1])
        return kept, trades, n_warmup

    def _bar_residual(self, trades: Trades, residual: float) -> float:
        """Traded amount since the last bar boundary, after ``trades``."""
        from genesis.features import sampling as sampling_module

        size = float(self.sampling.split(":", 1)[1])
        amount = trades.qty if self.bars == "volume" else trades.price * trades.qty
        total = math.fsum([residual, *np.nan_to_num(amount).tolist()])
        slack = sampling_module.REL_SLACK  # sample()'s tolerance for decimal sizes
        return max(0.0, total - size * math.floor(total / size * (1.0 + slack)))


_BOOK_ROWS = """
SELECT exch_ts, seq, %BOOK%
FROM book_snapshots
WHERE symbol = {symbol:String} AND sampling = 'event' AND %WHERE%
ORDER BY exch_ts %ORDER%, seq %ORDER%
%LIMIT%
"""


def _book_select(levels: int | None) -> tuple[str, dict[str, Any]]:
    if levels is None:
        return ", ".join(_BOOK), {}
    # Exactly `levels` values per row, NaN-padded where the stored book was shallower.
    sliced = "arrayResize(arraySlice(NAME, 1, {levels:UInt32}), {levels:UInt32}, nan) AS NAME"
    return ", ".join(sliced.replace("NAME", name) for name in _BOOK), {"levels": int(levels)}


def _event_rows(store, symbol: str, lo: int, hi: int, levels: int | None) -> tuple[Snapshots, np.ndarray]:
    """Event rows with ``lo <= exch_ts < hi`` in order, and their ``seq``."""
    book, parameters = _book_select(levels)
    sql = (_BOOK_ROWS.replace("%BOOK%", book).replace("%ORDER%", "ASC").replace("%LIMIT%", "")
           .replace("%WHERE%", "exch_ts >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC')"
                               " AND exch_ts < fromUnixTimestamp64Nano({hi:Int64}, 'UTC')"))
    return _snapshots(store.query_arrow(sql, {"symbol": symbol, "lo": lo, "hi": hi, **parameters}), levels)


def _event_rows_before(store, symbol: str, before: int, n: int, levels: int | None) -> tuple[Snapshots, np.ndarray]:
    """The last ``n`` event rows with ``exch_ts < before``, in order, and their ``seq``."""
    book, parameters = _book_select(levels)
    sql = (_BOOK_ROWS.replace("%BOOK%", book).replace("%ORDER%", "DESC").replace("%LIMIT%", "LIMIT {n:UInt64}")
           .replace("%WHERE%", "exch_ts < fromUnixTimestamp64Nano({before:Int64}, 'UTC')"))
    table = store.query_arrow(sql, {"symbol": symbol, "before": before, "n": n, **parameters})
    return _snapshots(table, levels, reverse=True)


def _snapshots(table: pa.Table, levels: int | None, reverse: bool = False) -> tuple[Snapshots, np.ndarray]:
    arrays = [table.column(name).combine_chunks() for name in _BOOK]
    width = levels or max([1, *(pc.max(pc.list_value_length(a)).as_py() or 0 for a in arrays if len(a))])
    order = slice(None, None, -1) if reverse else slice(None)
    columns = [_int64(table.column("exch_ts")), *(_matrix(a, width) for a in arrays), _int64(table.column("seq"))]
    columns = [np.ascontiguousarray(c[order]) for c in columns]
    return Snapshots(*columns[:5]), columns[5]


def _matrix(lists: pa.Array, width: int) -> np.ndarray:
    """A list column as an ``(n, width)`` float64 matrix, NaN where a row is shorter."""
    n = len(lists)
    values = pc.list_flatten(lists).to_numpy(zero_copy_only=False)
    lengths = pc.list_value_length(lists).to_numpy(zero_copy_only=False).astype(np.int64)
    if len(values) == n * width and np.all(lengths == width):
        return _float64(values).reshape(n, width)
    out = np.full((n, width), np.nan)
    rows = np.repeat(np.arange(n), lengths)
    cols = np.arange(len(values)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    keep = cols < width
    out[rows[keep], cols[keep]] = values[keep]
    return out


def _concat(a: Snapshots | None, b: Snapshots) -> Snapshots:
    if a is None or not len(a):
        return b
    return Snapshots(*(np.concatenate([getattr(a, n), getattr(b, n)]) for n in ("ts", *_BOOK, "updates")))


def _updates(store, symbol: str, ts: np.ndarray, seq: np.ndarray) -> np.ndarray:
    """Level updates of each row's depth event: its ``depth_deltas`` rows (same ``seq``)."""
    if not len(ts):
        return np.zeros(0)
    # A row's exch_ts is its depth event's, so the rows' time span bounds the deltas to count.
    table = store.query_arrow(
        "SELECT seq, count() AS n FROM depth_deltas WHERE symbol = {symbol:String}"
        " AND exch_ts >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC')"
        " AND exch_ts <= fromUnixTimestamp64Nano({hi:Int64}, 'UTC') GROUP BY seq ORDER BY seq",
        {"symbol": symbol, "lo": int(ts[0]), "hi": int(ts[-1])},
    )
    seqs = _int64(table.column("seq"))
    if not len(seqs):
        return np.zeros(len(ts))
    counts = _float64(table.column("n"))
    at = np.minimum(np.searchsorted(seqs, seq), len(seqs) - 1)
    return np.where(seqs[at] == seq, counts[at], 0.0)


def _trades(store, symbol: str, after: int, until: int) -> Trades:
    """Trades with ``after < exch_ts <= until`` (``after`` = _NO_TS: no lower bound), in time order."""
    where = "symbol = {symbol:String} AND exch_ts <= fromUnixTimestamp64Nano({until:Int64}, 'UTC')"
    parameters: dict[str, Any] = {"symbol": symbol, "until": until}
    if after != _NO_TS:
        where += " AND exch_ts > fromUnixTimestamp64Nano({after:Int64}, 'UTC')"
        parameters["after"] = after
    table = store.query_arrow(
        f"SELECT exch_ts, price, qty, aggressor FROM trades WHERE {where} ORDER BY exch_ts, trade_id", parameters)
    return Trades(_int64(table.column("exch_ts")), _float64(table.column("price")),
                  _float64(table.column("qty")), _float64(table.column("aggressor")))


def _concat_trades(a: Trades, b: Trades) -> Trades:
    if not len(a):
        return b
    return Trades(*(np.concatenate([getattr(a, n), getattr(b, n)]) for n in ("ts", "price", "qty", "side")))


def _take_trades(t: Trades, rows: slice) -> Trades:
    return Trades(t.ts[rows], t.price[rows], t.qty[rows], t.side[rows])


def _int64(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    if pa.types.is_timestamp(column.type):
        column = column.cast(pa.int64())
    return np.array(column.to_numpy(), dtype=np.int64)


def _float64(values: Any) -> np.ndarray:
    # Arrow hands out read-only views. Numba compiles read-only arrays as another type, so
    # passing them to the kernels would compile (and cache) every kernel a second time.
    if isinstance(values, (pa.ChunkedArray, pa.Array)):
        values = values.to_numpy()
    return np.array(values, dtype=np.float64)


def _check_sampling(sampling: str) -> None:
    """Fail early on a sampling that :func:`genesis.features.sampling.sample` would refuse."""
    if str(sampling).strip() == "event":
        return
    from genesis.features.sampling import sample_index

    empty = Snapshots(np.empty(0, np.int64), np.empty((0, 1)), np.empty((0, 1)), np.empty((0, 1)), np.empty((0, 1)))
    sample_index(empty, Trades.empty(), str(sampling))


# -- building ---------------------------------------------------------------------------------

@dataclass
class BuildReport:
    """What :func:`build_features` wrote: ``rows`` rows of ``columns`` for ``[start, end)``."""

    symbol: str
    feature_set: str
    sampling: str
    start: pd.Timestamp
    end: pd.Timestamp
    rows: int
    columns: list[str]
    warmup_rows: int  # rows read before start to warm the features up (not written)
    chunks: int
    seconds: float
    replaced: bool = False  # the set had another spec; its rows were deleted first

    def summary(self) -> str:
        replaced = "; the set's earlier spec and rows were replaced" if self.replaced else ""
        return (f"{self.symbol}: {self.rows:,} rows x {len(self.columns)} columns of feature set "
                f"{self.feature_set!r} ({self.sampling}) for [{_text(self.start)}, {_text(self.end)}), "
                f"{self.warmup_rows} warm-up rows, {self.chunks} chunk(s), {self.seconds:.2f} s{replaced}")


def build_features(symbol: str, start: Any = None, end: Any = None, spec: Any = None, sampling: str = "event",
                   feature_set: str = "default", store_url: str | None = None, chunk: str | None = DEFAULT_CHUNK,
                   progress: bool = True, *, replace: bool = False, warmup: int | None = None) -> BuildReport:
    """Compute ``spec`` over ``symbol``'s stored book rows in ``[start, end)`` and store the values.

    ``spec``: a :class:`FeatureSpec`, items (``["mid", "ofi(level=3)"]``), ``"mid;ofi(level=3)"``
    or None for the default set. ``start``/``end``: anything :class:`pandas.Timestamp` reads
    (naive means UTC); None means the symbol's first / last stored row. ``sampling``: see
    :func:`load_inputs`. ``warmup``: rows read before ``start`` so that windowed features are
    exact from ``start`` (default: the spec's lookback). ``chunk``: the time span read at once
    (a :class:`pandas.Timedelta` text; None reads the range at once).

    Rebuilding a range replaces its rows of this symbol, set and sampling (never duplicates).
    A set recorded with another spec is refused unless ``replace=True``, which deletes all the
    set's rows (every symbol and sampling) and records the new spec.
    """
    from genesis.store import connect, migrate

    started = time.perf_counter()
    spec = FeatureSpec.coerce(spec)
    columns = _checked_columns(spec)
    sampling = str(sampling).strip()
    _check_sampling(sampling)
    if not str(feature_set).strip():
        raise ValueError("feature set name is empty")
    warmup = spec.lookback if warmup is None else int(warmup)
    if warmup < 0:
        raise ValueError(f"warmup={warmup}: expected a number of rows >= 0")
    chunk_ns = _chunk_ns(chunk)

    with connect(store_url) as store:
        migrate(store)
        symbol = stored_symbol(store, symbol)
        lo, hi = _range(store, symbol, start, end)
        chunks = _chunks(store, symbol, lo, hi, chunk_ns)
        if not chunks:
            raise _empty_range_error(store, symbol, lo, hi)
        _check_levels(store, symbol, lo, hi, spec)
        replaced = _record_set(store, feature_set, spec, replace)
        _add_columns(store, columns)
        # One delete for the whole range: rows of an earlier build that no longer exist
        # (data re-ingested since) go too. Rebuilding after an interruption completes it.
        store.command(
            "DELETE FROM features WHERE symbol = {symbol:String} AND feature_set = {set:String}"
            " AND sampling = {sampling:String} AND ts >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC')"
            " AND ts < fromUnixTimestamp64Nano({hi:Int64}, 'UTC')",
            {"symbol": symbol, "set": feature_set, "sampling": sampling, "lo": lo, "hi": hi},
        )

    stream = FeatureStream(spec, spec.levels)
    reader = _ChunkReader(symbol, sampling, spec.levels, warmup)
    rows_written = warmup_rows = 0
    bar = tqdm(total=sum(n for _, _, n in chunks), unit="row", unit_scale=True, disable=not progress,
               desc=f"features {symbol} {sampling}")
    try:
        for c0, c1, n_events in chunks:
            # One short lease per chunk (read, compute, write): between chunks another process
            # can have the embedded store. Reopening costs ~0.1 s, so not two leases per chunk.
            with connect(store_url) as store:
                loaded = reader.read(store, c0, c1)
                if loaded is not None:
                    snaps, trades, n_warmup = loaded
                    values = stream.process(snaps, trades)
                    warmup_rows += n_warmup
                    ts = snaps.ts[n_warmup:]
                    if len(ts):
                        rows_written += store.insert_columns("features", {
                            "symbol": symbol, "feature_set": feature_set, "sampling": sampling, "ts": ts,
                            "row_in_ts": _rank_in_ts(ts),
                            **{name: values[j, n_warmup:] for j, name in enumerate(columns)},
                        })
            bar.update(n_events)
    finally:
        bar.close()
    return BuildReport(symbol, feature_set, sampling, pd.Timestamp(lo, tz="UTC"), pd.Timestamp(hi, tz="UTC"),
                       rows_written, columns, warmup_rows, len(chunks), time.perf_counter() - started, replaced)


def spec_items(spec: Any) -> list[str]:
    """A spec as text items that :class:`FeatureSpec` parses back, every parameter explicit
    (``"ofi(level=3, window=1)"``, ``"... as alias"``): what ``feature_sets`` records."""
    return [_item_text(inst) for inst in FeatureSpec.coerce(spec).instances]


def _item_text(inst: FeatureInstance) -> str:
    def number(value: float) -> str:
        return str(int(value)) if value == int(value) and abs(value) < 2**53 else repr(float(value))

    args = ", ".join(f"{name}={number(value)}" for name, value in inst.params.items())
    text = f"{inst.feature.name}({args})" if args else inst.feature.name
    return f"{text} as {inst.alias}" if inst.alias else text


def _checked_columns(spec: FeatureSpec) -> list[str]:
    for name in spec.columns:
        if not _IDENTIFIER.fullmatch(name) or name in KEY_COLUMNS:
            raise ValueError(f"feature column {name!r} cannot be stored: a column name must be lower-case "
                             f"letters, digits and _ and not one of {', '.join(KEY_COLUMNS)}")
    return spec.columns


def _chunk_ns(chunk: str | None) -> int | None:
    if chunk is None:
        return None
    try:
        ns = pd.Timedelta(chunk).value
    except ValueError:
        raise ValueError(f"chunk={chunk!r}: expected a duration such as 1h, 30min or 1D") from None
    if ns <= 0:
        raise ValueError(f"chunk={chunk!r}: expected a positive duration")
    return ns


def time_span(store, symbol: str) -> tuple[int, int]:
    """First and last event-row time (ns) of a stored ``symbol`` (as stored, namespaced)."""
    first, last, n = store.query_rows(
        "SELECT toUnixTimestamp64Nano(min(exch_ts)), toUnixTimestamp64Nano(max(exch_ts)), count() FROM book_snapshots"
        " WHERE symbol = {symbol:String} AND sampling = 'event'", {"symbol": symbol})[0]
    if not n:
        raise _empty_range_error(store, symbol, 0, 0)
    return int(first), int(last)


def _range(store, symbol: str, start: Any, end: Any) -> tuple[int, int]:
    """``[lo, hi)`` in ns; a missing bound is the symbol's first / just after its last event row."""
    if start is None or end is None:
        first, last = time_span(store, symbol)
    lo = to_ns(start) if start is not None else first
    hi = to_ns(end) if end is not None else last + 1
    if hi <= lo:
        raise ValueError(f"empty time range: [{_text(lo)}, {_text(hi)}) (the end must come after the start)")
    return lo, hi


def _chunks(store, symbol: str, lo: int, hi: int, chunk_ns: int | None) -> list[tuple[int, int, int]]:
    """``(start, end, event rows)`` of the chunks of ``[lo, hi)`` that hold rows, aligned to
    multiples of ``chunk_ns`` since the epoch."""
    size = chunk_ns or max(hi - lo, 1)
    origin = lo if chunk_ns is None else 0
    rows = store.query_rows(
        "SELECT intDiv(toUnixTimestamp64Nano(exch_ts) - {origin:Int64}, {size:Int64}) AS k, count()"
        " FROM book_snapshots WHERE symbol = {symbol:String} AND sampling = 'event'"
        " AND exch_ts >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC')"
        " AND exch_ts < fromUnixTimestamp64Nano({hi:Int64}, 'UTC') GROUP BY k ORDER BY k",
        {"symbol": symbol, "lo": lo, "hi": hi, "origin": origin, "size": size},
    )
    return [(max(lo, origin + k * size), min(hi, origin + (k + 1) * size), int(n)) for k, n in rows]


def _check_levels(store, symbol: str, lo: int, hi: int, spec: FeatureSpec) -> None:
    stored = store.query_rows(
        "SELECT max(length(bid_px)) FROM book_snapshots WHERE symbol = {symbol:String} AND sampling = 'event'"
        " AND exch_ts >= fromUnixTimestamp64Nano({lo:Int64}, 'UTC')"
        " AND exch_ts < fromUnixTimestamp64Nano({hi:Int64}, 'UTC')",
        {"symbol": symbol, "lo": lo, "hi": hi})[0][0]
    if stored < spec.levels:
        need = ", ".join(str(i) for i in spec.instances if i.levels > stored)
        raise ValueError(f"the stored book rows of {symbol} have {stored} levels; {need} need(s) more "
                         f"(re-ingest with --levels {spec.levels} or lower the features' levels)")


def _record_set(store, name: str, spec: FeatureSpec, replace: bool) -> bool:
    """Record (or refresh) the set's spec; a different recorded spec is refused unless
    ``replace``, which first deletes the set's rows. Returns whether it replaced one."""
    items = spec_items(spec)
    recorded = store.query_rows(
        "SELECT spec, columns FROM feature_sets FINAL WHERE feature_set = {name:String}", {"name": name})
    replaced = False
    # The same items in another order are the same set: every column holds the same values.
    if recorded and sorted(json.loads(recorded[0][0])) != sorted(items):
        old_columns = list(recorded[0][1])
        if not replace:
            added = [c for c in spec.columns if c not in old_columns]
            dropped = [c for c in old_columns if c not in spec.columns]
            change = "; ".join(part for part in (
                f"adds {_few(added)}" if added else "", f"drops {_few(dropped)}" if dropped else "",
                "same columns, other parameters" if not (added or dropped) else "") if part)
            raise ValueError(
                f"feature set {name!r} is stored with another spec ({len(old_columns)} columns; this spec "
                f"{change}). Replace it (replace=True, --replace: deletes the set's stored rows) or name "
                f"this spec differently (feature_set=, --set NAME)")
        store.command("DELETE FROM features WHERE feature_set = {name:String}", {"name": name})
        replaced = True
    store.insert_columns("feature_sets", {
        "feature_set": [name], "spec": [json.dumps(items)], "columns": [spec.columns],
        "levels": np.array([spec.levels], np.uint32), "lookback": np.array([spec.lookback], np.uint64),
        "built_at": np.array([time.time_ns()], np.int64),
    })
    return replaced


def _few(names: list[str], n: int = 6) -> str:
    return ", ".join(names[:n]) + (f" and {len(names) - n} more" if len(names) > n else "")


def _add_columns(store, columns: list[str]) -> None:
    existing = {row[0] for row in store.query_rows(
        "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = 'features'")}
    missing = [name for name in columns if name not in existing]
    for name in missing:  # checked by _checked_columns: plain identifiers only
        if not _IDENTIFIER.fullmatch(name):
            raise ValueError(f"feature column {name!r} is not a plain identifier")
    if missing:
        # Default codec (LZ4): see clickhouse/003_features.sql for the measurement.
        store.command("ALTER TABLE features " + ", ".join(
            f"ADD COLUMN IF NOT EXISTS {name} Float64 DEFAULT nan" for name in missing))


def _rank_in_ts(ts: np.ndarray) -> np.ndarray:
    """0 for the first row of each time, 1 for the next row with the same time, ..."""
    n = len(ts)
    if not n:
        return np.zeros(0, np.uint32)
    starts = np.r_[True, ts[1:] != ts[:-1]]
    first = np.maximum.accumulate(np.where(starts, np.arange(n), 0))
    return (np.arange(n) - first).astype(np.uint32)


# -- reading back -----------------------------------------------------------------------------

def read_features(symbol: str, start: Any = None, end: Any = None, columns: Iterable[str] | None = None,
                  feature_set: str = "default", sampling: str = "event", store_url: str | None = None) -> pd.DataFrame:
    """Stored features of ``symbol``: a ``ts`` column (UTC) then the set's columns, or ``columns``.

    ``start`` (inclusive) and ``end`` (exclusive) bound ``ts``; anything :class:`pandas.Timestamp`
    reads (naive means UTC). ``symbol`` may be bare when one venue has it.
    """
    from genesis.store import connect

    sampling = str(sampling).strip()
    with connect(store_url) as store:
        recorded = _recorded_sets(store)
        if feature_set not in recorded:
            held = ", ".join(sorted(recorded)) or "none; genesis features build makes one"
            raise ValueError(f"no feature set {feature_set!r} in {store.url} (sets there: {held})")
        set_columns = recorded[feature_set]
        wanted = list(set_columns if columns is None else ([columns] if isinstance(columns, str) else columns))
        unknown = [c for c in wanted if c not in set_columns]
        if unknown:
            raise ValueError(f"feature set {feature_set!r} has no column(s) {', '.join(map(repr, unknown))} "
                             f"(its columns: {', '.join(set_columns)})")
        held = store.query_rows(
            "SELECT DISTINCT symbol, sampling FROM features WHERE feature_set = {set:String}", {"set": feature_set})
        symbols = [s for s, samp in held if samp == sampling]
        if not symbols:
            others = sorted({samp for _, samp in held})
            raise ValueError(f"feature set {feature_set!r} has no rows sampled {sampling!r} "
                             f"(its samplings: {', '.join(others) or 'none'})")
        symbol = resolve_symbol(symbol, symbols, f"feature set {feature_set!r} ({sampling} rows)")
        where = ["symbol = {symbol:String}", "feature_set = {set:String}", "sampling = {sampling:String}"]
        parameters: dict[str, Any] = {"symbol": symbol, "set": feature_set, "sampling": sampling}
        add_time_range(where, parameters, "ts", start, end)
        # The names are the recorded set's, checked as plain identifiers when it was built;
        # checked again here because they go into the SQL text.
        bad = [c for c in wanted if not _IDENTIFIER.fullmatch(c)]
        if bad:
            raise ValueError(f"feature column(s) {', '.join(map(repr, bad))} are not plain identifiers")
        select = ", ".join(["ts", *wanted])
        table = store.query_arrow(
            f"SELECT {select} FROM features WHERE {' AND '.join(where)} ORDER BY ts, row_in_ts", parameters)
    frame = pd.DataFrame({"ts": pd.to_datetime(_int64(table.column("ts")), utc=True)})
    for name in wanted:
        frame[name] = _float64(table.column(name))
    return frame


def _recorded_sets(store) -> dict[str, list[str]]:
    """``{feature_set: columns}`` of the recorded sets (empty when none was ever built)."""
    if not store.command("EXISTS TABLE feature_sets"):
        return {}
    rows = store.query_rows("SELECT feature_set, columns FROM feature_sets FINAL")
    return {name: list(columns) for name, columns in rows}


def feature_set_info(store_url: str | None = None) -> pd.DataFrame:
    """What is stored: one row per set, symbol and sampling (a set without rows: one row, symbol
    empty), with its row count, time span, number of columns, spec and when it was last built."""
    from genesis.store import connect

    names = ["feature_set", "symbol", "sampling", "rows", "start", "end", "n_columns", "columns", "spec", "built_at"]
    with connect(store_url) as store:
        if not store.command("EXISTS TABLE feature_sets"):
            return pd.DataFrame(columns=names)
        sets = store.query_rows(
            "SELECT feature_set, columns, spec, toUnixTimestamp64Nano(toDateTime64(built_at, 9, 'UTC'))"
            " FROM feature_sets FINAL ORDER BY feature_set")
        held = store.query_rows(
            "SELECT feature_set, symbol, sampling, count(), toUnixTimestamp64Nano(min(ts)),"
            " toUnixTimestamp64Nano(max(ts)) FROM features GROUP BY feature_set, symbol, sampling"
            " ORDER BY feature_set, symbol, sampling")
    by_set: dict[str, list[tuple]] = {}
    for row in held:
        by_set.setdefault(row[0], []).append(row)
    records = []
    for name, columns, spec, built_at in sets:
        base = {"n_columns": len(columns), "columns": list(columns), "spec": json.loads(spec),
                "built_at": pd.Timestamp(int(built_at), tz="UTC")}
        for _, symbol, sampling, rows, first, last in by_set.get(name, [(name, "", "", 0, None, None)]):
            records.append({"feature_set": name, "symbol": symbol, "sampling": sampling, "rows": int(rows),
                            "start": pd.Timestamp(int(first), tz="UTC") if first is not None else pd.NaT,
                            "end": pd.Timestamp(int(last), tz="UTC") if last is not None else pd.NaT, **base})
    return pd.DataFrame(records, columns=names)


# -- symbols, times, errors ---------------------------------------------------------------------

def resolve_symbol(symbol: str, known: Iterable[str], where: str = "the store") -> str:
    """``symbol`` as stored: namespaced (``binance-usdm:BTCUSDT``) as given, or bare
    (``BTCUSDT``) when exactly one venue in ``known`` has it."""
    known = sorted(set(known))
    wanted = str(symbol).strip()
    exact = [k for k in known if k.lower() == wanted.lower()]
    if exact:
        return exact[0]
    if ":" not in wanted:
        matches = [k for k in known if k.split(":", 1)[-1].upper() == wanted.upper()]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise ValueError(f"symbol {symbol!r} is ambiguous in {where}: {', '.join(matches)}; pass one of these")
    raise ValueError(f"no symbol {symbol!r} in {where} (symbols there: {', '.join(known) or 'none'})")


def stored_symbol(store, symbol: str) -> str:
    """``symbol`` as the book snapshots of the store name it (bare ``BTCUSDT`` works when one
    venue has it); ValueError naming what the store holds otherwise."""
    return resolve_symbol(symbol, _book_symbols(store), f"the book snapshots of {store.url}")


def _book_symbols(store) -> list[str]:
    rows = store.query_rows("SELECT DISTINCT symbol FROM book_snapshots WHERE sampling = 'event'")
    return [row[0] for row in rows]


def _empty_range_error(store, symbol: str, lo: int, hi: int) -> ValueError:
    first, last, n = store.query_rows(
        "SELECT toUnixTimestamp64Nano(min(exch_ts)), toUnixTimestamp64Nano(max(exch_ts)), count()"
        " FROM book_snapshots WHERE symbol = {symbol:String} AND sampling = 'event'", {"symbol": symbol})[0]
    held = f"its rows span {_text(first)} .. {_text(last)}" if n else "it has none"
    others = ", ".join(_book_symbols(store)) or "none"
    return ValueError(f"{symbol} has no book snapshots in [{_text(lo)}, {_text(hi)}); {held} "
                      f"(symbols with snapshots: {others})")


def _text(value: Any) -> str:
    ts = pd.Timestamp(value)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat().replace("+00:00", "Z")
