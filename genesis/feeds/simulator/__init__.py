"""Market simulator: a stochastic order-level limit order book with endogenous price impact.

>>> from genesis.feeds.simulator import SimConfig, simulate
>>> sim = simulate(SimConfig(impact=0.5), seconds=600, seed=7, scenarios=["spoofing", "iceberg"])
>>> sim.events.orders[:3], sim.events.episodes  # doctest: +SKIP

It emits what real feeds emit (:class:`genesis.feeds.events.MarketEvents`): L3 order events
with order ids and owners (background traders >= 1000, each scenario's manipulator its own
small owner id), L2 deltas (one initial snapshot block, then the absolute size of the level
each L3 event touched), trades (one per resting order executed, ``aggressor`` +1 buy / -1
sell), and the ground truth of injected manipulation episodes. ``bad_data`` adds faulty rows
(crossed book, NaN/negative values, duplicates, out-of-order events) listed in ``bad_rows``.
The model is in :mod:`.engine`, the scenarios in :mod:`.scenarios`, the faults in :mod:`.faults`.
"""

from genesis.feeds.simulator.config import SimConfig
from genesis.feeds.simulator.engine import BACKGROUND_OWNER
from genesis.feeds.simulator.faults import BAD_DATA
from genesis.feeds.simulator.scenarios import OWNERS, SCENARIOS, Scenario
from genesis.feeds.simulator.simulation import Simulation, simulate

__all__ = ["SimConfig", "Scenario", "Simulation", "simulate", "SCENARIOS", "BAD_DATA", "OWNERS", "BACKGROUND_OWNER"]
