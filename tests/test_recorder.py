"""The recorder: files the capture reader reads back, rotation, and a kill mid-write."""

from __future__ import annotations

import asyncio
import gzip
import os
import signal
import subprocess
import sys
import time
import zlib

import numpy as np
import pytest

from genesis.feeds.binance.capture import read_bytes, read_capture
from genesis.feeds.binance.fake import FakeBinance
from genesis.feeds.binance.live import BinanceClient
from genesis.feeds.binance.recorder import CaptureRecorder
from genesis.feeds.binance.venues import venue
from genesis.pipelines.ingest import ingest_binance_capture
from genesis.store import connect
from tests.conftest import REPO, capture_path

NS_DAY = 86_400 * 10**9


def record_in_process(path, directory, **recorder_kwargs):
    async def main():
        fake = await FakeBinance(path).start()
        client = BinanceClient("usdm", ["BTCUSDT"], ws_url=fake.ws_url, rest_url=fake.rest_url)
        recorder = client.listener = CaptureRecorder(directory, client.venue, **recorder_kwargs)
        task = asyncio.create_task(client.run())
        await fake.done.wait()
        while client.metrics.messages < len(fake.messages):
            await asyncio.sleep(0.02)
        client.stop()
        await task
        recorder.close()
        await fake.stop()
        return recorder, client

    return asyncio.run(main())


def table_counts(url):
    with connect(url) as store:
        return {t: store.query_rows(f"SELECT count() FROM {t}")[0][0]
                for t in ("book_snapshots", "trades", "quotes", "quarantine", "sequence_gaps")}


@pytest.mark.slow
def test_recording_reads_back_and_size_rotation_continues_the_book(tmp_path):
    source = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    recorder, client = record_in_process(source, tmp_path / "rotated", max_bytes=600_000)
    files = recorder.written
    assert len(files) >= 3
    assert [p.name for p in files[:2]] == [files[0].name, files[0].name.replace(".jsonl.gz", "_001.jsonl.gz")]
    # Only the first file holds a REST snapshot: continuations go on from the previous book.
    snapshots = [sum(line.split(b" ", 1)[1].startswith(b'{"lastUpdateId"') for line in read_bytes(p).splitlines())
                 for p in files]
    assert snapshots[0] == 1 and sum(snapshots[1:]) == 0
    # Every message the client received is in the files, in order, read back by the capture reader.
    captures = [read_capture(p) for p in files]
    assert sum(c.n_lines for c in captures) == client.metrics.messages + client.metrics.snapshots
    assert all(not c.bad_lines for c in captures)
    trades = np.concatenate([c.symbols["binance-usdm:BTCUSDT"].trades for c in captures])
    (original,) = read_capture(source).symbols.values()
    np.testing.assert_array_equal(trades["trade_id"], original.trades["trade_id"])

    # Ingesting the rotated files gives the same store as ingesting them joined into one file.
    joined = tmp_path / "joined" / "usdm_btcusdt_joined.jsonl"
    joined.parent.mkdir()
    joined.write_bytes(b"".join(read_bytes(p) for p in files))
    rotated_url, joined_url = f"chdb://{tmp_path / 'a'}", f"chdb://{tmp_path / 'b'}"
    ingest_binance_capture(files, store_url=rotated_url, progress=False)
    ingest_binance_capture(joined, store_url=joined_url, progress=False)
    counts = table_counts(rotated_url)
    assert counts == table_counts(joined_url)
    assert counts["quarantine"] == 0 and counts["sequence_gaps"] == 0 and counts["book_snapshots"] > 6000
    sql = "SELECT seq, bid_px, ask_sz FROM book_snapshots ORDER BY exch_ts, seq"
    with connect(rotated_url) as store:
        rotated_rows = store.query_rows(sql)
    with connect(joined_url) as store:  # chDB: one store per process at a time
        assert store.query_rows(sql) == rotated_rows


