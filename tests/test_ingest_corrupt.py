"""Ingest of corrupted captures: one bad line, file or run never refuses a batch.

Each test builds a corrupted copy of a real capture in tmp_path and shows that the valid rows
are all kept (the same counts as a clean ingest) and every bad line is in quarantine with its
file, line number, reason, length and sha256.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import random
import signal
import subprocess
import sys
import textwrap
import tracemalloc
import uuid
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from tests.conftest import REPO, capture_lines
from genesis.cli import main
from genesis.feeds.binance import scan
from genesis.feeds.binance.capture import RAW_LIMIT, CaptureError, read_capture
from genesis.feeds.binance.messages import BadMessage, parse_line
from genesis.pipelines import ingest as ingest_module
from genesis.pipelines.ingest import (
    file_sha256, ingest_binance_capture, order_by_first_receive_time, owner_alive,
)
from genesis.store import connect, migrate

SAMPLE = "usdm_btcusdt_20240808.jsonl.gz"
BTC = "binance-usdm:BTCUSDT"
N_LINES = 6000  # the snapshot and about six seconds of BTCUSDT: every kind of line, fast to ingest
MARKET_TABLES = ("depth_deltas", "book_snapshots", "trades", "quotes")


def write_lines(path: Path, lines: list[bytes]) -> Path:
    data = b"\n".join(lines) + b"\n"
    path.write_bytes(gzip.compress(data, compresslevel=1) if path.name.endswith(".gz") else data)
    return path


def market_counts(url: str, symbol: str = BTC) -> dict[str, int]:
    with connect(url) as store:
        return {t: store.query_rows(f"SELECT count() FROM {t} WHERE symbol = {{s:String}}", {"s": symbol})[0][0]
                for t in MARKET_TABLES}


def quarantined(url: str) -> list[tuple]:
    with connect(url) as store:
        return store.query_rows(
            "SELECT path, line_no, reason, raw, raw_length, raw_sha256 FROM quarantine ORDER BY path, line_no")


def log_rows(url: str) -> list[tuple]:
    with connect(url) as store:
        return store.query_rows(
            "SELECT path, status, host, pid, message FROM ingest_log FINAL ORDER BY started_at, updated_at")


def stored_symbols(url: str) -> set[str]:
    with connect(url) as store:
        return {s for t in MARKET_TABLES for (s,) in store.query_rows(f"SELECT DISTINCT symbol FROM {t}")}


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return capture_lines(SAMPLE)[:N_LINES]


@pytest.fixture(scope="module")
def clean(lines, tmp_path_factory) -> dict[str, int]:
    """Rows per market table of a clean ingest of ``lines``: what every corrupted copy must keep."""
    folder = tmp_path_factory.mktemp("clean")
    url = f"chdb://{folder / 'store'}"
    report = ingest_binance_capture(write_lines(folder / "usdm_btcusdt_clean.jsonl", lines), store_url=url,
                                    progress=False)
    assert report.files[0].status == "ingested" and report.total("quarantine") == 0
    counts = market_counts(url)
    assert all(counts.values()), counts
    return counts


def test_a_5000_digit_receive_time_quarantines_that_line_and_the_directory_goes_on(lines, clean, tmp_path):
    folder = tmp_path / "captures"
    folder.mkdir()
    body = lines[0].split(b" ", 1)[1]
    digits = b"7" * 5000 + b" " + body  # prepended: every original line stays, one line further down
    bad_file = write_lines(folder / "usdm_btcusdt_digits.jsonl", [digits] + lines)
    eth = write_lines(folder / "spot_ethusdt_part.jsonl.gz", capture_lines("spot_ethusdt_20240808.jsonl.gz")[:1500])
    # Ordered by the first line that has a receive time (here line 2), not refused.
    assert ingest_module._first_receive_time(bad_file) == int(lines[0].split(b" ", 1)[0])
    garbage = folder / "garbage.jsonl.gz"
    garbage.write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    assert order_by_first_receive_time([garbage, bad_file, eth]) == sorted(
        [bad_file, eth], key=ingest_module._first_receive_time) + [garbage]  # the unreadable one last
    garbage.unlink()

    url = f"chdb://{tmp_path / 'store'}"
    report = ingest_binance_capture(folder, store_url=url, progress=False)
    assert [f.status for f in report.files] == ["ingested", "ingested"], report.summary()
    assert market_counts(url) == clean  # every valid row of the file kept
    assert market_counts(url, "binance-spot:ETHUSDT")["trades"] > 0  # and the other file ingested
    ((path, line_no, reason, raw, length, sha),) = quarantined(url)
    assert (path, line_no) == (str(bad_file), 1)
    assert reason.startswith("receive time 7777") and "(5,000 digits) is out of range" in reason
    assert raw.encode() == digits and length == len(digits) and sha == hashlib.sha256(digits).hexdigest()


def _corrupt(lines: list[bytes], seed: int = 17) -> list[bytes]:
    """200 random bytes set at random in trade and bookTicker lines (the depth chain stays
    whole, so the book equals the clean one), plus named corruptions of the symbol and stream."""
    rng = random.Random(seed)
    out = list(lines)
    flat = [i for i, line in enumerate(lines) if b"@trade" in line[:60] or b"@bookTicker" in line[:60]]
    for _ in range(200):
        i = rng.choice(flat)
        line = bytearray(out[i])
        line[rng.randrange(len(line))] = rng.choice([c for c in range(256) if c != 10])
        out[i] = bytes(line)
    trades = [i for i in flat if b"@trade" in lines[i][:60]]
    quotes = [i for i in flat if b"@bookTicker" in lines[i][:60]]
    out[trades[10]] = lines[trades[10]].replace(b"btcusdt@trade", b"%tcusdt@trade")  # the issue's %TCUSDT
    out[quotes[10]] = lines[quotes[10]].replace(b"btcusdt@", b"btcusdu@")  # letters still: "s" says BTCUSDT
    out[trades[11]] = lines[trades[11]].replace(b"btcusdt", b"btc_usdt").replace(b"BTCUSDT", b"BTC_USDT")
    out[trades[12]] = lines[trades[12]].replace(b"btcusdt@trade", b"btcusdt@aggTrade")  # unknown stream
    out[trades[13]] = b"17231x" + lines[trades[13]][6:]  # unparseable receive time
    out[quotes[11]] = lines[quotes[11]].replace(b"btcusdt@bookTicker", b"btcusdt@depth20@100ms")  # not a diff
    return out


def test_flipped_bytes_in_a_file_without_venue_prefix_quarantine_lines_never_make_symbols(lines, clean, tmp_path):
    corrupted = _corrupt(lines)
    path = write_lines(tmp_path / "capture_flipped.jsonl", corrupted)  # no spot_/usdm_/cm_ prefix
    expected_bad, kept = set(), {"trades": 0, "quotes": 0}
    for line_no, line in enumerate(corrupted, start=1):  # the reference parser's verdict on each line
        try:
            parsed = parse_line(line)
        except BadMessage:
            expected_bad.add(line_no)
            continue
        assert parsed.symbol == ("" if parsed.kind == scan.KIND_SNAPSHOT else "BTCUSDT")
        kept["trades"] += b"@trade" in lines[line_no - 1][:60]
        kept["quotes"] += b"@bookTicker" in lines[line_no - 1][:60]
    assert len(expected_bad) > 150

    url = f"chdb://{tmp_path / 'store'}"
    report = ingest_binance_capture(path, store_url=url, progress=False)
    assert report.files[0].status == "ingested" and report.files[0].symbols == [BTC]
    assert stored_symbols(url) == {BTC}  # no binance-usdm:%TCUSDT, BTCUSDU or BTC_USDT
    counts = market_counts(url)
    assert counts == {**clean, **kept}  # the book as clean; every trade and quote line that parses
    rows = quarantined(url)
    assert {row[1] for row in rows} == expected_bad and len(rows) == len(expected_bad)
    for row_path, line_no, _reason, _raw, length, sha in rows:
        line = corrupted[line_no - 1]
        assert row_path == str(path) and length == len(line) and sha == hashlib.sha256(line).hexdigest()
    reasons = {line_no: reason for _, line_no, reason, *_ in rows}
    trades = [i for i, line in enumerate(lines, 1) if b"@trade" in line[:60]]
    quotes = [i for i, line in enumerate(lines, 1) if b"@bookTicker" in line[:60]]
    assert reasons[trades[10]].startswith("stream symbol '%tcusdt' is not a Binance symbol")
    assert reasons[quotes[10]] == "stream 'btcusdu@bookTicker' carries an event of symbol 'BTCUSDT'"
    assert reasons[trades[11]].startswith("stream symbol 'btc_usdt' is not a Binance symbol")
    assert reasons[trades[12]] == "unknown stream 'btcusdt@aggTrade'"
    assert reasons[trades[13]] == "line does not start with '<receive time ns> '"
    assert reasons[quotes[11]] == "unknown stream 'btcusdt@depth20@100ms'"

    # With a venue prefix, the same: no binance-usdm:%TCUSDT.
    prefixed = read_capture(write_lines(tmp_path / "usdm_btcusdt_flipped.jsonl", corrupted))
    assert list(prefixed.symbols) == [BTC] and {b.line_no for b in prefixed.bad_lines} == expected_bad


def test_a_50_mb_line_is_quarantined_as_64_kib_with_its_length_and_sha256(lines, clean, tmp_path):
    ts = lines[500].split(b" ", 1)[0]
    huge = ts + b' {"stream":"btcusdt@trade","data":{"e":"trade","p":"' + b"1" * (50 << 20)
    wide = ts + b' {"stream":"btcusdt@trade","data":{"e":"tr\xc3\xa9de","x":"' + "é".encode() * 60_000 + b'"'
    corrupted = lines[:500] + [huge] + lines[500:1000] + [wide] + lines[1000:]
    path = write_lines(tmp_path / "usdm_btcusdt_huge.jsonl", corrupted)

    tracemalloc.start()
    try:
        capture = read_capture(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    # The file's bytes once, and little more: no copy of the line, no Python objects parsed from it.
    assert peak < 1.5 * path.stat().st_size, peak
    assert [b.line_no for b in capture.bad_lines] == [501, 1002]
    del capture
    # A 50 MB line with no receive time, first in a file: the file is ordered by the next line's.
    first = write_lines(tmp_path / "usdm_btcusdt_huge_first.jsonl", [b"x" * (50 << 20)] + lines[:10])
    assert ingest_module._first_receive_time(first) == int(lines[0].split(b" ", 1)[0])
    first.unlink()

    url = f"chdb://{tmp_path / 'store'}"
    report = ingest_binance_capture(path, store_url=url, progress=False)
    assert report.files[0].status == "ingested" and market_counts(url) == clean
    rows = quarantined(url)
    assert [(r[0], r[1]) for r in rows] == [(str(path), 501), (str(path), 1002)]
    for (_, line_no, reason, raw, length, sha), line in zip(rows, (huge, wide)):
        assert length == len(line) and sha == hashlib.sha256(line).hexdigest()
        assert len(raw.encode()) <= RAW_LIMIT and line.startswith(raw.encode())
    assert rows[0][2].startswith("line of 52,428,871 bytes is longer than any Binance message")
    assert len(rows[1][3].encode()) >= RAW_LIMIT - 1  # cut before a 2-byte character, not inside it


def test_files_whose_venue_cannot_be_told_or_that_cannot_be_read_are_named_and_the_rest_goes_on(
        lines, clean, tmp_path, capsys):
    folder = tmp_path / "batch"
    folder.mkdir()
    trades_only = write_lines(folder / "trades.jsonl", [line for line in lines if b"@trade" in line[:60]])
    garbage = folder / "garbage.jsonl.gz"
    garbage.write_bytes(b"\x1f\x8b" + bytes(range(256)) * 16)  # gzip magic, then noise
    good = write_lines(folder / "usdm_btcusdt_good.jsonl", lines)
    url = f"chdb://{tmp_path / 'store'}"

    assert main(["ingest", "binance-capture", str(folder), "--store", url, "--quiet"]) == 1
    out, err = capsys.readouterr()
    assert "ingested 1 file(s)" in out and "2 file(s) NOT ingested" in out
    assert f"not ingested: {trades_only}: cannot tell the venue of BTCUSDT" in err and "--venue" in err
    assert f"not ingested: {garbage}: not a readable gzip file" in err
    assert market_counts(url) == clean  # the good file, whole
    statuses = {Path(p).name: (status, message) for p, status, _h, _p, message in log_rows(url)}
    assert statuses["usdm_btcusdt_good.jsonl"][0] == "done"
    assert statuses["trades.jsonl"][0] == "failed" and "cannot tell the venue" in statuses["trades.jsonl"][1]

    # Named, it goes in; the one already in is skipped, the garbage is reported again.
    assert main(["ingest", "binance-capture", str(folder), "--store", url, "--quiet", "--venue", "usdm"]) == 1
    out, err = capsys.readouterr()
    assert "ingested 1 file(s)" in out and "skipped 1 already ingested" in out and str(garbage) in err
    assert market_counts(url)["trades"] == 2 * clean["trades"]  # its trades, as usdm (its own source)


def test_corrupt_gzip_keeps_the_lines_before_the_damage_and_reports_the_rest(lines, tmp_path):
    data = b"\n".join(lines) + b"\n"
    stored = bytearray(gzip.compress(data, compresslevel=6))
    middle = len(stored) // 2
    stored[middle : middle + 8] = b"\xff" * 8
    path = tmp_path / "usdm_btcusdt_damaged.jsonl.gz"
    path.write_bytes(bytes(stored))
    capture = read_capture(path)  # no exception: what decompresses is read
    *line_problems, gzip_problem = capture.bad_lines
    assert gzip_problem.stream == "gzip" and "corrupt gzip data" in gzip_problem.reason
    assert gzip_problem.line_no > max([b.line_no for b in line_problems], default=0)
    assert gzip_problem.length == len(stored) - int(gzip_problem.reason.split("at compressed byte ")[1]
                                                    .split(" ")[0].replace(",", ""))
    read = capture.raw.split(b"\n")
    intact = next(i for i, (a, b) in enumerate(zip(read, lines + [b""])) if a != b)  # first damaged line
    assert intact > N_LINES // 3
    assert all(b.line_no > intact for b in line_problems)  # every line before the damage is used

    with pytest.raises(CaptureError, match="garbage.jsonl.gz: not a readable gzip file"):
        (tmp_path / "garbage.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00" + b"\x00" * 3 + b"\xff" * 100)
        read_capture(tmp_path / "garbage.jsonl.gz")


def test_venue_of_a_symbol_without_depth_events_comes_from_the_files_other_streams(lines, tmp_path):
    trades = [line for line in lines[:2000] if b"@trade" in line[:60]]
    eth = [line.replace(b"btcusdt", b"ethusdt").replace(b"BTCUSDT", b"ETHUSDT") for line in trades]
    path = write_lines(tmp_path / "mixed.jsonl", lines[:2000] + eth)
    assert sorted(read_capture(path).symbols) == [BTC, "binance-usdm:ETHUSDT"]
    with pytest.raises(CaptureError, match="mixed_trades.jsonl: cannot tell the venue of ETHUSDT"):
        read_capture(write_lines(tmp_path / "mixed_trades.jsonl", eth))
    assert list(read_capture(write_lines(tmp_path / "perp.jsonl", [
        line.replace(b"btcusdt", b"btcusd_perp").replace(b"BTCUSDT", b"BTCUSD_PERP") for line in trades])).symbols) \
        == ["binance-coinm:BTCUSD_PERP"]  # a contract suffix tells COIN-M


_KILLED_INGEST = textwrap.dedent("""
    import sys, time
    from genesis.pipelines import ingest

    def stall(*args, **kwargs):  # the 'running' row and the depth rows are written by now
        print("writing", flush=True)
        time.sleep(120)

    ingest.insert_book_rows = stall
    ingest.ingest_binance_capture(sys.argv[1], store_url=sys.argv[2], progress=False)
