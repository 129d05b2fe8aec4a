"""Effective settings, read from the environment.

``GENESIS_HOME``
    Where the embedded store, recorded captures and pipeline run outputs live.
    Default: ``~/.genesis``.
``GENESIS_CLICKHOUSE_URL``
    Where the data lives. Default: the embedded engine, ``chdb://<GENESIS_HOME>/clickhouse``.
    Any ``http(s)://user:password@host:8123/database`` ClickHouse server otherwise.
``GENESIS_STORE_LOCK_TIMEOUT``
    Seconds to wait for another process to release the embedded store (default 60).

Secrets (a server password) come only from the environment, never from the repository;
:meth:`Settings.describe` masks them.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

DEFAULT_HOME = Path("~/.genesis")
DEFAULT_LOCK_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class Settings:
    home: Path
    clickhouse_url: str
    lock_timeout_s: float

    @property
    def runs_dir(self) -> Path:
        return self.home / "runs"

    @property
    def captures_dir(self) -> Path:
        return self.home / "captures"

    @property
    def is_embedded(self) -> bool:
        return self.clickhouse_url.startswith("chdb://")

    def describe(self) -> dict[str, str]:
        """The settings as strings, with any password in the store URL masked."""
        return {
            "GENESIS_HOME": str(self.home),
            "GENESIS_CLICKHOUSE_URL": mask_password(self.clickhouse_url),
            "GENESIS_STORE_LOCK_TIMEOUT": f"{self.lock_timeout_s:g}",
            "store": "embedded (chDB)" if self.is_embedded else "ClickHouse server",
            "runs": str(self.runs_dir),
        }


def embedded_url(home: Path) -> str:
    return f"chdb://{(home / 'clickhouse').as_posix()}"


def mask_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def settings(environ: dict[str, str] | None = None) -> Settings:
    """Read the effective settings (from ``os.environ`` unless ``environ`` is given)."""
    env = os.environ if environ is None else environ
    home = Path(env.get("GENESIS_HOME") or DEFAULT_HOME).expanduser().resolve()
    url = env.get("GENESIS_CLICKHOUSE_URL") or embedded_url(home)
    if not url.startswith(("chdb://", "http://", "https://")):
        raise ValueError(
            f"GENESIS_CLICKHOUSE_URL={mask_password(url)!r}: expected chdb:///path for the embedded "
            "engine or http(s)://user:password@host:8123/database for a ClickHouse server"
        )
    raw_timeout = env.get("GENESIS_STORE_LOCK_TIMEOUT") or str(DEFAULT_LOCK_TIMEOUT_S)
    try:
        timeout = float(raw_timeout)
    except ValueError:
        raise ValueError(f"GENESIS_STORE_LOCK_TIMEOUT={raw_timeout!r}: expected a number of seconds") from None
    return Settings(home=home, clickhouse_url=url, lock_timeout_s=timeout)
