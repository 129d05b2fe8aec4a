-- Order-level (L3) events and the ground truth of simulated episodes.
--
-- `order_events` holds what an order-level source gives (LOBSTER files, the simulator):
-- event codes are genesis.feeds.events.EV_* (LOBSTER's numbering: 1 add, 2 partial cancel,
-- 3 delete, 4 visible execution, 5 hidden execution, 7 halt; 8/9 quoting/trading resumes).
-- `owner`/`contra_id`/`contra_owner` are -1 where the source does not give them.
CREATE TABLE IF NOT EXISTS order_events
(
    symbol       LowCardinality(String),
    exch_ts      DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    local_ts     DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    seq          UInt64 CODEC(Delta, ZSTD(1)),   -- position in the source's stream
    event        Int8,
    order_id     Int64 CODEC(ZSTD(1)),
    side         Int8,                           -- 1 bid, -1 ask, 0 for status events
    price        Float64 CODEC(Gorilla, ZSTD(1)),
    qty          Float64 CODEC(ZSTD(1)),
    owner        Int64 CODEC(ZSTD(1)),
    contra_id    Int64 CODEC(ZSTD(1)),
    contra_owner Int64 CODEC(ZSTD(1)),
    source_id    LowCardinality(String)
)
ENGINE = MergeTree
ORDER BY (symbol, exch_ts, seq);

-- Injected episodes of a simulated market (what happened, when, by which orders): the
-- labels surveillance detectors are scored against.
CREATE TABLE IF NOT EXISTS episodes
(
    symbol     LowCardinality(String),
    source_id  LowCardinality(String),
    episode_id UInt32,
    kind       LowCardinality(String),           -- spoofing, layering, quote_stuffing, ...
    start_ts   DateTime64(9, 'UTC'),
    end_ts     DateTime64(9, 'UTC'),
    side       Int8,                             -- 1 bid/buy, -1 ask/sell, 0 both or none
    order_ids  Array(Int64),
    detail     String
)
ENGINE = MergeTree
ORDER BY (symbol, start_ts, episode_id);
