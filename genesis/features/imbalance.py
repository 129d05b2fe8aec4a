"""Imbalance features: order-book imbalance (best level, level-weighted) and order-flow
imbalance (Cont, Kukanov and Stoikov 2014; multi-level as in Xu, Cont et al.).

A level is present when both its price and its size are set (not NaN). An empty row is
one whose best bid and best ask are both NaN (the book was invalid).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genesis.features.context import jit, jit_inline
from genesis.features.registry import Feature, Param
from genesis.features.windows import sums_size, window_sum


@dataclass(frozen=True)
class BoundedParam(Param):
    """A :class:`Param` with an upper bound as well (``Param`` itself only checks a minimum)."""

    maximum: float = np.inf

    def coerce(self, feature, value) -> float:
        number = super().coerce(feature, value)
        if number > self.maximum:
            raise ValueError(f"feature {feature!r}: parameter {self.name}={value!r} must be <= {self.maximum:g}")
        return number


WEIGHT_LEVELS = Param("levels", 10, "book levels per side", "l")
DECAY = BoundedParam("decay", 0.5, "weight of each level relative to the one before (0.01 to 1)", "d",
                     integer=False, minimum=0.01, maximum=1.0)
LEVEL = Param("level", 1, "book level (1 = best)", "l")
OFI_LEVELS = Param("levels", 10, "book levels per side", "l")
WINDOW = Param("window", 1, "rows summed (the last `window` rows, this one included)", "w")


# -- helpers ------------------------------------------------------------------------------

@jit_inline
def row_empty(best_bid, best_ask):
    """The row had no valid book (both best prices NaN)."""
    return best_bid != best_bid and best_ask != best_ask


@jit_inline
def level_flow(pb, qb, pa, qa, pb0, qb0, pa0, qa0):
    """OFI term of one level between the previous row (``*0``) and this one:
    1{Pb >= Pb0} qb - 1{Pb <= Pb0} qb0 - 1{Pa <= Pa0} qa + 1{Pa >= Pa0} qa0."""
    # selects, not branches: whether a price moved up, down or not follows the data
    e = 0.0
    e += qb if pb >= pb0 else 0.0
    e -= qb0 if pb <= pb0 else 0.0
    e -= qa if pa <= pa0 else 0.0
    e += qa0 if pa >= pa0 else 0.0
    return e


@jit_inline
def load_level(bid_px, bid_sz, ask_px, ask_sz, i, m, st, s):
    """Level m (0 = best) of row i into st[s:s+4] as (bid px, bid size, ask px, ask size); a
    missing level is price -inf (bid) / +inf (ask) with size 0, so that a level appearing or
    vanishing counts with its whole size."""
    pb, qb, pa, qa = bid_px[i, m], bid_sz[i, m], ask_px[i, m], ask_sz[i, m]
    if pb == pb and qb == qb:
        st[s], st[s + 1] = pb, qb
    else:
        st[s], st[s + 1] = -np.inf, 0.0
    if pa == pa and qa == qa:
        st[s + 2], st[s + 3] = pa, qa
    else:
        st[s + 2], st[s + 3] = np.inf, 0.0


# -- kernels ------------------------------------------------------------------------------

@jit
def obi(c, i0, i1, st, p, out):
    for i in range(i0, i1):
        qb, qa = c.bid_sz[i, 0], c.ask_sz[i, 0]
        if c.bid_px[i, 0] != c.bid_px[i, 0] or c.ask_px[i, 0] != c.ask_px[i, 0]:
            out[i] = np.nan
        else:
            out[i] = (qb - qa) / (qb + qa)  # NaN sizes propagate


@jit
def obi_weighted(c, i0, i1, st, p, out):
    levels = min(int(p[0]), c.bid_px.shape[1])
    decay = p[1]
    for i in range(i0, i1):
        num = den = 0.0
        w = 1.0
        for k in range(levels):
            qb, qa = c.bid_sz[i, k], c.ask_sz[i, k]
            qb = qb if c.bid_px[i, k] == c.bid_px[i, k] and qb == qb else 0.0
            qa = qa if c.ask_px[i, k] == c.ask_px[i, k] and qa == qa else 0.0
            num += w * (qb - qa)
            den += w * (qb + qa)
            w *= decay
        out[i] = num / den  # 0 / 0 = NaN when no level is present (an empty row)


# OFI state: st[0] = 1 when the previous row exists and was not empty; then the previous
# row's levels, 4 values each (load_level); then the window sum (windows.window_sum: NaN
# terms skipped, NaN when all are).

@jit
def ofi(c, i0, i1, st, p, out):
    m = int(p[0]) - 1
    w = int(p[1])
    for i in range(i0, i1):
        e = np.nan
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            st[0] = 0.0
        else:
            pb0, qb0, pa0, qa0 = st[1], st[2], st[3], st[4]
            load_level(c.bid_px, c.bid_sz, c.ask_px, c.ask_sz, i, m, st, 1)
            if st[0] == 1.0:
                e = level_flow(st[1], st[2], st[3], st[4], pb0, qb0, pa0, qa0)
            st[0] = 1.0
        out[i] = window_sum(st, 5, w, e)


@jit
def ofi_multi(c, i0, i1, st, p, out):
    levels = int(p[0])
    w = int(p[1])
    sums = 1 + 4 * levels
    for i in range(i0, i1):
        e = np.nan
        if row_empty(c.bid_px[i, 0], c.ask_px[i, 0]):
            st[0] = 0.0
        else:
            have_prev = st[0] == 1.0
            e = 0.0
            for m in range(levels):
                s = 1 + 4 * m
                pb0, qb0, pa0, qa0 = st[s], st[s + 1], st[s + 2], st[s + 3]
                load_level(c.bid_px, c.bid_sz, c.ask_px, c.ask_sz, i, m, st, s)
                if have_prev:
                    e += level_flow(st[s], st[s + 1], st[s + 2], st[s + 3], pb0, qb0, pa0, qa0)
            if not have_prev:
                e = np.nan
            st[0] = 1.0
        out[i] = window_sum(st, sums, w, e)


FEATURES = (
    Feature("obi", "imbalance", "ratio",
            "Order-book imbalance at the best level, in [-1, 1]: (qb1 - qa1) / (qb1 + qa1); NaN if either "
            "side is empty.", obi),
    Feature("obi_weighted", "imbalance", "ratio",
            "Level-weighted book imbalance in [-1, 1]: sum_k w_k (qb_k - qa_k) / sum_k w_k (qb_k + qa_k), "
            "k = 1..levels, w_k = decay**(k-1), missing levels count 0; +-1 on a one-sided book, NaN on "
            "an empty row.", obi_weighted, (WEIGHT_LEVELS, DECAY),
            levels=lambda p: int(p["levels"])),
    Feature("ofi", "imbalance", "qty",
            "Order-flow imbalance (Cont, Kukanov and Stoikov 2014) at book level `level`, summed over the "
            "last `window` rows: e = 1{Pb >= Pb'} qb - 1{Pb <= Pb'} qb' - 1{Pa <= Pa'} qa + 1{Pa >= Pa'} qa' "
            "(' = previous row; a missing level is price -inf bid / +inf ask with size 0). e is NaN at the "
            "first row and when this or the previous row is empty; the sum skips NaN terms and is NaN "
            "when all are.", ofi, (LEVEL, WINDOW),
            state=lambda p: 5 + sums_size(p["window"]),
            levels=lambda p: int(p["level"]), lookback=lambda p: int(p["window"]) + 1),
    Feature("ofi_multi", "imbalance", "qty",
            "Multi-level order-flow imbalance: the per-level OFI term e_m of `ofi` summed over levels "
            "m = 1..levels, then over the last `window` rows (same NaN conventions).",
            ofi_multi, (OFI_LEVELS, WINDOW),
            state=lambda p: 1 + 4 * int(p["levels"]) + sums_size(p["window"]),
            levels=lambda p: int(p["levels"]), lookback=lambda p: int(p["window"]) + 1),
)


@jit_inline
def dispatch(local, c, i0, i1, st, p, out):
    if local == 0:
        obi(c, i0, i1, st, p, out)
    elif local == 1:
        obi_weighted(c, i0, i1, st, p, out)
    elif local == 2:
        ofi(c, i0, i1, st, p, out)
    elif local == 3:
        ofi_multi(c, i0, i1, st, p, out)
