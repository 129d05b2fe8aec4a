-- Surveillance alerts and their workflow. Nothing here is ever updated in place:
--
-- * `alerts` holds every alert a detector raised, as raised (immutable). A repeat of an open
--   case (same symbol, kind and side within the merge window) is stored too, with `case_id`
--   naming the case it was merged into (its own `alert_id` for the alert that opened it).
-- * `alert_audit` is the append-only history of each case: opened, merged, escalated, state
--   changes, assignment and notes, each with who, when and why. A case's current state is
--   the fold of its rows in `seq` order (genesis.surveillance.alerts.fold_case), and the
--   `alert_cases` view gives the latest values per case.
CREATE TABLE IF NOT EXISTS alerts
(
    alert_id       UUID,
    case_id        UUID,
    symbol         LowCardinality(String),
    kind           LowCardinality(String),
    detector       LowCardinality(String),
    params_version String,                       -- hash of the detector's parameter values
    params         String,                       -- those values, JSON
    side           Int8,
    severity       LowCardinality(String),       -- from the score, as raised
    score          Float64,
    start_ts       DateTime64(9, 'UTC'),
    end_ts         DateTime64(9, 'UTC'),
    at_ts          DateTime64(9, 'UTC'),         -- when the evidence was complete
    evidence       String,                       -- JSON: prices, sizes, levels, times, order ids
    order_ids      Array(Int64),
    run_id         String,                       -- the `genesis surveil run` (or live session) that raised it
    created_at     DateTime64(6, 'UTC')
)
ENGINE = MergeTree
ORDER BY (symbol, start_ts, alert_id);

CREATE TABLE IF NOT EXISTS alert_audit
(
    case_id   UUID,
    seq       UInt32,                            -- 0, 1, 2 ... within the case
    at        DateTime64(6, 'UTC'),
    actor     LowCardinality(String),            -- who: a user, or 'system' for detectors
    action    LowCardinality(String),            -- opened, merged, escalated, state, assigned, note
    state     LowCardinality(String),            -- the case's state after this row
    severity  LowCardinality(String),            -- ... its severity after this row
    repeats   UInt32,                            -- ... alerts merged into it, the first included
    owner     String,                            -- ... its owner ('' for none)
    why       String,                            -- the reason or note given
    detail    String                             -- JSON: e.g. the merged alert's id and score
)
ENGINE = MergeTree
ORDER BY (case_id, seq);

CREATE VIEW IF NOT EXISTS alert_cases AS
SELECT
    a.case_id AS case_id,
    argMax(a.state, a.seq) AS state,
    argMax(a.severity, a.seq) AS severity,
    argMax(a.repeats, a.seq) AS repeats,
    argMax(a.owner, a.seq) AS owner,
    min(a.at) AS opened_at,
    max(a.at) AS updated_at,
    max(a.seq) AS last_seq
FROM alert_audit AS a
GROUP BY a.case_id;
