"""The strategy contract: one cached Numba kernel per strategy, run by backtests and paper trading.

A strategy kernel is ``kernel(E, rows, params, state, inputs) -> None``, ``@numba.njit(cache=True)``:

* ``E``: the engine's :class:`~genesis.backtest.engine.EngineState`; the kernel loops
  ``while (ev := engine.next_event(E, rows)) != engine.EV_END`` and acts with the engine's
  njit API (``submit``, ``cancel``, ``best_bid``, ``position``, ``set_timer``, ...);
* ``rows``: the chunk being replayed (REPLAY_DTYPE), only ever handed to ``next_event``;
* ``params``: float64 (n_params,), in the order of :attr:`Strategy.params`;
* ``state``: float64 (state_size,), everything the strategy remembers between events and
  between calls (the kernel is called once per chunk and again after a buffer grows, so it
  keeps NOTHING in local variables across ``next_event`` calls that it cannot rebuild);
* ``inputs``: a tuple of arrays named by :attr:`Strategy.inputs` (e.g. predictions).

Each strategy being its own cached function (rather than a callback handed to a generic loop,
which Numba would recompile in every process) is what keeps start-up to a cache load. The
provided kernels are compiled with ``_nrt=False`` (no Numba reference counting: the engine
allocates nothing inside a kernel), which makes waking the strategy ~5x cheaper; a kernel that
allocates arrays must use plain ``@numba.njit(cache=True)`` and still works, more slowly.
Register a strategy with :func:`register` to run it by name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numba as nb
import numpy as np

from genesis.backtest import engine as bt


def _drop_stale_kernels() -> None:
    """Numba keys a cached function by its own file only, and a strategy kernel's cache holds the
    engine code it was compiled with: when ``genesis/backtest/engine.py`` (or this file) changes,
    the cached kernels of this package are deleted so that they compile again against it."""
    import hashlib
    from pathlib import Path

    here = Path(__file__).resolve().parent
    cache = here / "__pycache__"
    digest = hashlib.sha1(Path(bt.__file__).read_bytes() + Path(__file__).read_bytes()).hexdigest()
    stamp = cache / "engine.stamp"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        cache.mkdir(exist_ok=True)
        for f in list(cache.glob("*.nbi")) + list(cache.glob("*.nbc")):
            f.unlink(missing_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba then caches elsewhere or not at all
        pass


_drop_stale_kernels()


@dataclass(frozen=True)
class Strategy:
    """A registered strategy: its kernel, parameters (name, default) and state size.

    inputs: (name, dtype) of each input array the kernel takes, in order. init: optional
    ``(params) -> state`` for states whose size or start values depend on the parameters.
    """

    name: str
    kernel: Callable
    params: tuple[tuple[str, float], ...]
    state_size: int = 0
    inputs: tuple[tuple[str, str], ...] = ()
    description: str = ""
    init: Callable[[np.ndarray], np.ndarray] | None = None
    checks: Callable[[dict[str, float]], None] | None = None

    @property
    def param_names(self) -> tuple[str, ...]:
        return tuple(n for n, _ in self.params)

    def params_array(self, given: dict[str, Any]) -> np.ndarray:
        """Parameters as the kernel takes them; unknown names are an error, missing ones default."""
        if not isinstance(given, dict):
            raise TypeError(f"{self.name}: params must be a dict, got {type(given).__name__}")
        unknown = sorted(set(given) - set(self.param_names))
        if unknown:
            raise ValueError(f"{self.name}: unknown parameter(s) {unknown}; known: {list(self.param_names)}")
        values = {n: float(given.get(n, d)) for n, d in self.params}
        bad = [n for n, v in values.items() if not np.isfinite(v)]
        if bad:
            raise ValueError(f"{self.name}: parameter(s) {bad} must be finite numbers")
        if self.checks is not None:
            self.checks(values)
        return np.array([values[n] for n in self.param_names], np.float64)

    def param_dict(self, params: np.ndarray) -> dict[str, float]:
        return {n: float(v) for n, v in zip(self.param_names, params)}

    def initial_state(self, params: np.ndarray) -> np.ndarray:
        if self.init is not None:
            return np.ascontiguousarray(self.init(params), np.float64)
        return np.zeros(max(self.state_size, 1), np.float64)

    def input_tuple(self, arrays: dict[str, np.ndarray]) -> tuple:
        names = [n for n, _ in self.inputs]
        unknown = sorted(set(arrays) - set(names))
        if unknown:
            raise ValueError(f"{self.name}: unknown input(s) {unknown}; it takes {names or 'none'}")
        out = []
        length = None
        for name, dtype in self.inputs:
            if name not in arrays:
                out.append(np.empty(0, dtype))  # no input yet (e.g. paper trading before the first prediction)
                continue
            a = np.ascontiguousarray(arrays[name], dtype)
            if a.ndim != 1:
                raise ValueError(f"{self.name}: input {name!r} must be 1-D, got shape {a.shape}")
            if length is not None and len(a) != length:
                raise ValueError(f"{self.name}: inputs must have one length; {name!r} has {len(a)}, not {length}")
            length = len(a)
            out.append(a)
        return tuple(out)


# -- helpers shared by strategies (njit) --------------------------------------------------------

@nb.njit(cache=True)
def trade_to_target(E, state, order_slot, target, min_qty):
    """Send a market order toward ``target`` position unless one is already in flight.

    state[order_slot] holds the id of the order in flight (-1: none). Returns the id sent (or -1).
    """
    oid = np.int64(state[order_slot])
    if oid >= 0:
        if bt.order_working(E, oid):
            return -1
        state[order_slot] = -1.0
    delta = target - bt.position(E)
    if abs(delta) < min_qty:
        return -1
    side = bt.BUY if delta > 0 else bt.SELL
    sent = bt.submit(E, side, 0.0, abs(delta), bt.MARKET, bt.IOC)
    if sent >= 0:
        state[order_slot] = float(sent)
    return sent


@nb.njit(cache=True)
def round_to_tick(price, tick):
    """``price`` on the ``tick`` grid (ticks <= 0: unchanged)."""
    if tick <= 0.0:
        return price
    return round(price / tick) * tick


_REGISTRY: dict[str, Strategy] = {}


def register(strategy: Strategy) -> Strategy:
    _REGISTRY[strategy.name] = strategy
    return strategy


def get_strategy(strategy: str | Strategy) -> Strategy:
    """The :class:`Strategy` itself, or the registered one of that name."""
    if isinstance(strategy, Strategy):
        return strategy
    if not isinstance(strategy, str):
        raise TypeError(f"strategy: expected a name or a Strategy, got {type(strategy).__name__}")
    _load_builtins()
    if strategy not in _REGISTRY:
        raise ValueError(f"unknown strategy {strategy!r}; known: {', '.join(sorted(_REGISTRY))}")
    return _REGISTRY[strategy]


def strategies() -> dict[str, Strategy]:
    """Every registered strategy by name."""
    _load_builtins()
    return dict(_REGISTRY)


BUILTINS = ("noop", "taker_only", "market_maker", "ofi_signal", "deeplob_threshold", "scripted")


def _load_builtins() -> None:
    import importlib

    for name in BUILTINS:
        importlib.import_module(f"genesis.strategy.{name}")
