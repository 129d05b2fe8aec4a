"""The simulator's event loop: an order-level (L3) limit order book in Numba.

One call of :func:`simulate_kernel` runs a whole horizon. Everything is integer inside:
prices are ticks (int64), sizes are lots (int64), time is ns (int64); the caller converts to
prices and quantities at the edge. The only float state is the reference (efficient) price,
in ticks.

Model, in continuous time (Gillespie: exponential waiting times at the summed rate, then one
event drawn in proportion to its rate; rates are constant between events, so redrawing the
waiting time after a scripted action is exact by memorylessness):

* background limit orders arrive at ``limit_rate`` per second (half per side, each side
  scaled by a multiplier the scripts may lower), ``k`` ticks behind the reference:
  a bid at ``floor(ref) - k``, an ask at ``floor(ref) + 1 + k``, ``k`` geometric with decay
  ``offset_decay`` truncated to ``levels`` ticks. A limit order that would cross executes as
  a marketable order up to its price, the rest rests;
* market orders arrive at ``market_rate``, buy or sell with equal odds, and walk the other
  side in price-time priority: one EV_EXECUTE per resting order hit. With ``flow_bias`` > 0
  a latent regime (buy pressure, none or sell pressure; after an exponential time of mean
  ``flow_persistence_s`` it moves to one of the other two, equally likely) makes buys
  ``0.5 + flow_bias`` likely in a buy regime, ``0.5 - flow_bias`` in a sell regime, even odds
  in between: a planted, persistent order-flow signal (through impact, future mid moves
  follow it; the regime without pressure is what a "stationary" label can recognise);
* each resting background order is cancelled at ``cancel_rate`` per second (a random one of
  the live background orders), partially (EV_CANCEL of half its size) with probability
  ``partial_cancel_share``, else fully (EV_DELETE);
* the reference price diffuses, ``volatility * sqrt(dt)`` ticks, and moves by
  ``impact * signed executed volume`` of every market order (ticks per unit of quantity):
  the endogenous price impact. Liquidity providers quote around it, so the mid follows;
* orders more than ``keep_depth`` ticks behind the reference are withdrawn (EV_DELETE);
* no side is ever empty, not even between the events of one sweep: before the last order of
  a side is executed or deleted, a passive background order joins that side (an ADD just
  before the event that would have emptied it);
* self-trade prevention for background traders (owners >= BACKGROUND_OWNER): a resting
  order of the aggressor's own owner is deleted instead of executed (Binance's
  "expire maker"), so owner == contra_owner only happens in the wash-trade scenario.

Scripted actions (built by :mod:`genesis.feeds.simulator.scenarios`) are merged into the
loop at their times: they act relative to the book at that moment (e.g. "a bid one tick
behind the best bid"). The orders they create are written to ``act_out`` so the caller can
build the ground truth. Orders flagged ``F_PULL`` (spoofs, layers, stuffing quotes) are
pulled by their owner the moment an aggressor reaches them, so they are never executed.
A wash trade is a pre-arranged cross: the owner's order rests at the touch and the owner's
aggressing order is matched against it at once (the one match that bypasses time priority).
An iceberg (one at a time) shows one slice; an executed slice is refilled at once with a new
id at the back of the same level, so the same aggressor can go on into the reserve, and a
slice left more than ``ICE_REPRICE_TICKS`` behind its touch is moved to the touch.

Helpers take the book as one tuple ``bk = (o, lv, st, bg, free, ev, ice_ids, fp, ip, fst)``.
"""

from __future__ import annotations

import math

import numba as nb
import numpy as np

# Event codes: the shared L3 codes (genesis.feeds.events).
from genesis.feeds.events import EV_ADD, EV_CANCEL, EV_DELETE, EV_EXECUTE

BACKGROUND_OWNER = 1000  # background traders are owners BACKGROUND_OWNER .. BACKGROUND_OWNER + n - 1

