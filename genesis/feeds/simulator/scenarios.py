"""Manipulation scenarios: scripted actions by one manipulator per kind, and their ground truth.

Each :class:`Scenario` becomes one or more *episodes*, laid out one after another over the
horizon in turn (kinds in the order given, a gap of 60-120 s between episodes, until the
horizon is full), never overlapping; when the horizon cannot hold one episode of every
requested kind that way, each gets one episode and the gaps are even. An episode is a list of scripted
actions (:mod:`.engine` ``A_*``) with times relative to its start; the engine executes them
against the book as it is at that moment. Sizes are in multiples of the background median
order size (``SimConfig.size_median``), times in seconds. ``intensity`` scales message counts,
``size`` scales the manipulator's sizes.

======================  =====  ==========================================================
kind                    owner  one episode (defaults; U(a, b) drawn per episode)
======================  =====  ==========================================================
spoofing                1      one large order, U(8, 15) x median, 1-2 ticks behind its touch,
                               cancelled after U(1, 2.5) s, never executed (pulled if reached);
                               meanwhile 3 small marketable orders, U(0.3, 1) x median each, on
                               the opposite side. ``side`` = side of the spoof order.
layering                2      3-5 orders, U(4, 8) x median each, on consecutive levels 1..n
                               ticks behind the touch, added U(20, 100) ms apart; 2-3 small
                               opposite-side marketable orders; all layers cancelled together
                               after U(2, 4) s. ``side`` = side of the layers.
quote_stuffing          3      U(300, 800) add/delete pairs within U(1, 3) s, 0-4 ticks behind
                               the touch, U(0.1, 0.5) x median, lifetime 0.2 ms + Exp(3 ms).
momentum_ignition       4      U(8, 15) market orders of U(3, 6) x median on ``side`` within
                               U(0.5, 1.5) s; after a U(2, 4) s pause, the same quantity traded back
                               on the other side in 3-5 market orders within U(1, 2) s.
flash_crash             5      liquidity withdrawal on the bid side (background bids within
                               levels + 5 ticks of the touch deleted, bid arrivals x0.1) and
                               10 market sells of U(2, 5) x median over U(5, 10) s while the
                               reference falls U(15, 30) ticks in 10 steps; then arrivals return
                               and the reference recovers over twice that time. ``side`` -1
                               (a crash; +1 mirrors it into a spike).
wash_trades             6      U(5, 8) crosses U(0.5, 2) s apart: the owner rests U(1, 3) x
                               median at one touch and executes it with its own aggressing order
                               (owner == contra_owner). ``side`` 0.
iceberg                 7      a parent of U(15, 25) x median at the touch, shown in slices of
                               U(0.5, 1) x median; every executed slice is refilled at the same
                               price with a new order id (at once: one aggressor can take
                               several), until the parent is done or after U(30, 60) s (the last
                               slice is then deleted); left > 2 ticks behind the touch, the
                               slice moves to the touch.
======================  =====  ==========================================================

Intensity multiplies message counts (stuffing pairs, bursts, market orders, crosses) and the
flash crash's drop. Ground truth (``episodes``): ``order_ids`` are the manipulator's order ids
involved (its resting orders and its aggressing orders, which appear in ``orders`` as
``contra_id``), ``start_ts``/``end_ts`` span its first action to its last event.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from genesis.feeds.simulator import engine as E
from genesis.feeds.simulator.config import SimConfig

SCENARIOS = ("spoofing", "layering", "quote_stuffing", "momentum_ignition", "flash_crash", "wash_trades", "iceberg")
OWNERS = {kind: i + 1 for i, kind in enumerate(SCENARIOS)}
GAP_S = (60.0, 120.0)  # seconds between one episode's end and the next one's start
MIN_GAP_S = 1.0
NS = 1_000_000_000


@dataclass(frozen=True)
class Scenario:
    """A manipulation to inject.

    kind: one of :data:`SCENARIOS`; start: seconds after the simulation start of the first
    episode (None: scheduled with the others); duration: seconds (None: the kind's default
    range, see the module docstring; for spoofing the spoof's lifetime, for flash_crash the
    crash phase); intensity, size: multipliers of message counts and of sizes; count: number of
    episodes (None: as many as fit, at least one; 1 when ``start`` is given); side: 1 or -1
    (None: drawn per episode; flash_crash -1).
    """

    kind: str
    start: float | None = None
    duration: float | None = None
    intensity: float = 1.0
    size: float = 1.0
    count: int | None = None
    side: int | None = None

    def __post_init__(self) -> None:
        if self.kind not in SCENARIOS:
            raise ValueError(f"unknown scenario {self.kind!r}; known: {', '.join(SCENARIOS)}")
        for name in ("start", "duration"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Scenario({self.kind}).{name}={value!r} must be a finite number >= 0")
        if self.duration is not None and self.duration <= 0:
            raise ValueError(f"Scenario({self.kind}).duration={self.duration!r} must be > 0")
        for name in ("intensity", "size"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"Scenario({self.kind}).{name}={value!r} must be > 0")
        if self.count is not None and (int(self.count) != self.count or self.count < 1):
            raise ValueError(f"Scenario({self.kind}).count={self.count!r} must be an integer >= 1")
        if self.side not in (None, 1, -1):
            raise ValueError(f"Scenario({self.kind}).side={self.side!r} must be 1, -1 or None")


def as_scenario(item: str | Scenario) -> Scenario:
    if isinstance(item, Scenario):
        return item
    if isinstance(item, str):
        return Scenario(item)
    raise TypeError(f"scenario {item!r} must be a name ({', '.join(SCENARIOS)}) or a Scenario")


@dataclass
class _Episode:
    """One episode's actions, times relative to its start (seconds); ``ref`` indexes this episode."""

    kind: str
    side: int
    detail: str = ""
    ts: list = field(default_factory=list)
    cols: dict = field(default_factory=lambda: {k: [] for k in ("kind", "side", "offset", "lots", "flag", "value",
                                                                 "ref")})

    def add(self, t: float, kind: int, side: int = 0, offset: int = 0, lots: int = 0, flag: int = 0,
            value: float = 0.0, ref: int = -1) -> int:
        self.ts.append(float(t))
        for name, v in (("kind", kind), ("side", side), ("offset", offset), ("lots", lots), ("flag", flag),
                        ("value", value), ("ref", ref)):
            self.cols[name].append(v)
        return len(self.ts) - 1

    @property
    def length(self) -> float:
        return max(self.ts) if self.ts else 0.0