""")


def test_an_ingest_killed_with_sigkill_is_marked_crashed_by_the_next_run_and_rolled_back(lines, clean, tmp_path):
    btc = write_lines(tmp_path / "usdm_btcusdt_part.jsonl", lines)
    eth = write_lines(tmp_path / "spot_ethusdt_part.jsonl", capture_lines("spot_ethusdt_20240808.jsonl.gz")[:1500])
    url = f"chdb://{tmp_path / 'store'}"
    child = subprocess.Popen([sys.executable, "-c", _KILLED_INGEST, str(btc), url], cwd=REPO,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline() == b"writing\n", child.stderr.read().decode()[-3000:]
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        if child.poll() is None:
            child.kill()
    with connect(url) as store:
        ((status, pid),) = store.query_rows("SELECT status, pid FROM ingest_log FINAL")
        left = store.query_rows("SELECT count() FROM depth_deltas")[0][0]
    assert (status, pid) == ("running", child.pid) and left > 0  # what SIGKILL leaves behind

    # The next run, of another file, finds the run dead: marks it crashed and rolls its rows back.
    report = ingest_binance_capture(eth, store_url=url, progress=False)
    assert report.files[0].status == "ingested"
    (note,) = report.files[0].notes
    assert str(btc.resolve()) in note and f"pid {child.pid} on" in note and "is gone" in note
    assert "note: run" in report.summary()
    assert market_counts(url) == dict.fromkeys(MARKET_TABLES, 0)
    runs = log_rows(url)
    assert [(Path(p).name, s) for p, s, *_ in runs] == [("usdm_btcusdt_part.jsonl", "crashed"),
                                                       ("spot_ethusdt_part.jsonl", "done")]
    assert runs[0][3] == child.pid and "rolled back" in runs[0][4]  # the owner stays on record
    assert runs[1][2:4] == (ingest_module._HOST, os.getpid())

    # And the file itself ingests as if nothing had happened.
    again = ingest_binance_capture(btc, store_url=url, progress=False)
    assert again.files[0].status == "ingested" and not again.files[0].notes
    assert market_counts(url) == clean


def _running_row(store, source_id: str, path: str, host: str, pid: int, started_at: datetime) -> None:
    ingest_module._log(store, {"source_id": source_id, "run_id": uuid.uuid4(), "path": path, "kind": "binance-capture",
                               "started_at": started_at, "host": host, "pid": pid}, "running")


def test_a_stale_running_row_is_crashed_but_a_live_owners_run_is_left_alone(lines, tmp_path):
    small = write_lines(tmp_path / "usdm_btcusdt_small.jsonl", lines[:1500])
    busy = write_lines(tmp_path / "usdm_btcusdt_busy.jsonl", lines[:1000])
    url = f"chdb://{tmp_path / 'store'}"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    now = datetime.now(timezone.utc)
    with connect(url) as store:
        migrate(store)
        _running_row(store, "dead-source", "/captures/dead.jsonl", ingest_module._HOST, dead.pid, now)
        _running_row(store, file_sha256(busy), str(busy), ingest_module._HOST, os.getpid(), now)  # alive: us
        for source in ("dead-source", file_sha256(busy)):
            store.insert_columns("trades", {"symbol": BTC, "source_id": source, "exch_ts": [1], "local_ts": [1],
                                            "trade_id": [1], "price": [1.0], "qty": [1.0], "aggressor": [1]})
        # A row written before owners were recorded (migration 011): no owner, so crashed.
        store.insert_columns("quarantine", {"source_id": "old", "path": "old.jsonl", "line_no": [1],
                                            "local_ts": [0], "stream": "", "reason": "bad json", "raw": ["{x"]})
        assert store.query_rows("SELECT raw_length, raw_sha256 FROM quarantine") == [
            (2, hashlib.sha256(b"{x").hexdigest())]  # the migration's defaults

    report = ingest_binance_capture([small, busy], store_url=url, progress=False)
    assert [f.status for f in report.files] == ["ingested", "busy"]
    assert f"pid {os.getpid()} on {ingest_module._HOST} is running" in report.files[1].error
    assert f"BUSY: {busy.resolve()}: being ingested since" in report.summary()
    with connect(url) as store:
        statuses = dict(store.query_rows("SELECT source_id, status FROM ingest_log FINAL"))
        trades = dict(store.query_rows("SELECT source_id, count() FROM trades GROUP BY source_id"))
    assert statuses["dead-source"] == "crashed" and "dead-source" not in trades  # rolled back
    assert statuses[file_sha256(busy)] == "running" and trades[file_sha256(busy)] == 1  # untouched


def test_owner_alive_tells_dead_zombie_reused_and_remote_owners():
    now = datetime.now(timezone.utc)
    me, host = os.getpid(), ingest_module._HOST
    assert owner_alive(host, me, now, embedded=True)[0]
    other = subprocess.Popen(["sleep", "60"])
    try:
        assert owner_alive(host, other.pid, now + timedelta(seconds=5), embedded=True)[0]  # another live ingest
        other.send_signal(signal.SIGKILL)
        while ingest_module._process_info(other.pid)[0] not in "ZX":
            pass
        zombie = owner_alive(host, other.pid, now, embedded=True)  # killed, not reaped yet: os.kill still works
        assert zombie == (False, f"pid {other.pid} on {host} is gone (a zombie)")
    finally:
        other.kill()
        other.wait()
    assert owner_alive(host, other.pid, now, embedded=True) == (False, f"pid {other.pid} on {host} is gone")
    # Our pid, but a run started before this process did: the pid was reused, the owner is gone.
    assert owner_alive(host, me, now - timedelta(days=3650), embedded=False) == (
        False, f"pid {me} on {host} is gone (the pid now belongs to a process started after the run)")
    assert not owner_alive("", 0, now, embedded=False)[0]  # no owner recorded
    assert not owner_alive("elsewhere", 1, now, embedded=True)[0]  # cannot hold our embedded store
    assert owner_alive("elsewhere", 1, now, embedded=False)[0]  # a server: cannot check, so alive...
    assert not owner_alive("elsewhere", 1, now - timedelta(days=1), embedded=False)[0]  # ...but not for ever