# Scripted action kinds.
A_LIMIT = 1  # side, offset (ticks behind the own touch; clamped passive), lots, owner, flag
A_MARKET = 2  # side (the aggressor's), lots, owner
A_CANCEL = 3  # ref: the action whose order is deleted (skipped when that order is gone)
A_WASH = 4  # side (aggressor), lots, owner: rests at the other touch, then hits it itself
A_WITHDRAW = 5  # side, offset: background orders within `offset` ticks of that touch are deleted
A_SUPPRESS = 6  # side, value: background limit arrivals on that side are scaled by `value`
A_REF_SHIFT = 7  # value: the reference price moves by `value` ticks
A_ICE_START = 8  # side, offset, lots (parent), value (slice lots), owner
A_ICE_END = 9  # the iceberg's current slice is deleted

# Order flags.
F_PULL = 1  # pulled by its owner instead of being executed
F_ICE = 2  # the displayed slice of the iceberg

# Order pool columns (int64 (capacity, 9)).
O_ID, O_SIDE, O_TICK, O_LOTS, O_OWNER, O_NEXT, O_PREV, O_FLAG, O_BGPOS = range(9)
# Level ring columns (int64 (W, 3)), indexed by tick & (W - 1).
L_HEAD, L_TAIL, L_LOTS = range(3)
# Output event columns (int64 (capacity, 10)); E_LVL: the level's total lots after the event.
E_TS, E_KIND, E_OID, E_SIDE, E_TICK, E_LOTS, E_OWNER, E_CID, E_COWN, E_LVL = range(10)
N_EVENT_COLUMNS = 10
# act_out columns (int64 (n_actions, 4)): the order the action created (or hit), its tick,
# its pool slot (limit orders), the second order id (market order of a wash trade).
AO_OID, AO_TICK, AO_SLOT, AO_OID2 = range(4)

# State vector (int64): per-side entries at +0 (bid) and +1 (ask).
S_BEST = 0  # best tick per side
S_DEEP = 2  # deepest tick per side
S_NORD = 4  # resting orders per side
S_NFREE = 6
S_NBG = 7
S_NEXT_ID = 8
S_NEV = 9
S_STATUS = 10
S_T = 11  # current time, ns
S_MASK = 12
S_NINIT = 13  # events of the initial book
S_NICE = 14  # iceberg slice ids written
S_ICE_ACTIVE = 15
S_ICE_REM = 16
S_ICE_TICK = 17
S_ICE_SIDE = 18
S_ICE_SLICE = 19
S_ICE_OWNER = 20
S_ICE_SLOT = 21
S_ICE_OID = 22
S_ICE_GONE = 23
S_ICE_ACT = 24
N_STATE = 25

ICE_REPRICE_TICKS = 2  # an iceberg more than this many ticks behind its touch moves to the touch

# Helpers are compiled without Numba's reference counting: they never allocate and the arrays
# they are handed live in the kernel's caller, so counting would only cost atomic increments
# on each of the ~10 arrays at every call (the kernel makes several calls per event).
_jit = nb.njit(cache=True, _nrt=False)

STATUS_OK = 0
STATUS_POOL_FULL = 1  # more resting orders than the pool holds: the caller retries with a larger pool
STATUS_SPAN = 2  # the book spans more ticks than the level ring holds

# Float parameters (fp) and integer parameters (ip) of the kernel.
P_REF0, P_VOL, P_IMPACT, P_LOT, P_LIMIT_RATE, P_MARKET_RATE, P_CANCEL_RATE, P_SIZE_MU, P_SIZE_SIGMA, \
    P_OFFSET_DECAY, P_PARTIAL, P_FLOW_BIAS, P_FLOW_SWITCH = range(13)
N_FP = 13
I_SEED, I_T0, I_T_END, I_LEVELS, I_KEEP, I_TRADERS, I_RING, I_POOL, I_INIT_PER_LEVEL = range(9)
N_IP = 9


@_jit
def _si(side):
    return 0 if side > 0 else 1


