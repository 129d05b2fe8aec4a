"""Ingest Binance capture files: read -> rebuild the book -> write the store.

Per file, in one short lease on the store:

1. The file is identified by the sha256 of its bytes (``source_id``). A file already
   ingested is skipped (``replace=True`` deletes its rows and ingests it again). A run left
   'running' in ``ingest_log`` by an owner that is gone (killed, crashed: the log records
   each run's host and pid) is marked 'crashed' and its rows are deleted; a run whose owner
   is alive is left alone, and its file is reported 'busy'.
2. Lines are parsed (:mod:`genesis.feeds.binance.capture`); invalid lines go to quarantine,
   each with its file, line number, reason, length, sha256 and at most 64 KiB of its text.
   A file that cannot be read as a whole (unreadable, or a symbol whose venue cannot be
   told) is reported 'failed' with the reason, and the other files go on.
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
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
from tqdm.auto import tqdm

from genesis.book.l2 import (
    GAP_EXPECTED, GAP_MSG, GAP_REASON, GAP_REASONS, GAP_RECEIVED, GAP_ROWS_BEFORE,
    OUT_CROSSED, OUT_STALE, OUT_UNAPPLIED, L2Book, applied_clocks,
)
from genesis.arrays import concat_ranges
from genesis.book.sampling import grid_rows, parse_duration
from genesis.feeds.binance.capture import (
    BadLine, CaptureError, CaptureFile, SymbolEvents, normalize_venue, read_capture,
)
from genesis.feeds.binance.venues import read_exchange_info
from genesis.store import Store, connect, migrate
from genesis.store.instruments import write_instruments

KIND = "binance-capture"
# Tables that hold rows of an ingested file (deleted by source_id on replace / rollback).
SOURCE_TABLES = ("depth_deltas", "book_snapshots", "trades", "quotes", "sequence_gaps", "book_checkpoints", "quarantine",
                 "order_events", "episodes")
_CAPTURE_SUFFIXES = (".jsonl", ".jsonl.gz", ".txt", ".txt.gz", ".gz")
_ORDER_SCAN_BYTES = 256 << 20  # how far into a file its first receive time is looked for (64 KiB at a time)
_HOST = socket.gethostname()
# A 'running' run of a process on another host (server store) is taken as crashed after this.
REMOTE_RUN_LIMIT = timedelta(hours=6)
log = logging.getLogger(__name__)


@dataclass
class FileReport:
    path: Path
    source_id: str
    # 'ingested', 'replaced', 'skipped' (already held: counts are those of the run that stored it),
    # 'failed' (nothing of it stored: ``error`` says why) or 'busy' (a live run of another process has it)
    status: str
    symbols: list[str] = field(default_factory=list)
    messages: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    error: str = ""
    notes: list[str] = field(default_factory=list)  # e.g. earlier runs this one found dead and marked 'crashed'


@dataclass
class IngestReport:
    files: list[FileReport]

    @property
    def _processed(self) -> list[FileReport]:
        return [f for f in self.files if f.status in ("ingested", "replaced")]

    @property
    def failed(self) -> list[FileReport]:
        """Files not ingested: 'failed' (their error names the file and the problem) or 'busy'."""
        return [f for f in self.files if f.status in ("failed", "busy")]

    @property
    def messages(self) -> int:
        """Messages read by this run (skipped files excluded)."""
        return sum(f.messages for f in self._processed)

    def total(self, key: str) -> int:
        """Rows this run wrote to ``key`` (a table, 'gaps' or 'stale_dropped'); skipped files excluded."""
        return sum(f.counts.get(key, 0) for f in self._processed)

    def to_frame(self) -> pd.DataFrame:
        """One row per file: status, symbols, messages and rows per table (for a skipped file,
        what the store already holds from it), and the error of a file not ingested."""
        columns = ["depth_deltas", "book_snapshots", "trades", "quotes", "quarantine", "gaps"]
        return pd.DataFrame(
            [
                {"path": path_text(f.path), "status": f.status, "symbols": ", ".join(f.symbols),
                 "messages": f.messages, **{c: f.counts.get(c, 0) for c in columns}, "seconds": round(f.seconds, 3),
                 "error": path_text(f.error)}
                for f in self.files
            ]
        )

    def summary(self) -> str:
        done = self._processed
        skipped = sum(f.status == "skipped" for f in self.files)
        seconds = sum(f.seconds for f in done)
        rate = f" ({self.messages / seconds:,.0f} messages/s)" if seconds > 0 and self.messages else ""
        lines = [f"ingested {len(done)} file(s), {self.messages:,} messages{rate}"
                 + (f"; skipped {skipped} already ingested (use --replace to re-ingest)" if skipped else "")
                 + (f"; {len(self.failed)} file(s) NOT ingested (below)" if self.failed else "")]
        for key in ("depth_deltas", "book_snapshots", "trades", "quotes", "quarantine", "gaps", "stale_dropped"):
            lines.append(f"  {key:<15} {self.total(key):>12,}")
        for f in self.files:
            lines += [f"  note: {note}" for note in f.notes]
        for f in self.failed:
            lines.append(f"  {f.status.upper()}: {f.error}")
        return path_text("\n".join(lines))


def path_text(path: str | Path) -> str:
    """``path`` as printable, storable text: bytes of a file name that are not UTF-8 (which
    Python keeps as surrogates) become ``\\xNN``."""
    try:
        return str(path).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        return str(path).encode("utf-8", "backslashreplace").decode("utf-8")


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


def _first_receive_time(path: Path) -> int | None:
    """Receive time of a file's first line that has one (lines that do not are skipped): the
    order in which rotated files follow each other. None when the file cannot be read, or
    none of its first 256 MiB has one. Reads blocks, never a whole (possibly huge) line."""
    try:
        with open(path, "rb") as fh:
            opener = gzip.open if fh.read(2) == b"\x1f\x8b" else open
        with opener(path, "rb") as fh:
            head, read = b"", 0  # the first bytes of the current line
            while read < _ORDER_SCAN_BYTES:
                block = fh.read(1 << 16)
                if not block:
                    return _receive_time_of(head)
                read += len(block)
                pos = 0
                while True:
                    newline = block.find(b"\n", pos)
                    end = newline if newline >= 0 else len(block)
                    if len(head) < 21:
                        head += block[pos : min(end, pos + 21 - len(head))]
                    if newline < 0:
                        break
                    if (found := _receive_time_of(head)) is not None:
                        return found
                    head, pos = b"", newline + 1
    except Exception:  # unreadable, corrupt gzip...: the file's own ingest reports it
        return None
    return None


def _receive_time_of(head: bytes) -> int | None:
    digits, space, _ = head.partition(b" ")
    if space and digits.isdigit() and len(digits) <= 19 and 0 < int(digits) < 2**63:
        return int(digits)
    return None


def order_by_first_receive_time(paths: list[Path]) -> list[Path]:
    """Files in order of their first receive time; those without one keep their order, last."""
    times = {path: _first_receive_time(path) for path in paths}
    return sorted(paths, key=lambda path: (times[path] is None, times[path] or 0))


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
    venue = normalize_venue(venue)
    files = order_by_first_receive_time(expand_paths(paths))
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


def _previous_runs(store: Store, source_id: str) -> list[tuple]:
    """(status, messages, counts, symbols, host, pid, started_at) of each earlier run of this
    file, oldest first."""
    return store.query_rows(
        "SELECT status, messages, counts, symbols, host, pid, started_at FROM ingest_log FINAL"
        " WHERE source_id = {source_id:String} ORDER BY started_at, updated_at",
        {"source_id": source_id},
    )


def _process_info(pid: int) -> tuple[str, float] | None:
    """(state, start time in epoch seconds to about a second) of process ``pid``, where /proc
    tells (Linux); None elsewhere."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3, state
        ticks = int(fields[19])  # field 22: starttime, clock ticks after boot
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return fields[0], boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


