"""Open the store for one unit of work: ``with connect() as store: ...``.

The URL decides where data lives (see :mod:`genesis.config`): ``chdb:///abs/path`` is the
embedded engine, ``http(s)://user:password@host:8123/database`` a ClickHouse server; the
code above this module is the same for both.

The embedded engine admits one *process* per store directory (ClickHouse holds an exclusive
``flock`` on ``<path>/status`` while open). So a :class:`Store` is a short lease: it closes its
client on exit, :func:`connect` waits for another process to let go and then fails with a
message that says what to do. Inside one process chDB hosts one engine, and any number of
clients may share it, so nested or concurrent ``connect()`` calls on the same path are fine.
"""

from __future__ import annotations

import fcntl
import os
import re
import threading
import time
import weakref
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import clickhouse_connect
import numpy as np
import pandas as pd
import pyarrow as pa
from clickhouse_connect.driver.binding import quote_identifier
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ProgrammingError

from genesis.config import mask_password, settings

_PLACEHOLDER = re.compile(r"\{(\w+):[^{}]+\}")
_UTC_NS = pa.timestamp("ns", tz="UTC")


class StoreLockedError(TimeoutError):
    """Another process kept the embedded store open for longer than the lock timeout."""


def connect(url: str | None = None, *, lock_timeout: float | None = None) -> Store:
    """Open the store at ``url`` (default ``GENESIS_CLICKHOUSE_URL``).

    ``lock_timeout`` (default ``GENESIS_STORE_LOCK_TIMEOUT``) is how many seconds to wait
    for another process to release the embedded store before raising
    :class:`StoreLockedError`. Use the result as a context manager so the lease is short.
    """
    if url is None or lock_timeout is None:
        defaults = settings()
        url = url or defaults.clickhouse_url
        lock_timeout = defaults.lock_timeout_s if lock_timeout is None else lock_timeout
    if url.startswith("chdb://"):
        path = _embedded_path(url)
        return Store(_embedded.open(path, lock_timeout), f"chdb://{path}", release=_embedded.release)
    if url.startswith(("http://", "https://")):
        return Store(_open_server(url), url, release=lambda client: client.close())
    raise ValueError(
        f"store URL {mask_password(url)!r}: expected chdb:///absolute/path or "
        "http(s)://user:password@host:8123/database"
    )