def _lots(multiple: float, cfg: SimConfig) -> int:
    return max(1, int(round(multiple * cfg.size_median / cfg.lot_size)))


def _spoofing(rng, cfg, sc, side):
    ep = _Episode("spoofing", side)
    life = sc.duration if sc.duration is not None else rng.uniform(1.0, 2.5)
    offset = int(rng.integers(1, 3))
    size = rng.uniform(8, 15) * sc.size
    spoof = ep.add(0.0, E.A_LIMIT, side, offset, _lots(size, cfg), E.F_PULL)
    n = max(1, round(3 * sc.intensity))
    for t in np.sort(rng.uniform(0.1, 0.9, n)) * life:
        ep.add(t, E.A_MARKET, -side, lots=_lots(rng.uniform(0.3, 1.0) * sc.size, cfg))
    ep.add(life, E.A_CANCEL, side, ref=spoof)
    ep.detail = (f"spoof {size:.1f}x median {offset} tick(s) behind the {'bid' if side > 0 else 'ask'} touch "
                 f"for {life:.2f} s, {n} opposite-side marketable order(s)")
    return ep


def _layering(rng, cfg, sc, side):
    ep = _Episode("layering", side)
    n_layers = int(rng.integers(3, 6))
    life = sc.duration if sc.duration is not None else rng.uniform(2.0, 4.0)
    t = 0.0
    layers = []
    for k in range(n_layers):
        layers.append(ep.add(t, E.A_LIMIT, side, k + 1, _lots(rng.uniform(4, 8) * sc.size, cfg), E.F_PULL))
        t += rng.uniform(0.02, 0.1)
    n = max(1, round(rng.integers(2, 4) * sc.intensity))
    for tt in np.sort(rng.uniform(t, max(t + 0.05, 0.9 * life), n)):
        ep.add(tt, E.A_MARKET, -side, lots=_lots(rng.uniform(0.3, 1.0) * sc.size, cfg))
    end = max(life, t + 0.1)
    for ref in layers:
        ep.add(end, E.A_CANCEL, side, ref=ref)
    ep.detail = f"{n_layers} layers 1..{n_layers} ticks behind the touch for {end:.2f} s, {n} opposite trade(s)"
    return ep