@_jit
def _emit(ev, st, kind, oid, side, tick, lots, owner, cid, cown, lvl):
    """Append one L3 event at the current time; past capacity only the count grows (the caller retries)."""
    n = st[S_NEV]
    if n < ev.shape[0]:
        ev[n, E_TS] = st[S_T]
        ev[n, E_KIND] = kind
        ev[n, E_OID] = oid
        ev[n, E_SIDE] = side
        ev[n, E_TICK] = tick
        ev[n, E_LOTS] = lots
        ev[n, E_OWNER] = owner
        ev[n, E_CID] = cid
        ev[n, E_COWN] = cown
        ev[n, E_LVL] = lvl
    st[S_NEV] = n + 1


@_jit
def _insert(o, lv, st, bg, free, oid, side, tick, lots, owner, flag, is_bg):
    """Rest an order at the tail of its level; returns its pool slot, or -1 (status set)."""
    nfree = st[S_NFREE]
    if nfree == 0:
        st[S_STATUS] = STATUS_POOL_FULL
        return -1
    li = tick & st[S_MASK]
    head = lv[li, L_HEAD]
    if head >= 0 and o[head, O_TICK] != tick:
        st[S_STATUS] = STATUS_SPAN
        return -1
    slot = free[nfree - 1]
    st[S_NFREE] = nfree - 1
    o[slot, O_ID] = oid
    o[slot, O_SIDE] = side
    o[slot, O_TICK] = tick
    o[slot, O_LOTS] = lots
    o[slot, O_OWNER] = owner
    o[slot, O_FLAG] = flag
    o[slot, O_NEXT] = -1
    tail = lv[li, L_TAIL]
    o[slot, O_PREV] = tail
    if tail < 0:
        lv[li, L_HEAD] = slot
    else:
        o[tail, O_NEXT] = slot
    lv[li, L_TAIL] = slot
    lv[li, L_LOTS] += lots
    s = _si(side)
    if st[S_NORD + s] == 0:
        st[S_BEST + s] = tick
        st[S_DEEP + s] = tick
    else:
        if side * (tick - st[S_BEST + s]) > 0:
            st[S_BEST + s] = tick
        if side * (tick - st[S_DEEP + s]) < 0:
            st[S_DEEP + s] = tick
    st[S_NORD + s] += 1
    if is_bg:
        nbg = st[S_NBG]
        bg[nbg] = slot
        o[slot, O_BGPOS] = nbg
        st[S_NBG] = nbg + 1
    else:
        o[slot, O_BGPOS] = -1
    return slot


@_jit
def _unlink(o, lv, st, bg, free, slot):
    """Take a slot out of its level, the side's best/deepest ticks, the background list and the pool.

    The level's lots are the caller's (already reduced); ``O_LOTS`` is left as a marker:
    0 after a full execution, -1 after a delete.
    """
    mask = st[S_MASK]
    side = o[slot, O_SIDE]
    s = _si(side)
    tick = o[slot, O_TICK]
    li = tick & mask
    prev = o[slot, O_PREV]
    nxt = o[slot, O_NEXT]
    if prev >= 0:
        o[prev, O_NEXT] = nxt
    else:
        lv[li, L_HEAD] = nxt
    if nxt >= 0:
        o[nxt, O_PREV] = prev
    else:
        lv[li, L_TAIL] = prev
    st[S_NORD + s] -= 1
    if lv[li, L_HEAD] < 0 and st[S_NORD + s] > 0:
        # The level emptied: walk to the next occupied one (there is one between best and deepest).
        if tick == st[S_BEST + s]:
            t = tick - side
            while lv[t & mask, L_HEAD] < 0:
                t -= side
            st[S_BEST + s] = t
        if tick == st[S_DEEP + s]:
            t = tick + side
            while lv[t & mask, L_HEAD] < 0:
                t += side
            st[S_DEEP + s] = t
    pos = o[slot, O_BGPOS]
    if pos >= 0:
        last = bg[st[S_NBG] - 1]
        bg[pos] = last
        o[last, O_BGPOS] = pos
        st[S_NBG] -= 1
        o[slot, O_BGPOS] = -1
    free[st[S_NFREE]] = slot
    st[S_NFREE] += 1


@_jit
def _keep_side(bk, side):
    """Before the last order of a side goes: a background order replenishes it, so no side is ever empty."""
    st = bk[2]
    if st[S_NORD + _si(side)] == 1:
        _replenish(bk, side)


