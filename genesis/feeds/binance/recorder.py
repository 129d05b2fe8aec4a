"""Record live Binance streams to capture files that the capture reader reads back.

One file per symbol and UTC day, ``<venue>_<symbol>_<YYYYMMDD>.jsonl.gz`` (the layout of
``../shared/data/binance``): every message exactly as received, ``<receive ns> <json>`` per
line, REST snapshots included on their own lines. A file is also closed when it reaches
``max_bytes``; the next one is named ``..._<YYYYMMDD>_001.jsonl.gz`` and so on.

A file opened by rotation (midnight or size) starts without a snapshot: the book goes on
from the previous file (ingest continues it from that file's checkpoint), so rotation costs
no resync. Only a real resync (a gap, a reconnect) writes a new snapshot line.

Crash safety: the gzip stream is flushed to a byte boundary (``Z_SYNC_FLUSH``) every
``flush_seconds``, so a killed recorder leaves a file whose every complete line up to the
last flush (and usually beyond) decompresses. The last line may be torn; ingest puts it in
quarantine and keeps everything before it.
"""

from __future__ import annotations

import asyncio
import gzip
import logging
import signal
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

from genesis.feeds.binance.live import BinanceClient, FeedListener, FeedMetrics
from genesis.feeds.binance.venues import Venue

log = logging.getLogger(__name__)

_NS_PER_DAY = 86_400 * 10**9


class _DayFile:
    """The open capture file of one symbol."""

    def __init__(self, path: Path, day: int):
        self.path = path
        self.day = day  # UTC days since the epoch of the lines it holds
        self._raw = open(path, "xb")
        self._gzip = gzip.GzipFile(fileobj=self._raw, mode="wb", compresslevel=6, mtime=0)

    def write(self, line: bytes) -> None:
        self._gzip.write(line)

    @property
    def size(self) -> int:
        return self._raw.tell()

    def flush(self) -> None:
        self._gzip.flush(zlib.Z_SYNC_FLUSH)
        self._raw.flush()

    def close(self) -> None:
        self._gzip.close()
        self._raw.close()


class CaptureRecorder(FeedListener):
    """A :class:`FeedListener` writing every message of a client to capture files.

    ``directory`` is created if needed. ``max_bytes``: compressed size at which a file is
    closed and a continuation opened. Messages the client rejected (malformed) go to
    ``<venue>_rejected_<YYYYMMDD>.jsonl.gz`` so nothing received is lost.
    """

    def __init__(self, directory: str | Path, venue: Venue, *, max_bytes: int = 256 << 20,
                 flush_seconds: float = 1.0):
        if max_bytes < 1024:
            raise ValueError(f"max_bytes={max_bytes}: a capture file needs at least 1 KiB")
        self.directory = Path(directory).expanduser()
        self.directory.mkdir(parents=True, exist_ok=True)
        self.venue = venue
        self.max_bytes = max_bytes
        self.flush_seconds = flush_seconds
        self.files: dict[str, _DayFile] = {}
        self.written: list[Path] = []  # every file opened, in order
        self.lines = 0
        self._last_flush = time.monotonic()

    def _path(self, name: str, day: int) -> Path:
        stamp = datetime.fromtimestamp(day * 86_400, timezone.utc).strftime("%Y%m%d")
        base = f"{self.venue.file_prefix}_{name.lower()}_{stamp}"
        path, part = self.directory / f"{base}.jsonl.gz", 0
        while path.exists():  # a restart the same day, or a size rotation: never overwrite
            part += 1
            path = self.directory / f"{base}_{part:03d}.jsonl.gz"
        return path

    def _write(self, name: str, local_ts: int, raw: bytes) -> None:
        day = local_ts // _NS_PER_DAY
        current = self.files.get(name)
        if current is None or current.day != day or current.size >= self.max_bytes:
            if current is not None:
                current.close()
            current = self.files[name] = _DayFile(self._path(name, day), day)
            self.written.append(current.path)
            log.info("recording %s", current.path)
        current.write(b"%d %s\n" % (local_ts, raw.rstrip(b"\r\n")))
        self.lines += 1
        now = time.monotonic()
        if now - self._last_flush >= self.flush_seconds:
            self.flush()
            self._last_flush = now

    def on_message(self, symbol: str, local_ts: int, raw: bytes, is_snapshot: bool) -> None:
        self._write(symbol.split(":", 1)[1], local_ts, raw)

    def on_rejected(self, local_ts: int, raw: bytes, reason: str) -> None:
        self._write("rejected", local_ts, raw.replace(b"\n", b" "))

    def flush(self) -> None:
        for file in self.files.values():
            file.flush()

    def close(self) -> None:
        for file in self.files.values():
            file.close()
        self.files.clear()


def record(
    venue: str | Venue,
    symbols: list[str],
    directory: str | Path,
    *,
    seconds: float | None = None,
    max_bytes: int = 256 << 20,
    ws_url: str | None = None,
    rest_url: str | None = None,
    status_every: float = 10.0,
    **client_options,
) -> tuple[FeedMetrics, list[Path]]:
    """Record ``symbols`` until ``seconds`` have passed, or SIGINT/SIGTERM; returns the
    client's metrics and the files written. Prints a status line every ``status_every`` s."""
    client = BinanceClient(venue, symbols, ws_url=ws_url, rest_url=rest_url, **client_options)
    recorder = CaptureRecorder(directory, client.venue, max_bytes=max_bytes)
    client.listener = recorder

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, client.stop)
        task = asyncio.create_task(client.run())
        began = time.monotonic()
        next_status = began + status_every
        try:
            while not task.done():
                deadline = next_status if seconds is None else min(next_status, began + seconds)
                await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
                if seconds is not None and time.monotonic() - began >= seconds:
                    client.stop()
                if time.monotonic() < next_status and not task.done():
                    continue
                next_status += status_every
                recorder.flush()
                m = client.metrics
                print(f"record: {m.messages:,} messages ({m.messages_per_second():,.0f}/s), lag p50 "
                      f"{m.lag_ms(0.5):.0f} ms p99 {m.lag_ms(0.99):.0f} ms, resyncs {m.resyncs}, "
                      f"reconnects {m.reconnects}, files {len(recorder.written)}", file=sys.stderr, flush=True)
            await task
        finally:
            recorder.close()

    asyncio.run(main())
    return client.metrics, recorder.written


__all__ = ["CaptureRecorder", "record"]
