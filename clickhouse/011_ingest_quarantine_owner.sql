-- Ingest that never refuses a batch (genesis/pipelines/ingest.py, genesis/feeds/binance/capture.py).
--
-- `quarantine.raw` keeps at most the first 64 KiB of a rejected line (its bytes as read, not
-- re-encoded: read it with toValidUTF8(raw) where it holds invalid UTF-8); `raw_length` and
-- `raw_sha256` are those of the whole line, so that nothing is lost without a trace even of a
-- 50 MB line. Rows written before this migration held the whole line: their defaults compute
-- both from it. For a row about a whole file (stream 'gzip': corrupt compressed data), they
-- describe the compressed bytes that could not be read.
ALTER TABLE quarantine
    ADD COLUMN IF NOT EXISTS raw_length UInt64 DEFAULT length(raw) AFTER raw,
    ADD COLUMN IF NOT EXISTS raw_sha256 String DEFAULT lower(hex(SHA256(raw))) AFTER raw_length;

-- The owner of each ingest run, so that the next run can tell a run left 'running' by a killed
-- process (marked 'crashed', its rows rolled back) from one still running in another process.
-- Runs logged before this migration have no owner ('' and 0) and are taken as crashed.
ALTER TABLE ingest_log
    ADD COLUMN IF NOT EXISTS host LowCardinality(String) DEFAULT '' AFTER started_at,
    ADD COLUMN IF NOT EXISTS pid UInt32 DEFAULT 0 AFTER host;