@_jit
def _delete(bk, slot):
    """The owner removes the whole remaining order (EV_DELETE)."""
    o, lv, st, bg, free, ev = bk[0], bk[1], bk[2], bk[3], bk[4], bk[5]
    _keep_side(bk, o[slot, O_SIDE])
    lots = o[slot, O_LOTS]
    tick = o[slot, O_TICK]
    li = tick & st[S_MASK]
    lv[li, L_LOTS] -= lots
    if o[slot, O_FLAG] & F_ICE:
        st[S_ICE_GONE] = 1
    _emit(ev, st, EV_DELETE, o[slot, O_ID], o[slot, O_SIDE], tick, lots, o[slot, O_OWNER], -1, -1, lv[li, L_LOTS])
    o[slot, O_LOTS] = -1
    _unlink(o, lv, st, bg, free, slot)


@_jit
def _walk(bk, aggressor, lots, owner, oid, has_limit, limit_tick):
    """Match an aggressing order against the other side in price-time priority; returns lots executed.

    An executed iceberg slice is refilled at once (new id, back of its level), so the same
    aggressor goes on matching against the reserve behind any orders queued there.
    """
    o, lv, st, bg, free, ev = bk[0], bk[1], bk[2], bk[3], bk[4], bk[5]
    opp = 1 - _si(aggressor)
    mask = st[S_MASK]
    remaining = lots
    done = 0
    while remaining > 0 and st[S_NORD + opp] > 0:
        tick = st[S_BEST + opp]
        if has_limit and aggressor * (tick - limit_tick) > 0:
            break
        li = tick & mask
        slot = lv[li, L_HEAD]
        resting_owner = o[slot, O_OWNER]
        if (o[slot, O_FLAG] & F_PULL) or (owner >= BACKGROUND_OWNER and resting_owner == owner):
            _delete(bk, slot)
            continue
        have = o[slot, O_LOTS]
        fill = min(remaining, have)
        if fill == have:
            _keep_side(bk, -aggressor)
        o[slot, O_LOTS] = have - fill
        lv[li, L_LOTS] -= fill
        remaining -= fill
        done += fill
        _emit(ev, st, EV_EXECUTE, o[slot, O_ID], -aggressor, tick, fill, resting_owner, oid, owner, lv[li, L_LOTS])
        if fill == have:
            _unlink(o, lv, st, bg, free, slot)
            if o[slot, O_FLAG] & F_ICE:
                _ice_refill(bk)
    return done


@_jit
def _passive(st, side, tick):
    """Clamp a tick so that an order on ``side`` does not cross the other side."""
    other = 1 - _si(side)
    if st[S_NORD + other] > 0 and side * (tick - st[S_BEST + other]) >= 0:
        return st[S_BEST + other] - side
    return tick


@_jit
def _new_id(st):
    oid = st[S_NEXT_ID]
    st[S_NEXT_ID] = oid + 1
    return oid


@_jit
def _draw_lots(fp):
    return max(1, int(round(math.exp(fp[P_SIZE_MU] + fp[P_SIZE_SIGMA] * np.random.standard_normal()))))


@_jit
def _draw_offset(fp, levels):
    """Ticks behind the reference: geometric with decay ``p``, truncated to ``levels`` values."""
    p = fp[P_OFFSET_DECAY]
    if p >= 1.0:
        return 0
    q = 1.0 - p
    u = np.random.random() * (1.0 - q ** levels)
    k = int(math.floor(math.log(1.0 - u) / math.log(q)))
    return min(max(k, 0), levels - 1)


@_jit
def _draw_background(bk, side):
    """Tick, lots and owner of a new background limit order ``k`` ticks behind the reference."""
    fp, ip = bk[7], bk[8]
    base = int(math.floor(bk[9][0]))
    k = _draw_offset(fp, ip[I_LEVELS])
    tick = base - k if side > 0 else base + 1 + k
    return tick, _draw_lots(fp), BACKGROUND_OWNER + np.random.randint(0, ip[I_TRADERS])


