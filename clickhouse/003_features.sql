-- Computed features (`genesis features build`, genesis.features.store). One row per sampled
-- book row of a symbol, per feature set and sampling ('event', '100ms', 'volume:5', ...).
--
-- The feature value columns are not declared here: a build adds the columns of its spec with
-- `ALTER TABLE features ADD COLUMN IF NOT EXISTS <column> Float64 DEFAULT nan`, so a new
-- feature needs no migration. Columns are shared by all sets (a set's own list is in
-- feature_sets); a row of a set that lacks a column reads NaN there.
-- Value columns keep the default codec (LZ4): measured on the bundled sample's default set
-- (66 columns), LZ4 compresses the values 1.95x, ZSTD(1) 2.25x, Gorilla+ZSTD(1) 1.87x,
-- while reading the whole table takes 22 ms with LZ4, 47 ms with ZSTD(1) and 77 ms with
-- Gorilla+ZSTD(1). Features are written once and read many times (model training), so read
-- speed wins over 13% of disk.
CREATE TABLE IF NOT EXISTS features
(
    symbol      LowCardinality(String),
    feature_set LowCardinality(String),
    sampling    LowCardinality(String),
    ts          DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),
    -- Rank of the row among rows of the same ts (0, then 1, ...): rows of one instant
    -- (several book events stamped alike) read back in the order they were computed,
    -- which MergeTree does not promise for equal sorting keys. Almost always 0: costs nothing.
    row_in_ts   UInt32 CODEC(ZSTD(1))
)
ENGINE = MergeTree
ORDER BY (symbol, feature_set, sampling, ts, row_in_ts);

-- What each feature set is: its spec (the items, as a JSON array of text such as
-- "ofi(level=3, window=1)", which FeatureSpec parses back), its columns in order, the book
-- levels and warm-up rows it needs, and when it was last built.
--
-- ReplacingMergeTree keyed by feature_set, read with FINAL: each build inserts the set's
-- row again with a newer built_at, and FINAL returns only the newest. Rows are tiny and
-- few, so FINAL costs nothing, and no ALTER ... UPDATE (an asynchronous mutation on a
-- server) is ever needed.
CREATE TABLE IF NOT EXISTS feature_sets
(
    feature_set String,
    spec        String,                          -- JSON array of spec items
    columns     Array(String),
    levels      UInt32,
    lookback    UInt64,                          -- rows of history the set needs to be exact
    built_at    DateTime64(6, 'UTC')
)
ENGINE = ReplacingMergeTree(built_at)
ORDER BY feature_set;
