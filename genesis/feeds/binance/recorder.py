"""Record live Binance streams to capture files that the capture reader reads back.

One file per symbol and UTC day, ``<venue>_<symbol>_<YYYYMMDD>.jsonl.gz`` (the layout of
``../shared/data/binance``): every message exactly as received, ``<receive ns> <json>`` per
line, REST snapshots included on their own lines. A file is also closed when it reaches
``max_bytes``; the next one is named ``..._<YYYYMMDD>_001.jsonl.gz`` and so on.

A file opened by rotation (midnight or size) starts without a snapshot: the book goes on
from the previous file (ingest continues it from that file's checkpoint), so rotation costs
no resync. Only a real resync (a gap, a reconnect) writes a new snapshot line.

Trading terms: each capture file gets a sidecar, ``<name>.exchangeinfo.json`` beside it
(:func:`~genesis.feeds.binance.venues.exchange_info_path`), holding the venue's ``exchangeInfo``
response exactly as received, its receive time and the venue key; ingest records its specs.
A file opened before the terms arrive gets its sidecar when they do. The terms are fetched
again on every new connection: when the venue changed a symbol's terms meanwhile, that
symbol's file is closed and the next one (a continuation, as on rotation) gets the new terms,
so one file is always described by one set of terms. Sidecars are written atomically (a
temporary file renamed over). The file of rejected messages gets none.

Crash safety: the gzip stream is flushed to a byte boundary (``Z_SYNC_FLUSH``) every
``flush_seconds``, so a killed recorder leaves a file whose every complete line up to the
last flush (and usually beyond) decompresses. The last line may be torn; ingest puts it in
quarantine and keeps everything before it.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gzip
import json
import logging
import os
import signal
import sys
import time
import zlib
from datetime import datetime, timezone
from pathlib import Path

from genesis.feeds.binance.live import BinanceClient, FeedListener, FeedMetrics
from genesis.feeds.binance.venues import Venue, exchange_info_path

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
        self.sidecars: list[Path] = []  # every exchangeInfo sidecar written, in order
        self.lines = 0
        # Per symbol (upper case): the newest terms received, as (receive ns, response, spec).
        self._terms: dict[str, tuple[int, bytes, object]] = {}
        self._file_symbol: dict[Path, str] = {}  # capture file -> its symbol (upper case)
        self._file_terms: dict[Path, object] = {}  # capture file -> the spec its sidecar holds
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
            if name != "rejected":
                self._file_symbol[current.path] = name.upper()
                self._describe(current.path)
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

    def on_instruments(self, specs: list, local_ts: int, raw: bytes) -> None:
        """Describe every capture file of the symbols in ``specs`` (opened or yet to open) by
        ``raw``, the exchangeInfo response received at ``local_ts``; a symbol whose terms changed
        since its open file was described continues in a new file."""
        try:
            json.loads(raw)
        except ValueError as exc:
            raise ValueError(f"exchangeInfo of {self.venue.key} received at {local_ts} is not JSON ({exc}); "
                             "no sidecar written") from None
        for spec in specs:
            symbol = spec.symbol.split(":", 1)[-1].upper()
            self._terms[symbol] = (int(local_ts), bytes(raw), spec)
            file = self.files.get(symbol)
            held = self._file_terms.get(file.path) if file is not None else None
            if held is not None and not _same_terms(held, spec):
                log.info("%s: the venue changed %s's terms; continuing in a new file", file.path, symbol)
                file.close()
                del self.files[symbol]
        for path, symbol in self._file_symbol.items():
            if path not in self._file_terms:
                self._describe(path)

    def _describe(self, path: Path) -> None:
        """Write the sidecar of capture ``path`` from its symbol's terms, if any have arrived."""
        terms = self._terms.get(self._file_symbol[path])
        if terms is None:
            return
        local_ts, raw, spec = terms
        sidecar = exchange_info_path(path)
        head = json.dumps({"local_ts": local_ts, "venue": self.venue.key})[:-1].encode()
        tmp = sidecar.with_name(f".{sidecar.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as out:  # the response verbatim, inside the record
            out.write(head + b', "response": ' + raw.strip() + b"}\n")
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, sidecar)
        self._file_terms[path] = spec
        self.sidecars.append(sidecar)
        log.info("terms of %s in %s", path.name, sidecar)

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
                      f"reconnects {m.reconnects}, files {len(recorder.written)}, terms {len(recorder.sidecars)} "
                      f"(exchangeInfo errors {m.exchange_info_errors})", file=sys.stderr, flush=True)
            await task
        finally:
            recorder.close()

    asyncio.run(main())
    return client.metrics, recorder.written


def _same_terms(a, b) -> bool:
    """Whether two specs of a symbol state the same terms (whenever they were received)."""
    return dataclasses.replace(a, valid_from=0, source=b.source) == dataclasses.replace(b, valid_from=0)


__all__ = ["CaptureRecorder", "record"]