@_jit
def _rest(bk, oid, side, tick, lots, owner):
    """Rest a background order and emit its EV_ADD."""
    o, lv, st, bg, free, ev = bk[0], bk[1], bk[2], bk[3], bk[4], bk[5]
    if _insert(o, lv, st, bg, free, oid, side, tick, lots, owner, 0, True) >= 0:
        _emit(ev, st, EV_ADD, oid, side, tick, lots, owner, -1, -1, lv[tick & st[S_MASK], L_LOTS])


@_jit
def _replenish(bk, side):
    """A passive background order (clamped not to cross): what keeps a side from going empty.

    Separate from :func:`_background_limit` on purpose: it never matches, so the matching
    code can call it without recursion (Numba's cache cannot hold recursive functions).
    """
    tick, lots, owner = _draw_background(bk, side)
    _rest(bk, _new_id(bk[2]), side, _passive(bk[2], side, tick), lots, owner)


@_jit
def _background_limit(bk, side):
    """One background limit order; a marketable one executes first, its remainder rests."""
    st = bk[2]
    tick, lots, owner = _draw_background(bk, side)
    oid = _new_id(st)
    other = 1 - _si(side)
    if st[S_NORD + other] > 0 and side * (tick - st[S_BEST + other]) >= 0:
        lots -= _walk(bk, side, lots, owner, oid, True, tick)
    if lots > 0:
        _rest(bk, oid, side, tick, lots, owner)


@_jit
def _limit_action(bk, side, offset, lots, owner, flag):
    """A scripted resting order ``offset`` ticks behind its own touch, never crossing; returns its slot."""
    o, lv, st, bg, free, ev = bk[0], bk[1], bk[2], bk[3], bk[4], bk[5]
    ref = bk[9][0]
    s = _si(side)
    if st[S_NORD + s] > 0:
        touch = st[S_BEST + s]
    else:
        touch = int(math.floor(ref)) if side > 0 else int(math.floor(ref)) + 1
    tick = _passive(st, side, touch - side * offset)
    oid = _new_id(st)
    slot = _insert(o, lv, st, bg, free, oid, side, tick, lots, owner, flag, False)
    if slot >= 0:
        _emit(ev, st, EV_ADD, oid, side, tick, lots, owner, -1, -1, lv[tick & st[S_MASK], L_LOTS])
    return slot


@_jit
def _is_live(o, slot, oid):
    return slot >= 0 and o[slot, O_ID] == oid and o[slot, O_LOTS] > 0


@_jit
def _prune_side(bk, side, bound):
    """Withdraw whole levels deeper than ``bound`` (stale quotes far from the reference)."""
    o, lv, st = bk[0], bk[1], bk[2]
    s = _si(side)
    mask = st[S_MASK]
    while st[S_NORD + s] > 0 and side * (st[S_DEEP + s] - bound) < 0:
        _delete(bk, lv[st[S_DEEP + s] & mask, L_HEAD])


@_jit
def _ice_refill(bk):
    """After the displayed slice is executed: show the next one (new id, same price, back of the queue)."""
    o, lv, st, bg, free, ev, ice_ids = bk[0], bk[1], bk[2], bk[3], bk[4], bk[5], bk[6]
    if st[S_ICE_ACTIVE] == 0:
        return
    remaining = st[S_ICE_REM]
    side = st[S_ICE_SIDE]
    tick = st[S_ICE_TICK]
    if remaining <= 0 or _passive(st, side, tick) != tick:
        st[S_ICE_ACTIVE] = 0  # parent done, or the market moved through its price
        return
    lots = min(st[S_ICE_SLICE], remaining)
    oid = _new_id(st)
    slot = _insert(o, lv, st, bg, free, oid, side, tick, lots, st[S_ICE_OWNER], F_ICE, False)
    if slot < 0:
        return
    _emit(ev, st, EV_ADD, oid, side, tick, lots, st[S_ICE_OWNER], -1, -1, lv[tick & st[S_MASK], L_LOTS])
    st[S_ICE_REM] = remaining - lots
    st[S_ICE_SLOT] = slot
    st[S_ICE_OID] = oid
    n = st[S_NICE]
    if n < ice_ids.shape[0]:
        ice_ids[n, 0] = oid
        ice_ids[n, 1] = st[S_ICE_ACT]
    st[S_NICE] = n + 1


