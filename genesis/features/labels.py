"""Training labels: FI-2010 / DeepLOB mid-price direction and Lopez de Prado's triple barrier.

Labels look into the future BY DESIGN: row t's label is made from rows after t. They are
targets to learn, never inputs; a model may only see features of rows <= t. The last rows
of a series (and rows whose window holds NaN) get :data:`NO_LABEL` instead of a guess;
drop them before training (``labels != NO_LABEL``).

Horizons are in rows of whatever series is given (event time, a time grid or volume time:
see :mod:`genesis.features.sampling`).
"""

from __future__ import annotations

from typing import Literal

import numba as nb
import numpy as np
import pandas as pd

#: Label of a row that cannot be labelled (series end, NaN in its window). int8.
NO_LABEL = -128

# Room for the exact sum of any doubles: its non-overlapping parts occupy disjoint bit
# ranges between 2^-1074 and 2^1023, so there are at most 2098 of them (prices need 2 or 3).
_MAX_PARTS = 2112


# -- exact sums (Shewchuk's expansions, as in Python's math.fsum) ------------------------

@nb.njit(cache=True)
def _grow(parts, n, x):
    """Add ``x`` exactly to the sum held in ``parts[:n]`` (non-overlapping, increasing
    magnitude); returns the new number of parts."""
    i = 0
    for k in range(n):
        y = parts[k]
        if abs(x) < abs(y):
            x, y = y, x
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            parts[i] = lo
            i += 1
        x = hi
    if x != 0.0:
        parts[i] = x
        i += 1
    return i


@nb.njit(cache=True)
def _rounded(parts, n):
    """The exact sum ``parts[:n]`` rounded once to the nearest double (ties to even)."""
    if n == 0:
        return 0.0
    n -= 1
    hi = parts[n]
    lo = 0.0
    while n > 0:
        x = hi
        n -= 1
        y = parts[n]
        hi = x + y
        lo = y - (hi - x)
        if lo != 0.0:
            break
    # Half-way cases: the parts below decide which way the tie goes.
    if n > 0 and ((lo < 0.0 and parts[n - 1] < 0.0) or (lo > 0.0 and parts[n - 1] > 0.0)):
        y = lo * 2.0
        x = hi + y
        if y == x - hi:
            hi = x
    return hi


@nb.njit(cache=True)
def _two_product(a, b):
    """``(p, e)`` with ``p = fl(a*b)`` and ``p + e == a*b`` exactly (Dekker; no overflow)."""
    p = a * b
    c = 134217729.0 * a  # 2^27 + 1: Veltkamp's split into two 26-bit halves
    ah = c - (c - a)
    al = a - ah
    c = 134217729.0 * b
    bh = c - (c - b)
    bl = b - bh
    return p, ((ah * bh - p) + ah * bl + al * bh) + al * bl


# -- FI-2010 -----------------------------------------------------------------------------

@nb.njit(cache=True, error_model="numpy")
def _fi2010(mid, horizon, alpha, both):
    n = mid.shape[0]
    out = np.full(n, NO_LABEL, np.int8)
    fut = np.zeros(_MAX_PARTS)  # exact sum of mid[t+1 .. t+horizon]
    past = np.zeros(_MAX_PARTS)  # exact sum of mid[t-horizon+1 .. t] ("both")
    scratch = np.zeros(_MAX_PARTS)
    nf = npast = 0
    bad_f = bad_p = 0  # non-finite values in each window
    h = float(horizon)
    for j in range(1, min(horizon, n - 1) + 1):
        if np.isfinite(mid[j]):
            nf = _grow(fut, nf, mid[j])
        else:
            bad_f += 1
    for t in range(n):
        if t > 0:  # slide the future window: mid[t] leaves, mid[t+horizon] enters
            if np.isfinite(mid[t]):
                nf = _grow(fut, nf, -mid[t])
            else:
                bad_f -= 1
            if t + horizon < n:
                if np.isfinite(mid[t + horizon]):
                    nf = _grow(fut, nf, mid[t + horizon])
                else:
                    bad_f += 1
        if both:  # mid[t] enters the past window, mid[t-horizon] leaves
            if np.isfinite(mid[t]):
                npast = _grow(past, npast, mid[t])
            else:
                bad_p += 1
            if t >= horizon:
                if np.isfinite(mid[t - horizon]):
                    npast = _grow(past, npast, -mid[t - horizon])
                else:
                    bad_p -= 1
        if t + horizon >= n or bad_f > 0:
            continue  # the future runs off the series, or holds a NaN
        if (t + 1 < horizon or bad_p > 0) if both else not np.isfinite(mid[t]):
            continue  # the same for the past window, or for mid[t]
        # The numerator is rounded once from its exact value, so the label depends on
        # neither summation order nor earlier rows, and an exact tie stays a tie.
        scratch[:nf] = fut[:nf]
        ns = nf
        if both:
            for k in range(npast):
                ns = _grow(scratch, ns, -past[k])
            den = _rounded(past, npast)  # horizon * m_minus
        else:
            p, e = _two_product(h, mid[t])
            ns = _grow(scratch, ns, -p)
            ns = _grow(scratch, ns, -e)
            den = p  # horizon * m_t
        if den == 0.0:
            continue
        l = _rounded(scratch, ns) / den
        if l > alpha:
            out[t] = 1
        elif l < -alpha:
            out[t] = -1
        else:
            out[t] = 0
    return out


