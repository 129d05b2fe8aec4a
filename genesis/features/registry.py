"""The feature registry: every feature's name, unit, parameters, state and kernel.

A feature is one Numba kernel that fills one output column. Kernels share one signature::

    kernel(c, i0, i1, st, p, out)

``c`` is the :class:`~genesis.features.engine.Context` (the snapshot rows, the trades of
each row and the per-row primitives), ``[i0, i1)`` the rows to compute, ``st`` the
instance's private float64 state (persisting across calls), ``p`` its parameters (float64,
in the order declared here) and ``out`` the output column (``out[i]`` for row i).

A kernel may only read rows ``<= i`` and its own state: that one rule is what makes the
batch path (all rows in one call) and the online path (one row per call, state kept
between calls) produce the same numbers, and what keeps features free of look-ahead.

Feature families live in their own modules (``prices``, ``depth``, ...), each with a
``FEATURES`` tuple and a ``dispatch(local_index, ...)`` kernel that calls the right one.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable, Mapping

import numpy as np


@dataclass(frozen=True)
class Param:
    """A numeric parameter of a feature. ``abbrev`` names it in column names (``ofi_l3``)."""

    name: str
    default: float
    doc: str
    abbrev: str
    integer: bool = True
    minimum: float = 1

    def coerce(self, feature: str, value: Any) -> float:
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise ValueError(f"feature {feature!r}: parameter {self.name}={value!r} is not a number") from None
        if not np.isfinite(number):
            raise ValueError(f"feature {feature!r}: parameter {self.name}={value!r} must be finite")
        if self.integer and number != int(number):
            raise ValueError(f"feature {feature!r}: parameter {self.name}={value!r} must be a whole number")
        if number < self.minimum:
            raise ValueError(f"feature {feature!r}: parameter {self.name}={value!r} must be >= {self.minimum:g}")
        return number


def _no_state(p: Mapping[str, float]) -> int:
    return 0


@dataclass(frozen=True)
class Feature:
    """One registered feature.

    ``state(params)`` is the size of the float64 state the kernel keeps (zeros at start);
    ``levels(params)`` the number of book levels it reads (checked against the input);
    ``lookback(params)`` the rows of history it needs before its value is exact
    (used to read warm-up rows before a requested range; EWMAs give ~10 half-lives).
    """

    name: str
    family: str
    unit: str
    doc: str
    kernel: Callable
    params: tuple[Param, ...] = ()
    state: Callable[[Mapping[str, float]], int] = _no_state
    levels: Callable[[Mapping[str, float]], int] = lambda p: 1
    lookback: Callable[[Mapping[str, float]], int] = lambda p: 1

    def bind(self, **values: Any) -> "FeatureInstance":
        known = {param.name: param for param in self.params}
        unknown = set(values) - set(known)
        if unknown:
            expected = ", ".join(known) or "none"
            raise ValueError(f"feature {self.name!r}: unknown parameter(s) {', '.join(sorted(unknown))} "
                             f"(its parameters: {expected})")
        params = {name: param.coerce(self.name, values.get(name, param.default)) for name, param in known.items()}
        return FeatureInstance(self, params)


@dataclass(frozen=True)
class FeatureInstance:
    """A feature with its parameter values: one output column."""

    feature: Feature
    params: dict[str, float] = field(hash=False)
    alias: str | None = None

    @property
    def column(self) -> str:
        if self.alias:
            return self.alias
        parts = [self.feature.name]
        for param in self.feature.params:
            value = self.params[param.name]
            text = str(int(value)) if value == int(value) else repr(value)
            parts.append(f"{param.abbrev}{text}".replace(".", "p").replace("-", "m"))
        return "_".join(parts)

    @property
    def param_vector(self) -> np.ndarray:
        return np.array([self.params[p.name] for p in self.feature.params], dtype=np.float64)

    @property
    def state_size(self) -> int:
        return int(self.feature.state(self.params))

    @property
    def levels(self) -> int:
        return int(self.feature.levels(self.params))

    @property
    def lookback(self) -> int:
        return int(self.feature.lookback(self.params))

    def __str__(self) -> str:
        args = ", ".join(f"{name}={value:g}" for name, value in self.params.items())
        return f"{self.feature.name}({args})"


FAMILIES = ("prices", "depth", "imbalance", "trades", "dynamics")


def _family_modules():
    from genesis.features import depth, dynamics, imbalance, prices, trades

    return {"prices": prices, "depth": depth, "imbalance": imbalance, "trades": trades, "dynamics": dynamics}


_REGISTRY: dict[str, tuple[int, int, Feature]] | None = None


def registry() -> dict[str, tuple[int, int, Feature]]:
    """``{name: (family index, index within the family, Feature)}`` in family order."""
    global _REGISTRY
    if _REGISTRY is None:
        found: dict[str, tuple[int, int, Feature]] = {}
        for fam_index, (family, module) in enumerate(_family_modules().items()):
            for local, feature in enumerate(module.FEATURES):
                if feature.family != family:
                    raise RuntimeError(f"feature {feature.name} is declared in {family} but says {feature.family}")
                if feature.name in found:
                    raise RuntimeError(f"feature {feature.name} is registered twice")
                found[feature.name] = (fam_index, local, feature)
        _REGISTRY = found
    return _REGISTRY


def get(name: str) -> Feature:
    try:
        return registry()[name][2]
    except KeyError:
        raise ValueError(f"unknown feature {name!r}; `genesis features list` shows the registry") from None


def features() -> list[Feature]:
    return [entry[2] for entry in registry().values()]


_CALL = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(?:\((.*)\))?\s*(?:as\s+([a-z][a-z0-9_]*))?\s*$")


def parse_instance(item: str | Mapping[str, Any] | FeatureInstance) -> FeatureInstance:
    """One spec item: ``"ofi(level=3)"``, ``"spread_bps as sbps"`` or ``{"feature": "ofi", "level": 3, "as": ...}``."""
    if isinstance(item, FeatureInstance):
        return item
    if isinstance(item, Mapping):
        values = dict(item)
        name = values.pop("feature", None)
        if name is None:
            raise ValueError(f"feature spec item {item!r}: missing 'feature'")
        alias = values.pop("as", None)
        return _with_alias(get(str(name)).bind(**values), alias)
    match = _CALL.match(str(item))
    if not match:
        raise ValueError(f"feature spec item {item!r}: expected name, name(param=value, ...) or '... as column'")
    name, args, alias = match.groups()
    values: dict[str, str] = {}
    for part in filter(None, (a.strip() for a in (args or "").split(","))):
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"feature spec item {item!r}: parameter {part!r} is not name=value")
        values[key.strip()] = value.strip()
    return _with_alias(get(name).bind(**values), alias)


def _with_alias(instance: FeatureInstance, alias: str | None) -> FeatureInstance:
    if alias is None:
        return instance
    if not re.fullmatch(r"[a-z][a-z0-9_]*", str(alias)):
        raise ValueError(f"column alias {alias!r}: use lower-case letters, digits and _")
    return FeatureInstance(instance.feature, instance.params, str(alias))


class FeatureSpec:
    """An ordered set of feature instances (the columns to compute).

    Build from items (see :func:`parse_instance`) or use :data:`DEFAULT_SPEC` / ``FeatureSpec.default()``.
    """

    def __init__(self, items: Iterable[str | Mapping[str, Any] | FeatureInstance]):
        self.instances: tuple[FeatureInstance, ...] = tuple(parse_instance(item) for item in items)
        if not self.instances:
            raise ValueError("feature spec is empty")
        columns = [inst.column for inst in self.instances]
        duplicated = sorted({c for c in columns if columns.count(c) > 1})
        if duplicated:
            raise ValueError(f"feature spec has duplicate columns: {', '.join(duplicated)}")

    @classmethod
    def default(cls, levels: int | None = None) -> "FeatureSpec":
        """Every registered feature at its default parameters, plus the extra instances of
        :data:`DEFAULT_EXTRAS` (depth at several levels, OFI per level, several horizons).
        With ``levels``, the instances that read deeper than that are left out, so the
        default set fits a shallower book (an explicit spec that does not fit is refused)."""
        items = [feature.bind() for feature in features()]
        items += [parse_instance(extra) for extra in DEFAULT_EXTRAS]
        seen: dict[str, FeatureInstance] = {}
        for inst in items:
            if levels is None or inst.levels <= levels:
                seen.setdefault(inst.column, inst)
        order = {name: k for k, name in enumerate(registry())}
        return cls(sorted(seen.values(), key=lambda inst: order[inst.feature.name]))

    @classmethod
    def coerce(cls, spec: "FeatureSpec | Iterable | None", levels: int | None = None) -> "FeatureSpec":
        """A spec from a FeatureSpec, items, or ``"a;b;c"``; None is the default set
        (fitted to ``levels`` when given)."""
        if spec is None:
            return cls.default(levels)
        if isinstance(spec, cls):
            return spec
        if isinstance(spec, str):
            return cls([s for s in spec.split(";") if s.strip()])
        return cls(spec)

    def including(self, items: Iterable[str | Mapping[str, Any] | FeatureInstance]) -> "FeatureSpec":
        """This spec plus those of ``items`` whose columns it lacks (appended in order)."""
        have = set(self.columns)
        extra = []
        for inst in map(parse_instance, items):
            if inst.column not in have:
                extra.append(inst)
                have.add(inst.column)
        return FeatureSpec([*self.instances, *extra]) if extra else self

    @property
    def columns(self) -> list[str]:
        return [inst.column for inst in self.instances]

    @property
    def levels(self) -> int:
        return max(inst.levels for inst in self.instances)

    @property
    def lookback(self) -> int:
        return max(inst.lookback for inst in self.instances)

    def __len__(self) -> int:
        return len(self.instances)

    def __repr__(self) -> str:
        return f"FeatureSpec({len(self)} columns: {', '.join(self.columns[:6])}{', ...' if len(self) > 6 else ''})"


# Instances the default set adds to every feature at its defaults; it is what
# `genesis features build` computes unless given a spec, and what `make bench` measures.
# Windows and horizons are in rows of the sampled series.
DEFAULT_EXTRAS: tuple[str, ...] = (
    *(f"bid_depth(levels={k})" for k in (1, 5, 10, 20)),
    *(f"ask_depth(levels={k})" for k in (1, 5, 10, 20)),
    *(f"depth_imbalance(levels={k})" for k in (1, 5, 10, 20)),
    *(f"ofi(level={k})" for k in range(1, 11)),
    *(f"log_return(horizon={h})" for h in (1, 10, 100)),
    *(f"realized_vol(window={w})" for w in (100, 1000)),
)