def owner_alive(host: str, pid: int, started_at: datetime, *, embedded: bool) -> tuple[bool, str]:
    """Whether the process that started a run (``host``, ``pid``, at ``started_at``) may still
    be running it, and why. Unknown is taken as alive (a live run is never marked crashed),
    except where it cannot be: a run with no owner recorded (written before owners were), and,
    in an embedded store (one process at a time, and this one holds it), one from another host."""
    if not host or not pid:
        return False, "no owner recorded"
    if started_at.tzinfo is None:
        started_at = started_at.replace(tzinfo=timezone.utc)
    if host != _HOST:
        if embedded:
            return False, f"pid {pid} on {host} (another host) cannot hold this embedded store while this process does"
        if datetime.now(timezone.utc) - started_at > REMOTE_RUN_LIMIT:
            return False, (f"pid {pid} on {host} (another host) started it more than "
                           f"{REMOTE_RUN_LIMIT.total_seconds() / 3600:g} h ago, longer than any file ingest takes")
        return True, f"pid {pid} on {host}, another host: cannot check it from here"
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False, f"pid {pid} on {host} is gone"
    except PermissionError:
        pass  # alive, another user's
    except OSError as exc:
        return True, f"pid {pid} on {host}: cannot check ({exc})"
    info = _process_info(pid)
    if info is not None and info[0] in ("Z", "X"):  # killed, not yet reaped by its parent
        return False, f"pid {pid} on {host} is gone (a zombie)"
    if info is not None and info[1] > started_at.timestamp() + 1.0:
        return False, f"pid {pid} on {host} is gone (the pid now belongs to a process started after the run)"
    return True, f"pid {pid} on {host} is running"


