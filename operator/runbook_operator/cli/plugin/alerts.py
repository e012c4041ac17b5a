"""`alerts`: every AlertRule's state, value and since when, the worst first."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from runbook_operator.api.alertrule import AlertRule
from runbook_operator.api.common import GROUP
from runbook_operator.cli.plugin import connection
from runbook_operator.cli.plugin.errors import EXIT_OK, REQUEST_ERRORS, api_error
from runbook_operator.cli.plugin.status import ready_condition
from runbook_operator.cli.plugin.table import (
    age_of,
    format_columns,
    human_value,
    terminal_width,
)

HEADERS = ("NAMESPACE", "NAME", "STATE", "VALUE", "SINCE", "SEVERITY", "FIRING", "READY")
ORDER = {"Firing": 0, "Recovering": 1, "Error": 2, "Pending": 3, "NoData": 4, "Normal": 5}
KIND = AlertRule.info.kind
PLURAL = AlertRule.info.plural


def alert_rows(rules: Iterable[dict[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    """One row per rule (columns as HEADERS), the worst state first."""
    rows = []
    for rule in rules:
        meta, spec, status = rule["metadata"], rule.get("spec") or {}, rule.get("status") or {}
        state = status.get("state") or "Unknown"
        firing = sum(1 for i in status.get("instances") or []
                     if i.get("state") in ("Firing", "Recovering"))
        rows.append((
            meta.get("namespace", ""), meta["name"], state, human_value(status.get("lastValue")),
            age_of(status.get("activeSince"), now) if status.get("activeSince") else "-",
            spec.get("severity", "medium"), str(firing),
            ready_condition(rule).get("status", "Unknown"),
        ))
    return sorted(rows, key=lambda r: (ORDER.get(r[2], 9), r[0], r[1]))


def run(args: argparse.Namespace) -> int:
    apis, namespace = connection.connect(args)
    try:
        rules = connection.list_kind(apis.custom, KIND, PLURAL, namespace)
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="list", resource=f"{PLURAL}.{GROUP}", what="AlertRules",
                        namespace=namespace) from exc
    rows = alert_rows(rules, datetime.now(UTC))
    if not rows:
        print("No AlertRules found.", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(format_columns(HEADERS, rows, terminal_width()))
    return EXIT_OK


def add_parser(commands: Any) -> None:
    alerts = commands.add_parser(
        "alerts",
        help="show AlertRules with their state, value and since when",
        description="Show every AlertRule's state, value and since when, firing first.",
    )
    connection.add_scope_flags(alerts, "rules")
    connection.add_connection_flags(alerts)
    alerts.set_defaults(run=run)
