"""Instrument specifications: tick, lot, notional and contract terms of each symbol over time.

Every consumer that rounds a price or a quantity (backtests, the paper trader, the dashboards,
features that count ticks) reads the spec from the ``instruments`` table instead of guessing:

* declared specs come from the venue (Binance ``exchangeInfo``, recorded by ``genesis record``
  and the live client), from the format (LOBSTER's cent tick) or from the simulator's config;
* captures with no declared spec get one inferred *exactly* from their decimal prices and
  sizes (the greatest common divisor of the values as integers, never a float tolerance),
  marked ``source='inferred'``.

A spec is valid from ``valid_from`` (ns) until the next one of the same symbol. At a given time
a declared spec wins over an inferred one; ``--tick-size`` / ``--lot-size`` override both.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, replace
from decimal import Decimal, InvalidOperation
from typing import Any

import numpy as np

# Where a spec came from; everything but INFERRED is declared by someone who knows.
EXCHANGE_INFO = "exchangeInfo"
LOBSTER = "lobster"
SIMULATOR = "simulator"
INFERRED = "inferred"
OVERRIDE = "override"
SOURCES = (EXCHANGE_INFO, LOBSTER, SIMULATOR, INFERRED, OVERRIDE)

# Prices and sizes written with more decimals than this are not on a decimal grid we can
# trust (a float artefact such as 0.30000000000000004, not a venue's increment).
MAX_DECIMALS = 12


@dataclass(frozen=True)
class Instrument:
    """One symbol's trading terms, valid from ``valid_from`` (ns since the epoch, UTC).

    tick_size / lot_size: price and quantity increments (lot 0: unknown, not enforced); min_notional: smallest price x qty
    accepted (0: none known); contract_size: quote units per contract (COIN-M: 100 USD for
    BTCUSD_PERP; 1 where quantities are in the base asset); multiplier: price multiplier of a
    contract (1 for every venue here); price_precision / qty_precision: the decimals the venue
    declares (Binance futures' ``pricePrecision`` may differ from the tick's), else those of the
    tick and the lot; source: one of :data:`SOURCES`.
    """

    symbol: str
    tick_size: float
    lot_size: float = 0.0
    min_notional: float = 0.0
    contract_size: float = 1.0
    multiplier: float = 1.0
    price_precision: int = -1
    qty_precision: int = -1
    valid_from: int = 0
    source: str = INFERRED

    def __post_init__(self) -> None:
        for name in ("tick_size", "lot_size"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float, np.integer, np.floating)) and math.isfinite(value) and value >= 0):
                raise ValueError(f"{self.symbol}: {name}={value!r} must be a number >= 0")
        if not self.tick_size > 0:
            raise ValueError(f"{self.symbol}: tick_size={self.tick_size!r} must be positive")
        if self.source not in SOURCES:
            raise ValueError(f"{self.symbol}: source {self.source!r} is not one of {SOURCES}")
        if self.price_precision < 0:
            object.__setattr__(self, "price_precision", decimals(self.tick_size))
        if self.qty_precision < 0:
            object.__setattr__(self, "qty_precision", decimals(self.lot_size) if self.lot_size else 0)

    @property
    def inferred(self) -> bool:
        return self.source == INFERRED

    def with_overrides(self, tick_size: float | None = None, lot_size: float | None = None) -> "Instrument":
        """This spec with the given increments replaced (source 'override' when any is given)."""
        if tick_size is None and lot_size is None:
            return self
        return replace(self, tick_size=float(tick_size if tick_size is not None else self.tick_size),
                       lot_size=float(lot_size if lot_size is not None else self.lot_size),
                       price_precision=-1 if tick_size is not None else self.price_precision,
                       qty_precision=-1 if lot_size is not None else self.qty_precision, source=OVERRIDE)

    def describe(self) -> dict[str, Any]:
        """The spec as a JSON-ready dict (what reports and run configs print)."""
        return {**asdict(self), "inferred": self.inferred}


def decimals(value: float) -> int:
    """Decimals of ``value`` as written in its shortest round-trip form (0.01 -> 2, 5.0 -> 0)."""
    exponent = Decimal(repr(float(value))).normalize().as_tuple().exponent
    return max(0, -int(exponent))


def decimal_step(values: Any, name: str = "values") -> tuple[int, int]:
    """The largest increment every one of ``values`` is a whole multiple of, exactly, as (num, den)
    with the increment = num / den and den a power of ten.

    Each value is read as the decimal it was written as (the shortest string that gives back the
    same float: venues write prices as decimal strings, which floats keep exactly up to 15
    significant digits), scaled to an integer, and the increment is the greatest common divisor
    of those integers. So ``[61837.63, 61837.64]`` gives (1, 100): 0.01, never 0.1. Zero, NaN and
    negative values are ignored; a ValueError naming ``name`` when none is left, or when a value
    needs more than :data:`MAX_DECIMALS` decimals (not a decimal grid).
    """
    v = np.unique(np.asarray(values, np.float64).ravel())
    v = v[np.isfinite(v) & (v > 0)]
    if not len(v):
        raise ValueError(f"{name}: no positive values to infer an increment from")
    # Fast path, vectorised and still exact: the fewest decimals d for which every value is the
    # float nearest to an integer N / 10^d. While N < 2^50, v * 10^d rounds to N whatever the
    # float error, and N / 10^d is correctly rounded, so the test is an equality, not a tolerance.
    for places in range(MAX_DECIMALS + 1):
        scale = 10.0 ** places
        scaled = np.round(v * scale)
        if scaled[-1] >= 2.0 ** 50:
            break  # too many digits for int64 arithmetic: the decimal path below
        if np.array_equal(scaled / scale, v):
            num = int(np.gcd.reduce(scaled.astype(np.int64)))
            g = math.gcd(num, 10 ** places)
            return num // g, 10 ** places // g
    exact = []
    for x in v.tolist():
        try:
            d = Decimal(repr(x))
        except InvalidOperation:  # pragma: no cover - repr of a finite float always parses
            raise ValueError(f"{name}: {x!r} is not a decimal") from None
        exact.append(d)
    places = max(max(0, -d.normalize().as_tuple().exponent) for d in exact)
    if places > MAX_DECIMALS:
        worst = max(exact, key=lambda d: -d.normalize().as_tuple().exponent)
        raise ValueError(f"{name}: {worst} needs more than {MAX_DECIMALS} decimals; it is not on a decimal "
                         "grid (give the increment explicitly, e.g. --tick-size)")
    scale = 10 ** places
    num = 0
    for d in exact:
        num = math.gcd(num, int(d * scale))
    g = math.gcd(num, scale)
    return num // g, scale // g


def infer_instrument(symbol: str, prices: Any, quantities: Any, valid_from: int = 0) -> Instrument:
    """A spec inferred from observed ``prices`` and ``quantities`` (:func:`decimal_step`),
    marked ``source='inferred'``: a coarser grid than the venue's is possible on little data
    (every price seen may happen to be a multiple of 10 ticks), a finer one never."""
    tick_num, tick_den = decimal_step(prices, f"{symbol} prices")
    lot_num, lot_den = decimal_step(quantities, f"{symbol} quantities")
    return Instrument(symbol, tick_num / tick_den, lot_num / lot_den, valid_from=int(valid_from), source=INFERRED)


# -- the store ----------------------------------------------------------------------------------

_COLUMNS = ("symbol", "valid_from", "tick_size", "lot_size", "min_notional", "contract_size", "multiplier",
            "price_precision", "qty_precision", "source")


def write_instruments(store, specs: list[Instrument], source_id: str = "") -> int:
    """Record ``specs`` (rows tagged ``source_id``, e.g. the ingested file's); a spec already
    recorded with the same terms, start and source is not written again. Returns rows written."""
    new = []
    for spec in specs:
        same = store.query_rows(
            "SELECT count() FROM instruments WHERE symbol = {symbol:String}"
            " AND valid_from = fromUnixTimestamp64Nano({valid_from:Int64}) AND source = {source:String}"
            " AND tick_size = {tick_size:Float64} AND lot_size = {lot_size:Float64}"
            " AND min_notional = {min_notional:Float64} AND contract_size = {contract_size:Float64}",
            {"symbol": spec.symbol, "valid_from": int(spec.valid_from), "source": spec.source,
             "tick_size": spec.tick_size, "lot_size": spec.lot_size, "min_notional": spec.min_notional,
             "contract_size": spec.contract_size})
        if not same[0][0]:
            new.append(spec)
    if not new:
        return 0
    columns = {c: [getattr(s, c) for s in new] for c in _COLUMNS}
    columns["valid_from"] = np.array(columns["valid_from"], np.int64)
    columns["source_id"] = [source_id] * len(new)
    return store.insert_columns("instruments", columns)


def read_instruments(store, symbol: str | None = None) -> list[Instrument]:
    """Every recorded spec (of ``symbol``), oldest first."""
    where, params = ("WHERE symbol = {symbol:String}", {"symbol": symbol}) if symbol else ("", {})
    rows = store.query_rows(
        f"SELECT symbol, toUnixTimestamp64Nano(valid_from), tick_size, lot_size, min_notional, contract_size,"
        f" multiplier, price_precision, qty_precision, source FROM instruments {where}"
        f" ORDER BY symbol, valid_from, recorded_at", params)
    return [Instrument(symbol=r[0], valid_from=int(r[1]), tick_size=float(r[2]), lot_size=float(r[3]),
                       min_notional=float(r[4]), contract_size=float(r[5]), multiplier=float(r[6]),
                       price_precision=int(r[7]), qty_precision=int(r[8]), source=str(r[9])) for r in rows]


def instrument_at(specs: list[Instrument], at: int | None = None) -> Instrument | None:
    """The spec in force at ``at`` (ns; None: the newest) among one symbol's ``specs``: the newest
    declared spec valid by then, else the newest inferred one; when none is valid yet, the
    earliest (declared first). None when ``specs`` is empty."""
    if not specs:
        return None
    declared = [s for s in specs if not s.inferred]
    inferred = [s for s in specs if s.inferred]
    for group in (declared, inferred):
        valid = [s for s in group if at is None or s.valid_from <= at]
        if valid:
            return max(valid, key=lambda s: s.valid_from)
    return min(declared or inferred, key=lambda s: s.valid_from)


def resolve_instrument(store, symbol: str, at: int | None = None, *, tick_size: float | None = None,
                       lot_size: float | None = None) -> Instrument | None:
    """The spec of ``symbol`` at ``at`` from the store (:func:`instrument_at`) with the given
    increments overriding it. None when nothing is recorded and no tick is given (callers then
    infer from the data they replay)."""
    spec = instrument_at(read_instruments(store, symbol), at)
    if spec is None:
        if tick_size is None:
            return None
        return Instrument(symbol, float(tick_size), float(lot_size or 0.0), valid_from=int(at or 0), source=OVERRIDE)
    return spec.with_overrides(tick_size, lot_size)


__all__ = ["Instrument", "SOURCES", "EXCHANGE_INFO", "LOBSTER", "SIMULATOR", "INFERRED", "OVERRIDE", "decimals",
           "decimal_step", "infer_instrument", "write_instruments", "read_instruments", "instrument_at",
           "resolve_instrument"]
