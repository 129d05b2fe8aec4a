-- Cross-asset analytics: OHLCV bars and price alerts.
--
-- `trade_bars` holds OHLCV bars of every symbol at 1s, 1m and 5m, maintained by three
-- materialized views from `trades` (each insert into `trades` adds the partial bars of its
-- rows). Bars are on the venue clock (`exch_ts`), `ts` is the bar's start (UTC). One bar may
-- be spread over several rows until ClickHouse merges them: read with the -Merge combinators
-- and GROUP BY (or from the `bars` view, which does it), never with plain SELECT *.
--
-- Open and close are argMin / argMax of the price by (exch_ts, trade_id), so trades sharing a
-- venue time are ordered by their id, whatever order the inserts and merges came in.
-- Rows are kept per `source_id` (the ingested file) so that the bars of one file can be
-- deleted when its trades are (re-ingest with replace, rollback): genesis.analytics.bars.delete_source.
-- genesis.analytics.bars.rebuild recomputes them from `trades` at any time.
CREATE TABLE IF NOT EXISTS trade_bars
(
    symbol      LowCardinality(String),
    interval    LowCardinality(String),           -- '1s', '1m', '5m'
    ts          DateTime64(3, 'UTC') CODEC(DoubleDelta, ZSTD(1)),  -- bar start (exch_ts floored)
    source_id   LowCardinality(String),
    open        AggregateFunction(argMin, Float64, Tuple(DateTime64(9, 'UTC'), UInt64)),
    close       AggregateFunction(argMax, Float64, Tuple(DateTime64(9, 'UTC'), UInt64)),
    high        SimpleAggregateFunction(max, Float64),
    low         SimpleAggregateFunction(min, Float64),
    volume      SimpleAggregateFunction(sum, Float64),   -- base quantity
    buy_volume  SimpleAggregateFunction(sum, Float64),   -- of buyer-initiated trades
    notional    SimpleAggregateFunction(sum, Float64),   -- sum of price * qty (vwap = notional / volume)
    trades      SimpleAggregateFunction(sum, UInt64),
    first_ts    SimpleAggregateFunction(min, DateTime64(9, 'UTC')),
    last_ts     SimpleAggregateFunction(max, DateTime64(9, 'UTC'))
)
ENGINE = AggregatingMergeTree
ORDER BY (symbol, interval, ts, source_id);

CREATE MATERIALIZED VIEW IF NOT EXISTS trade_bars_1s_mv TO trade_bars AS
SELECT symbol, '1s' AS interval, toStartOfInterval(exch_ts, INTERVAL 1 SECOND) AS ts, source_id,
       argMinState(price, (exch_ts, trade_id)) AS open, argMaxState(price, (exch_ts, trade_id)) AS close,
       max(price) AS high, min(price) AS low, sum(qty) AS volume, sumIf(qty, aggressor = 1) AS buy_volume,
       sum(price * qty) AS notional, toUInt64(count()) AS trades, min(exch_ts) AS first_ts, max(exch_ts) AS last_ts
FROM trades
GROUP BY symbol, ts, source_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS trade_bars_1m_mv TO trade_bars AS
SELECT symbol, '1m' AS interval, toStartOfInterval(exch_ts, INTERVAL 1 MINUTE) AS ts, source_id,
       argMinState(price, (exch_ts, trade_id)) AS open, argMaxState(price, (exch_ts, trade_id)) AS close,
       max(price) AS high, min(price) AS low, sum(qty) AS volume, sumIf(qty, aggressor = 1) AS buy_volume,
       sum(price * qty) AS notional, toUInt64(count()) AS trades, min(exch_ts) AS first_ts, max(exch_ts) AS last_ts
FROM trades
GROUP BY symbol, ts, source_id;

CREATE MATERIALIZED VIEW IF NOT EXISTS trade_bars_5m_mv TO trade_bars AS
SELECT symbol, '5m' AS interval, toStartOfInterval(exch_ts, INTERVAL 5 MINUTE) AS ts, source_id,
       argMinState(price, (exch_ts, trade_id)) AS open, argMaxState(price, (exch_ts, trade_id)) AS close,
       max(price) AS high, min(price) AS low, sum(qty) AS volume, sumIf(qty, aggressor = 1) AS buy_volume,
       sum(price * qty) AS notional, toUInt64(count()) AS trades, min(exch_ts) AS first_ts, max(exch_ts) AS last_ts
FROM trades
GROUP BY symbol, ts, source_id;

