"""Microstructure features: Numba kernels run over a batch of rows or stepped online.

>>> from genesis.features import compute_features, from_capture
>>> snaps, trades = from_capture("data/sample/usdm_btcusdt_20240808.jsonl.gz")
>>> frame = compute_features(snaps, trades)          # the default full set
>>> frame = compute_features(snaps, trades, ["mid", "ofi(level=1)", "vpin"])
>>> frame = compute_features(sample(snaps, trades, "1s"), trades)   # on a 1-second grid
>>> labels = fi2010_labels(frame["mid"].to_numpy(), horizon=10, alpha=2e-5)
"""

from genesis.features.engine import FeatureStream, OnlineFeatures, Snapshots, Trades, compute_features, compute_matrix
from genesis.features.labels import NO_LABEL, class_balance, fi2010_labels, triple_barrier
from genesis.features.registry import DEFAULT_EXTRAS, Feature, FeatureInstance, FeatureSpec, Param, features, get
from genesis.features.sampling import sample, sample_index
from genesis.features.sources import from_capture

__all__ = [
    "NO_LABEL", "class_balance", "fi2010_labels", "sample", "sample_index", "triple_barrier",
    "DEFAULT_EXTRAS", "Feature", "FeatureInstance", "FeatureStream", "FeatureSpec", "OnlineFeatures", "Param", "Snapshots",
    "Trades", "compute_features", "compute_matrix", "features", "from_capture", "get",
]
