"""Ingest Binance capture files: read -> rebuild the book -> write the store.

Per file, in one short lease on the store:

1. The file is identified by the sha256 of its bytes (``source_id``). A file already
   ingested is skipped (``replace=True`` deletes its rows and ingests it again); rows left
   by a run that crashed half-way (``ingest_log`` still 'running') are deleted first.
2. Lines are parsed (:mod:`genesis.feeds.binance.capture`); invalid lines go to quarantine.
3. Per symbol the book is rebuilt under Binance's synchronisation. A file with a snapshot
   starts from it; a file without one continues the book of the previous file of the same
   stream: from this run, or from the checkpoint that file left in the store.
4. Deltas (the applied stream, snapshots included), top-L rows after every applied depth
   event (and on a time grid on request), trades, quotes, gaps, quarantine and a new
   checkpoint are written; the ingest log records the counts.
"""

from __future__ import annotations

import gzip
import hashlib
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from genesis.book.l2 import (
    GAP_EXPECTED, GAP_MSG, GAP_REASON, GAP_REASONS, GAP_RECEIVED, GAP_ROWS_BEFORE,
    OUT_CROSSED, OUT_STALE, OUT_UNAPPLIED, L2Book,
)
from genesis.arrays import concat_ranges
from genesis.book.sampling import grid_rows, parse_duration
from genesis.feeds.binance.capture import CaptureFile, SymbolEvents, read_capture
from genesis.store import Store, connect, migrate

KIND = "binance-capture"
# Tables that hold rows of an ingested file (deleted by source_id on replace / rollback).
SOURCE_TABLES = ("depth_deltas", "book_snapshots", "trades", "quotes", "sequence_gaps", "book_checkpoints", "quarantine",
                 "order_events", "episodes")
_CAPTURE_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".txt.gz", ".gz")


@dataclass
class FileReport:
    path: Path
    source_id: str
    status: str  # 'ingested', 'replaced' or 'skipped' (already held: counts are those of the run that stored it)
    symbols: list[str] = field(default_factory=list)
    messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


@dataclass
class IngestReport:
    files: list[FileReport]

    @property
    def _processed(self) -> list[FileReport]:
        return [f for f in self.files if f.status != "skipped"]

    @property
    def messages(self) -> int:
        """Messages read by this run (skipped files excluded)."""
        return sum(f.messages for f in self._processed)

    def total(self, key: str) -> int:
        """Rows this run wrote to ``key`` (a table, 'gaps' or 'stale_dropped'); skipped files excluded."""
        return sum(f.counts.get(key, 0) for f in self._processed)

    def to_frame(self) -> pd.DataFrame:
        """One row per file: status, symbols, messages and rows per table (for a skipped file,
        what the store already holds from it)."""
        columns = ["depth_deltas", "book_snapshots", "trades", "quotes", "quarantine", "gaps"]
        return pd.DataFrame(
            [
                {"path": str(f.path), "status": f.status, "symbols": ", ".join(f.symbols), "messages": f.messages,
                 **{c: f.counts.get(c, 0) for c in columns}, "seconds": round(f.seconds, 3)}
                for f in self.files
            ]
        )

    def summary(self) -> str:
        done = self._processed
        skipped = len(self.files) - len(done)
        seconds = sum(f.seconds for f in done)
        rate = f" ({self.messages / seconds:,.0f} messages/s)" if seconds > 0 and self.messages else ""
        lines = [f"ingested {len(done)} file(s), {self.messages:,} messages{rate}"
                 + (f"; skipped {skipped} already ingested (use --replace to re-ingest)" if skipped else "")]
        for key in ("depth_deltas", "book_snapshots", "trades", "quotes", "quarantine", "gaps", "stale_dropped"):
            lines.append(f"  {key:<15} {self.total(key):>12,}")
        return "\n".join(lines)


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def expand_paths(paths: Iterable[str | Path]) -> list[Path]:
    """Files as given, directories expanded to their capture files; missing paths are an error."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.is_file() and p.name.endswith(_CAPTURE_SUFFIXES)))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(f"capture file not found: {path}")
    if not out:
        raise FileNotFoundError(f"no capture files in {', '.join(map(str, paths))}")
    return out


def _first_receive_time(path: Path) -> int:
    """Receive time of a file's first line: the order in which rotated files follow each other."""
    with open(path, "rb") as fh:
        opener = gzip.open if fh.read(2) == b"\x1f\x8b" else open
    try:
        with opener(path, "rb") as fh:
            head = fh.readline().split(b" ", 1)[0]
    except (OSError, EOFError):
        return 0
    return int(head) if head.isdigit() else 0


