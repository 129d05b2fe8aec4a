"""Running a feature spec: over a batch of rows, or online one row at a time.

Both paths run the same compiled loop (:func:`run_rows`) over the same kernels; the batch
path hands it every row at once, the online path one row per call with the state kept
in between. That is why they agree to the last bit, which the tests check anyway.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa

from genesis.features import depth, dynamics, imbalance, prices, trades
from genesis.features.context import Context, ROW_PRIMITIVES, jit, jit_inline, new_primitive_state, primitives
from genesis.features.registry import FeatureSpec, registry

# Rows per block: every instance runs over a block while its rows are still in cache.
BLOCK = 256


def _drop_stale_compiled_kernels() -> None:
    """Numba decides whether cached machine code is fresh from the *function's own* source
    file only; the dispatch loop below compiles in kernels from the family modules, so an
    edited kernel would otherwise keep running its old code through ``run_rows``. When any
    source of this package changed since the cache was written, drop the package's cache."""
    package = Path(__file__).parent
    sources = sorted(package.rglob("*.py"))
    digest = hashlib.sha256()
    for source in sources:
        stat = source.stat()
        digest.update(f"{source.relative_to(package)}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    cache = package / "__pycache__"
    stamp = cache / "numba-sources.sha256"
    try:
        if stamp.exists() and stamp.read_text() == digest.hexdigest():
            return
        for path in [*package.rglob("__pycache__/*.nbi"), *package.rglob("__pycache__/*.nbc")]:
            path.unlink(missing_ok=True)
        cache.mkdir(exist_ok=True)
        stamp.write_text(digest.hexdigest())
    except OSError:
        pass  # a read-only install: numba then caches elsewhere (NUMBA_CACHE_DIR), fresh per install


_drop_stale_compiled_kernels()


@jit_inline
def _dispatch(family, local, c, i0, i1, st, p, out):
    if family == 0:
        prices.dispatch(local, c, i0, i1, st, p, out)
    elif family == 1:
        depth.dispatch(local, c, i0, i1, st, p, out)
    elif family == 2:
        imbalance.dispatch(local, c, i0, i1, st, p, out)
    elif family == 3:
        trades.dispatch(local, c, i0, i1, st, p, out)
    elif family == 4:
        dynamics.dispatch(local, c, i0, i1, st, p, out)


@jit
def run_rows(c, i0, i1, pstate, family, local, params, st_lo, st_hi, state, out):
    """Rows ``[i0, i1)``: the primitives, then every instance, block by block."""
    for b0 in range(i0, i1, BLOCK):
        b1 = min(i1, b0 + BLOCK)
        primitives(c, b0, b1, pstate)
        for j in range(family.shape[0]):
            _dispatch(family[j], local[j], c, b0, b1, state[st_lo[j]:st_hi[j]], params[j], out[j])


# -- inputs ------------------------------------------------------------------------------

@dataclass
class Snapshots:
    """Top-L book rows: ``ts`` (int64 ns, non-decreasing) and four (n, L) float64 arrays,
    best level first, NaN where a side has fewer levels. ``updates`` (optional) counts the
    level updates the book received since the previous row (for message-rate features)."""

    ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray
    updates: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.ts = _as(self.ts, np.int64, "snapshots.ts")
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            value = _writable(getattr(self, name), np.float64)
            if value.ndim == 1:  # a single row, or L1 columns
                value = value.reshape(len(self.ts), -1) if len(self.ts) else value.reshape(0, 1)
            if value.ndim != 2 or value.shape[0] != len(self.ts):
                raise ValueError(f"snapshots.{name}: expected shape ({len(self.ts)}, L), got {value.shape}")
            setattr(self, name, value)
        shapes = {getattr(self, n).shape for n in ("bid_px", "bid_sz", "ask_px", "ask_sz")}
        if len(shapes) != 1:
            raise ValueError(f"snapshots: the four book arrays differ in shape: {sorted(shapes)}")
        if len(self.ts) > 1 and np.any(np.diff(self.ts) < 0):
            first = int(np.flatnonzero(np.diff(self.ts) < 0)[0]) + 1
            raise ValueError(f"snapshots.ts must be non-decreasing; row {first} goes back in time")
        if self.updates is None:
            self.updates = np.zeros(len(self.ts))
        self.updates = _as(self.updates, np.float64, "snapshots.updates")
        if len(self.updates) != len(self.ts):
            raise ValueError(f"snapshots.updates has {len(self.updates)} values for {len(self.ts)} rows")

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def levels(self) -> int:
        return self.bid_px.shape[1]

    def take(self, rows: np.ndarray | slice) -> "Snapshots":
        return Snapshots(self.ts[rows], self.bid_px[rows], self.bid_sz[rows], self.ask_px[rows],
                         self.ask_sz[rows], self.updates[rows])

    @classmethod
    def coerce(cls, value: Any) -> "Snapshots":
        """From a Snapshots, or a DataFrame/mapping with ``exch_ts`` (or ``ts``) and array columns."""
        if isinstance(value, cls):
            return value
        get = value.__getitem__
        names = set(value.columns if isinstance(value, pd.DataFrame) else value.keys())
        ts_name = "ts" if "ts" in names else "exch_ts"
        ts = get(ts_name)
        ts = np.asarray(ts.astype("int64") if isinstance(ts, pd.Series) else ts, dtype=np.int64)
        book = [np.asarray(np.stack(get(n)) if len(ts) else np.empty((0, 1)), np.float64)
                if isinstance(get(n), pd.Series) else get(n) for n in ("bid_px", "bid_sz", "ask_px", "ask_sz")]
        updates = get("updates") if "updates" in names else None
        return cls(ts, *book, None if updates is None else np.asarray(updates))


@dataclass
class Trades:
    """Trades in time order: ``ts`` (int64 ns), ``price``, ``qty`` and ``side`` (1 buyer-initiated,
    -1 seller-initiated, 0 unknown: classified by Lee-Ready)."""

    ts: np.ndarray
    price: np.ndarray
    qty: np.ndarray
    side: np.ndarray

    def __post_init__(self) -> None:
        self.ts = _as(self.ts, np.int64, "trades.ts")
        self.price = _as(self.price, np.float64, "trades.price")
        self.qty = _as(self.qty, np.float64, "trades.qty")
        self.side = _as(self.side, np.float64, "trades.side")
        n = len(self.ts)
        if not (len(self.price) == len(self.qty) == len(self.side) == n):
            raise ValueError("trades: ts, price, qty and side must have the same length")
        if n > 1 and np.any(np.diff(self.ts) < 0):
            raise ValueError("trades.ts must be non-decreasing (sort trades by exchange time)")

    def __len__(self) -> int:
        return len(self.ts)

    @classmethod
    def empty(cls) -> "Trades":
        return cls(np.empty(0, np.int64), np.empty(0), np.empty(0), np.empty(0))

    @classmethod
    def coerce(cls, value: Any) -> "Trades":
        """From a Trades, None, a TRADE_DTYPE structured array or a DataFrame/mapping
        (``exch_ts``/``ts``, ``price``, ``qty``, ``aggressor``/``side``)."""
        if value is None:
            return cls.empty()
        if isinstance(value, cls):
            return value
        names = set(value.dtype.names) if isinstance(value, np.ndarray) else set(
            value.columns if isinstance(value, pd.DataFrame) else value.keys())
        ts = value["ts" if "ts" in names else "exch_ts"]
        ts = np.asarray(ts.astype("int64") if isinstance(ts, pd.Series) else ts, dtype=np.int64)
        side = value["side" if "side" in names else "aggressor"]
        return cls(ts, np.asarray(value["price"]), np.asarray(value["qty"]), np.asarray(side))


def _writable(value: Any, dtype) -> np.ndarray:
    """Contiguous, of ``dtype``, and writable: Arrow and the store hand back read-only
    arrays, for which Numba would compile (and cache) a second copy of every kernel."""
    array = np.ascontiguousarray(value, dtype=dtype)
    return array if array.flags.writeable else array.copy()


def _as(value: Any, dtype, name: str) -> np.ndarray:
    array = _writable(value, dtype)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    return array


def _context(snaps: Snapshots, trades_: Trades, trade_lo: np.ndarray, trade_hi: np.ndarray) -> Context:
    n = len(snaps)
    return Context(
        snaps.ts, snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz, snaps.updates,
        trade_lo, trade_hi, trades_.ts, trades_.price, trades_.qty, trades_.side,
        np.zeros(len(trades_)), *(np.empty(n) for _ in ROW_PRIMITIVES),
    )


# -- the compiled plan of a spec ----------------------------------------------------------

class _Plan:
    """A spec turned into the arrays :func:`run_rows` takes, with fresh state."""

    def __init__(self, spec: FeatureSpec, levels: int):
        if spec.levels > levels:
            need = [str(i) for i in spec.instances if i.levels > levels]
            raise ValueError(f"the snapshots have {levels} levels; {', '.join(need)} need(s) more "
                             f"(rebuild the snapshots deeper or lower the features' levels)")
        found = registry()
        self.family = np.array([found[i.feature.name][0] for i in spec.instances], np.int64)
        self.local = np.array([found[i.feature.name][1] for i in spec.instances], np.int64)
        width = max(1, max(len(i.feature.params) for i in spec.instances))
        self.params = np.zeros((len(spec), width))
        for j, inst in enumerate(spec.instances):
            self.params[j, : len(inst.feature.params)] = inst.param_vector
        sizes = np.array([inst.state_size for inst in spec.instances], np.int64)
        self.st_hi = np.cumsum(sizes)
        self.st_lo = self.st_hi - sizes
        self.state = np.zeros(int(self.st_hi[-1]) if len(sizes) else 0)
        self.pstate = new_primitive_state()

    def run(self, c: Context, i0: int, i1: int, out: np.ndarray) -> None:
        run_rows(c, i0, i1, self.pstate, self.family, self.local, self.params, self.st_lo, self.st_hi,
                 self.state, out)


class FeatureStream:
    """Compute a spec over successive chunks of rows (days of a month, say) with the state
    carried across chunks, so the result equals one batch over all the rows.

    Each chunk's trades must be those after the previous chunk's last row (a chunk's first
    row takes every trade up to its time).
    """

    def __init__(self, spec: Any = None, levels: int = 20):
        self.spec = FeatureSpec.coerce(spec, levels)
        self._plan = _Plan(self.spec, levels)
        self.levels = levels

    def process(self, snapshots: Any, trades: Any = None) -> np.ndarray:
        """Features of the chunk's rows as a ``(n_columns, n_rows)`` float64 array."""
        snaps = Snapshots.coerce(snapshots)
        trades_ = Trades.coerce(trades)
        if snaps.levels != self.levels:
            raise ValueError(f"snapshots have {snaps.levels} levels; this stream was set up for {self.levels}")
        trade_hi = np.searchsorted(trades_.ts, snaps.ts, side="right").astype(np.int64)
        trade_lo = np.concatenate([[0], trade_hi[:-1]]).astype(np.int64) if len(trade_hi) else trade_hi.copy()
        out = np.full((len(self.spec), len(snaps)), np.nan)
        self._plan.run(_context(snaps, trades_, trade_lo, trade_hi), 0, len(snaps), out)
        return out


def compute_matrix(snapshots: Any, trades: Any = None, spec: Any = None) -> tuple[np.ndarray, FeatureSpec]:
    """Features as a ``(n_columns, n_rows)`` float64 array (each row of it a column), and the spec."""
    snaps = Snapshots.coerce(snapshots)
    stream = FeatureStream(spec, snaps.levels)
    return stream.process(snaps, trades), stream.spec


def compute_features(snapshots: Any, trades: Any = None, spec: Any = None,
                     output: Literal["pandas", "arrow", "numpy"] = "pandas"):
    """Compute a feature spec over snapshot rows (and the trades between them).

    Parameters
    ----------
    snapshots : :class:`Snapshots`, or a DataFrame/mapping with ``exch_ts``/``ts`` and
        ``bid_px, bid_sz, ask_px, ask_sz`` (arrays per row, as the store returns them).
    trades : :class:`Trades`, a TRADE_DTYPE array, a DataFrame (``exch_ts``, ``price``,
        ``qty``, ``aggressor``) or None. Trade features are NaN/0 without trades.
    spec : :class:`FeatureSpec`, a list of items such as ``"ofi(level=3)"``, or None for the
        default full set (without the instances that need more levels than the snapshots have).
    output : ``"pandas"`` (a DataFrame with a ``ts`` column, UTC), ``"arrow"`` (a table
        with the same columns) or ``"numpy"`` (a dict of column name to array).
    """
    matrix, spec = compute_matrix(snapshots, trades, spec)
    ts = Snapshots.coerce(snapshots).ts
    columns = dict(zip(spec.columns, matrix))
    if output == "numpy":
        return {"ts": ts, **columns}
    if output == "arrow":
        return pa.table({"ts": pa.array(ts, pa.timestamp("ns", "UTC")), **columns})
    if output == "pandas":
        frame = pd.DataFrame(columns, copy=False)
        frame.insert(0, "ts", pd.to_datetime(ts, utc=True))
        return frame
    raise ValueError(f"output={output!r}: expected 'pandas', 'arrow' or 'numpy'")


def _row_array(values) -> np.ndarray:
    return values if type(values) is np.ndarray and values.dtype == np.float64 else np.asarray(values, np.float64)


@jit
def _copy_row(values, target):
    n = min(values.shape[0], target.shape[1])
    for k in range(n):
        target[0, k] = values[k]
    for k in range(n, target.shape[1]):
        target[0, k] = np.nan


@jit
def _online_step(c, ts, updates, buffered, bid_px, bid_sz, ask_px, ask_sz,
                 pstate, family, local, params, st_lo, st_hi, state, out):
    """Load one book row into the one-row context, run every instance, keep the trades
    stamped after the row for the next one (as the batch path assigns them). Returns the
    number of trades still buffered."""
    _copy_row(bid_px, c.bid_px)
    _copy_row(bid_sz, c.bid_sz)
    _copy_row(ask_px, c.ask_px)
    _copy_row(ask_sz, c.ask_sz)
    c.ts[0] = ts
    c.updates[0] = updates
    taken = 0
    while taken < buffered and c.trade_ts[taken] <= ts:
        taken += 1
    c.trade_hi[0] = taken
    run_rows(c, 0, 1, pstate, family, local, params, st_lo, st_hi, state, out)
    for k in range(taken, buffered):
        c.trade_ts[k - taken] = c.trade_ts[k]
        c.trade_px[k - taken] = c.trade_px[k]
        c.trade_qty[k - taken] = c.trade_qty[k]
        c.trade_side[k - taken] = c.trade_side[k]
    return buffered - taken


class OnlineFeatures:
    """The same features, one snapshot at a time, for live use.

    Call :meth:`on_trade` for each trade as it arrives and :meth:`on_book` for each new
    book row; ``on_book`` returns the feature values of that row (a float64 array in
    ``spec.columns`` order, valid until the next call). The numbers equal
    :func:`compute_features` over the same sequence.
    """

    def __init__(self, spec: Any = None, levels: int = 20):
        self.spec = FeatureSpec.coerce(spec, levels)
        self.columns = self.spec.columns
        self.levels = levels
        self._plan = _Plan(self.spec, levels)
        self._out = np.full((len(self.spec), 1), np.nan)
        self._row = [np.full((1, levels), np.nan) for _ in range(4)]
        self._ts = np.zeros(1, np.int64)
        self._updates = np.zeros(1)
        self._lo = np.zeros(1, np.int64)
        self._hi = np.zeros(1, np.int64)
        self._n_trades = 0
        self._last_ts = np.iinfo(np.int64).min
        self._grow_trades(64)

    def _grow_trades(self, capacity: int) -> None:
        old = getattr(self, "_tr", None)
        self._tr = Trades(np.zeros(capacity, np.int64), np.zeros(capacity), np.zeros(capacity), np.zeros(capacity))
        if old is not None:
            for name in ("ts", "price", "qty", "side"):
                getattr(self._tr, name)[: self._n_trades] = getattr(old, name)[: self._n_trades]
        snaps = Snapshots.__new__(Snapshots)
        snaps.ts, snaps.updates = self._ts, self._updates
        snaps.bid_px, snaps.bid_sz, snaps.ask_px, snaps.ask_sz = self._row
        self._ctx = _context(snaps, self._tr, self._lo, self._hi)

    def on_trade(self, ts: int, price: float, qty: float, side: int = 0) -> None:
        """A trade (side 1 buyer-initiated, -1 seller-initiated, 0 unknown)."""
        k = self._n_trades
        if ts < self._last_ts or (k and ts < self._tr.ts[k - 1]):
            raise ValueError(f"trade at {ts} is older than the previous trade or book row: "
                             "trades must arrive in exchange-time order")
        if k == len(self._tr.ts):
            self._grow_trades(2 * k)
        tr = self._tr
        tr.ts[k], tr.price[k], tr.qty[k], tr.side[k] = ts, price, qty, side
        self._n_trades = k + 1

    def on_book(self, ts: int, bid_px, bid_sz, ask_px, ask_sz, updates: float = 0.0) -> np.ndarray:
        """A new book row (top-L float64 arrays, best first; shorter ones are padded with NaN)."""
        if ts < self._last_ts:
            raise ValueError(f"book row at {ts} is older than the previous one ({self._last_ts})")
        p = self._plan
        # One compiled call per row: the Python around it is most of an online step's cost.
        self._n_trades = _online_step(
            self._ctx, ts, updates, self._n_trades,
            _row_array(bid_px), _row_array(bid_sz), _row_array(ask_px), _row_array(ask_sz),
            p.pstate, p.family, p.local, p.params, p.st_lo, p.st_hi, p.state, self._out)
        self._last_ts = ts
        return self._out[:, 0]

    def as_dict(self) -> dict[str, float]:
        """The last row's values by column name."""
        return dict(zip(self.columns, self._out[:, 0].tolist()))
