"""Dynamics features."""

from __future__ import annotations

from genesis.features.context import jit
from genesis.features.registry import Feature, Param  # noqa: F401

FEATURES: tuple[Feature, ...] = ()


@jit
def dispatch(local, c, i0, i1, st, p, out):
    pass
