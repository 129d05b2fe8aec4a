-- Model predictions over history (`genesis predict ...`, genesis.models.predict): one row per
-- book row at which a full input window ended. Re-predicting a range replaces its rows
-- (deleted by symbol, model and range first), so a model's rows never duplicate.
CREATE TABLE IF NOT EXISTS predictions
(
    symbol       LowCardinality(String),
    model_id     LowCardinality(String),
    ts           DateTime64(9, 'UTC') CODEC(DoubleDelta, ZSTD(1)),  -- exchange time of the window's last row
    p_down       Float32,
    p_stationary Float32,
    p_up         Float32,
    predicted    Int8                                             -- -1 down, 0 stationary, 1 up
)
ENGINE = MergeTree
ORDER BY (symbol, model_id, ts);