def ingest_binance_capture(
    paths: str | Path | Iterable[str | Path],
    *,
    store_url: str | None = None,
    replace: bool = False,
    depth_levels: int = 20,
    grid: str | None = None,
    venue: str | None = None,
    progress: bool = True,
) -> IngestReport:
    """Ingest Binance capture files into the store; see the module docstring.

    ``paths``: files or directories. Files are processed in order of their first receive
    time, so a capture rotated into several files rebuilds one continuous book.
    ``grid``: also store top-L rows on a fixed exchange-time grid, e.g. ``'100ms'``.
    Returns an :class:`IngestReport`; ``report.summary()`` says how many rows went where.
    """
    if isinstance(paths, (str, Path)):
        paths = [paths]
    files = sorted(expand_paths(paths), key=_first_receive_time)
    grid_ns = parse_duration(grid) if grid else None
    if depth_levels < 1:
        raise ValueError(f"depth_levels={depth_levels}: need at least one level")
    books: dict[str, L2Book] = {}
    reports = []
    bar = tqdm(total=len(files), unit="file", disable=not progress, desc="ingest")
    try:
        for n, path in enumerate(files):
            with connect(store_url) as store:  # one short lease per file
                if n == 0:
                    migrate(store)
                report = _ingest_file(store, path, books, replace, depth_levels, grid, grid_ns, venue)
            reports.append(report)
            bar.update(1)
            if report.seconds > 0:
                bar.set_postfix_str(f"{path.name}: {report.messages / report.seconds:,.0f} msg/s")
    finally:
        bar.close()
    return IngestReport(reports)


def _previous_runs(store: Store, source_id: str) -> list[tuple[str, int, dict[str, int], list[str]]]:
    """(status, messages, counts, symbols) of each earlier run of this file, oldest first."""
    return store.query_rows(
        "SELECT status, messages, counts, symbols FROM ingest_log FINAL"
        " WHERE source_id = {source_id:String} ORDER BY updated_at",
        {"source_id": source_id},
    )


def _delete_source(store: Store, source_id: str) -> None:
    for table in SOURCE_TABLES:
        store.command(f"DELETE FROM {table} WHERE source_id = {{source_id:String}}", {"source_id": source_id})
    # Bars kept by materialized views see inserts only: delete this source's bars with its trades
    # (not in SOURCE_TABLES: merges change their raw row count, which the ingest checks compare).
    from genesis.analytics.bars import delete_source as delete_source_bars

    delete_source_bars(store, source_id)


def _log(store: Store, run: dict, status: str, counts: dict[str, int] | None = None, message: str = "") -> None:
    store.insert_columns(
        "ingest_log",
        {
            "source_id": [run["source_id"]], "run_id": [str(run["run_id"])], "path": [run["path"]], "kind": [run["kind"]],
            "status": [status], "started_at": [run["started_at"]], "updated_at": [datetime.now(timezone.utc)],
            "messages": [run.get("messages", 0)], "counts": [list((counts or {}).items())],
            "symbols": [run.get("symbols", [])], "message": [message],
        },
        types={"counts": pa.map_(pa.string(), pa.uint64())},
    )


def run_source(store: Store, *, source_id: str, path: str | Path, kind: str, replace: bool,
               write: Callable[[dict], dict[str, int]]) -> FileReport:
    """Ingest one source (a file, a simulation) exactly once, or roll it back.

    A source already ingested is skipped unless ``replace``; rows of an earlier run of it
    (replaced, or left by a crash) are deleted first. ``write(run)`` writes the rows tagged
    with ``source_id``, sets ``run["messages"]`` and ``run["symbols"]`` and returns the counts
    per table; if it raises, everything it wrote is deleted and the log says why.
    """
    started = time.perf_counter()
    history = _previous_runs(store, source_id)
    done = [run for run in history if run[0] == "done"]
    if done and not replace:
        _, messages, counts, symbols = done[-1]
        return FileReport(Path(path), source_id, "skipped", list(symbols), messages, dict(counts))
    if history:  # a replace, or the leftovers of a run that did not finish
        _delete_source(store, source_id)
    run = {"source_id": source_id, "run_id": uuid.uuid4(), "path": str(path), "kind": kind,
           "started_at": datetime.now(timezone.utc)}
    _log(store, run, "running")
    try:
        counts = write(run)
    except BaseException as exc:
        # Roll back: nothing half-written stays behind, the log says why.
        _delete_source(store, source_id)
        _log(store, run, "failed", message=f"{type(exc).__name__}: {exc}")
        raise
    _log(store, run, "done", counts)
    status = "replaced" if done else "ingested"
    return FileReport(Path(path), source_id, status, run.get("symbols", []), run.get("messages", 0), counts,
                      time.perf_counter() - started)


