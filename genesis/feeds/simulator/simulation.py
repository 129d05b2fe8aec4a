"""``simulate``: config + scenarios -> the engine -> normalised events and their ground truth."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import pandas as pd

from genesis.feeds.events import (
    DELTA_DTYPE, EPISODE_COLUMNS, EV_EXECUTE, ORDER_EVENT_DTYPE, TRADE_DTYPE, MarketEvents, empty_episodes,
)
from genesis.feeds.simulator import engine as E
from genesis.feeds.simulator.config import SimConfig
from genesis.feeds.simulator.faults import BAD_DATA, BAD_ROW_COLUMNS, inject
from genesis.feeds.simulator.scenarios import Scenario, Script, as_scenario, build_script

EVENTS_PER_ARRIVAL_GUESS = 3.0  # L3 events per (limit + market) arrival, to size the first allocation
INITIAL_POOL = 1 << 14  # resting orders the first allocation holds (grown x4 when short)


@dataclass
class Simulation:
    """What :func:`simulate` produced.

    events: the normalised arrays (``orders`` L3, ``deltas`` L2 with one initial snapshot
    block, ``trades``) and the ground truth ``episodes``; bad_rows: the injected bad-data rows
    (columns ``kind, table, index, description``; ``index`` is the row's position in
    ``events.<table>``), empty without ``bad_data``.
    """

    events: MarketEvents
    config: SimConfig
    seconds: float
    seed: int
    scenarios: tuple[Scenario, ...] = ()
    bad_rows: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(BAD_ROW_COLUMNS)))
    n_initial_orders: int = 0  # the first rows of ``orders`` are the initial book (all at the start time)

    @property
    def episodes(self) -> pd.DataFrame:
        return self.events.episodes


def _decimals(step: float) -> int:
    """Decimal places that represent multiples of ``step`` (0.01 -> 2, 0.5 -> 1, 5 -> 0)."""
    for d in range(0, 13):
        if abs(round(step, d) - step) <= 1e-12 * max(step, 1.0):
            return d
    return 12


def _run(cfg: SimConfig, seconds: float, seed: int, script: Script):
    """The engine with arrays grown until the run fits (each retry repeats the same seeded run)."""
    ref0 = cfg.initial_mid / cfg.tick_size
    fp = np.zeros(E.N_FP)
    fp[E.P_REF0] = ref0
    fp[E.P_VOL] = cfg.volatility
    fp[E.P_IMPACT] = cfg.impact
    fp[E.P_LOT] = cfg.lot_size
    fp[E.P_LIMIT_RATE] = cfg.limit_rate
    fp[E.P_MARKET_RATE] = cfg.market_rate
    fp[E.P_CANCEL_RATE] = cfg.cancel_rate
    fp[E.P_SIZE_MU] = math.log(cfg.size_median / cfg.lot_size)
    fp[E.P_SIZE_SIGMA] = cfg.size_sigma
    fp[E.P_OFFSET_DECAY] = cfg.offset_decay
    fp[E.P_PARTIAL] = cfg.partial_cancel_share
    fp[E.P_FLOW_BIAS] = cfg.flow_bias
    fp[E.P_FLOW_SWITCH] = 1.0 / (cfg.flow_persistence_s * 1e9)
    levels = int(cfg.levels)
    keep = cfg.depth_kept
    # The initial book holds about the steady state: arrivals a side / cancel rate, spread over the levels.
    per_level = 0.5 * cfg.limit_rate / max(cfg.cancel_rate, 1e-9) / levels
    ip = np.zeros(E.N_IP, np.int64)
    ip[E.I_SEED] = seed % (2 ** 32)
    ip[E.I_T0] = cfg.start_ns
    ip[E.I_T_END] = cfg.start_ns + int(round(seconds * 1e9))
    ip[E.I_LEVELS] = levels
    ip[E.I_KEEP] = keep
    ip[E.I_TRADERS] = int(cfg.n_traders)
    ip[E.I_RING] = 1 << max(12, int(math.ceil(math.log2(16 * (keep + levels + 8)))))
    ip[E.I_INIT_PER_LEVEL] = int(min(max(round(per_level), 1), 50))
    pool = INITIAL_POOL
    capacity = int(seconds * (cfg.limit_rate + cfg.market_rate) * EVENTS_PER_ARRIVAL_GUESS) + 4 * len(script.ts) \
        + 2 * levels * int(ip[E.I_INIT_PER_LEVEL]) + 10_000
    act_out = np.full((len(script.ts), 4), -1, np.int64)
    while True:
        ev = np.empty((capacity, E.N_EVENT_COLUMNS), np.int64)
        st = np.zeros(E.N_STATE, np.int64)
        ice = np.full((script.ice_capacity + 1, 2), -1, np.int64)
        act_out[:] = -1
        ip[E.I_POOL] = pool
        E.simulate_kernel(fp, ip, script.ts, script.kind, script.side, script.offset, script.lots, script.owner,
                          script.ref, script.flag, script.value, act_out, ice, ev, st,
                          *E.scratch(pool, int(ip[E.I_RING])))
        if st[E.S_STATUS] == E.STATUS_SPAN:
            raise RuntimeError(f"the simulated book spans more than {ip[E.I_RING] // 4} ticks from the reference "
                               f"price; lower SimConfig.volatility or impact, or the scenarios' intensity")
        if st[E.S_STATUS] == E.STATUS_POOL_FULL:
            pool *= 4
            continue
        if st[E.S_NEV] > capacity:
            capacity = int(st[E.S_NEV] * 1.05) + 1000
            continue
        return ev[: st[E.S_NEV]], act_out, ice[: st[E.S_NICE]], int(st[E.S_NINIT])


def _orders(cfg: SimConfig, ev: np.ndarray, rng: np.random.Generator, price_dec: int, qty_dec: int) -> np.ndarray:
    n = len(ev)
    orders = np.empty(n, ORDER_EVENT_DTYPE)
    orders["exch_ts"] = ev[:, E.E_TS]
    delay = cfg.feed_latency_ns + (rng.exponential(cfg.feed_jitter_ns, n).astype(np.int64) if cfg.feed_jitter_ns
                                   else 0)
    orders["local_ts"] = np.maximum.accumulate(ev[:, E.E_TS] + delay) if n else []
    orders["seq"] = np.arange(1, n + 1)
    orders["event"] = ev[:, E.E_KIND]
    orders["order_id"] = ev[:, E.E_OID]
    orders["side"] = ev[:, E.E_SIDE]
    orders["price"] = np.round(ev[:, E.E_TICK] * cfg.tick_size, price_dec)
    orders["qty"] = np.round(ev[:, E.E_LOTS] * cfg.lot_size, qty_dec)
    orders["owner"] = ev[:, E.E_OWNER]
    orders["contra_id"] = ev[:, E.E_CID]
    orders["contra_owner"] = ev[:, E.E_COWN]
    return orders


def _deltas(cfg: SimConfig, ev: np.ndarray, orders: np.ndarray, n_init: int, qty_dec: int) -> np.ndarray:
    """One snapshot block (the initial book, ``seq`` of its last order) then one row per later L3 event."""
    init = pd.DataFrame({"side": ev[:n_init, E.E_SIDE], "price": orders["price"][:n_init],
                         "lots": ev[:n_init, E.E_LOTS]})
    book = init.groupby(["side", "price"], sort=True)["lots"].sum().reset_index()
    book["rank"] = -book["side"] * book["price"]  # best level first on each side
    book = book.sort_values(["side", "rank"], ascending=[False, True], kind="stable")
    m = len(book)
    rest = len(ev) - n_init
    deltas = np.empty(m + rest, DELTA_DTYPE)
    if n_init:
        deltas["exch_ts"][:m] = orders["exch_ts"][n_init - 1]
        deltas["local_ts"][:m] = orders["local_ts"][n_init - 1]
        deltas["seq"][:m] = orders["seq"][n_init - 1]
    deltas["side"][:m] = book["side"].to_numpy()
    deltas["price"][:m] = book["price"].to_numpy()
    deltas["qty"][:m] = np.round(book["lots"].to_numpy() * cfg.lot_size, qty_dec)
    deltas["is_snapshot"][:m] = True
    later = orders[n_init:]
    for name in ("exch_ts", "local_ts", "seq", "side", "price"):
        deltas[name][m:] = later[name]
    deltas["qty"][m:] = np.round(ev[n_init:, E.E_LVL] * cfg.lot_size, qty_dec)
    deltas["is_snapshot"][m:] = False
    return deltas


def _trades(orders: np.ndarray) -> np.ndarray:
    """One trade per resting order executed (not aggregated per aggressor)."""
    fills = orders[orders["event"] == EV_EXECUTE]
    trades = np.empty(len(fills), TRADE_DTYPE)
    for name in ("exch_ts", "local_ts", "price", "qty"):
        trades[name] = fills[name]
    trades["trade_id"] = np.arange(1, len(fills) + 1)
    trades["aggressor"] = -fills["side"]  # a resting bid is hit by a seller
    return trades


def _episodes(script: Script, act_out: np.ndarray, ice: np.ndarray, orders: np.ndarray) -> pd.DataFrame:
    if not script.episodes:
        return empty_episodes()
    # Only rows with a manipulator (owners 1..BACKGROUND_OWNER-1) on either side can belong to an episode.
    owner_col, contra_col = orders["owner"], orders["contra_owner"]
    orders = orders[((owner_col > 0) & (owner_col < E.BACKGROUND_OWNER))
                    | ((contra_col > 0) & (contra_col < E.BACKGROUND_OWNER))]
    rows = []
    for e, (kind, side, owner, detail) in enumerate(script.episodes):
        mine = script.episode == e
        ids = np.concatenate([act_out[mine, E.AO_OID], act_out[mine, E.AO_OID2],
                              ice[np.isin(ice[:, 1], np.flatnonzero(mine)), 0]])
        ids = np.unique(ids[ids >= 0])
        # Only ids that left a trace: resting orders (order_id) or aggressors (contra_id) of this owner.
        as_order = (orders["owner"] == owner) & np.isin(orders["order_id"], ids)
        as_contra = (orders["contra_owner"] == owner) & np.isin(orders["contra_id"], ids)
        traced = np.union1d(orders["order_id"][as_order], orders["contra_id"][as_contra])
        times = orders["exch_ts"][as_order | as_contra]
        start = int(script.ts[mine].min())
        end = int(max(script.ts[mine].max(), times.max() if len(times) else start))
        rows.append((e + 1, kind, start, end, side, [int(i) for i in traced], detail))
    frame = pd.DataFrame(rows, columns=list(EPISODE_COLUMNS))
    return frame.astype({"episode_id": "int64", "start_ts": "int64", "end_ts": "int64", "side": "int8"})


def simulate(config: SimConfig | None = None, *, seconds: float, seed: int,
             scenarios: Sequence[str | Scenario] = (), bad_data: Sequence[str] = ()) -> Simulation:
    """Simulate ``seconds`` of a limit order book; same arguments, bitwise the same arrays.

    config: the instrument and its background flow (default :class:`SimConfig`); seconds:
    horizon in simulated seconds; seed: any int >= 0 (the engine's own generator takes it
    modulo 2**32; the scripts' and the feed latency's generators take all of it); scenarios: names from
    :data:`~genesis.feeds.simulator.scenarios.SCENARIOS` or :class:`Scenario` objects (one or
    more episodes each, ground truth in ``events.episodes``); bad_data: names from
    :data:`~genesis.feeds.simulator.faults.BAD_DATA`, injected as extra rows listed in
    ``bad_rows`` (dropping those rows gives back the clean arrays).
    """
    cfg = config if config is not None else SimConfig()
    if not isinstance(cfg, SimConfig):
        raise TypeError(f"config must be a SimConfig, got {type(cfg).__name__}")
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds) \
            or seconds <= 0:
        raise ValueError(f"seconds={seconds!r} must be a finite number > 0")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed={seed!r} must be an integer >= 0")
    if isinstance(scenarios, (str, Scenario)):
        scenarios = [scenarios]
    if isinstance(bad_data, str):
        bad_data = [bad_data]
    resolved = tuple(as_scenario(s) for s in scenarios)
    unknown = [b for b in bad_data if b not in BAD_DATA]
    if unknown:
        raise ValueError(f"unknown bad_data {unknown}; known: {', '.join(BAD_DATA)}")
    seed = int(seed)
    script = build_script(cfg, float(seconds), np.random.default_rng([seed, 1]), resolved)
    ev, act_out, ice, n_init = _run(cfg, float(seconds), seed, script)
    price_dec = _decimals(cfg.tick_size)
    qty_dec = _decimals(cfg.lot_size)
    orders = _orders(cfg, ev, np.random.default_rng([seed, 2]), price_dec, qty_dec)
    events = MarketEvents(
        symbol=cfg.symbol,
        deltas=_deltas(cfg, ev, orders, n_init, qty_dec),
        trades=_trades(orders),
        orders=orders,
        episodes=_episodes(script, act_out, ice, orders),
    )
    sim = Simulation(events=events, config=cfg, seconds=float(seconds), seed=seed, scenarios=resolved,
                     n_initial_orders=n_init)
    if bad_data:
        sim.events, sim.bad_rows = inject(events, list(dict.fromkeys(bad_data)),
                                          np.random.default_rng([seed, 3]), cfg.tick_size)
    return sim
