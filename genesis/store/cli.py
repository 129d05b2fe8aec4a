"""``genesis db migrate``, ``genesis db status`` and ``genesis sql`` sub-commands.

The store and its dependencies are imported inside the handlers, so that building the
parser (``genesis --help``, ``genesis config``) stays fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any

# numpy's unit for the ISO text of a DateTime64(scale): the finest the column can hold.
_ISO_UNITS = ("s", "ms", "ms", "ms", "us", "us", "us", "ns", "ns", "ns")


def register(sub: argparse._SubParsersAction) -> None:
    store_help = "store URL (default: GENESIS_CLICKHOUSE_URL)"

    db = sub.add_parser("db", help="store schema: apply and list migrations")
    db_sub = db.add_subparsers(dest="action", required=True, metavar="ACTION")
    migrate = db_sub.add_parser("migrate", help="apply the clickhouse/NNN_name.sql migrations not applied yet")
    migrate.add_argument("--store", default=None, help=store_help)
    migrate.set_defaults(handler=_reporting_store_errors(_cmd_migrate))
    status = db_sub.add_parser("status", help="list the migrations and whether each is applied")
    status.add_argument("--store", default=None, help=store_help)
    status.set_defaults(handler=_reporting_store_errors(_cmd_status))

    sql = sub.add_parser(
        "sql",
        help="run a SQL query against the store and print the result",
        description=(
            "Run one SQL query. Values go through ClickHouse's parameter binding, never into the "
            "SQL text: write {name:Type} in the query and pass --param name=value, e.g. "
            "genesis sql \"SELECT count() FROM trades WHERE symbol = {sym:String}\" --param sym=binance-usdm:BTCUSDT"
        ),
    )
    sql.add_argument("query")
    sql.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sql.add_argument(
        "--param", action="append", default=[], metavar="NAME=VALUE",
        help="value for a {NAME:Type} placeholder in the query (repeatable)",
    )
    sql.add_argument("--store", default=None, help=store_help)
    sql.set_defaults(handler=_reporting_store_errors(_cmd_sql))


def _reporting_store_errors(handler: Callable[[argparse.Namespace], int]) -> Callable[[argparse.Namespace], int]:
    """Turn errors reported by ClickHouse into ValueError, which the CLI prints as one line."""

    def run(args: argparse.Namespace) -> int:
        from clickhouse_connect.driver.exceptions import Error as ClickHouseError

        try:
            return handler(args)
        except ClickHouseError as exc:
            raise ValueError(" ".join(str(exc).split())) from exc

    return run


def _cmd_migrate(args: argparse.Namespace) -> int:
    from genesis.store import connect, migrations

    with connect(args.store) as store:
        applied = migrations.migrate(store)
        total = len(migrations.discover())
        url = store.url
    for migration in applied:
        print(f"applied {migration.version:03d}_{migration.name}")
    print(f"{url}: schema up to date ({len(applied)} applied now, {total} in all)")
    return 0


def _cmd_status(args: argparse.Namespace) -> int:
    from genesis.store import connect, migrations

    with connect(args.store) as store:
        rows = migrations.status(store)
    _print_table(
        ["version", "name", "status", "applied_at"],
        [
            (f"{row.version:03d}", row.name, "applied" if row.applied else "pending",
             f"{row.applied_at:%Y-%m-%d %H:%M:%S} UTC" if row.applied_at else "")
            for row in rows
        ],
    )
    return 0


def _cmd_sql(args: argparse.Namespace) -> int:
    from genesis.store.client import connect, server_side_parameters

    parameters = dict(_parse_param(text) for text in args.param)
    with connect(args.store) as store:
        # Date-times arrive as integer ticks, so that nanoseconds survive into the output.
        result = store.client.query(
            args.query,
            parameters=server_side_parameters(args.query, parameters),
            query_formats={"DateTime*": "int"},
        )
    names = list(result.column_names)
    columns = [_python_values(values, ch_type) for values, ch_type in zip(result.result_columns, result.column_types)]
    rows = list(zip(*columns))
    if args.format == "json":
        # An array of objects, one per line: valid JSON that stays readable and greppable.
        records = [json.dumps(dict(zip(names, map(_json_safe, row))), default=str, allow_nan=False) for row in rows]
        print("[\n" + ",\n".join(records) + "\n]" if records else "[]")
    elif args.format == "csv":
        writer = csv.writer(sys.stdout, lineterminator="\n")
        if names:
            writer.writerow(names)
        writer.writerows([["" if value is None else _text(value) for value in row] for row in rows])
    else:
        _print_table(names, rows)
        print(f"({len(rows)} row{'' if len(rows) == 1 else 's'})")
    return 0


def _parse_param(text: str) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise ValueError(f"--param {text!r}: expected NAME=VALUE")
    return name, value


def _python_values(values: Sequence[Any], ch_type: Any) -> list[Any]:
    """One result column as Python values, date-times as ISO 8601 UTC text at the column's precision."""
    if ch_type.base_type in ("DateTime", "DateTime64"):
        import numpy as np

        scale = getattr(ch_type, "scale", 0)
        ticks = np.array([0 if tick is None else tick for tick in values], dtype=np.int64)
        text = np.datetime_as_string(
            (ticks * 10 ** (9 - scale)).astype("datetime64[ns]"), unit=_ISO_UNITS[scale], timezone="UTC"
        )
        return [None if tick is None else iso for tick, iso in zip(values, text.tolist())]
    if ch_type.base_type == "Array":
        return [None if value is None else _python_values(value, ch_type.element_type) for value in values]
    return list(values)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null: JSON has no literal for them."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    return value


def _text(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, default=str)
    return str(value)


def _print_table(names: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """Aligned columns for a terminal: numbers to the right, everything else to the left."""
    cells = [[_text(value) for value in row] for row in rows]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, name in enumerate(names)]
    numeric = [
        bool(rows) and all(isinstance(row[i], (int, float)) and not isinstance(row[i], bool) for row in rows)
        for i in range(len(names))
    ]

    def line(values: Sequence[str]) -> str:
        return "  ".join(
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric)
        ).rstrip()

    if not names:  # chDB sends no header block for an empty result
        return
    print(line(names))
    print(line(["-" * width for width in widths]))
    for row in cells:
        print(line(row))