def recover_crashed_runs(store: Store) -> list[str]:
    """Mark 'crashed' every run still 'running' whose owner is gone, and roll back its rows
    (unless a later run of the same source already replaced them). Returns what was done,
    one line per run. Runs whose owner is alive are left alone."""
    notes = []
    rows = store.query_rows(
        "SELECT r.source_id, r.run_id, r.path, r.kind, r.started_at, r.host, r.pid, r.messages, r.symbols,"
        " r.started_at < m.latest AS superseded"
        " FROM (SELECT * FROM ingest_log FINAL WHERE status = 'running') AS r"
        " INNER JOIN (SELECT source_id, max(started_at) AS latest FROM ingest_log FINAL GROUP BY source_id) AS m"
        " ON r.source_id = m.source_id ORDER BY r.started_at")
    for source_id, run_id, path, kind, started_at, host, pid, messages, symbols, superseded in rows:
        alive, why = owner_alive(host, pid, started_at, embedded=store.is_embedded)
        if alive:
            continue
        if not superseded:  # its rows are still in the store: roll them back
            _delete_source(store, source_id)
        done = ("a later run had already replaced its rows" if superseded else "its rows were rolled back")
        message = (f"crashed: still 'running', but its owner {why}; found by pid {os.getpid()} on {_HOST} "
                   f"at {datetime.now(timezone.utc):%Y-%m-%d %H:%M:%S} UTC; {done}")
        _log(store, {"source_id": source_id, "run_id": run_id, "path": path, "kind": kind, "started_at": started_at,
                     "messages": messages, "symbols": symbols, "host": host, "pid": pid}, "crashed", message=message)
        notes.append(f"run {run_id} of {path} (started {started_at:%Y-%m-%d %H:%M:%S} UTC) {message}")
        log.info("ingest run %s of %s %s", run_id, path, message)
    return notes