def _quote_stuffing(rng, cfg, sc, side):
    ep = _Episode("quote_stuffing", side)
    dur = sc.duration if sc.duration is not None else rng.uniform(1.0, 3.0)
    n = max(1, round(rng.uniform(300, 800) * sc.intensity))
    starts = np.sort(rng.uniform(0.0, dur, n))
    lives = 0.0002 + rng.exponential(0.003, n)
    offsets = rng.integers(0, 5, n)
    sizes = rng.uniform(0.1, 0.5, n) * sc.size
    for t, life, off, size in zip(starts, lives, offsets, sizes):
        ref = ep.add(t, E.A_LIMIT, side, int(off), _lots(size, cfg), E.F_PULL)
        ep.add(t + life, E.A_CANCEL, side, ref=ref)
    ep.detail = f"{n} add/delete pairs in {dur:.2f} s, mean lifetime {1000 * lives.mean():.1f} ms"
    return ep


def _momentum_ignition(rng, cfg, sc, side):
    ep = _Episode("momentum_ignition", side)
    burst = sc.duration if sc.duration is not None else rng.uniform(0.5, 1.5)
    n = max(1, round(rng.integers(8, 16) * sc.intensity))
    lots = [_lots(rng.uniform(3, 6) * sc.size, cfg) for _ in range(n)]
    for t, q in zip(np.sort(rng.uniform(0.0, burst, n)), lots):
        ep.add(t, E.A_MARKET, side, lots=q)
    start_back = burst + rng.uniform(2.0, 4.0)
    m = int(rng.integers(3, 6))
    total = sum(lots)
    pieces = np.full(m, total // m)
    pieces[: total - pieces.sum()] += 1
    for t, q in zip(np.sort(rng.uniform(start_back, start_back + rng.uniform(1.0, 2.0), m)), pieces):
        ep.add(t, E.A_MARKET, -side, lots=int(q))
    ep.detail = f"{n} market orders ({total * cfg.lot_size:g}) in {burst:.2f} s, reversed in {m} after a pause"
    return ep


def _flash_crash(rng, cfg, sc, side):
    ep = _Episode("flash_crash", side)
    crash = sc.duration if sc.duration is not None else rng.uniform(5.0, 10.0)
    drop = max(1.0, round(rng.uniform(15, 30) * sc.intensity))
    steps = 10
    hit_side = -side  # the side whose liquidity goes: bids when the aggressive flow sells (side -1)
    ep.add(0.0, E.A_WITHDRAW, hit_side, offset=int(cfg.levels) + 5)
    ep.add(0.0, E.A_SUPPRESS, hit_side, value=0.1)
    for k in range(steps):
        ep.add(crash * (k + 0.5) / steps, E.A_REF_SHIFT, value=side * drop / steps)
    n = max(1, round(10 * sc.intensity))
    for k in range(n):
        ep.add(crash * (k + 0.25) / n, E.A_MARKET, side, lots=_lots(rng.uniform(2, 5) * sc.size, cfg))
    ep.add(crash, E.A_SUPPRESS, hit_side, value=1.0)
    for k in range(steps):
        ep.add(crash + 2 * crash * (k + 0.5) / steps, E.A_REF_SHIFT, value=-side * drop / steps)
    ep.add(3 * crash, E.A_REF_SHIFT, value=0.0)  # marks the end of the recovery
    ep.detail = (f"{'bid' if hit_side > 0 else 'ask'} liquidity withdrawn, {n} aggressive "
                 f"{'sells' if side < 0 else 'buys'}, reference {'-' if side < 0 else '+'}{drop:g} ticks "
                 f"over {crash:.1f} s, recovery over {2 * crash:.1f} s")
    return ep


def _wash_trades(rng, cfg, sc, side):
    ep = _Episode("wash_trades", 0)
    n = max(1, round(rng.integers(5, 9) * sc.intensity))
    t = 0.0
    for _ in range(n):
        ep.add(t, E.A_WASH, int(rng.choice([-1, 1])), lots=_lots(rng.uniform(1, 3) * sc.size, cfg))
        t += rng.uniform(0.5, 2.0) if sc.duration is None else sc.duration / max(n - 1, 1)
    ep.detail = f"{n} self-matched crosses at the touch"
    return ep


def _iceberg(rng, cfg, sc, side):
    ep = _Episode("iceberg", side)
    dur = sc.duration if sc.duration is not None else rng.uniform(30.0, 60.0)
    parent = rng.uniform(15, 25) * sc.size
    slice_lots = _lots(rng.uniform(0.5, 1.0) * sc.size, cfg)
    ep.add(0.0, E.A_ICE_START, side, 0, _lots(parent, cfg), value=float(slice_lots))
    ep.add(dur, E.A_ICE_END, side)
    ep.detail = (f"parent {parent:.1f}x median at the {'bid' if side > 0 else 'ask'} touch, "
                 f"slices of {slice_lots * cfg.lot_size:g}, up to {dur:.1f} s")
    return ep


_BUILDERS = {
    "spoofing": _spoofing, "layering": _layering, "quote_stuffing": _quote_stuffing,
    "momentum_ignition": _momentum_ignition, "flash_crash": _flash_crash, "wash_trades": _wash_trades,
    "iceberg": _iceberg,
}


@dataclass
class Script:
    """Scripted actions for the engine, sorted by time, and the episodes they belong to."""

    ts: np.ndarray  # (n,) int64 ns
    kind: np.ndarray
    side: np.ndarray
    offset: np.ndarray
    lots: np.ndarray
    owner: np.ndarray
    ref: np.ndarray
    flag: np.ndarray
    value: np.ndarray  # float64
    episode: np.ndarray  # (n,) episode index of each action
    episodes: list  # (kind, side, owner, detail) per episode

    @property
    def ice_capacity(self) -> int:
        ice = self.kind == E.A_ICE_START
        return int((self.lots[ice] // np.maximum(self.value[ice], 1).astype(np.int64) + 2).sum())


def _episode_for(rng, cfg, sc: Scenario) -> _Episode:
    side = sc.side if sc.side is not None else (-1 if sc.kind == "flash_crash" else int(rng.choice([-1, 1])))
    return _BUILDERS[sc.kind](rng, cfg, sc, side)


def build_script(cfg: SimConfig, seconds: float, rng: np.random.Generator, scenarios) -> Script:
    """Lay episodes out over ``[0, seconds)`` and turn them into one time-sorted action table."""
    scenarios = [as_scenario(s) for s in scenarios]
    placed: list[tuple[float, _Episode]] = []

    def free(start: float, length: float) -> bool:
        return all(start + length + MIN_GAP_S <= s or start >= s + ep.length + MIN_GAP_S for s, ep in placed)

    for sc in scenarios:
        if sc.start is None:
            continue
        start = sc.start
        for _ in range(sc.count or 1):
            ep = _episode_for(rng, cfg, sc)
            if start + ep.length >= seconds:
                raise ValueError(f"Scenario({sc.kind}).start={sc.start} with its episodes "
                                 f"(~{ep.length:.1f} s each) does not fit in seconds={seconds}")
            if not free(start, ep.length):
                raise ValueError(f"Scenario({sc.kind}) at {start:.1f} s overlaps another episode")
            placed.append((start, ep))
            start += ep.length + rng.uniform(*GAP_S)

    auto = [sc for sc in scenarios if sc.start is None]
    if auto:
        drafts = [_episode_for(rng, cfg, sc) for sc in auto]
        busy = sum(ep.length for _, ep in placed)
        room = seconds - busy - sum(ep.length for ep in drafts)
        # Gaps of 60-120 s when the horizon holds one episode of each kind that way; else even gaps.
        spread = room / (len(drafts) + 1)
        if spread < MIN_GAP_S:
            need = busy + sum(ep.length for ep in drafts) + (len(drafts) + 1) * MIN_GAP_S
            raise ValueError(f"seconds={seconds} is too short for the scenarios "
                             f"{[sc.kind for sc in auto]}: they need at least {need:.0f} s")
        compressed = spread < GAP_S[0]

        def gap() -> float:
            return spread if compressed else min(rng.uniform(*GAP_S), spread)

        limits = [1 if compressed else sc.count for sc in auto]  # None: as many as fit
        counts = [0] * len(auto)
        t = gap()
        k = 0
        while not all(limit is not None and count >= limit for limit, count in zip(limits, counts)):
            idx = k % len(auto)
            first_round = k < len(auto)
            k += 1
            if limits[idx] is not None and counts[idx] >= limits[idx]:
                continue
            sc = auto[idx]
            ep = drafts[idx] if first_round else _episode_for(rng, cfg, sc)
            while not free(t, ep.length) and t < seconds:
                t += MIN_GAP_S
            if t + ep.length + MIN_GAP_S > seconds:
                if first_round:
                    raise ValueError(f"seconds={seconds} is too short to place a {sc.kind} episode "
                                     f"beside the others")
                break
            placed.append((t, ep))
            counts[idx] += 1
            t += ep.length + gap()

    placed.sort(key=lambda item: item[0])
    columns = {k: [] for k in ("ts", "kind", "side", "offset", "lots", "owner", "ref", "flag", "value", "episode")}
    episodes = []
    base = 0
    for e_index, (start, ep) in enumerate(placed):
        owner = OWNERS[ep.kind]
        n = len(ep.ts)
        columns["ts"].extend(cfg.start_ns + np.round((start + np.asarray(ep.ts)) * NS).astype(np.int64))
        for name in ("kind", "side", "offset", "lots", "flag", "value"):
            columns[name].extend(ep.cols[name])
        columns["ref"].extend(r + base if r >= 0 else -1 for r in ep.cols["ref"])
        columns["owner"].extend([owner] * n)
        columns["episode"].extend([e_index] * n)
        episodes.append((ep.kind, ep.side, owner, ep.detail))
        base += n
    dtypes = {"ts": np.int64, "kind": np.int64, "side": np.int64, "offset": np.int64, "lots": np.int64,
              "owner": np.int64, "ref": np.int64, "flag": np.int64, "value": np.float64, "episode": np.int64}
    arrays = {k: np.asarray(v, dtype=dtypes[k]) for k, v in columns.items()}
    order = np.argsort(arrays["ts"], kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    arrays = {k: v[order] for k, v in arrays.items()}
    has_ref = arrays["ref"] >= 0
    arrays["ref"][has_ref] = position[arrays["ref"][has_ref]]
    return Script(episodes=episodes, **arrays)