class Store:
    """A leased connection to the store; thin wrappers over the clickhouse-connect client.

    Every query method takes ``parameters`` for ``{name:Type}`` placeholders in the SQL,
    bound by ClickHouse itself: values are never formatted into the SQL text.
    """

    def __init__(self, client: Client, url: str, *, release) -> None:
        self._client: Client | None = client
        self._url = url
        self._time_columns_by_table: dict[str, set[str]] = {}
        # A Store dropped without close() still releases its lease when collected.
        self._release = weakref.finalize(self, release, client)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the client, so that other processes can open an embedded store. Idempotent."""
        self._client = None
        self._release()

    @property
    def url(self) -> str:
        """The store URL with any password masked, fit for logs and messages."""
        return mask_password(self._url)

    @property
    def is_embedded(self) -> bool:
        return self._url.startswith("chdb://")

    @property
    def client(self) -> Client:
        """The raw clickhouse-connect client, for what the wrappers below do not cover."""
        if self._client is None:
            raise RuntimeError(f"the store {self.url} is closed; open it again with genesis.store.connect()")
        return self._client

    def query_df(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pd.DataFrame:
        """Result as a pandas DataFrame (UTC date-times as naive ``datetime64``, full precision)."""
        return self.client.query_df(sql, parameters=server_side_parameters(sql, parameters))

    def query_arrow(self, sql: str, parameters: Mapping[str, Any] | None = None) -> pa.Table:
        """Result as an Arrow table: the zero-copy path into NumPy for large results."""
        return self.client.query_arrow(sql, parameters=server_side_parameters(sql, parameters))

    def query_rows(self, sql: str, parameters: Mapping[str, Any] | None = None) -> list[tuple]:
        """Result as a list of tuples of Python objects (date-times only to the microsecond)."""
        return self.client.query(sql, parameters=server_side_parameters(sql, parameters)).result_rows

    def command(self, sql: str, parameters: Mapping[str, Any] | None = None) -> Any:
        """Run a statement (DDL, ``INSERT ... SELECT``, ``DELETE``); returns its scalar result if any."""
        return self.client.command(sql, parameters=server_side_parameters(sql, parameters))

    def insert_arrow(self, table: str, data: pa.Table) -> None:
        """Insert an Arrow table whose column names are columns of ``table``."""
        self.client.insert_arrow(table, data)

    def insert_columns(
        self,
        table: str,
        columns: Mapping[str, Any],
        types: Mapping[str, pa.DataType] | None = None,
    ) -> int:
        """Insert column arrays into ``table``; the one way rows get written. Returns the row count.

        ``columns`` maps column names to 1-D arrays or lists of one length ``n``, to
        ``(n, L)`` float arrays (stored as ``Array(Float64)``, rows of ``L`` values, NaN kept),
        or to a scalar repeated on every row (a symbol, a source id). Time is int64
        nanoseconds since the epoch: an integer array bound for a ``DateTime``/``DateTime64``
        column of ``table`` becomes an Arrow UTC timestamp, because ClickHouse would read a
        plain integer as *seconds*. ``types`` gives the Arrow type of columns that need another
        one. Numeric arrays are passed to Arrow without copies or per-row Python work.
        """
        if not columns:
            raise ValueError(f"insert into {table}: no columns given")
        lengths = {name: len(value) for name, value in columns.items() if not _is_scalar(value)}
        if len(set(lengths.values())) > 1:
            raise ValueError(f"insert into {table}: columns differ in length: {lengths}")
        n_rows = next(iter(lengths.values()), 1)
        time_columns = self._time_columns(table)
        types = types or {}
        arrays = {}
        for name, value in columns.items():
            arrow_type = types[name] if name in types else _UTC_NS if name in time_columns else None
            arrays[name] = _to_arrow(value, n_rows, arrow_type)
        self.client.insert_arrow(table, pa.table(arrays))
        return n_rows

    def _time_columns(self, table: str) -> set[str]:
        """Names of ``table``'s date-time columns. The first lookup reads those of every table
        in the database at once, so an ingest writing eight tables asks once, not eight times."""
        if table not in self._time_columns_by_table:
            database, _, name = table.rpartition(".")
            rows = self.query_rows(
                "SELECT table, name, type FROM system.columns"
                " WHERE database = if({database:String} = '', currentDatabase(), {database:String})",
                {"database": database.strip("`")},
            )
            prefix = f"{database}." if database else ""
            for table_name, column, kind in rows:
                columns = self._time_columns_by_table.setdefault(prefix + table_name, set())
                if re.match(r"(Nullable\()?DateTime", kind):
                    columns.add(column)
            if table not in self._time_columns_by_table:
                raise ValueError(f"insert into {table}: no such table in {self.url}")
        return self._time_columns_by_table[table]


def server_side_parameters(sql: str, parameters: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Refuse parameters without a ``{name:Type}`` placeholder.

    clickhouse-connect silently falls back to formatting values into the SQL text
    (``%(name)s`` style) when a query has no server-side placeholders; this keeps every
    value on the server-side binding path.
    """
    if not parameters:
        return None
    missing = set(parameters) - set(_PLACEHOLDER.findall(sql))
    if missing:
        names = ", ".join(sorted(missing))
        raise ValueError(f"parameter(s) {names} have no {{name:Type}} placeholder in the query")
    return dict(parameters)


def _is_scalar(value: Any) -> bool:
    return isinstance(value, (str, bytes, int, float, bool, np.generic))


def _to_arrow(value: Any, n_rows: int, arrow_type: pa.DataType | None) -> pa.Array:
    if isinstance(value, str) and arrow_type is None:
        # One dictionary entry and an index per row: a 64-character source id repeated on
        # 445k rows would otherwise be most of the payload. ClickHouse reads it as is.
        return pa.DictionaryArray.from_arrays(pa.array(np.zeros(n_rows, np.int32)), pa.array([value]))
    if _is_scalar(value):
        return pa.repeat(pa.scalar(value, type=arrow_type), n_rows)
    if not isinstance(value, np.ndarray):
        return pa.array(value, type=arrow_type)
    if value.dtype.kind == "M":
        value = value.astype("datetime64[ns]").view(np.int64)
        arrow_type = arrow_type or _UTC_NS
    if value.ndim == 2:
        flat = pa.array(np.ascontiguousarray(value).reshape(-1))
        return pa.FixedSizeListArray.from_arrays(flat, value.shape[1])
    if value.ndim != 1:
        raise ValueError(f"expected a 1-D or (n, L) array, got shape {value.shape}")
    if arrow_type is not None and pa.types.is_timestamp(arrow_type) and value.dtype.kind in "iu":
        # Integer ticks since the epoch: the same 64 bits, no conversion and (for int64) no copy.
        return pa.array(value.astype(np.int64, copy=False)).view(arrow_type)
    return pa.array(value, type=arrow_type)