def _delete_source(store: Store, source_id: str) -> None:
    for table in SOURCE_TABLES:
        store.command(f"DELETE FROM {table} WHERE source_id = {{source_id:String}}", {"source_id": source_id})
    # Specs recorded from this source (not in SOURCE_TABLES: a spec already known is not recorded twice).
    store.command("DELETE FROM instruments WHERE source_id = {source_id:String}", {"source_id": source_id})
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
            # The owner, so that a later run can tell whether a 'running' run is still alive.
            "host": [run.get("host", _HOST)], "pid": np.array([run.get("pid", os.getpid())], np.uint32),
        },
        types={"counts": pa.map_(pa.string(), pa.uint64())},
    )


def run_source(store: Store, *, source_id: str, path: str | Path, kind: str, replace: bool,
               write: Callable[[dict], dict[str, int]]) -> FileReport:
    """Ingest one source (a file, a simulation) exactly once, or roll it back.

    First, runs left 'running' by owners that are gone are marked 'crashed' and rolled back
    (:func:`recover_crashed_runs`). A source whose latest run is done is skipped unless
    ``replace``; one that a live run of another process is writing is left to it ('busy').
    Rows of an earlier run of it (replaced, or left by a failure) are deleted first.
    ``write(run)`` writes the rows tagged with ``source_id``, sets ``run["messages"]`` and
    ``run["symbols"]`` and returns the counts per table; if it raises, everything it wrote
    is deleted and the log says why.
    """
    started = time.perf_counter()
    notes = recover_crashed_runs(store)
    history = _previous_runs(store, source_id)
    done = [run for run in history if run[0] == "done"]
    latest = history[-1] if history else None
    if latest is not None and latest[0] == "running":  # its owner is alive (else it was marked crashed)
        _, _, _, _, host, pid, began = latest
        why = owner_alive(host, pid, began, embedded=store.is_embedded)[1]
        return FileReport(Path(path), source_id, "busy", notes=notes, error=(
            f"{path}: being ingested since {began:%Y-%m-%d %H:%M:%S} UTC by a run whose owner is alive ({why}); "
            "left to it"))
    if latest is not None and latest[0] == "done" and not replace:
        _, messages, counts, symbols, *_ = latest
        return FileReport(Path(path), source_id, "skipped", list(symbols), messages, dict(counts), notes=notes)
    if history:  # a replace, or the leftovers of a run that did not finish
        _delete_source(store, source_id)
    run = {"source_id": source_id, "run_id": uuid.uuid4(), "path": path_text(path), "kind": kind,
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
                      time.perf_counter() - started, notes=notes)


