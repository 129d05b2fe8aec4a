"""The ClickHouse store: embedded (chDB) or a server, one client API for both.

>>> from genesis.store import connect
>>> with connect() as store:                      # GENESIS_CLICKHOUSE_URL, default embedded
...     store.insert_columns("trades", {"symbol": "binance-usdm:BTCUSDT", "exch_ts": ts, ...})
...     df = store.query_df("SELECT * FROM trades WHERE symbol = {s:String}", {"s": "binance-usdm:BTCUSDT"})

Keep the ``with`` block short: the embedded store admits one process at a time.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from genesis.store.client import Store, StoreLockedError, connect
    from genesis.store.migrations import MigrationError, migrate

# Resolved on first use, so that ``genesis.store.cli`` (imported by every ``genesis`` command
# to build its parser) does not pay for pandas, pyarrow and clickhouse-connect.
_EXPORTS = {
    "Store": "genesis.store.client",
    "StoreLockedError": "genesis.store.client",
    "connect": "genesis.store.client",
    "MigrationError": "genesis.store.migrations",
    "migrate": "genesis.store.migrations",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name not in _EXPORTS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_EXPORTS[name]), name)