def _embedded_path(url: str) -> Path:
    path = Path(unquote(url.removeprefix("chdb://"))).expanduser()
    if not path.is_absolute():
        raise ValueError(f"store URL {url!r}: expected an absolute path, chdb:///absolute/path")
    return path.resolve()


def _open_server(url: str) -> Client:
    """Connect to a ClickHouse server and create the URL's database if it does not exist yet."""
    params = server_params(url)
    database = params.pop("database")
    client = clickhouse_connect.get_client(**params)
    try:
        client.command(f"CREATE DATABASE IF NOT EXISTS {quote_identifier(database)}")
    except Exception:
        client.close()
        raise
    client.database = database
    return client


def server_params(url: str) -> dict[str, Any]:
    """clickhouse-connect arguments for ``http(s)://user:password@host:port/database``."""
    parts = urlsplit(url)
    secure = parts.scheme == "https"
    return {
        "host": parts.hostname or "localhost",
        "port": parts.port or (8443 if secure else 8123),
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "secure": secure,
        "database": unquote(parts.path.strip("/")) or "default",
    }


class _EmbeddedEngine:
    """This process's use of chDB's single in-process engine.

    chDB hosts one engine per process and lets any number of clients share it, but refuses
    a second store path while a client is open. Counting our open clients also tells when
    the ``status`` lock we may see is our own, so we never wait on ourselves.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()  # serializes opening and closing clients in this process
        self._path: Path | None = None
        self._open_clients = 0

    def open(self, path: Path, lock_timeout: float) -> Client:
        deadline = time.monotonic() + lock_timeout
        if not self._lock.acquire(timeout=max(lock_timeout, 0)):
            raise _locked_error(path, lock_timeout)
        try:
            if self._open_clients and self._path != path:
                raise RuntimeError(
                    f"cannot open the embedded store at {path}: this process has {self._path} open, and "
                    "chDB hosts one store directory per process; close that store first"
                )
            client = self._client(path) if self._open_clients else self._wait_and_open(path, deadline, lock_timeout)
            self._path = path
            self._open_clients += 1
            return client
        finally:
            self._lock.release()

    def release(self, client: Client) -> None:
        with self._lock:
            try:
                client.close()
            finally:
                self._open_clients -= 1

    def _wait_and_open(self, path: Path, deadline: float, lock_timeout: float) -> Client:
        """Open ``path`` once no other process holds it, polling with backoff until ``deadline``."""
        path.mkdir(parents=True, exist_ok=True)
        delay, retried = 0.05, False
        while True:
            if not _held_by_another_process(path):
                try:
                    return self._client(path)
                except ProgrammingError:
                    # Lost the lock to another process (wait), or it left just now (retry once),
                    # or the engine cannot start here at all (the retry fails too: raise that).
                    if not _held_by_another_process(path):
                        if retried:
                            raise
                        retried = True
                        continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise _locked_error(path, lock_timeout)
            time.sleep(min(delay, remaining))
            delay = min(delay * 2, 0.5)

    @staticmethod
    def _client(path: Path) -> Client:
        return clickhouse_connect.get_client(interface="chdb", path=str(path))


def _held_by_another_process(path: Path) -> bool:
    """Whether an engine holds ``<path>/status`` locked (ClickHouse's per-directory ``flock``).

    Probing the lock, rather than letting chDB fail, keeps the wait quiet: every failed
    chDB open prints "Cannot lock file" to stderr.
    """
    try:
        fd = os.open(path / "status", os.O_RDONLY)
    except FileNotFoundError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # also drops the probe's own lock
    return False


def _locked_error(path: Path, lock_timeout: float) -> StoreLockedError:
    return StoreLockedError(
        f"the embedded store at {path} is in use by another process (waited {lock_timeout:g} s). "
        "The embedded engine admits one process at a time: wait, or close the other notebook or "
        "process using it; raise GENESIS_STORE_LOCK_TIMEOUT to wait longer; or, for concurrent "
        "access, set GENESIS_CLICKHOUSE_URL=http://user:password@host:8123/genesis to use a ClickHouse server."
    )


_embedded = _EmbeddedEngine()
