"""The plugin's entry point: arguments, the command they name, and its exit code."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from urllib3.exceptions import HTTPError

from runbook_operator.cli.plugin import alerts, backup, canary, incident, status
from runbook_operator.cli.plugin.errors import (
    EXIT_ERROR,
    EXIT_FAILED,
    PluginError,
    RunFailed,
    unreachable,
)

COMMANDS = (status, alerts, backup, incident, canary)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl runbook",
        description="Inspect runbook-operator resources and work incidents.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for command in COMMANDS:
        command.add_parser(commands)
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        code: int = args.run(args)
    except RunFailed as exc:
        return _fail(exc, EXIT_FAILED)
    except PluginError as exc:
        return _fail(exc, EXIT_ERROR)
    except (HTTPError, OSError) as exc:  # no answer from the cluster at all
        return _fail(unreachable(exc), EXIT_ERROR)
    return code


def _fail(error: Exception, code: int) -> int:
    print(f"error: {error}", file=sys.stderr)
    return code
