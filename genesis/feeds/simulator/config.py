"""Simulator parameters (:class:`SimConfig`), checked on construction."""

from __future__ import annotations

import math
import numbers
from dataclasses import dataclass, fields

# 2024-08-08T00:00:00Z, the day of the bundled real captures.
DEFAULT_START_NS = 1_723_075_200_000_000_000


@dataclass(frozen=True)
class SimConfig:
    """One simulated instrument and its background order flow.

    Prices are ``tick * tick_size``; sizes are whole lots of ``lot_size``. Rates are per
    second of simulated time. Defaults give about 220 L3 events per second of simulated time
    (10 minutes: ~130k events) with a book ~10 ticks deep a side and a 1-2 tick spread.

    impact:
        endogenous price impact: the reference (efficient) price, around which liquidity
        providers quote, moves by ``impact`` ticks per unit of signed executed market order
        volume (+ for buys). 0 makes the reference a pure random walk; mid changes then follow
        order flow only mechanically (depleted levels), and the slope of mid changes on
        order flow imbalance grows with ``impact``.
    volatility:
        standard deviation of the reference price's own noise over one second, in ticks
        (a Brownian motion: ``volatility * sqrt(dt / 1 s)``).
    levels:
        book depth in ticks: limit orders are placed 0..levels-1 ticks behind the reference
        (geometric, ``offset_decay`` per tick); the initial book has ``levels`` ticks a side.
    keep_depth:
        orders more than this many ticks behind the reference are withdrawn (stale quotes);
        0 means ``2 * levels``.
    feed_latency_ns, feed_jitter_ns:
        ``local_ts = exch_ts + feed_latency_ns + Exp(feed_jitter_ns)``, kept non-decreasing
        (one in-order stream).
    """

    symbol: str = "sim:SIM"
    start_ns: int = DEFAULT_START_NS
    tick_size: float = 0.01
    initial_mid: float = 100.0
    lot_size: float = 0.001
    levels: int = 10
    limit_rate: float = 100.0  # background limit orders per second, both sides together
    market_rate: float = 10.0  # background market orders per second
    cancel_rate: float = 1.0  # per resting background order, per second
    partial_cancel_share: float = 0.1  # share of cancels that remove half the order (EV_CANCEL)
    size_median: float = 1.0  # median order size (quantity units), lognormal
    size_sigma: float = 0.8  # sigma of log size
    offset_decay: float = 0.3  # P(k ticks behind) ~ (1 - offset_decay) ** k
    volatility: float = 0.5  # ticks per sqrt(second)
    impact: float = 0.2  # ticks per unit of signed market order volume
    keep_depth: int = 0
    feed_latency_ns: int = 2_000_000
    feed_jitter_ns: int = 500_000
    n_traders: int = 500  # background owners are 1000 .. 1000 + n_traders - 1
    flow_bias: float = 0.0  # planted signal: P(buy) = 0.5 + flow_bias * regime, regime in {+1, 0, -1} (0: off)
    flow_persistence_s: float = 30.0  # mean duration of a flow regime, seconds

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "symbol":
                if not isinstance(value, str) or ":" not in value:
                    raise ValueError(f"SimConfig.symbol={value!r} must be namespaced by venue, e.g. 'sim:SIM'")
                continue
            if isinstance(value, bool) or not isinstance(value, numbers.Real):
                raise TypeError(f"SimConfig.{f.name}={value!r} must be a number")
            if not math.isfinite(value):
                raise ValueError(f"SimConfig.{f.name}={value!r} must be finite")
        positive = ("tick_size", "initial_mid", "lot_size", "limit_rate", "size_median", "levels", "n_traders")
        for name in positive:
            if getattr(self, name) <= 0:
                raise ValueError(f"SimConfig.{name}={getattr(self, name)!r} must be > 0")
        non_negative = ("market_rate", "cancel_rate", "size_sigma", "volatility", "impact", "keep_depth",
                        "feed_latency_ns", "feed_jitter_ns", "start_ns")
        for name in non_negative:
            if getattr(self, name) < 0:
                raise ValueError(f"SimConfig.{name}={getattr(self, name)!r} must be >= 0")
        if not 0 <= self.flow_bias < 0.5:
            raise ValueError(f"SimConfig.flow_bias={self.flow_bias!r} must be in [0, 0.5)")
        if self.flow_persistence_s <= 0:
            raise ValueError(f"SimConfig.flow_persistence_s={self.flow_persistence_s!r} must be > 0")
        for name in ("partial_cancel_share",):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SimConfig.{name}={getattr(self, name)!r} must be in [0, 1]")
        if not 0 < self.offset_decay <= 1:
            raise ValueError(f"SimConfig.offset_decay={self.offset_decay!r} must be in (0, 1]")
        for name in ("levels", "keep_depth", "n_traders", "start_ns", "feed_latency_ns", "feed_jitter_ns"):
            if int(getattr(self, name)) != getattr(self, name):
                raise ValueError(f"SimConfig.{name}={getattr(self, name)!r} must be an integer")
        if self.levels > 500:
            raise ValueError(f"SimConfig.levels={self.levels} must be <= 500")
        if self.initial_mid / self.tick_size < 4 * self.levels + 10:
            raise ValueError(f"SimConfig.initial_mid={self.initial_mid} is too few ticks "
                             f"(tick_size={self.tick_size}) above zero for levels={self.levels}")
        if self.size_median < self.lot_size:
            raise ValueError(f"SimConfig.size_median={self.size_median} is below lot_size={self.lot_size}")

    @property
    def depth_kept(self) -> int:
        """Ticks behind the reference beyond which orders are withdrawn."""
        return int(self.keep_depth) if self.keep_depth else 2 * int(self.levels)