def _ingest_file(store, path, books, replace, depth_levels, grid, grid_ns, venue) -> FileReport:
    def write(run: dict) -> dict[str, int]:
        capture = read_capture(path, venue=venue)
        run["messages"] = capture.n_lines
        run["symbols"] = sorted(capture.symbols)
        return _write_capture(store, capture, run["source_id"], books, depth_levels, grid, grid_ns)

    return run_source(store, source_id=file_sha256(path), path=path.resolve(), kind=KIND, replace=replace, write=write)


def _book_for(store: Store, events: SymbolEvents, books: dict[str, L2Book], depth_levels: int) -> L2Book:
    """A file with a snapshot starts afresh; one without continues the previous file's book."""
    book = books.get(events.symbol)
    if book is None or book.depth != depth_levels:
        book = books[events.symbol] = L2Book(depth_levels, events.sequencing)
        if not events.has_snapshot:
            _load_checkpoint(store, events, book)
    elif events.has_snapshot:
        book.reset()
    return book


def _load_checkpoint(store: Store, events: SymbolEvents, book: L2Book) -> None:
    """Continue from the newest checkpoint older than this file's first depth event."""
    if not len(events.depth):
        return
    table = store.query_arrow(
        "SELECT last_update_id, bid_px, bid_sz, ask_px, ask_sz FROM book_checkpoints"
        " WHERE symbol = {symbol:String} AND last_update_id < {first_u:UInt64}"
        " ORDER BY last_update_id DESC LIMIT 1",
        {"symbol": events.symbol, "first_u": int(events.depth.last_id[0])},
    )
    if table.num_rows:
        row = {name: table.column(name)[0].as_py() for name in table.column_names}
        book.load(*(np.asarray(row[c], dtype=np.float64) for c in ("bid_px", "bid_sz", "ask_px", "ask_sz")),
                  last_update_id=row["last_update_id"])


