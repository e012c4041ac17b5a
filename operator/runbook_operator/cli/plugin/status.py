"""`status`: the Ready condition of every runbook resource in one table.

`kubectl get runbook` lists the kinds too, but one table per kind and without the Ready reason
and message; this answers "is anything unhealthy, and why?" at once, and with
`--fail-unready` answers it for scripts through the exit code.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import GROUP
from runbook_operator.api.registry import KINDS
from runbook_operator.cli.plugin import connection
from runbook_operator.cli.plugin.errors import EXIT_OK, EXIT_UNREADY, api_error
from runbook_operator.cli.plugin.table import (
    age_of,
    format_columns,
    one_line,
    terminal_width,
)

HEADERS = ("NAMESPACE", "KIND", "NAME", "READY", "REASON", "AGE", "MESSAGE")


class Row(NamedTuple):
    """One table line; field order is the column order and the sort key's prefix."""

    namespace: str
    kind: str
    name: str
    ready: str
    reason: str
    age: str
    message: str


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition `type_` of `obj`, or `{}` when the operator has not reported one yet."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    return condition(obj, "Ready")


def to_row(obj: dict[str, Any], now: datetime) -> Row:
    metadata = obj.get("metadata") or {}
    ready = ready_condition(obj)
    return Row(
        namespace=metadata.get("namespace") or "-",
        kind=obj.get("kind") or "-",
        name=metadata.get("name") or "-",
        ready=ready.get("status") or "Unknown",
        reason=ready.get("reason") or "-",
        age=age_of(metadata.get("creationTimestamp"), now),
        message=one_line(str(ready.get("message") or "")) or "-",
    )


def build_rows(objects: Iterable[dict[str, Any]], now: datetime) -> list[Row]:
    """Rows sorted by namespace, kind and name, so output is stable across runs."""
    rows = (to_row(obj, now) for obj in objects)
    return sorted(rows, key=lambda r: (r.namespace, r.kind, r.name))


def format_table(rows: Sequence[Row], width: int | None = None) -> str:
    """The status table as text; with `width`, MESSAGE is cut to fit the terminal."""
    return format_columns(HEADERS, rows, width)


def any_unready(rows: Iterable[Row]) -> bool:
    return any(row.ready != "True" for row in rows)


def collect(api: connection.CustomObjects, namespace: str | None) -> list[dict[str, Any]]:
    """Objects of every registered kind; kinds whose CRD is not installed are skipped."""
    objects: list[dict[str, Any]] = []
    for model in KINDS:
        kind, plural = model.info.kind, model.info.plural
        try:
            objects.extend(connection.list_kind(api, kind, plural, namespace))
        except ApiException as exc:
            if exc.status != 404:
                raise api_error(exc, verb="list", resource=f"{plural}.{GROUP}", what=kind,
                                namespace=namespace) from exc
            print(f"note: {plural}.{GROUP} is not installed, skipping {kind}", file=sys.stderr)
    return objects


def run(args: argparse.Namespace) -> int:
    apis, namespace = connection.connect(args)
    rows = build_rows(collect(apis.custom, namespace), datetime.now(UTC))
    if not rows:
        where = "any namespace" if namespace is None else f"namespace {namespace!r}"
        print(f"No runbook resources found in {where}.", file=sys.stderr)
    else:
        sys.stdout.write(format_table(rows, terminal_width()))
    return EXIT_UNREADY if args.fail_unready and any_unready(rows) else EXIT_OK


def add_parser(commands: Any) -> None:
    status = commands.add_parser(
        "status",
        help="show the Ready condition of every runbook resource",
        description="Show the Ready condition of every runbook resource in one table.",
    )
    connection.add_scope_flags(status, "resources")
    connection.add_connection_flags(status)
    status.add_argument(
        "--fail-unready",
        action="store_true",
        help="exit with status 1 if any resource is not Ready",
    )
    status.set_defaults(run=run)
