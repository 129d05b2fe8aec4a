-- Instrument specifications: the trading terms of each symbol from `valid_from` on (see
-- genesis/store/instruments.py). Declared by the venue (Binance exchangeInfo), the format
-- (LOBSTER: a cent) or the simulator's config, or inferred exactly from a capture's decimal
-- prices and sizes (`source = 'inferred'`). Several rows may describe one symbol over time;
-- at a given time a declared spec wins over an inferred one.

CREATE TABLE IF NOT EXISTS instruments
(
    symbol          LowCardinality(String),
    valid_from      DateTime64(9, 'UTC'),
    tick_size       Float64,                    -- price increment
    lot_size        Float64,                    -- quantity increment (0: unknown)
    min_notional    Float64,                    -- smallest price x qty accepted (0: none known)
    contract_size   Float64,                    -- quote units per contract (COIN-M), else 1
    multiplier      Float64,                    -- price multiplier of a contract, else 1
    price_precision Int16,                      -- decimals of tick_size
    qty_precision   Int16,                      -- decimals of lot_size
    source          LowCardinality(String),     -- exchangeInfo, lobster, simulator, inferred, override
    source_id       LowCardinality(String),     -- the ingested file or run that recorded it ('' if none)
    recorded_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (symbol, valid_from);