@_jit
def simulate_kernel(fp, ip, act_ts, act_kind, act_side, act_offset, act_lots, act_owner, act_ref, act_flag,
                    act_value, act_out, ice_ids, ev, st, o, lv, free, bg, fst):
    """Run the whole horizon. Returns nothing; results are in ``ev``, ``act_out``, ``ice_ids``, ``st``.

    fp (N_FP,) float64 and ip (N_IP,) int64: parameters (P_*, I_* indices); act_* (n_actions,):
    scripted actions sorted by ``act_ts`` (ns); act_out (n_actions, 4) int64 filled here;
    ice_ids (m, 2) int64: (slice order id, iceberg start action) per displayed slice;
    ev (capacity, N_EVENT_COLUMNS) int64: the L3 events; st (N_STATE,) int64 zeros.
    ``st[S_NEV]`` > capacity or ``st[S_STATUS]`` != 0 means: retry with larger arrays.
    Scratch (from :func:`scratch`): o (pool, 9) the order pool, lv (ring, 3) the level ring,
    free (pool,) and bg (pool,) slot lists, fst (1,) float state. The kernel never allocates.
    """
    np.random.seed(ip[I_SEED])
    ring = ip[I_RING]
    pool = ip[I_POOL]
    levels = ip[I_LEVELS]
    keep = ip[I_KEEP]
    o[:] = -1
    lv[:, L_HEAD] = -1
    lv[:, L_TAIL] = -1
    lv[:, L_LOTS] = 0
    for k in range(pool):
        free[k] = pool - 1 - k
    st[S_NFREE] = pool
    st[S_MASK] = ring - 1
    st[S_NEXT_ID] = 1
    st[S_T] = ip[I_T0]
    fst[0] = fp[P_REF0]  # float state: the reference price (ticks)
    fst[1] = 1.0  # the latent order-flow regime (+1 buy pressure, 0 none, -1 sell), used when P_FLOW_BIAS > 0
    flow_bias = fp[P_FLOW_BIAS]
    flow_switch = fp[P_FLOW_SWITCH]  # regime switches per ns
    bk = (o, lv, st, bg, free, ev, ice_ids, fp, ip, fst)
    sqrt_ns = math.sqrt(1e-9)
    mult_bid = 1.0  # background limit arrival multipliers (A_SUPPRESS)
    mult_ask = 1.0

    # Initial book: `init_per_level` background orders on each of the first `levels` ticks a side.
    base = int(math.floor(fst[0]))
    for k in range(levels):
        for side in (1, -1):
            tick = base - k if side > 0 else base + 1 + k
            for _ in range(ip[I_INIT_PER_LEVEL]):
                lots = _draw_lots(fp)
                owner = BACKGROUND_OWNER + np.random.randint(0, ip[I_TRADERS])
                oid = _new_id(st)
                if _insert(o, lv, st, bg, free, oid, side, tick, lots, owner, 0, True) < 0:
                    return
                _emit(ev, st, EV_ADD, oid, side, tick, lots, owner, -1, -1, lv[tick & st[S_MASK], L_LOTS])
    st[S_NINIT] = st[S_NEV]

    t = ip[I_T0]
    t_end = ip[I_T_END]
    n_act = act_ts.shape[0]
    ai = 0
    half_limit = 0.5 * fp[P_LIMIT_RATE]
    market_rate = fp[P_MARKET_RATE]
    cancel_rate = fp[P_CANCEL_RATE]
    vol = fp[P_VOL]
    impact = fp[P_IMPACT] * fp[P_LOT]  # ticks per lot
    while True:
        rate_bid = half_limit * mult_bid
        rate_ask = half_limit * mult_ask
        total = rate_bid + rate_ask + market_rate + cancel_rate * st[S_NBG]
        if total > 0.0:
            t_next = t + 1 + int(np.random.exponential(1e9 / total))
        else:
            t_next = t_end
        scripted = ai < n_act and act_ts[ai] <= t_next and act_ts[ai] < t_end
        if not scripted and t_next >= t_end:
            break
        new_t = max(act_ts[ai], t) if scripted else t_next
        if new_t > t and vol > 0.0:
            fst[0] += vol * math.sqrt(new_t - t) * sqrt_ns * np.random.standard_normal()
        if flow_bias > 0.0 and new_t > t and np.random.random() < 1.0 - math.exp(-flow_switch * (new_t - t)):
            # To one of the two other regimes, equally likely (draws only when the signal is
            # on: runs without it are unchanged).
            step = 1.0 if np.random.random() < 0.5 else 2.0
            fst[1] = (fst[1] + 1.0 + step) % 3.0 - 1.0
        t = new_t
        st[S_T] = t
        if scripted:
            kind = act_kind[ai]
            side = act_side[ai]
            if kind == A_LIMIT:
                slot = _limit_action(bk, side, act_offset[ai], act_lots[ai],
                                     act_owner[ai], act_flag[ai])
                if slot >= 0:
                    act_out[ai, AO_OID] = o[slot, O_ID]
                    act_out[ai, AO_TICK] = o[slot, O_TICK]
                    act_out[ai, AO_SLOT] = slot
            elif kind == A_MARKET:
                oid = _new_id(st)
                done = _walk(bk, side, act_lots[ai], act_owner[ai], oid, False, 0)
                fst[0] += impact * side * done
                act_out[ai, AO_OID] = oid
                act_out[ai, AO_SLOT] = done
            elif kind == A_CANCEL:
                r = act_ref[ai]
                slot = act_out[r, AO_SLOT]
                if _is_live(o, slot, act_out[r, AO_OID]):
                    act_out[ai, AO_OID] = act_out[r, AO_OID]
                    _delete(bk, slot)
            elif kind == A_WASH:
                # A pre-arranged cross: the owner's resting order at the other touch, then the
                # owner's aggressing order matched against it (both legs are the owner's).
                owner = act_owner[ai]
                lots = act_lots[ai]
                slot = _limit_action(bk, -side, 0, lots, owner, 0)
                if slot >= 0:
                    tick = o[slot, O_TICK]
                    li = tick & st[S_MASK]
                    oid2 = _new_id(st)
                    lv[li, L_LOTS] -= lots
                    o[slot, O_LOTS] = 0
                    _emit(ev, st, EV_EXECUTE, o[slot, O_ID], -side, tick, lots, owner, oid2, owner, lv[li, L_LOTS])
                    act_out[ai, AO_OID] = o[slot, O_ID]
                    act_out[ai, AO_TICK] = tick
                    act_out[ai, AO_OID2] = oid2
                    _unlink(o, lv, st, bg, free, slot)
            elif kind == A_WITHDRAW:
                s = _si(side)
                if st[S_NORD + s] > 0:
                    top = st[S_BEST + s]
                    for d in range(act_offset[ai] + 1):
                        tick = top - side * d
                        slot = lv[tick & st[S_MASK], L_HEAD]
                        while slot >= 0 and o[slot, O_TICK] == tick:
                            nxt = o[slot, O_NEXT]
                            if o[slot, O_OWNER] >= BACKGROUND_OWNER:
                                _delete(bk, slot)
                            slot = nxt
            elif kind == A_SUPPRESS:
                if side > 0:
                    mult_bid = act_value[ai]
                else:
                    mult_ask = act_value[ai]
            elif kind == A_REF_SHIFT:
                fst[0] += act_value[ai]
            elif kind == A_ICE_START:
                lots = min(int(act_value[ai]), act_lots[ai])
                slot = _limit_action(bk, side, act_offset[ai], lots, act_owner[ai], F_ICE)
                if slot >= 0:
                    st[S_ICE_ACTIVE] = 1
                    st[S_ICE_REM] = act_lots[ai] - lots
                    st[S_ICE_TICK] = o[slot, O_TICK]
                    st[S_ICE_SIDE] = side
                    st[S_ICE_SLICE] = int(act_value[ai])
                    st[S_ICE_OWNER] = act_owner[ai]
                    st[S_ICE_SLOT] = slot
                    st[S_ICE_OID] = o[slot, O_ID]
                    st[S_ICE_ACT] = ai
                    st[S_ICE_GONE] = 0
                    act_out[ai, AO_OID] = o[slot, O_ID]
                    act_out[ai, AO_TICK] = o[slot, O_TICK]
                    n = st[S_NICE]
                    if n < ice_ids.shape[0]:
                        ice_ids[n, 0] = o[slot, O_ID]
                        ice_ids[n, 1] = ai
                    st[S_NICE] = n + 1
            elif kind == A_ICE_END:
                if st[S_ICE_ACTIVE] and _is_live(o, st[S_ICE_SLOT], st[S_ICE_OID]):
                    _delete(bk, st[S_ICE_SLOT])
                st[S_ICE_ACTIVE] = 0
            ai += 1
        else:
            u = np.random.random() * total
            if u < rate_bid:
                _background_limit(bk, 1)
            elif u < rate_bid + rate_ask:
                _background_limit(bk, -1)
            elif u < rate_bid + rate_ask + market_rate:
                side = 1 if np.random.random() < 0.5 + flow_bias * fst[1] else -1
                lots = _draw_lots(fp)
                owner = BACKGROUND_OWNER + np.random.randint(0, ip[I_TRADERS])
                done = _walk(bk, side, lots, owner, _new_id(st), False, 0)
                fst[0] += impact * side * done
            elif st[S_NBG] > 0:
                slot = bg[min(int(np.random.random() * st[S_NBG]), st[S_NBG] - 1)]
                lots = o[slot, O_LOTS]
                if lots >= 2 and np.random.random() < fp[P_PARTIAL]:
                    cut = lots // 2
                    o[slot, O_LOTS] = lots - cut
                    li = o[slot, O_TICK] & st[S_MASK]
                    lv[li, L_LOTS] -= cut
                    _emit(ev, st, EV_CANCEL, o[slot, O_ID], o[slot, O_SIDE], o[slot, O_TICK], cut,
                          o[slot, O_OWNER], -1, -1, lv[li, L_LOTS])
                else:
                    _delete(bk, slot)
        if st[S_STATUS] != STATUS_OK:
            return
        # Book maintenance after every event: the iceberg refills, stale quotes go, no side stays empty.
        if st[S_ICE_GONE]:
            st[S_ICE_GONE] = 0
            st[S_ICE_ACTIVE] = 0
        if st[S_ICE_ACTIVE]:
            # Left behind by the market: the iceberg follows, its slice re-placed at the touch.
            ice_side = st[S_ICE_SIDE]
            if ice_side * (st[S_BEST + _si(ice_side)] - st[S_ICE_TICK]) > ICE_REPRICE_TICKS:
                st[S_ICE_REM] += o[st[S_ICE_SLOT], O_LOTS]
                _delete(bk, st[S_ICE_SLOT])
                st[S_ICE_GONE] = 0
                st[S_ICE_TICK] = st[S_BEST + _si(ice_side)]
                _ice_refill(bk)
        base = int(math.floor(fst[0]))
        _prune_side(bk, 1, base - keep)
        _prune_side(bk, -1, base + 1 + keep)
        for side in (1, -1):
            if st[S_NORD + _si(side)] == 0:
                _replenish(bk, side)
        if st[S_STATUS] != STATUS_OK:
            return
        if abs(st[S_BEST] - base) > ring // 4 or abs(st[S_BEST + 1] - base) > ring // 4:
            st[S_STATUS] = STATUS_SPAN
            return


def scratch(pool: int, ring: int) -> tuple[np.ndarray, ...]:
    """The kernel's working memory: order pool, level ring, free and background slot lists, float state."""
    return (np.empty((pool, 9), np.int64), np.empty((ring, 3), np.int64), np.empty(pool, np.int64),
            np.empty(pool, np.int64), np.zeros(2))
