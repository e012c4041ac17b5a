"""`kubectl-runbook`: the kubectl plugin that shows the health of every runbook resource at once.

`kubectl get runbook` lists the kinds too, but one table per kind and without the Ready reason and
message; this plugin answers "is anything unhealthy, and why?" in one table, and with
`--fail-unready` it answers it for scripts through the exit code.

Exit codes: 0 success, 1 some resource is not Ready (only with `--fail-unready`), 2 usage error or
the cluster could not be read.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.api.registry import KINDS

EXIT_OK = 0
EXIT_UNREADY = 1
EXIT_ERROR = 2

HEADERS = ("NAMESPACE", "KIND", "NAME", "READY", "REASON", "AGE", "MESSAGE")
COLUMN_GAP = "   "  # kubectl's spacing between columns
MIN_MESSAGE_WIDTH = 20  # below this a truncated message says nothing; let the line wrap instead
ELLIPSIS = "..."
PAGE_SIZE = 500
REQUEST_TIMEOUT_SECONDS = 30


class Row(NamedTuple):
    """One table line; field order is the column order and the sort key's prefix."""

    namespace: str
    kind: str
    name: str
    ready: str
    reason: str
    age: str
    message: str


class PluginError(Exception):
    """A failure to report as one line on stderr instead of a traceback."""


# --- pure part: no I/O, unit tested -------------------------------------------------------------


def format_age(seconds: float) -> str:
    """Age in kubectl's short form (`45s`, `3m`, `2h`, `5d`, `2y`).

    Slightly negative ages come from clock skew between the client and the API server and are
    shown as `0s`, as kubectl does.
    """
    if seconds < -1:
        return "<invalid>"
    whole = max(int(seconds), 0)
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m"
    if whole < 86400:
        return f"{whole // 3600}h"
    if whole < 365 * 86400:
        return f"{whole // 86400}d"
    return f"{whole // (365 * 86400)}y"