def fi2010_labels(mid, horizon: int, alpha: float,
                  smoothing: Literal["future", "both"] = "future") -> np.ndarray:
    """Mid-price direction labels of FI-2010 (Ntakaris et al. 2018) and DeepLOB (Zhang et al. 2019).

    ``mid``: (n,) mid prices. Returns (n,) int8: 1 up, -1 down, 0 stationary, :data:`NO_LABEL`.

    ``smoothing="future"``: ``l_t = (m_plus - m_t) / m_t`` with
    ``m_plus = mean(mid[t+1 .. t+horizon])``. ``smoothing="both"``: ``l_t = (m_plus - m_minus) /
    m_minus`` with ``m_minus = mean(mid[t-horizon+1 .. t])`` (Zhang et al.'s alternative, which
    smooths the present as well). Then 1 if ``l_t > alpha``, -1 if ``l_t < -alpha``, else 0:
    a value exactly at the threshold is stationary.

    NO_LABEL where the window runs off the series (the last ``horizon`` rows; with "both"
    also the first ``horizon - 1``), where a mid in it (mid[t] included) is NaN or infinite,
    or where the denominator is zero. Labels look ``horizon`` rows into the future: by design.

    O(n): the window sums slide exactly (no rounding error accumulates), and ``l_t`` is
    computed as ``fl(fl(S_plus - S_t) / fl(S_t))`` where ``S_plus = horizon*m_plus`` and
    ``S_t = horizon*m_t`` (or ``horizon*m_minus``) are exact, the numerator rounded once.
    """
    mid = _series(mid, "mid")
    horizon = _horizon(horizon)
    alpha = float(alpha)
    if not (np.isfinite(alpha) and alpha >= 0.0):
        raise ValueError(f"alpha={alpha!r}: expected a finite threshold >= 0")
    if smoothing not in ("future", "both"):
        raise ValueError(f"smoothing={smoothing!r}: expected 'future' or 'both'")
    return _fi2010(mid, horizon, alpha, smoothing == "both")


# -- triple barrier ------------------------------------------------------------------------

@nb.njit(cache=True, error_model="numpy")
def _triple_barrier(price, horizon, upper, lower, sign_at_vertical):
    n = price.shape[0]
    label = np.full(n, NO_LABEL, np.int8)
    exit_index = np.full(n, -1, np.int64)
    ret = np.full(n, np.nan)
    for t in range(n):
        p0 = price[t]
        if not (p0 == p0 and upper[t] == upper[t] and lower[t] == lower[t]):
            continue
        top = p0 * (1.0 + upper[t])
        bottom = p0 * (1.0 - lower[t])
        last = t + horizon
        in_force = p0  # the last non-NaN price of the walk
        for j in range(t + 1, min(last, n - 1) + 1):
            pj = price[j]
            if pj != pj:
                continue
            in_force = pj
            if pj >= top:
                label[t] = 1
            elif pj <= bottom:
                label[t] = -1
            else:
                continue
            exit_index[t] = j
            ret[t] = pj / p0 - 1.0
            break
        if exit_index[t] >= 0 or last >= n:
            continue  # a barrier was hit, or the series ended first (NO_LABEL)
        r = in_force / p0 - 1.0
        exit_index[t] = last
        ret[t] = r
        label[t] = 0
        if sign_at_vertical:
            label[t] = 1 if r > 0.0 else (-1 if r < 0.0 else 0)
    return label, exit_index, ret


