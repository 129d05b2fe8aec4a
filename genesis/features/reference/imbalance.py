"""Reference imbalance features (vectorised NumPy/pandas)."""

from __future__ import annotations

REFERENCE: dict = {}