def _ingest_file(store, path, books, replace, depth_levels, grid, grid_ns, venue) -> FileReport:
    """Ingest one file. A file that cannot be read as a whole comes back 'failed', its error
    naming it (the log keeps the failed run); other errors (the store's) are raised."""
    try:
        source_id = file_sha256(path)
    except OSError as exc:
        return FileReport(path, "", "failed", error=f"{path}: cannot read the file ({exc.strerror or exc})")

    def write(run: dict) -> dict[str, int]:
        try:
            capture = read_capture(path, venue=venue)
        except (CaptureError, MemoryError):
            raise
        except Exception as exc:  # whatever the input did to the reader, it is this file's problem only
            log.exception("reading %s failed", path)
            raise CaptureError(path, f"cannot be read ({type(exc).__name__}: {exc})") from exc
        run["messages"] = capture.n_lines
        run["symbols"] = sorted(capture.symbols)
        return _write_capture(store, capture, run["source_id"], books, depth_levels, grid, grid_ns)

    try:
        return run_source(store, source_id=source_id, path=path.resolve(), kind=KIND, replace=replace, write=write)
    except CaptureError as exc:
        log.info("not ingested: %s", exc)
        return FileReport(path, source_id, "failed", error=str(exc))


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
    quarantine: list[BadLine] = list(capture.bad_lines)
    for symbol, events in capture.symbols.items():
        book = _book_for(store, events, books, depth_levels)
        depth = events.depth
        result = book.apply_depth(depth.is_snapshot, depth.first_id, depth.last_id, depth.prev_id,
                                  depth.level_start, depth.level_count, depth.side, depth.price, depth.qty)
        tag = {"symbol": symbol, "source_id": source_id}

        # The applied stream: every level of every applied message, in application order, with
        # clocks that agree with that order (a spot snapshot has no venue time of its own).
        applied = result.applied
        exch_ts, local_ts = depth.exch_ts.copy(), depth.local_ts.copy()
        exch_ts[applied], local_ts[applied] = applied_clocks(depth.exch_ts[applied], depth.local_ts[applied])
        msg_of_row = np.repeat(applied, depth.level_count[applied])
        level_rows = concat_ranges(depth.level_start[applied], depth.level_count[applied])
        counts["depth_deltas"] += store.insert_columns("depth_deltas", {
            **tag, "exch_ts": exch_ts[msg_of_row], "local_ts": local_ts[msg_of_row],
            "seq": depth.last_id[msg_of_row].astype(np.uint64), "side": depth.side[level_rows],
            "price": depth.price[level_rows], "qty": depth.qty[level_rows],
            "is_snapshot": depth.is_snapshot[msg_of_row],
        }) if len(msg_of_row) else 0

        top = result.top_msg
        row_ts = exch_ts[top]
        counts["book_snapshots"] += insert_book_rows(store, tag, "event", row_ts, local_ts[top],
                                                      depth.last_id[top], result.bid_px, result.bid_sz,
                                                      result.ask_px, result.ask_sz)
        gaps = result.gaps
        if grid_ns and len(top):
            times, source = grid_rows(row_ts, exch_ts[gaps[:, GAP_MSG]], gaps[:, GAP_ROWS_BEFORE], grid_ns)
            valid = source >= 0
            src = source[valid]
            counts["book_snapshots"] += insert_book_rows(
                store, tag, grid, times[valid], local_ts[top][src], depth.last_id[top][src],
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
                quarantine.append(capture.bad_line(int(depth.line_no[i]), int(depth.local_ts[i]), symbol, reason))

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
                **tag, "last_update_id": [book.last_update_id], "local_ts": local_ts[[last]],
                "exch_ts": exch_ts[[last]], "bid_px": [bid_px], "bid_sz": [bid_sz],
                "ask_px": [ask_px], "ask_sz": [ask_sz]})

    counts["instruments"] = _record_instruments(store, capture, source_id)
    if quarantine:
        quarantine.sort(key=lambda bad: bad.line_no)
        # raw: the line's bytes as read (at most RAW_LIMIT of them), with its full length and sha256.
        counts["quarantine"] = store.insert_columns("quarantine", {
            "source_id": source_id, "path": path_text(capture.path),
            "line_no": np.array([b.line_no for b in quarantine], np.uint64),
            "local_ts": np.array([b.local_ts for b in quarantine], np.int64),
            "stream": [b.stream for b in quarantine], "reason": [b.reason for b in quarantine],
            "raw": [b.raw for b in quarantine],
            "raw_length": np.array([b.length for b in quarantine], np.uint64),
            "raw_sha256": [b.sha256 for b in quarantine]})
    return counts


def _record_instruments(store, capture: CaptureFile, source_id: str) -> int:
    """The specs of the file's symbols: the venue's, from the exchangeInfo the recorder kept
    beside the file, and one inferred exactly from the file's own prices and sizes (marked
    inferred; a declared spec wins over it wherever both exist)."""
    specs = [s for s in read_exchange_info(capture.path) if s.symbol in capture.symbols]
    for events in capture.symbols.values():
        try:
            specs.append(events.inferred_instrument())
        except ValueError as exc:  # nothing to infer from, or no decimal grid: the data is stored all the same
            log.warning("%s: no spec inferred for %s (%s)", path_text(capture.path), events.symbol, exc)
    return write_instruments(store, specs, source_id)


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
