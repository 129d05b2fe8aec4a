"""The live engine behind the dashboards: feed -> book -> features -> surveillance -> model ->
paper strategy for several symbols, in REPLAY, SIMULATION or LIVE mode, read by browser
sessions through bounded buffers (:mod:`genesis.live.engine`); who may change state
(:mod:`genesis.live.auth`); serving the Panel apps (:mod:`genesis.live.serve`)."""

from genesis.live.auth import NotAuthorized, authorize, is_loopback_address
from genesis.live.buffers import Hub, SessionBuffer
from genesis.live.engine import MODES, SPEEDS, EngineConfig, LiveEngine
from genesis.live.pipeline import FEATURES, Step, SymbolPipeline
from genesis.live.sources import Cursor, LiveCollector, load_replay, simulated_market
from genesis.live.writer import StoreWriter

__all__ = ["LiveEngine", "EngineConfig", "MODES", "SPEEDS", "SymbolPipeline", "Step", "FEATURES", "Cursor",
           "LiveCollector", "load_replay", "simulated_market", "SessionBuffer", "Hub", "authorize",
           "is_loopback_address", "NotAuthorized", "StoreWriter"]
