"""The detector contract: one Numba kernel per detector, batch and online by construction.

A detector is a :class:`Detector`: its alert kinds, documented parameters (a frozen
dataclass), the inputs it reads, a function making its initial state, and a kernel with the
one signature every detector shares::

    kernel(p, si, sf, orders, trades, book_ts, bid_px, bid_sz, ask_px, ask_sz,
           o0, o1, t0, t1, b0, b1, alerts, ids, counts)

* ``p``: the parameters as a float64 vector (the dataclass fields, in order);
* ``si`` / ``sf``: the detector's int64 / float64 state vectors (rings and tables packed in
  them; reshape slices as needed). All memory between calls lives there;
* ``orders`` (ORDER_EVENT_DTYPE), ``trades`` (TRADE_DTYPE), and the book after each event
  (``book_ts`` (n,), ``bid_px``... (n, L), best level first, NaN past the book): the whole
  arrays; the kernel processes ``orders[o0:o1]``, ``trades[t0:t1]``, ``book[b0:b1]``, merged
  by time with ties broken orders < trades < book (:func:`next_source`);
* ``alerts`` (ALERT_DTYPE), ``ids`` (int64 order ids referenced by alerts), ``counts``
  (int64[4]: alerts written, ids written, overflow flag, *final*): outputs, appended at
  ``counts[0]`` / ``counts[1]``. Use :func:`emit` and :func:`emit_id`. ``counts[3] == 1``
  (:func:`is_final`) says the stream ends with this call (``finish()``; it may bring no rows):
  a kernel then reports any episode still open, ending at the last event it saw.

Because everything a kernel remembers is in ``si``/``sf`` and the merge order is fixed,
processing a stream in any chunks (split at the same instant in every input, as
:class:`genesis.surveillance.engine.SurveillanceStream` does) gives the same alerts as one
batch. An alert is emitted at the event that completes its evidence (``at_ts``).

Record fields are read and written as ``row["field"]`` (not ``row.field``): the same code
then also runs as plain Python (``NUMBA_DISABLE_JIT=1``), the benchmark's baseline.

What a detector needs of the data is declared on its :class:`Detector` (sources, other
capabilities such as owner ids, book levels, the parameter naming the levels it reads) and
checked by the engine against the data's :class:`DataProfile`, alike for every detector: one
that the data cannot serve is not run, and the run says why. Kernels read the book at the
depth the data has (``bid_px.shape[1]``), and evidence counting levels gives that number.
Evidence beyond price/size/level goes in ``x_ts``, ``y_ts``, ``x0``..``x3`` (:func:`emit_extra`),
named per detector by ``Detector.evidence``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields
from typing import Any, Callable

import numba as nb
import numpy as np

ALERT_DTYPE = np.dtype(
    [
        ("code", "i2"),  # alert kind (KIND_CODES)
        ("side", "i1"),  # 1 bid/buy, -1 ask/sell, 0 none or both
        ("start_ts", "i8"),  # the episode's first event
        ("end_ts", "i8"),  # its last event
        ("at_ts", "i8"),  # when the alert could be raised (the event completing the evidence)
        ("score", "f8"),  # 0 (barely) .. 100 (certain, extreme)
        ("price", "f8"),  # the price the evidence is about (NaN if none)
        ("size", "f8"),  # the size the evidence is about (NaN if none)
        ("level", "i4"),  # book level (0 = best) or ticks from the touch; -1 if none
        ("metric", "f8"),  # the detector's headline statistic (named by Detector.metric)
        ("n_events", "i4"),  # events in the evidence
        ("ids_start", "i8"),  # order ids of the evidence: ids[ids_start : ids_start + ids_count]
        ("ids_count", "i4"),
        # more evidence, named per detector by Detector.evidence (set with emit_extra; -1 / NaN: none)
        ("x_ts", "i8"),  # times the evidence cites (e.g. a reference book row and the peak row)
        ("y_ts", "i8"),
        ("x0", "f8"),
        ("x1", "f8"),
        ("x2", "f8"),
        ("x3", "f8"),
    ]
)
EXTRA_FIELDS = ("x_ts", "y_ts", "x0", "x1", "x2", "x3")
MAX_IDS_PER_ALERT = 64  # evidence keeps the first 64 order ids; n_events says how many there were

# Sources, in the order ties are broken.
SRC_ORDER, SRC_TRADE, SRC_BOOK, SRC_NONE = 0, 1, 2, -1

SEVERITIES = ("info", "low", "medium", "high", "critical")

# Every alert kind and its code in ALERT_DTYPE.code. Codes never change meaning.
KIND_CODES = {
    "spoofing": 1,
    "spoofing_l2": 2,
    "layering": 3,
    "quote_stuffing": 4,
    "momentum_ignition": 5,
    "wash_trades": 6,
    "iceberg": 7,
    "liquidity_gap": 20,
    "depth_shock": 21,
    "spread_shock": 22,
    "heavy_imbalance": 23,
    "crossed_book": 24,
    "locked_book": 25,
    "stale_quotes": 26,
}
KINDS = {code: kind for kind, code in KIND_CODES.items()}
MANIPULATION_KINDS = ("spoofing", "spoofing_l2", "layering", "quote_stuffing", "momentum_ignition", "wash_trades")


def severity(score: float) -> str:
    """info < 20 <= low < 40 <= medium < 60 <= high < 80 <= critical."""
    return SEVERITIES[min(4, max(0, int(score // 20)))]


# What data can offer a detector (see DataProfile): the three sources, and order events that name
# their owners (participant ids: LOBSTER's do not, the simulator's do).
CAPABILITIES = {
    "orders": "order-level (L3) events",
    "trades": "trades",
    "book": "L2 book levels",
    "owners": "owner (participant) ids on order events",
}


@dataclass(frozen=True)
class DataProfile:
    """What one symbol's data holds: ``capabilities`` (keys of CAPABILITIES) and ``levels``, the book
    levels a side it shows (0 without a book). Detectors declare what they need of it
    (:meth:`Detector.unmet`); the engine runs a detector only where nothing is unmet."""

    capabilities: frozenset
    levels: int = 0

    def describe(self) -> str:
        held = [c for c in CAPABILITIES if c in self.capabilities]
        return ", ".join(f"{self.levels} book level(s) a side" if c == "book" else CAPABILITIES[c] for c in held) \
            or "nothing"


@dataclass(frozen=True)
class Detector:
    """One detector: see the module docstring for the kernel contract.

    What it needs of the data is declared here, once, and checked by the engine for every
    detector alike (:meth:`unmet`): ``inputs`` (the sources its kernel reads), ``needs`` (other
    capabilities, e.g. ``'owners'``), ``optional`` (sources it reads where they exist),
    ``min_levels`` (book levels a side below which its statistic means nothing: a number, or a
    function of the parameters; at least 1 for a detector reading the book) and ``levels_param``
    (the parameter naming how many levels it reads: on a shallower book it reads the levels
    that exist, and its evidence gives that number, never the configured one).
    """

    name: str  # e.g. 'spoofing'
    kinds: tuple[str, ...]  # alert kinds it emits (keys of KIND_CODES)
    inputs: tuple[str, ...]  # any of 'orders', 'trades', 'book'
    params: Any  # a frozen dataclass instance: the documented parameters with their values
    new_state: Callable[[Any], tuple[np.ndarray, np.ndarray]]  # params -> (si int64, sf float64)
    kernel: Callable
    metric: str  # what ALERT_DTYPE.metric holds, e.g. 'size / median recent size'
    evidence: dict[str, str]  # meaning of price/size/level (and x_ts, x0..x3) for this detector
    description: str = ""
    needs: tuple[str, ...] = ()  # capabilities needed besides the inputs (keys of CAPABILITIES)
    optional: tuple[str, ...] = ()  # sources it also reads where the data has them (the evidence says what they gave)
    min_levels: int | Callable[[Any], int] = 0  # book levels a side it needs (params -> levels, or a number)
    levels_param: str | None = None  # the parameter giving the levels it reads (capped at the data's)

    def with_params(self, **changes) -> Detector:
        from dataclasses import replace

        return replace(self, params=replace(self.params, **changes))

    @property
    def levels_needed(self) -> int:
        """Book levels a side this detector needs with its parameters (0: none)."""
        value = self.min_levels(self.params) if callable(self.min_levels) else self.min_levels
        return max(int(value), 1 if "book" in self.inputs else 0)

    def levels_read(self, data_levels: int) -> int:
        """Levels it reads on data showing ``data_levels`` a side."""
        if self.levels_param is None:
            return min(1, data_levels) if "book" in self.inputs else 0
        return min(int(getattr(self.params, self.levels_param)), int(data_levels))

    def missing_inputs(self, sources) -> list[str]:
        return [s for s in self.inputs if s not in set(sources)]

    def unmet(self, profile: DataProfile) -> str | None:
        """Why this detector cannot run on data of ``profile`` (None: it can)."""
        missing = [c for c in (*self.inputs, *self.needs) if c not in profile.capabilities]
        if missing:
            return "needs " + " and ".join(CAPABILITIES.get(c, c) for c in missing) + "; the data has " \
                + profile.describe()
        need = self.levels_needed
        if need > profile.levels:
            return f"needs {need} book levels a side; the data has {profile.levels}"
        return None

    def requirements(self) -> str:
        """The declaration in words (``genesis surveil detectors``)."""
        parts = [CAPABILITIES.get(c, c) for c in (*self.inputs, *self.needs)]
        if self.levels_needed:
            parts.append(f">= {self.levels_needed} book level(s) a side")
        if self.levels_param:
            parts.append(f"reads up to {getattr(self.params, self.levels_param)} ({self.levels_param})")
        if self.optional:
            parts.append("uses " + " and ".join(CAPABILITIES.get(c, c) for c in self.optional) + " where present")
        return ", ".join(parts)

    @property
    def param_vector(self) -> np.ndarray:
        return np.array([float(getattr(self.params, f.name)) for f in fields(self.params)], np.float64)

    @property
    def params_version(self) -> str:
        """A short hash of the detector and its parameter values: alerts name the set that made them."""
        text = json.dumps({"detector": self.name, **asdict(self.params)}, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:12]


# -- helpers for kernels -------------------------------------------------------------------
_inline = nb.njit(cache=True, inline="always")


@_inline
def next_source(orders, trades, book_ts, o, t, b, o1, t1, b1):
    """Which source holds the next event in merged time order (ties: orders, trades, book)."""
    best = SRC_NONE
    ts = np.int64(0)
    if o < o1:
        best = SRC_ORDER
        ts = orders[o]["exch_ts"]
    if t < t1 and (best == SRC_NONE or trades[t]["exch_ts"] < ts):
        best = SRC_TRADE
        ts = trades[t]["exch_ts"]
    if b < b1 and (best == SRC_NONE or book_ts[b] < ts):
        best = SRC_BOOK
    return best


@_inline
def emit(alerts, counts, code, side, start_ts, end_ts, at_ts, score, price, size, level, metric, n_events):
    """Append one alert (its order ids follow with :func:`emit_id`); returns its row or -1 when full."""
    k = counts[0]
    if k >= alerts.shape[0]:
        counts[2] = 1
        return -1
    a = alerts[k]
    a["code"] = code
    a["side"] = side
    a["start_ts"] = start_ts
    a["end_ts"] = end_ts
    a["at_ts"] = at_ts
    a["score"] = min(100.0, max(0.0, score))
    a["price"] = price
    a["size"] = size
    a["level"] = level
    a["metric"] = metric
    a["n_events"] = n_events
    a["ids_start"] = counts[1]
    a["ids_count"] = 0
    a["x_ts"] = -1
    a["y_ts"] = -1
    a["x0"] = np.nan
    a["x1"] = np.nan
    a["x2"] = np.nan
    a["x3"] = np.nan
    counts[0] = k + 1
    return k


@_inline
def emit_extra(alerts, row, x_ts, y_ts, x0, x1, x2, x3):
    """Set the extra evidence of alert ``row`` (from :func:`emit`; nothing when it is -1)."""
    if row < 0:
        return
    a = alerts[row]
    a["x_ts"] = x_ts
    a["y_ts"] = y_ts
    a["x0"] = x0
    a["x1"] = x1
    a["x2"] = x2
    a["x3"] = x3


@_inline
def is_final(counts):
    """True when the stream ends with this call: report episodes still open."""
    return counts.shape[0] > 3 and counts[3] == 1


@_inline
def emit_id(alerts, ids, counts, row, order_id):
    """Add an order id to the evidence of alert ``row`` (at most MAX_IDS_PER_ALERT kept)."""
    if row < 0 or alerts[row]["ids_count"] >= MAX_IDS_PER_ALERT:
        return
    k = counts[1]
    if k >= ids.shape[0]:
        counts[2] = 1
        return
    ids[k] = order_id
    alerts[row]["ids_count"] += 1
    counts[1] = k + 1


@_inline
def score_from_ratio(ratio, threshold, saturation):
    """The common scoring rule: 50 at the threshold, rising linearly in log-ratio to 100 at
    ``saturation`` (0 below half the threshold's log distance). Callable from kernels and Python."""
    if ratio <= 0.0 or threshold <= 0.0 or saturation <= threshold:
        return 0.0
    value = 50.0 + 50.0 * np.log(ratio / threshold) / np.log(saturation / threshold)
    return min(100.0, max(0.0, value))


__all__ = [
    "ALERT_DTYPE", "MAX_IDS_PER_ALERT", "SRC_ORDER", "SRC_TRADE", "SRC_BOOK", "SRC_NONE", "SEVERITIES",
    "KIND_CODES", "KINDS", "MANIPULATION_KINDS", "severity", "Detector", "next_source", "emit", "emit_id", "is_final",
    "score_from_ratio", "emit_extra", "EXTRA_FIELDS", "CAPABILITIES", "DataProfile",
]
