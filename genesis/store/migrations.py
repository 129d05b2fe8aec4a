"""Schema migrations: the ``clickhouse/NNN_name.sql`` files, applied once each, in order.

Each applied file is recorded in ``schema_migrations`` with the sha256 of its bytes, so that
re-running :func:`migrate` is a no-op and an applied file that was edited afterwards is
caught instead of silently diverging from the store. ClickHouse DDL is not transactional:
a file is recorded only after all its statements succeeded, so write statements that can
run again (``CREATE TABLE IF NOT EXISTS``).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from genesis.store.client import Store

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "clickhouse"

_FILE_NAME = re.compile(r"(\d+)_(\w+)\.sql")

_CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations
(
    version    UInt32,
    name       String,
    checksum   String,                -- sha256 of the file's bytes, hex
    applied_at DateTime64(3, 'UTC')
)
ENGINE = MergeTree
ORDER BY version
"""


class MigrationError(ValueError):
    """The migration files and the store disagree, or a migration statement failed."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    path: Path
    checksum: str

    @property
    def statements(self) -> list[str]:
        return split_statements(self.path.read_text(encoding="utf-8"))


class MigrationStatus(NamedTuple):
    version: int
    name: str
    applied: bool
    applied_at: datetime | None


def discover(directory: Path | None = None) -> list[Migration]:
    """The migration files in ``directory`` (default: the repository's ``clickhouse/``), by version."""
    directory = directory or MIGRATIONS_DIR
    if not directory.is_dir():
        raise FileNotFoundError(f"migrations directory {directory} not found (expected NNN_name.sql files there)")
    migrations: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        match = _FILE_NAME.fullmatch(path.name)
        if not match:
            raise MigrationError(f"{path}: a migration file must be named NNN_name.sql")
        version = int(match[1])
        if version in migrations:
            raise MigrationError(f"{path} and {migrations[version].path} share version {version}")
        checksum = hashlib.sha256(path.read_bytes()).hexdigest()
        migrations[version] = Migration(version, match[2], path, checksum)
    return [migrations[version] for version in sorted(migrations)]


def migrate(store: Store, directory: Path | None = None) -> list[Migration]:
    """Apply the migrations not applied yet, in order; returns those applied (empty if up to date)."""
    migrations = discover(directory)
    store.command(_CREATE_LEDGER)
    applied = _applied(store)
    _check_unchanged(migrations, applied)
    pending = [m for m in migrations if m.version not in applied]
    for migration in pending:
        for number, statement in enumerate(migration.statements, start=1):
            try:
                store.command(statement)
            except Exception as exc:
                raise MigrationError(f"{migration.path}: statement {number} failed: {exc}") from exc
        store.command(
            "INSERT INTO schema_migrations (version, name, checksum, applied_at)"
            " SELECT {version:UInt32}, {name:String}, {checksum:String}, now64(3)",
            {"version": migration.version, "name": migration.name, "checksum": migration.checksum},
        )
    return pending


def status(store: Store, directory: Path | None = None) -> list[MigrationStatus]:
    """Every migration file with whether (and when) it was applied to ``store``; changes nothing."""
    migrations = discover(directory)
    applied = _applied(store) if store.command("EXISTS TABLE schema_migrations") else {}
    _check_unchanged(migrations, applied)
    return [
        MigrationStatus(m.version, m.name, m.version in applied, applied.get(m.version, (None, None))[1])
        for m in migrations
    ]


def _applied(store: Store) -> dict[int, tuple[str, datetime]]:
    """``version -> (checksum, applied_at)`` of the migrations recorded in the store."""
    rows = store.query_rows("SELECT version, checksum, applied_at FROM schema_migrations ORDER BY version")
    return {version: (checksum, applied_at) for version, checksum, applied_at in rows}


def _check_unchanged(migrations: list[Migration], applied: dict[int, tuple[str, datetime]]) -> None:
    for migration in migrations:
        recorded = applied.get(migration.version)
        if recorded and recorded[0] != migration.checksum:
            raise MigrationError(
                f"{migration.path} changed after it was applied (sha256 {migration.checksum[:12]}, "
                f"applied as {recorded[0][:12]}); revert the edit and add a new NNN_name.sql migration instead"
            )


def split_statements(sql: str) -> list[str]:
    """Split a SQL script on the ``;`` that end statements.

    Semicolons inside ``--`` and ``/* */`` comments, quoted strings and quoted identifiers
    do not count; pieces holding nothing but comments and whitespace are dropped.
    """
    statements, start, has_code, i = [], 0, False, 0
    while i < len(sql):
        char, pair = sql[i], sql[i : i + 2]
        if pair == "--":
            i = _end_of(sql, "\n", i + 2)
            continue
        if pair == "/*":
            i = _end_of(sql, "*/", i + 2)
            continue
        if char in "'\"`":
            i = _end_of_quoted(sql, i)
            has_code = True
            continue
        if char == ";":
            if has_code:
                statements.append(sql[start:i].strip())
            start, has_code = i + 1, False
        elif not char.isspace():
            has_code = True
        i += 1
    if has_code:
        statements.append(sql[start:].strip())
    return statements


def _end_of(sql: str, terminator: str, start: int) -> int:
    end = sql.find(terminator, start)
    return len(sql) if end < 0 else end + len(terminator)


def _end_of_quoted(sql: str, start: int) -> int:
    """Index just past the quoted token opening at ``start`` (``\\x`` escapes and doubled quotes)."""
    quote, i = sql[start], start + 1
    while i < len(sql):
        if sql[i] == "\\":
            i += 2
        elif sql[i] == quote:
            if sql[i + 1 : i + 2] != quote:
                return i + 1
            i += 2
        else:
            i += 1
    raise MigrationError(f"unterminated {quote} quote in SQL starting at: {sql[start:start + 40]!r}")