def age_of(created: str | None, now: datetime) -> str:
    """Age of an RFC 3339 `creationTimestamp` at `now` (timezone-aware)."""
    if not created:
        return "<unknown>"
    return format_age((now - datetime.fromisoformat(created)).total_seconds())


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    """The `Ready` condition of `obj`, or `{}` when the operator has not reported one yet."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == "Ready"), {})


def to_row(obj: dict[str, Any], now: datetime) -> Row:
    metadata = obj.get("metadata") or {}
    ready = ready_condition(obj)
    # Messages may span lines; a table cell must not.
    message = " ".join(str(ready.get("message") or "").split())
    return Row(
        namespace=metadata.get("namespace") or "-",
        kind=obj.get("kind") or "-",
        name=metadata.get("name") or "-",
        ready=ready.get("status") or "Unknown",
        reason=ready.get("reason") or "-",
        age=age_of(metadata.get("creationTimestamp"), now),
        message=message or "-",
    )


def build_rows(objects: Iterable[dict[str, Any]], now: datetime) -> list[Row]:
    """Rows sorted by namespace, kind and name, so output is stable across runs."""
    rows = (to_row(obj, now) for obj in objects)
    return sorted(rows, key=lambda r: (r.namespace, r.kind, r.name))


def truncate(text: str, limit: int) -> str:
    if len(text) <= limit:
        return text
    return text[: max(limit - len(ELLIPSIS), 0)] + ELLIPSIS


def format_table(rows: Sequence[Row], width: int | None = None) -> str:
    """The table as text; with `width`, MESSAGE is cut so each line fits a terminal that wide."""
    fixed = HEADERS[:-1]
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(fixed)]
    if width is not None:
        room = width - sum(widths) - len(COLUMN_GAP) * len(widths)
        limit = max(room, MIN_MESSAGE_WIDTH)
        rows = [row._replace(message=truncate(row.message, limit)) for row in rows]
    lines = []
    for cells in [HEADERS, *rows]:
        padded = [cell.ljust(w) for cell, w in zip(cells, widths)]
        lines.append(COLUMN_GAP.join([*padded, cells[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def any_unready(rows: Iterable[Row]) -> bool:
    return any(row.ready != "True" for row in rows)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl runbook",
        description="Inspect runbook-operator resources.",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    status = commands.add_parser(
        "status",
        help="show the Ready condition of every runbook resource",
        description="Show the Ready condition of every runbook resource in one table.",
    )
    scope = status.add_mutually_exclusive_group()
    scope.add_argument(
        "-n", "--namespace", help="namespace to list (default: the current context's namespace)"
    )
    scope.add_argument(
        "-A", "--all-namespaces", action="store_true", help="list resources in every namespace"
    )
    status.add_argument(
        "--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    status.add_argument("--context", help="kubeconfig context to use (default: the current one)")
    status.add_argument(
        "--fail-unready",
        action="store_true",
        help="exit with status 1 if any resource is not Ready",
    )
    return parser


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --- I/O part ------------------------------------------------------------------------------------


class CustomObjects(Protocol):
    """The two `CustomObjectsApi` calls the plugin makes (a fake stands in for it in tests)."""

    def list_cluster_custom_object(
        self, group: str, version: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]: ...

    def list_namespaced_custom_object(
        self, group: str, version: str, namespace: str, plural: str, **kwargs: Any
    ) -> dict[str, Any]: ...


def kubeconfig_path(args: argparse.Namespace) -> str | None:
    """`--kubeconfig`, else $KUBECONFIG read now (the client reads it once, at import)."""
    return args.kubeconfig or os.environ.get("KUBECONFIG") or None


def context_namespace(config_file: str | None, context: str | None) -> str:
    """The namespace of the chosen kubeconfig context, `default` when it names none (as kubectl)."""
    contexts, current = config.list_kube_config_contexts(config_file=config_file)
    chosen = current if context is None else next(c for c in contexts if c["name"] == context)
    return chosen.get("context", {}).get("namespace") or "default"


def list_kind(
    api: CustomObjects, kind: str, plural: str, namespace: str | None
) -> list[dict[str, Any]]:
    """All objects of one kind, page by page so that large clusters do not need one huge reply."""
    items: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        paging: dict[str, Any] = {"limit": PAGE_SIZE, "_request_timeout": REQUEST_TIMEOUT_SECONDS}
        if token:
            paging["_continue"] = token
        if namespace is None:
            reply = api.list_cluster_custom_object(GROUP, VERSION, plural, **paging)
        else:
            reply = api.list_namespaced_custom_object(GROUP, VERSION, namespace, plural, **paging)
        for item in reply.get("items") or []:
            item.setdefault("kind", kind)  # list items may omit it; the table needs it
            items.append(item)
        token = (reply.get("metadata") or {}).get("continue")
        if not token:
            return items


def collect(api: CustomObjects, namespace: str | None) -> list[dict[str, Any]]:
    """Objects of every registered kind; kinds whose CRD is not installed are skipped."""
    objects: list[dict[str, Any]] = []
    for model in KINDS:
        kind, plural = model.info.kind, model.info.plural
        try:
            objects.extend(list_kind(api, kind, plural, namespace))
        except ApiException as exc:
            where = "all namespaces" if namespace is None else f"namespace {namespace!r}"
            if exc.status == 404:
                print(f"note: {plural}.{GROUP} is not installed, skipping {kind}", file=sys.stderr)
            elif exc.status == 403:
                raise PluginError(
                    f"forbidden: cannot list {kind} ({plural}.{GROUP}) in {where}; "
                    f"check your RBAC: kubectl auth can-i list {plural}.{GROUP}"
                    + (" -A" if namespace is None else f" -n {namespace}")
                ) from exc
            else:
                raise PluginError(
                    f"cannot list {kind} in {where}: {exc.status} {exc.reason}"
                ) from exc
    return objects


def status(args: argparse.Namespace) -> int:
    config_file = kubeconfig_path(args)
    try:
        config.load_kube_config(config_file=config_file, context=args.context)
        namespace = None if args.all_namespaces else args.namespace
        if namespace is None and not args.all_namespaces:
            namespace = context_namespace(config_file, args.context)
        objects = collect(client.CustomObjectsApi(), namespace)
    except config.ConfigException as exc:
        raise PluginError(f"invalid kubeconfig: {exc}") from exc
    except (HTTPError, OSError) as exc:
        raise PluginError(f"cannot reach the cluster: {exc}") from exc

    rows = build_rows(objects, datetime.now(UTC))
    if not rows:
        where = "any namespace" if namespace is None else f"namespace {namespace!r}"
        print(f"No runbook resources found in {where}.", file=sys.stderr)
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(format_table(rows, width))
    return EXIT_UNREADY if args.fail_unready and any_unready(rows) else EXIT_OK


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        return status(args)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