-- Backfill: trades ingested before this migration, one interval at a time. Each only into an
-- interval that has no bars yet, so that a retried migration (ClickHouse DDL is not
-- transactional) cannot count a trade twice.
INSERT INTO trade_bars
SELECT symbol, '1s' AS interval, toStartOfInterval(exch_ts, INTERVAL 1 SECOND) AS ts, source_id,
       argMinState(price, (exch_ts, trade_id)) AS open, argMaxState(price, (exch_ts, trade_id)) AS close,
       max(price) AS high, min(price) AS low, sum(qty) AS volume, sumIf(qty, aggressor = 1) AS buy_volume,
       sum(price * qty) AS notional, toUInt64(count()) AS trades, min(exch_ts) AS first_ts, max(exch_ts) AS last_ts
FROM trades
WHERE (SELECT count() FROM trade_bars WHERE interval = '1s') = 0
GROUP BY symbol, ts, source_id;

INSERT INTO trade_bars
SELECT symbol, '1m' AS interval, toStartOfInterval(exch_ts, INTERVAL 1 MINUTE) AS ts, source_id,
       argMinState(price, (exch_ts, trade_id)) AS open, argMaxState(price, (exch_ts, trade_id)) AS close,
       max(price) AS high, min(price) AS low, sum(qty) AS volume, sumIf(qty, aggressor = 1) AS buy_volume,
       sum(price * qty) AS notional, toUInt64(count()) AS trades, min(exch_ts) AS first_ts, max(exch_ts) AS last_ts
FROM trades
WHERE (SELECT count() FROM trade_bars WHERE interval = '1m') = 0
GROUP BY symbol, ts, source_id;

INSERT INTO trade_bars
SELECT symbol, '5m' AS interval, toStartOfInterval(exch_ts, INTERVAL 5 MINUTE) AS ts, source_id,
       argMinState(price, (exch_ts, trade_id)) AS open, argMaxState(price, (exch_ts, trade_id)) AS close,
       max(price) AS high, min(price) AS low, sum(qty) AS volume, sumIf(qty, aggressor = 1) AS buy_volume,
       sum(price * qty) AS notional, toUInt64(count()) AS trades, min(exch_ts) AS first_ts, max(exch_ts) AS last_ts
FROM trades
WHERE (SELECT count() FROM trade_bars WHERE interval = '5m') = 0
GROUP BY symbol, ts, source_id;

-- Finished bars, one row per (symbol, interval, ts): what readers select from.
CREATE VIEW IF NOT EXISTS bars AS
SELECT b.symbol AS symbol, b.interval AS interval, b.ts AS ts,
       argMinMerge(b.open) AS open, max(b.high) AS high, min(b.low) AS low, argMaxMerge(b.close) AS close,
       sum(b.volume) AS volume, sum(b.buy_volume) AS buy_volume, sum(b.notional) AS notional,
       sum(b.notional) / sum(b.volume) AS vwap, sum(b.trades) AS trades,
       min(b.first_ts) AS first_ts, max(b.last_ts) AS last_ts
FROM trade_bars AS b
GROUP BY b.symbol, b.interval, b.ts;

-- Historical bars uploaded from CSV / Parquet files (genesis.analytics.bars.upload_bars): any
-- interval ('1m', '1h', '1d', ...). A re-upload of the same bar replaces it (newest `uploaded_at`
-- wins: read with FINAL). Rows that fail validation go to `quarantine` (stream 'bars_upload').
CREATE TABLE IF NOT EXISTS uploaded_bars
(
    symbol      LowCardinality(String),
    interval    LowCardinality(String),
    ts          DateTime64(3, 'UTC'),              -- bar start, UTC
    open        Float64,
    high        Float64,
    low         Float64,
    close       Float64,
    volume      Float64,
    trades      UInt64,                            -- 0 when the file gives no count
    source_id   LowCardinality(String),            -- sha256 of the uploaded file
    path        String,
    uploaded_at DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(uploaded_at)
ORDER BY (symbol, interval, ts);

-- Price alerts that fired (genesis.analytics.price_alerts): the rule as given and the trade or bar
-- that fired it. Never updated in place.
CREATE TABLE IF NOT EXISTS price_alerts
(
    rule_id    String,                             -- stable hash of the rule's fields
    symbol     LowCardinality(String),
    kind       LowCardinality(String),             -- 'above', 'below', 'cross'
    level      Float64,
    rule       String,                             -- the rule, JSON
    at_ts      DateTime64(9, 'UTC'),               -- venue time of the trade / bar that fired it
    price      Float64,                            -- its price
    prev_price Float64,                            -- the price before it (NaN for the first)
    direction  Int8,                               -- 1 up through the level, -1 down
    mode       LowCardinality(String),             -- 'history' or 'live'
    run_id     String,
    created_at DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (symbol, at_ts, rule_id);
