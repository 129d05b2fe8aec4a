-- The pipeline run registry (genesis.pipelines.runner): one row version per change of a run in
-- `pipeline_runs` and of a step attempt in `pipeline_steps`, written as the run goes (running ->
-- ok | failed; a step pending -> running -> ok | failed, skipped after a failure, reused by a
-- resumed run). ReplacingMergeTree keeps the highest `version` of each key: read with FINAL.
-- Times are UTC to the microsecond (the runner's clock); NULL while not known yet.
CREATE TABLE IF NOT EXISTS pipeline_runs
(
    run_id       String,                             -- <pipeline>-<UTC stamp>, also its folder's name
    pipeline     LowCardinality(String),
    status       LowCardinality(String),             -- 'running', 'ok' or 'failed'
    started      DateTime64(6, 'UTC'),
    finished     Nullable(DateTime64(6, 'UTC')),
    duration_s   Nullable(Float64),
    parameters   String,                             -- the run's overrides (-p), JSON
    resumed_from String,                             -- the run this one resumed, '' if none
    run_dir      String,                             -- executed notebooks, HTML exports, run.json
    host         LowCardinality(String),
    pid          UInt32,
    failed_step  String,                             -- '' unless failed
    error        String,                             -- the failing cell, its exception and message
    version      UInt64                              -- row version (ns, strictly increasing per run)
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (pipeline, run_id);

CREATE TABLE IF NOT EXISTS pipeline_steps
(
    run_id       String,
    pipeline     LowCardinality(String),
    position     UInt16,                             -- place in the run order, from 0
    step         String,
    attempt      UInt16,                             -- 1 for the first try, 2 for the first retry...; 0 never ran
    notebook     String,
    status       LowCardinality(String),             -- 'running', 'ok', 'failed', 'skipped' or 'reused'
    started      Nullable(DateTime64(6, 'UTC')),
    finished     Nullable(DateTime64(6, 'UTC')),
    duration_s   Nullable(Float64),
    parameters   String,                             -- what papermill injected, JSON
    output       String,                             -- the executed notebook
    error_name   String,                             -- the failing cell's exception class, or StepTimeout
    error_value  String,
    error_cell   Nullable(Int32),                    -- index of the failing cell in the executed notebook
    reused_from  String,                             -- for 'reused': the run that produced the output
    version      UInt64
)
ENGINE = ReplacingMergeTree(version)
ORDER BY (run_id, position, attempt);
