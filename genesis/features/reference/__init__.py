"""Plain NumPy/pandas implementations of every feature.

They are the oracle the Numba kernels are tested against (``tests/test_features.py``) and
the vectorised baseline ``benchmarks/bench_features.py`` measures them beside. Each is a
function ``f(data: RefData, **params) -> np.ndarray`` (one value per row), written for
obviousness rather than speed; ``TOLERANCE`` lists where float summation order differs
enough to need a looser relative tolerance than the default.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from genesis.features.engine import Snapshots, Trades
from genesis.features.reference import depth, dynamics, imbalance, prices, trades
from genesis.features.reference.common import RefData
from genesis.features.registry import FeatureSpec

REFERENCE = {**prices.REFERENCE, **depth.REFERENCE, **imbalance.REFERENCE, **trades.REFERENCE,
             **dynamics.REFERENCE}
TOLERANCE: dict[str, float] = {
    **prices.TOLERANCE,
    **getattr(depth, "TOLERANCE", {}), **getattr(imbalance, "TOLERANCE", {}),
    **getattr(trades, "TOLERANCE", {}), **getattr(dynamics, "TOLERANCE", {}),
}
DEFAULT_RTOL = 1e-9


def reference_features(snapshots: Any, trades_: Any = None, spec: Any = None) -> dict[str, np.ndarray]:
    """Every column of ``spec`` computed by the references: ``{column: values}``."""
    spec = FeatureSpec.coerce(spec)
    data = RefData(Snapshots.coerce(snapshots), Trades.coerce(trades_))
    missing = sorted({i.feature.name for i in spec.instances} - set(REFERENCE))
    if missing:
        raise KeyError(f"no reference implementation for: {', '.join(missing)}")
    return {inst.column: np.asarray(REFERENCE[inst.feature.name](data, **inst.params), dtype=np.float64)
            for inst in spec.instances}


__all__ = ["DEFAULT_RTOL", "REFERENCE", "RefData", "TOLERANCE", "reference_features"]