def triple_barrier(price, horizon: int, upper, lower,
                   vertical: Literal["zero", "sign"] = "zero") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triple-barrier labels (Lopez de Prado, *Advances in Financial Machine Learning*, 3.4).

    ``price``: (n,). ``upper``, ``lower``: scalars or (n,) arrays of relative barrier widths,
    e.g. ``k * volatility``. For row t the upper barrier is ``price[t] * (1 + upper[t])``,
    the lower ``price[t] * (1 - lower[t])`` and the vertical one ``horizon`` rows later.
    Walking ``j = t+1 .. t+horizon``, the first ``price[j] >= upper barrier`` gives 1 and the
    first ``price[j] <= lower barrier`` gives -1 (touching counts). If neither is hit by the
    vertical barrier: 0 (``vertical="zero"``) or the sign of the return there (``"sign"``).

    Returns ``(label, exit_index, ret)``, each (n,): label int8 (1, 0, -1, :data:`NO_LABEL`);
    exit_index int64, the row where the walk ended (-1 for NO_LABEL); ret float64,
    ``price[exit]/price[t] - 1`` (NaN for NO_LABEL). NaN prices inside the walk are skipped;
    at the vertical barrier the price in force (the last non-NaN one) is used. NO_LABEL where
    ``price[t]``, ``upper[t]`` or ``lower[t]`` is NaN (e.g. a volatility still warming up),
    or where the series ends before the vertical barrier with no barrier hit.
    An infinite width switches that barrier off. Labels look into the future: by design.
    Cost: O(n * horizon) in the worst case, each walk stops at the first hit.
    """
    price = _series(price, "price")
    n = len(price)
    horizon = _horizon(horizon)
    if vertical not in ("zero", "sign"):
        raise ValueError(f"vertical={vertical!r}: expected 'zero' or 'sign'")
    widths = [_width(w, n, name) for w, name in ((upper, "upper"), (lower, "lower"))]
    return _triple_barrier(price, horizon, widths[0], widths[1], vertical == "sign")


# -- reporting -------------------------------------------------------------------------------

def class_balance(labels) -> pd.DataFrame:
    """Counts and shares of the classes -1 (down), 0 (flat), 1 (up); NO_LABEL rows excluded.

    Returns a DataFrame indexed by label (-1, 0, 1) with columns ``name``, ``count`` (int64)
    and ``share`` (count / labelled rows; NaN when nothing is labelled).
    """
    values = np.asarray(labels)
    if values.ndim != 1:
        raise ValueError(f"labels: expected a 1-D array, got shape {values.shape}")
    unexpected = np.setdiff1d(np.unique(values), [-1, 0, 1, NO_LABEL])
    if len(unexpected):
        raise ValueError(f"labels: unexpected values {unexpected[:5].tolist()} "
                         f"(expected -1, 0, 1 or NO_LABEL={NO_LABEL})")
    classes = np.array([-1, 0, 1])
    counts = np.array([(values == k).sum() for k in classes], dtype=np.int64)
    total = counts.sum()
    shares = counts / total if total else np.full(3, np.nan)
    return pd.DataFrame({"name": ["down", "flat", "up"], "count": counts, "share": shares},
                        index=pd.Index(classes, name="label"))


# -- argument checks -------------------------------------------------------------------------

def _series(values, name: str) -> np.ndarray:
    array = np.ascontiguousarray(values, dtype=np.float64)
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    return array


def _horizon(horizon) -> int:
    if isinstance(horizon, (bool, np.bool_)) or not isinstance(horizon, (int, np.integer)) or horizon < 1:
        raise ValueError(f"horizon={horizon!r}: expected an integer number of rows >= 1")
    return int(horizon)


def _width(value, n: int, name: str) -> np.ndarray:
    array = np.asarray(value, dtype=np.float64)
    if array.ndim == 0:
        array = np.full(n, float(array))
    if array.ndim != 1 or len(array) != n:
        raise ValueError(f"{name}: expected a scalar or an array of {n} values (one per price), "
                         f"got shape {array.shape}")
    bad = np.flatnonzero(array <= 0.0)
    if len(bad):
        raise ValueError(f"{name}: barrier widths must be > 0, row {bad[0]} has {array[bad[0]]!r} "
                         f"(set NaN to leave a row unlabelled, e.g. where a volatility is 0)")
    return np.ascontiguousarray(array)