def test_files_rotate_at_utc_midnight(tmp_path):
    recorder = CaptureRecorder(tmp_path, venue("spot"))
    before_midnight = 19_944 * NS_DAY - 1_000  # 2024-08-08 23:59:59.999999 (day 19944 is 2024-08-09)
    recorder.on_message("binance-spot:BTCUSDT", before_midnight, b'{"lastUpdateId":1,"bids":[],"asks":[]}', True)
    recorder.on_message("binance-spot:BTCUSDT", before_midnight + 500, b'{"stream":"btcusdt@trade","data":{}}', False)
    recorder.on_message("binance-spot:BTCUSDT", before_midnight + 2_000, b'{"stream":"btcusdt@trade","data":{}}', False)
    recorder.on_message("binance-spot:ETHUSDT", before_midnight + 3_000, b'{"stream":"ethusdt@trade","data":{}}', False)
    recorder.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["spot_btcusdt_20240808.jsonl.gz", "spot_btcusdt_20240809.jsonl.gz", "spot_ethusdt_20240809.jsonl.gz"]
    first = gzip.decompress((tmp_path / names[0]).read_bytes()).splitlines()
    second = gzip.decompress((tmp_path / names[1]).read_bytes()).splitlines()
    assert len(first) == 2 and first[0].startswith(b"%d {" % before_midnight)
    assert second == [b'%d {"stream":"btcusdt@trade","data":{}}' % (before_midnight + 2_000)]


def test_flushed_prefix_of_an_unfinished_file_decompresses(tmp_path):
    recorder = CaptureRecorder(tmp_path, venue("usdm"), flush_seconds=0.0)
    for k in range(1000):
        recorder.on_message("binance-usdm:BTCUSDT", 10**18 + k, b'{"stream":"btcusdt@trade","data":{"k":%d}}' % k, False)
    (path,) = recorder.written
    data = path.read_bytes()  # the recorder is still open: no gzip trailer yet, as after a kill
    assert len(read_bytes(path).splitlines()) == 1000
    with pytest.raises((EOFError, zlib.error, gzip.BadGzipFile)):
        gzip.decompress(data)
    recorder.close()


