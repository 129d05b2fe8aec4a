"""The ``genesis`` command line.

Each stage registers its own sub-commands through a ``register(subparsers)`` function
listed in ``_COMMAND_MODULES``; this module only wires them together.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys

from genesis import __version__
from genesis.config import settings

# Modules exposing ``register(subparsers)``; each adds its own sub-commands.
_COMMAND_MODULES = (
    "genesis.store.cli",
    "genesis.feeds.cli",
    "genesis.pipelines.cli",
    "genesis.features.cli",
    "genesis.surveillance.cli",
    "genesis.models.cli",
    "genesis.backtest.cli",
    "genesis.live.cli",
    "genesis.analytics.cli",
)


def _cmd_config(args: argparse.Namespace) -> int:
    described = settings().describe()
    if args.format == "json":
        print(json.dumps(described, indent=2))
    else:
        width = max(map(len, described))
        for key, value in described.items():
            print(f"{key:<{width}}  {value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="genesis", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"genesis {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    config = sub.add_parser("config", help="print the effective settings")
    config.add_argument("--format", choices=("table", "json"), default="table")
    config.set_defaults(handler=_cmd_config)

    for module_name in _COMMAND_MODULES:
        importlib.import_module(module_name).register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.handler(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`genesis features list | head`): not an error of ours.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ValueError, FileNotFoundError, TimeoutError) as exc:
        # Expected, user-facing failures: one clear line, no traceback.
        print(f"genesis: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