def _write_capture(store, capture: CaptureFile, source_id: str, books, depth_levels, grid, grid_ns) -> dict[str, int]:
    counts = dict.fromkeys(("depth_deltas", "book_snapshots", "trades", "quotes", "quarantine", "gaps",
                            "stale_dropped"), 0)
    quarantine: list[tuple[int, int, str, str, bytes]] = [
        (b.line_no, b.local_ts, b.stream, b.reason, b.raw) for b in capture.bad_lines
    ]
    for symbol, events in capture.symbols.items():
        book = _book_for(store, events, books, depth_levels)
        depth = events.depth
        result = book.apply_depth(depth.is_snapshot, depth.first_id, depth.last_id, depth.prev_id,
                                  depth.level_start, depth.level_count, depth.side, depth.price, depth.qty)
        tag = {"symbol": symbol, "source_id": source_id}

        # The applied stream: every level of every applied message, in application order.
        applied = result.applied
        msg_of_row = np.repeat(applied, depth.level_count[applied])
        level_rows = concat_ranges(depth.level_start[applied], depth.level_count[applied])
        counts["depth_deltas"] += store.insert_columns("depth_deltas", {
            **tag, "exch_ts": depth.exch_ts[msg_of_row], "local_ts": depth.local_ts[msg_of_row],
            "seq": depth.last_id[msg_of_row].astype(np.uint64), "side": depth.side[level_rows],
            "price": depth.price[level_rows], "qty": depth.qty[level_rows],
            "is_snapshot": depth.is_snapshot[msg_of_row],
        }) if len(msg_of_row) else 0

        top = result.top_msg
        row_ts = depth.exch_ts[top]
        counts["book_snapshots"] += insert_book_rows(store, tag, "event", row_ts, depth.local_ts[top],
                                                      depth.last_id[top], result.bid_px, result.bid_sz,
                                                      result.ask_px, result.ask_sz)
        gaps = result.gaps
        if grid_ns and len(top):
            times, source = grid_rows(row_ts, depth.exch_ts[gaps[:, GAP_MSG]], gaps[:, GAP_ROWS_BEFORE], grid_ns)
            valid = source >= 0
            src = source[valid]
            counts["book_snapshots"] += insert_book_rows(
                store, tag, grid, times[valid], depth.local_ts[top][src], depth.last_id[top][src],
                result.bid_px[src], result.bid_sz[src], result.ask_px[src], result.ask_sz[src])

        if len(gaps):
            msgs = gaps[:, GAP_MSG]
            store.insert_columns("sequence_gaps", {
                **tag, "local_ts": depth.local_ts[msgs], "exch_ts": depth.exch_ts[msgs],
                "expected_from": gaps[:, GAP_EXPECTED].astype(np.uint64),
                "received_from": gaps[:, GAP_RECEIVED].astype(np.uint64),
                "reason": [GAP_REASONS[int(r)] for r in gaps[:, GAP_REASON]],
            })
        counts["gaps"] += len(gaps)
        counts["stale_dropped"] += int(np.count_nonzero(result.outcome == OUT_STALE))
        for code, reason in ((OUT_CROSSED, "crossed book after update (book invalid until the next snapshot)"),
                             (OUT_UNAPPLIED, "not applied: book invalid after a sequence gap and no snapshot followed")):
            for i in np.flatnonzero(result.outcome == code):
                line_no = int(depth.line_no[i])
                quarantine.append((line_no, int(depth.local_ts[i]), symbol, reason, capture.line(line_no)))

        if len(events.trades):
            t = events.trades
            counts["trades"] += store.insert_columns("trades", {
                **tag, "exch_ts": t["exch_ts"], "local_ts": t["local_ts"], "trade_id": t["trade_id"].astype(np.uint64),
                "price": t["price"], "qty": t["qty"], "aggressor": t["aggressor"]})
        if len(events.quotes):
            q = events.quotes
            counts["quotes"] += store.insert_columns("quotes", {
                **tag, "exch_ts": q["exch_ts"], "local_ts": q["local_ts"], "update_id": q["update_id"].astype(np.uint64),
                "bid_px": q["bid_px"], "bid_sz": q["bid_sz"], "ask_px": q["ask_px"], "ask_sz": q["ask_sz"]})

        if book.is_valid and len(applied):
            bid_px, bid_sz, ask_px, ask_sz = book.levels()
            last = int(applied[-1])
            store.insert_columns("book_checkpoints", {
                **tag, "last_update_id": [book.last_update_id], "local_ts": depth.local_ts[[last]],
                "exch_ts": depth.exch_ts[[last]], "bid_px": [bid_px], "bid_sz": [bid_sz],
                "ask_px": [ask_px], "ask_sz": [ask_sz]})

    if quarantine:
        quarantine.sort()
        line_no, local_ts, stream, reason, raw = zip(*quarantine)
        counts["quarantine"] = store.insert_columns("quarantine", {
            "source_id": source_id, "path": str(capture.path), "line_no": np.array(line_no, np.uint64),
            "local_ts": np.array(local_ts, np.int64), "stream": list(stream), "reason": list(reason),
            "raw": [r.decode("utf-8", "replace") for r in raw]})
    return counts


def insert_book_rows(store, tag, sampling, exch_ts, local_ts, seq, bid_px, bid_sz, ask_px, ask_sz) -> int:
    """Insert book rows into ``book_snapshots``: ``tag`` holds the row-constant columns (venue,
    symbol, source file...), ``sampling`` names the grid ('event' or a period), the rest are
    per-row arrays ((n,) times and sequence numbers, (n, levels) prices and sizes). Returns the
    rows inserted (shared by file ingest, simulated markets and the live engine's writer)."""
    if not len(exch_ts):
        return 0
    return store.insert_columns("book_snapshots", {
        **tag, "sampling": sampling, "exch_ts": exch_ts, "local_ts": local_ts, "seq": seq.astype(np.uint64),
        "bid_px": bid_px, "bid_sz": bid_sz, "ask_px": ask_px, "ask_sz": ask_sz})