@pytest.mark.slow
def test_killed_recorder_leaves_ingestible_files(tmp_path):
    source = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    out = tmp_path / "captures"
    with FakeBinance(source, speed=40.0) as fake:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        recorder = subprocess.Popen(
            [sys.executable, "-m", "genesis.cli", "record", "binance", "--venue", "usdm", "--symbols", "BTCUSDT",
             "--out", str(out), "--ws-url", fake.ws_url, "--rest-url", fake.rest_url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            deadline = time.monotonic() + 120
            while fake.stats.sent < 30_000 and time.monotonic() < deadline and recorder.poll() is None:
                time.sleep(0.05)
            assert recorder.poll() is None, recorder.communicate()[1].decode()[-2000:]
            recorder.send_signal(signal.SIGKILL)  # mid-write: no chance to close the gzip stream
            recorder.wait(30)
        finally:
            if recorder.poll() is None:
                recorder.kill()
    (path,) = out.glob("*.jsonl.gz")
    from genesis.feeds.binance.venues import exchange_info_path

    assert sorted(out.iterdir()) == sorted([path, exchange_info_path(path)])  # the capture and its terms
    text = read_bytes(path)
    complete = text.count(b"\n")
    torn = not text.endswith(b"\n")
    assert complete > 5_000

    url = f"chdb://{tmp_path / 'store'}"
    report = ingest_binance_capture(out, store_url=url, progress=False)  # must not raise
    assert report.files[0].status == "ingested"
    assert report.messages == complete + torn
    with connect(url) as store:
        quarantined = store.query_rows("SELECT line_no, reason FROM quarantine ORDER BY line_no")
        stored_trades = store.query_rows("SELECT count() FROM trades")[0][0]
    if torn:
        assert quarantined == [(complete + 1, quarantined[0][1])]
        assert "truncated" in quarantined[0][1]
    else:  # killed exactly between two lines (rare): nothing to quarantine
        assert quarantined == []
    complete_lines = text.split(b"\n")[:complete]
    assert stored_trades == sum(b"@trade" in line[:60] for line in complete_lines)


# -- trading terms beside each capture file ------------------------------------------------------
def test_genesis_record_writes_the_terms_beside_every_capture_file(tmp_path):
    import argparse
    import json
    from dataclasses import replace

    from genesis.feeds import cli
    from genesis.feeds.binance.fake import Faults
    from genesis.feeds.binance.venues import exchange_info_path, read_exchange_info

    source = capture_path("usdm_btcusdt_20240808.jsonl.gz")
    out = tmp_path / "captures"
    # `genesis record binance ...` in this process: the command's own parser and handler (the
    # other sub-commands are not needed here). The first exchangeInfo request fails: a file opened
    # before the terms arrive gets them when they do; small files rotate, each is described.
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    with FakeBinance(source, speed=10.0, faults=Faults(exchange_info_errors=1)) as fake:
        args = parser.parse_args(["record", "binance", "--venue", "usdm", "--symbols", "BTCUSDT", "--out", str(out),
                                  "--ws-url", fake.ws_url, "--rest-url", fake.rest_url, "--seconds", "2",
                                  "--max-mb", "0.05"])
        assert args.handler(args) == 0
        served = fake.instruments["BTCUSDT"]
        assert fake.stats.exchange_info_failed == 1 and fake.stats.exchange_info == 1
    captures = sorted(out.glob("*.jsonl.gz"))
    assert len(captures) >= 2
    sidecars = sorted(out.glob("*.exchangeinfo.json"))
    assert sidecars == sorted(exchange_info_path(p) for p in captures)
    assert not list(out.glob(".*tmp"))  # written through a temporary file, renamed over
    first = json.loads(sidecars[0].read_bytes())
    assert first["venue"] == "usdm" and first["response"]["symbols"] == fake.exchange_info()["symbols"]
    for capture in captures:
        (spec,) = read_exchange_info(capture)
        assert spec == replace(served, source="exchangeInfo", valid_from=first["local_ts"])


def _terms(doc, tick=None):
    import json

    if tick is not None:
        doc["symbols"][0]["filters"][0]["tickSize"] = tick
    raw = json.dumps(doc).encode()
    from genesis.feeds.binance.venues import instruments_from_exchange_info

    return instruments_from_exchange_info(raw, "spot", 10**18), raw


def test_terms_that_arrive_late_or_change_describe_the_right_files(tmp_path, exchange_info_docs):
    import json

    from genesis.feeds.binance.venues import exchange_info_path, read_exchange_info

    recorder = CaptureRecorder(tmp_path, venue("spot"))
    trade = b'{"stream":"btcusdt@trade","data":{}}'
    t0 = 19_943 * NS_DAY + 1_000
    recorder.on_message("binance-spot:BTCUSDT", t0, trade, False)
    recorder.on_rejected(t0 + 1, b"{not json", "malformed")
    (first, rejected) = recorder.written
    assert not exchange_info_path(first).exists()  # no terms yet
    specs, raw = _terms(exchange_info_docs["spot"])
    recorder.on_instruments(specs, t0 + 10, raw)  # arrive late: the open file gets them
    assert read_exchange_info(first)[0].tick_size == 0.01
    assert json.loads(exchange_info_path(first).read_bytes())["local_ts"] == t0 + 10
    assert exchange_info_path(first).read_bytes().endswith(raw + b"}\n")  # the response verbatim
    assert not exchange_info_path(rejected).exists()  # rejected messages are no symbol's capture

    recorder.on_instruments(specs, t0 + 20, raw)  # the same terms again (a reconnect): file kept as described
    assert json.loads(exchange_info_path(first).read_bytes())["local_ts"] == t0 + 10
    recorder.on_message("binance-spot:BTCUSDT", t0 + 30, trade, False)
    assert len(recorder.written) == 2

    changed, raw2 = _terms(exchange_info_docs["spot"], tick="0.10000000")
    recorder.on_instruments(changed, t0 + 40, raw2)  # the venue changed the tick: a new file from here
    recorder.on_message("binance-spot:BTCUSDT", t0 + 50, trade, False)
    recorder.close()
    second = recorder.written[-1]
    assert second.name == "spot_btcusdt_20240808_001.jsonl.gz"
    assert read_exchange_info(first)[0].tick_size == 0.01 and read_exchange_info(second)[0].tick_size == 0.1
    assert len(read_bytes(first).splitlines()) == 2 and len(read_bytes(second).splitlines()) == 1
    with pytest.raises(ValueError, match="not JSON"):
        recorder.on_instruments(specs, t0 + 60, b"<html>")

    # Files closed by rotation before any terms came get them too.
    rotating = CaptureRecorder(tmp_path / "rotating", venue("spot"), max_bytes=1024, flush_seconds=0.0)
    for k in range(300):
        body = b'{"stream":"btcusdt@trade","data":{"t":%d}}' % (k * 7919)
        rotating.on_message("binance-spot:BTCUSDT", t0 + k, body, False)
    assert len(rotating.written) >= 3
    rotating.on_instruments(specs, t0 + 400, raw)
    rotating.close()
    assert all(read_exchange_info(p)[0].tick_size == 0.01 for p in rotating.written)
