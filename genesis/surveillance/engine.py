"""Running detectors: one code path for a batch and for a live stream.

:class:`SurveillanceStream` takes events as they come (orders, trades, book rows, in any
chunks), runs every detector's kernel on the rows that can no longer be preceded by a row
still to come, and returns the alerts raised. :func:`detect` is a stream fed everything at
once. Both give the same alerts: kernels keep all memory in their state vectors and see
the rows in one fixed merged order (time; ties orders < trades < book).

A row is released once every source of the stream has passed its time (the *watermark*):
a live feed that has delivered trades up to 10:00:01 but book rows only up to 10:00:00
keeps the 10:00:00.5 trade until the book catches up. ``finish()`` releases everything.

Only detectors the data can serve run: each declares what it needs (sources, owner ids, book
levels; see :class:`genesis.surveillance.base.Detector`), and :func:`run_detectors` /
:class:`SurveillanceStream` leave out, and name with the reason, those whose needs the data
does not meet.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from genesis.book.l2 import L2Book
from genesis.feeds.events import ORDER_EVENT_DTYPE, TRADE_DTYPE, MarketEvents, delta_events
from genesis.surveillance.base import (ALERT_DTYPE, EXTRA_FIELDS, KINDS, MAX_IDS_PER_ALERT, DataProfile, Detector,
                                       severity)

SOURCES = ("orders", "trades", "book")
ALERTS_PER_EVENT = 4  # output room a kernel gets; more is a detector bug (reported, never truncated)
CHUNK_EVENTS = 1 << 16  # a long window is run in slices of about this many events (bounded memory)
ALERT_COLUMNS = ("kind", "severity", "score", "side", "start_ts", "end_ts", "at_ts", "price", "size", "level",
                 "metric", "n_events", "order_ids", "detector", "params_version", "evidence")


@dataclass
class Book:
    """Top-L rows after each book event: ``ts`` (n,), prices and sizes (n, L), NaN past the book."""

    ts: np.ndarray
    bid_px: np.ndarray
    bid_sz: np.ndarray
    ask_px: np.ndarray
    ask_sz: np.ndarray

    def __post_init__(self) -> None:
        self.ts = np.ascontiguousarray(self.ts, dtype=np.int64)
        for name in ("bid_px", "bid_sz", "ask_px", "ask_sz"):
            value = np.ascontiguousarray(getattr(self, name), dtype=np.float64)
            if value.ndim != 2 or value.shape[0] != len(self.ts):
                raise ValueError(f"Book.{name} has shape {value.shape}, expected ({len(self.ts)}, levels)")
            setattr(self, name, value)

    def __len__(self) -> int:
        return len(self.ts)

    @property
    def levels(self) -> int:
        return self.bid_px.shape[1]

    def take(self, rows) -> Book:
        return Book(self.ts[rows], self.bid_px[rows], self.bid_sz[rows], self.ask_px[rows], self.ask_sz[rows])

    def depth(self) -> int:
        """Book levels a side the rows really show: columns past the last one holding a price in
        any row (NaN padding, e.g. a 1-level source read as 20) do not count."""
        if not len(self):
            return 0
        held = np.isfinite(self.bid_px).any(axis=0) | np.isfinite(self.ask_px).any(axis=0)
        return int(np.flatnonzero(held)[-1]) + 1 if held.any() else 0

    def trim(self, levels: int) -> Book:
        """The first ``levels`` levels (self when it has no more)."""
        if levels >= self.levels:
            return self
        k = max(1, int(levels))
        return Book(self.ts, self.bid_px[:, :k], self.bid_sz[:, :k], self.ask_px[:, :k], self.ask_sz[:, :k])

    @classmethod
    def empty(cls, levels: int = 1) -> Book:
        return cls(np.empty(0, np.int64), *(np.empty((0, levels)) for _ in range(4)))

    @classmethod
    def concat(cls, parts: Sequence[Book]) -> Book:
        return cls(*(np.concatenate([getattr(p, n) for p in parts]) for n in ("ts", "bid_px", "bid_sz", "ask_px", "ask_sz")))


@dataclass
class Inputs:
    """What the detectors read for one symbol: any of the three sources may be empty."""

    symbol: str
    orders: np.ndarray = field(default_factory=lambda: np.empty(0, ORDER_EVENT_DTYPE))
    trades: np.ndarray = field(default_factory=lambda: np.empty(0, TRADE_DTYPE))
    book: Book = field(default_factory=Book.empty)

    @classmethod
    def from_events(cls, events: MarketEvents, levels: int = 20) -> Inputs:
        """From a source's events; the book is the source's own or is rebuilt from its deltas."""
        if events.book is not None:
            b = events.book
            book = Book(b["exch_ts"], b["bid_px"], b["bid_sz"], b["ask_px"], b["ask_sz"])
        elif len(events.deltas):
            d = events.deltas
            starts, counts, snapshot = delta_events(d)
            bid_px, bid_sz, ask_px, ask_sz, crossed = L2Book(levels).apply_groups(
                starts, counts, snapshot, d["side"], d["price"], d["qty"])
            keep = ~crossed
            book = Book(d["exch_ts"][starts][keep], bid_px[keep], bid_sz[keep], ask_px[keep], ask_sz[keep])
        else:
            book = Book.empty(levels)
        return cls(events.symbol, events.orders, events.trades, book)

    def profile(self) -> DataProfile:
        """What this data holds: sources with rows, owner ids on order events, book levels shown."""
        caps = {s for s in SOURCES if len(getattr(self, s))}
        if len(self.orders) and bool(np.any(self.orders["owner"] >= 0)):
            caps.add("owners")
        return DataProfile(frozenset(caps), self.book.depth() if len(self.book) else 0)


def _row_evidence(detector: Detector, row: np.void, ids: list[int]) -> dict:
    evidence = {"start_ts": int(row["start_ts"]), "end_ts": int(row["end_ts"]), "events": int(row["n_events"]),
                detector.metric: float(row["metric"])}
    for column in ("price", "size", "level", *EXTRA_FIELDS):
        value = row[column].item()
        if column in detector.evidence and not (isinstance(value, float) and np.isnan(value)) and value != -1:
            evidence[detector.evidence[column]] = value
    if ids:
        evidence["order_ids"] = ids
    return evidence


def alerts_frame(symbol: str, batches: list[tuple[Detector, np.ndarray, np.ndarray]]) -> pd.DataFrame:
    """Alert rows of kernels as a DataFrame (ALERT_COLUMNS plus ``symbol``), ordered by ``at_ts``."""
    records = []
    for detector, alerts, ids in batches:
        for row in alerts:
            order_ids = ids[row["ids_start"] : row["ids_start"] + row["ids_count"]].tolist()
            records.append({
                "symbol": symbol, "kind": KINDS[int(row["code"])], "severity": severity(float(row["score"])),
                "score": float(row["score"]), "side": int(row["side"]), "start_ts": int(row["start_ts"]),
                "end_ts": int(row["end_ts"]), "at_ts": int(row["at_ts"]), "price": float(row["price"]),
                "size": float(row["size"]), "level": int(row["level"]), "metric": float(row["metric"]),
                "n_events": int(row["n_events"]), "order_ids": order_ids, "detector": detector.name,
                "params_version": detector.params_version, "evidence": _row_evidence(detector, row, order_ids),
            })
    frame = pd.DataFrame(records, columns=["symbol", *ALERT_COLUMNS])
    if len(frame):
        frame = frame.sort_values(["at_ts", "detector", "start_ts"], kind="stable").reset_index(drop=True)
    return frame


class _Runner:
    """One detector with its state; runs its kernel on windows of released rows."""

    def __init__(self, detector: Detector):
        self.detector = detector
        self.p = detector.param_vector
        si, sf = detector.new_state(detector.params)
        self.si = np.ascontiguousarray(si, dtype=np.int64)
        self.sf = np.ascontiguousarray(sf, dtype=np.float64)

    def run(self, orders: np.ndarray, trades: np.ndarray, book: Book, final: bool = False
            ) -> tuple[np.ndarray, np.ndarray]:
        # Room for several alerts per event, each with its full id list: np.empty only reserves
        # address space, so the generous bound costs nothing until written.
        capacity = ALERTS_PER_EVENT * (len(orders) + len(trades) + len(book)) + 64
        alerts = np.empty(capacity, ALERT_DTYPE)
        ids = np.empty(capacity * MAX_IDS_PER_ALERT, np.int64)
        counts = np.array([0, 0, 0, int(final)], np.int64)
        self.detector.kernel(self.p, self.si, self.sf, orders, trades, book.ts, book.bid_px, book.bid_sz, book.ask_px,
                             book.ask_sz, 0, len(orders), 0, len(trades), 0, len(book), alerts, ids, counts)
        if counts[2]:
            raise RuntimeError(f"detector {self.detector.name} raised more than {ALERTS_PER_EVENT} alerts per event")
        return alerts[: counts[0]].copy(), ids[: counts[1]].copy()


class SurveillanceStream:
    """Detectors over a stream fed in chunks; see the module docstring.

    ``sources``: the inputs this stream will be fed (a detector needing another is refused);
    ``levels``: the book levels a side the data shows; ``owners``: whether its order events
    carry owner ids (default: when it is fed orders). A detector whose other declared needs
    (:meth:`Detector.unmet`: book depth, owner ids) the data does not meet is not run, and
    :attr:`skipped` says why (detector name -> reason).
    """

    def __init__(self, symbol: str, detectors: Sequence[Detector] | None = None, *,
                 sources: Sequence[str] = ("trades", "book"), levels: int = 20, owners: bool | None = None):
        from genesis.surveillance.detectors import default_detectors

        unknown = set(sources) - set(SOURCES)
        if unknown:
            raise ValueError(f"unknown source(s) {sorted(unknown)}; choose from {SOURCES}")
        detectors = list(default_detectors() if detectors is None else detectors)
        missing = [(d.name, d.missing_inputs(sources)) for d in detectors if d.missing_inputs(sources)]
        if missing:
            raise ValueError(f"detector(s) need inputs this stream is not fed (sources={list(sources)}): {missing}")
        caps = set(sources) | ({"owners"} if (owners if owners is not None else "orders" in sources) else set())
        self.profile = DataProfile(frozenset(caps), int(levels) if "book" in sources else 0)
        self.skipped = {d.name: d.unmet(self.profile) for d in detectors if d.unmet(self.profile)}
        self.symbol = symbol
        self.sources = tuple(sources)
        self.runners = [_Runner(d) for d in detectors if d.name not in self.skipped]
        self._orders = np.empty(0, ORDER_EVENT_DTYPE)
        self._trades = np.empty(0, TRADE_DTYPE)
        self._book = Book.empty(levels)
        self._latest = {s: np.iinfo(np.int64).min for s in self.sources}  # newest time fed per source
        self._no_alerts = alerts_frame(symbol, [])  # returned (shared, do not modify) when nothing fired

    @property
    def detectors(self) -> list[Detector]:
        return [r.detector for r in self.runners]

    def process(self, orders: np.ndarray | None = None, trades: np.ndarray | None = None,
                book: Book | None = None) -> pd.DataFrame:
        """Add new rows (each source in time order) and return the alerts they release."""
        for name, value in (("orders", orders), ("trades", trades), ("book", book)):
            if value is None or not len(value):
                continue
            if name not in self.sources:
                raise ValueError(f"this stream was not set up for {name} (sources={list(self.sources)})")
            ts = value.ts if name == "book" else value["exch_ts"]
            if np.any(np.diff(ts) < 0) or ts[0] < self._latest[name]:
                raise ValueError(f"{name} must arrive in time order (exch_ts went backwards)")
            self._latest[name] = int(ts[-1])
            if name == "orders":
                self._orders = np.concatenate([self._orders, value])
            elif name == "trades":
                self._trades = np.concatenate([self._trades, value])
            else:
                self._book = Book.concat([self._book, value]) if len(self._book) else value
        return self._release(min(self._latest.values()))

    def finish(self) -> pd.DataFrame:
        """Release every row still held back (the end of the stream)."""
        return self._release(np.iinfo(np.int64).max)

    def _release(self, watermark: int) -> pd.DataFrame:
        # Rows strictly before the watermark: a row at the watermark may still get a tie from a
        # source that has not reached it, and ties have a fixed order.
        if watermark == np.iinfo(np.int64).max:  # the end of the stream
            no, nt, nb = len(self._orders), len(self._trades), len(self._book)
        else:
            no = int(np.searchsorted(self._orders["exch_ts"], watermark, "left"))
            nt = int(np.searchsorted(self._trades["exch_ts"], watermark, "left"))
            nb = int(np.searchsorted(self._book.ts, watermark, "left"))
        final = watermark == np.iinfo(np.int64).max
        if not (no or nt or nb or final):
            return self._no_alerts
        batches = []
        slices = list(self._slices(no, nt, nb)) or [((0, 0), (0, 0), (0, 0))]  # the end, even with no rows
        for k, ((o0, o1), (t0, t1), (b0, b1)) in enumerate(slices):
            orders, trades, book = self._orders[o0:o1], self._trades[t0:t1], self._book.take(slice(b0, b1))
            last = final and k == len(slices) - 1
            for runner in self.runners:
                alerts, ids = runner.run(orders, trades, book, last)
                if len(alerts):
                    batches.append((runner.detector, alerts, ids))
        self._orders, self._trades = self._orders[no:], self._trades[nt:]
        self._book = self._book.take(slice(nb, None))
        return alerts_frame(self.symbol, batches) if batches else self._no_alerts

    def _slices(self, no: int, nt: int, nb: int):
        """Cut ``[0, no) x [0, nt) x [0, nb)`` at common instants into slices of about CHUNK_EVENTS."""
        total = no + nt + nb
        if total == 0:
            return
        if total <= CHUNK_EVENTS:
            yield (0, no), (0, nt), (0, nb)
            return
        times = np.sort(np.concatenate([self._orders["exch_ts"][:no], self._trades["exch_ts"][:nt], self._book.ts[:nb]]))
        cuts = np.unique(times[CHUNK_EVENTS::CHUNK_EVENTS])  # a slice ends before the first row at its cut time
        bounds = [(0, 0, 0)]
        for cut in cuts:
            bounds.append((int(np.searchsorted(self._orders["exch_ts"][:no], cut, "left")),
                           int(np.searchsorted(self._trades["exch_ts"][:nt], cut, "left")),
                           int(np.searchsorted(self._book.ts[:nb], cut, "left"))))
        bounds.append((no, nt, nb))
        for lo, hi in zip(bounds[:-1], bounds[1:]):
            if hi != lo:
                yield (lo[0], hi[0]), (lo[1], hi[1]), (lo[2], hi[2])


@dataclass
class Detection:
    """What a batch run did: its ``alerts``, the ``profile`` of the data, the detectors that ran
    and those ``skipped`` (name -> why: what they need that the data lacks)."""

    alerts: pd.DataFrame
    profile: DataProfile
    ran: list[str]
    skipped: dict[str, str]


def run_detectors(inputs: Inputs, detectors: Sequence[Detector] | None = None) -> Detection:
    """Run detectors over everything in ``inputs`` at once (the batch path), each where the data
    meets what it declares it needs (:meth:`Detector.unmet`); the others are skipped, with the
    reason. The book is read at the depth the data really has (NaN padding dropped), so
    evidence counting levels counts levels that exist."""
    from genesis.surveillance.detectors import default_detectors

    profile = inputs.profile()
    detectors = list(default_detectors() if detectors is None else detectors)
    skipped = {d.name: d.unmet(profile) for d in detectors if d.unmet(profile)}
    usable = [d for d in detectors if d.name not in skipped]
    sources = [s for s in SOURCES if s in profile.capabilities]
    book = inputs.book.trim(profile.levels) if profile.levels else inputs.book
    stream = SurveillanceStream(inputs.symbol, usable, sources=sources or ("book",), levels=profile.levels,
                                owners="owners" in profile.capabilities)
    first = stream.process(inputs.orders if "orders" in sources else None,
                           inputs.trades if "trades" in sources else None,
                           book if "book" in sources else None)
    last = stream.finish()
    found = [frame for frame in (first, last) if len(frame)]
    alerts = pd.concat(found, ignore_index=True) if len(found) == 2 else (found[0] if found else last)
    return Detection(alerts, profile, [d.name for d in usable], skipped)


def detect(inputs: Inputs, detectors: Sequence[Detector] | None = None) -> pd.DataFrame:
    """The alerts of :func:`run_detectors` (``alerts.attrs['skipped']``: detectors not run, and why)."""
    detection = run_detectors(inputs, detectors)
    alerts = detection.alerts.copy() if detection.skipped else detection.alerts
    if detection.skipped:
        alerts.attrs["skipped"] = dict(detection.skipped)
    return alerts


__all__ = ["Book", "Inputs", "SurveillanceStream", "Detection", "run_detectors", "detect", "alerts_frame",
           "ALERT_COLUMNS", "SOURCES"]
