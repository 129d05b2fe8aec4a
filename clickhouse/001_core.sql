-- Core market-data tables. Applied in order by `genesis db migrate`; the same file runs on
-- the embedded engine (chDB) and on a ClickHouse server.
--
-- Clocks: `exch_ts` is the venue's clock (the matching-engine time `T` where the venue sends
-- one, else the event time `E`; 1970-01-01 when the venue sends no time at all, as for spot
-- bookTicker), `local_ts` is when the capture process received the message.
-- `source_id` names the ingested file (sha256 of its bytes) so that a re-ingest can replace
-- exactly the rows one file produced.

CREATE TABLE IF NOT EXISTS depth_deltas
(
    symbol      LowCardinality(String),
    exch_ts     DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    local_ts    DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    seq         UInt64 CODEC(Delta, ZSTD(1)),   -- final update id of the depth event (u)
    side        Int8,                           -- 1 bid, -1 ask
    price       Float64 CODEC(Gorilla, ZSTD(1)),
    qty         Float64 CODEC(ZSTD(1)),         -- absolute quantity; 0 removes the level
    is_snapshot Bool,                           -- row of a REST snapshot (book reset)
    source_id   LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, exch_ts, seq);

CREATE TABLE IF NOT EXISTS book_snapshots
(
    symbol    LowCardinality(String),
    sampling  LowCardinality(String),           -- 'event' (after every applied depth event) or a grid such as '100ms'
    exch_ts   DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    local_ts  DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    seq       UInt64 CODEC(Delta, ZSTD(1)),
    bid_px    Array(Float64),                   -- best level first; NaN where the book has fewer levels
    bid_sz    Array(Float64),
    ask_px    Array(Float64),
    ask_sz    Array(Float64),
    source_id LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, sampling, exch_ts);

CREATE TABLE IF NOT EXISTS trades
(
    symbol    LowCardinality(String),
    exch_ts   DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    local_ts  DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    trade_id  UInt64 CODEC(Delta, ZSTD(1)),
    price     Float64 CODEC(Gorilla, ZSTD(1)),
    qty       Float64 CODEC(ZSTD(1)),
    aggressor Int8,                             -- 1 buyer-initiated, -1 seller-initiated
    source_id LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, exch_ts, trade_id);

CREATE TABLE IF NOT EXISTS quotes
(
    symbol    LowCardinality(String),
    exch_ts   DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    local_ts  DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    update_id UInt64 CODEC(Delta, ZSTD(1)),
    bid_px    Float64 CODEC(Gorilla, ZSTD(1)),
    bid_sz    Float64 CODEC(ZSTD(1)),
    ask_px    Float64 CODEC(Gorilla, ZSTD(1)),
    ask_sz    Float64 CODEC(ZSTD(1)),
    source_id LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, local_ts, update_id);

-- Sequence gaps: never applied silently; the book is invalid from `local_ts` until the next snapshot.
CREATE TABLE IF NOT EXISTS sequence_gaps
(
    symbol        LowCardinality(String),
    local_ts      DateTime64(9, 'UTC'),
    exch_ts       DateTime64(9, 'UTC'),
    expected_from UInt64,                       -- first update id the book needed
    received_from UInt64,                       -- first update id of the event that arrived
    reason        LowCardinality(String),
    source_id     LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, local_ts);

-- Full-depth book at the end of each ingested file, so that the next file of the same stream
-- (rotated at midnight, ingested tomorrow) continues without a snapshot of its own.
CREATE TABLE IF NOT EXISTS book_checkpoints
(
    symbol         LowCardinality(String),
    last_update_id UInt64,
    local_ts       DateTime64(9, 'UTC'),
    exch_ts        DateTime64(9, 'UTC'),
    bid_px         Array(Float64),
    bid_sz         Array(Float64),
    ask_px         Array(Float64),
    ask_sz         Array(Float64),
    source_id      LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, last_update_id);

-- Rows that failed validation, with the reason and the raw input: nothing is dropped silently.
CREATE TABLE IF NOT EXISTS quarantine
(
    source_id   LowCardinality(String),
    path        String,
    line_no     UInt64,                         -- 1-based line in the (decompressed) file
    local_ts    DateTime64(9, 'UTC'),           -- 1970-01-01 when the line had no readable receive time
    stream      LowCardinality(String),
    reason      String,
    raw         String CODEC(ZSTD(3)),
    ingested_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = MergeTree
ORDER BY (source_id, line_no);

-- One row per ingest run of one file (read with FINAL: the newest version of each run wins).
-- `status` is 'running' while rows are being written, then 'done' or 'failed'; a 'running'
-- row left by a crash is rolled back (its source's rows deleted) by the next ingest.
CREATE TABLE IF NOT EXISTS ingest_log
(
    source_id   String,
    run_id      UUID,
    path        String,
    kind        LowCardinality(String),         -- e.g. 'binance-capture'
    status      LowCardinality(String),
    started_at  DateTime64(3, 'UTC'),
    updated_at  DateTime64(6, 'UTC'),
    messages    UInt64,
    counts      Map(String, UInt64),            -- rows per table, quarantined, gaps, stale events dropped
    symbols     Array(String),
    message     String
)
ENGINE = ReplacingMergeTree(updated_at)
ORDER BY (source_id, run_id);
