"""The detectors, one module each (see :mod:`genesis.surveillance.base` for the contract).

Every module of this package that defines ``DETECTOR`` (or a list ``DETECTORS``) is a
detector; modules are found by name, in alphabetical order.
"""

from __future__ import annotations

import importlib
import pkgutil
from functools import cache

from genesis.surveillance.base import Detector


@cache
def all_detectors() -> tuple[Detector, ...]:
    found: list[Detector] = []
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.extend(getattr(module, "DETECTORS", None) or ([module.DETECTOR] if hasattr(module, "DETECTOR") else []))
    return tuple(found)


def default_detectors() -> list[Detector]:
    """Every detector with its default parameters."""
    return list(all_detectors())


def by_name(name: str) -> Detector:
    for detector in all_detectors():
        if detector.name == name:
            return detector
    raise ValueError(f"unknown detector {name!r}; known: {[d.name for d in all_detectors()]}")


__all__ = ["all_detectors", "default_detectors", "by_name"]
