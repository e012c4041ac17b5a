"""`kubectl-runbook`: the kubectl plugin for runbook resources.

`status` shows the health of every runbook resource at once. `kubectl get runbook` lists the
kinds too, but one table per kind and without the Ready reason and message; this plugin answers
"is anything unhealthy, and why?" in one table, and with `--fail-unready` it answers it for
scripts through the exit code.

`backup now|list|restore` act on one BackupPolicy: request an on-demand backup (through the
`runbook.dev/backup-now` annotation the operator acts on), show its backups and recent runs, and
restore a backup into a named target with a Job built from the policy's backup CronJob.

Exit codes: 0 success; 1 some resource is not Ready (`status --fail-unready`), or a backup or
restore waited for failed or did not finish in time; 2 usage error, a request that cannot be
made, or the cluster could not be read.
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple, Protocol, TypeVar, cast

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from runbook_operator.api.backuppolicy import BackupPolicy
from runbook_operator.api.common import GROUP, VERSION, parse_duration
from runbook_operator.api.registry import KINDS
from runbook_operator.core.backup import (
    BACKUP_NOW_ANNOTATION,
    POLICY_LABEL,
    RUNNER_CONTAINER,
    cronjob_name,
    finished_job,
)
from runbook_operator.core.restore_job import (
    TARGET_ANNOTATION,
    RestoreRequestError,
    restore_job,
)
from runbook_operator.runner.results import RestoreResult

EXIT_OK = 0
EXIT_UNREADY = 1
EXIT_FAILED = 1
EXIT_ERROR = 2

HEADERS = ("NAMESPACE", "KIND", "NAME", "READY", "REASON", "AGE", "MESSAGE")
COLUMN_GAP = "   "  # kubectl's spacing between columns
MIN_MESSAGE_WIDTH = 20  # below this a truncated message says nothing; let the line wrap instead
ELLIPSIS = "..."
PAGE_SIZE = 500
REQUEST_TIMEOUT_SECONDS = 30
POLL_SECONDS = 1.0
DEFAULT_NOW_TIMEOUT = "10m"
RESTORE_WAIT_GRACE_SECONDS = 60  # for the Job controller to mark a Job past its deadline
HISTORY_HEADERS = ("TIME", "JOB", "OUTCOME", "REASON", "SIZE", "MESSAGE")
HISTORY_MESSAGE_LIMIT = 100  # when not on a terminal; `-o json` has the whole message
JOB_NAME_LABEL = "batch.kubernetes.io/job-name"
POLICY_PLURAL = BackupPolicy.info.plural
MERGE_PATCH = "application/merge-patch+json"
REQUEST_ERRORS = (ApiException, HTTPError, OSError)

T = TypeVar("T")


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


class RunFailed(PluginError):
    """What was waited for failed or did not finish in time (exit code 1, not 2)."""


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


def condition(obj: dict[str, Any], type_: str) -> dict[str, Any]:
    """The condition `type_` of `obj`, or `{}` when the operator has not reported one yet."""
    conditions = (obj.get("status") or {}).get("conditions") or []
    return next((c for c in conditions if c.get("type") == type_), {})


def ready_condition(obj: dict[str, Any]) -> dict[str, Any]:
    return condition(obj, "Ready")


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


def format_columns(
    headers: Sequence[str], rows: Sequence[Sequence[str]], width: int | None = None
) -> str:
    """Columns aligned as kubectl aligns them; with `width`, the last (free text) column is cut
    so each line fits a terminal that wide."""
    widths = [max([len(h), *(len(row[i]) for row in rows)]) for i, h in enumerate(headers[:-1])]
    if width is not None:
        room = width - sum(widths) - len(COLUMN_GAP) * len(widths)
        limit = max(room, MIN_MESSAGE_WIDTH)
        rows = [(*row[:-1], truncate(row[-1], limit)) for row in rows]
    lines = []
    for cells in [headers, *rows]:
        padded = [cell.ljust(w) for cell, w in zip(cells, widths)]
        lines.append(COLUMN_GAP.join([*padded, cells[-1]]).rstrip())
    return "\n".join(lines) + "\n"


def format_table(rows: Sequence[Row], width: int | None = None) -> str:
    """The status table as text; with `width`, MESSAGE is cut to fit the terminal."""
    return format_columns(HEADERS, rows, width)


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
    alerts = commands.add_parser(
        "alerts",
        help="show AlertRules with their state, value and since when",
        description="Show every AlertRule's state, value and since when, firing first.",
    )
    alerts_scope = alerts.add_mutually_exclusive_group()
    alerts_scope.add_argument("-n", "--namespace", help="namespace to list")
    alerts_scope.add_argument("-A", "--all-namespaces", action="store_true",
                              help="list rules in every namespace")
    alerts.add_argument("--kubeconfig", help="path to the kubeconfig file")
    alerts.add_argument("--context", help="kubeconfig context to use")
    _add_backup_parser(commands)
    return parser


ALERT_ORDER = {"Firing": 0, "Recovering": 1, "Error": 2, "Pending": 3, "NoData": 4, "Normal": 5}


def alert_rows(rules: Iterable[dict[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    """NAMESPACE, NAME, STATE, VALUE, SINCE, SEVERITY, FIRING, READY — the worst first."""
    rows = []
    for rule in rules:
        meta, spec, status = rule["metadata"], rule.get("spec") or {}, rule.get("status") or {}
        state = status.get("state") or "Unknown"
        firing = sum(1 for i in status.get("instances") or []
                     if i.get("state") in ("Firing", "Recovering"))
        rows.append((
            meta.get("namespace", ""), meta["name"], state, status.get("lastValue") or "-",
            age_of(status.get("activeSince"), now) if status.get("activeSince") else "-",
            spec.get("severity", "medium"), str(firing),
            ready_condition(rule).get("status", "Unknown"),
        ))
    return sorted(rows, key=lambda r: (ALERT_ORDER.get(r[2], 9), r[0], r[1]))


def alerts(args: argparse.Namespace) -> int:
    config_file = kubeconfig_path(args)
    try:
        config.load_kube_config(config_file=config_file, context=args.context)
        namespace = None if args.all_namespaces else args.namespace
        if namespace is None and not args.all_namespaces:
            namespace = context_namespace(config_file, args.context)
        rules = list_kind(client.CustomObjectsApi(), "AlertRule", "alertrules", namespace)
    except config.ConfigException as exc:
        raise PluginError(f"invalid kubeconfig: {exc}") from exc
    except ApiException as exc:
        raise PluginError(f"cannot list AlertRules: {exc.status} {exc.reason}") from exc
    except (HTTPError, OSError) as exc:
        raise PluginError(f"cannot reach the cluster: {exc}") from exc
    header = ("NAMESPACE", "NAME", "STATE", "VALUE", "SINCE", "SEVERITY", "FIRING", "READY")
    rows = alert_rows(rules, datetime.now(UTC))
    if not rows:
        print("No AlertRules found.", file=sys.stderr)
        return EXIT_OK
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("   ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    return EXIT_OK


def _add_backup_parser(commands: Any) -> None:
    """`backup now|list|restore POLICY`, sharing the namespace and kubeconfig flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("policy", metavar="POLICY", help="name of the BackupPolicy")
    common.add_argument(
        "-n", "--namespace", help="namespace of the policy (default: the current context's)"
    )
    common.add_argument(
        "--kubeconfig", help="path to the kubeconfig file (default: $KUBECONFIG or ~/.kube/config)"
    )
    common.add_argument("--context", help="kubeconfig context to use (default: the current one)")
    backup = commands.add_parser(
        "backup",
        help="run, list and restore the backups of a BackupPolicy",
        description="Run, list and restore the backups of a BackupPolicy.",
    )
    actions = backup.add_subparsers(dest="backup_command", required=True, metavar="ACTION")
    now = actions.add_parser(
        "now", parents=[common],
        help="start a backup now",
        description="Ask the operator for one backup now (annotation runbook.dev/backup-now), "
        "even while the policy is suspended.",
    )
    now.add_argument("--wait", action="store_true",
                     help="wait for the backup to finish and exit 1 if it failed")
    now.add_argument("--timeout", type=duration_seconds, default=DEFAULT_NOW_TIMEOUT,
                     metavar="DURATION",
                     help="how long --wait waits, e.g. 90s, 10m (default: %(default)s)")
    listing = actions.add_parser(
        "list", parents=[common],
        help="show the newest backup, restore test and recent runs",
        description="Show the newest backup, the newest restore test and the recent runs of a "
        "BackupPolicy, newest first.",
    )
    listing.add_argument("-o", "--output", choices=("table", "json"), default="table",
                         help="output format (default: %(default)s)")
    restore = actions.add_parser(
        "restore", parents=[common],
        help="restore a backup into a new database or an empty directory",
        description="Restore a backup with a Job built from the policy's backup CronJob. It "
        "never overwrites: a database target is created and must not exist; a files target "
        "must be an empty or new directory. The source itself is refused.",
    )
    restore.add_argument(
        "--into", required=True, metavar="TARGET",
        help="the database to create and restore into (postgres, mysql), or for files the "
        "absolute path of a directory inside --into-claim",
    )
    restore.add_argument("--into-claim", metavar="CLAIM",
                         help="files sources: the PersistentVolumeClaim to restore into")
    restore.add_argument("--backup", metavar="KEY",
                         help="the backup to restore, as listed by `backup list` "
                         "(default: the newest)")
    restore.add_argument("--wait", action="store_true",
                         help="wait for the restore to finish and exit 1 if it failed")
    restore.add_argument("--timeout", type=duration_seconds, metavar="DURATION",
                         help="how long --wait waits (default: the Job's deadline, the "
                         "policy's timeout, plus a minute)")


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    return build_parser().parse_args(argv)


# --- backup: pure part ---------------------------------------------------------------------------


def new_token(now: datetime, suffix: str) -> str:
    """A backup-now token: readable (when it was asked for) and unique (`suffix` is random), so
    two requests in the same second are two backups, and one request is never run twice."""
    return f"{now.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}-{suffix}"


def backup_now_patch(token: str) -> dict[str, Any]:
    """A merge patch that sets only the annotation, leaving the user's spec untouched."""
    return {"metadata": {"annotations": {BACKUP_NOW_ANNOTATION: token}}}


def duration_seconds(text: str) -> float:
    """argparse type for `--timeout`: the API's duration format (`90s`, `10m`, `1h30m`)."""
    try:
        seconds = parse_duration(text).total_seconds()
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if seconds <= 0:
        raise argparse.ArgumentTypeError(f"invalid duration {text!r}: must be positive")
    return seconds


def human_size(size: int | None) -> str:
    """Bytes in binary units with one decimal (`4.0 KiB`), `-` when unknown."""
    if size is None:
        return "-"
    if size < 1024:
        return f"{size} B"
    value = float(size)
    for unit in ("KiB", "MiB", "GiB", "TiB"):
        value /= 1024
        if value < 1024 or unit == "TiB":
            break
    return f"{value:.1f} {unit}"


def one_line(text: str) -> str:
    return " ".join(text.split())


def newest_first(history: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Runs sorted newest first (RFC 3339 UTC times sort as text), ties broken by Job name."""
    return sorted(history, key=lambda a: (str(a.get("time") or ""), a.get("jobName") or ""),
                  reverse=True)


def history_rows(
    history: Iterable[dict[str, Any]], message_limit: int | None
) -> list[tuple[str, ...]]:
    """One row per run in `status.history`, newest first; messages on one line, cut to
    `message_limit` when given."""
    rows: list[tuple[str, ...]] = []
    for attempt in newest_first(history):
        message = one_line(str(attempt.get("message") or "")) or "-"
        if message_limit is not None:
            message = truncate(message, message_limit)
        rows.append((
            str(attempt.get("time") or "-"),
            str(attempt.get("jobName") or "-"),
            str(attempt.get("outcome") or "-"),
            str(attempt.get("reason") or "-"),
            human_size(attempt.get("sizeBytes")),
            message,
        ))
    return rows


def describe_last_backup(record: dict[str, Any] | None) -> str:
    if not record:
        return "none"
    parts = [str(record.get("time") or "-"), str(record.get("key") or "-"),
             human_size(record.get("sizeBytes")),
             "verified" if record.get("verified") else "NOT verified",
             f"took {float(record.get('durationSeconds') or 0):.1f}s",
             f"job {record.get('jobName') or '-'}"]
    if record.get("location"):
        parts.append(str(record["location"]))
    return "  ".join(parts)


def describe_last_verified(record: dict[str, Any] | None) -> str:
    if not record:
        return "none"
    parts = [str(record.get("time") or "-"), str(record.get("backupKey") or "-"),
             str(record.get("outcome") or "-")]
    if record.get("outcome") == "Succeeded":
        parts.append(f"restored in {float(record.get('durationSeconds') or 0):.1f}s")
    parts.append(f"job {record.get('jobName') or '-'}")
    if record.get("message"):
        parts.append(one_line(str(record["message"])))
    return "  ".join(parts)


def format_backup_list(status: dict[str, Any], width: int | None) -> str:
    """`backup list` as text: the newest backup, the newest restore test, then the runs."""
    lines = [f"Last backup:     {describe_last_backup(status.get('lastBackup'))}",
             f"Last verified:   {describe_last_verified(status.get('lastVerifiedBackup'))}",
             ""]
    history = status.get("history") or []
    if not history:
        return "\n".join([*lines, "No runs recorded yet."]) + "\n"
    limit = None if width is not None else HISTORY_MESSAGE_LIMIT
    return "\n".join(lines) + "\n" + format_columns(
        HISTORY_HEADERS, history_rows(history, limit), width)


def backup_list_json(policy: dict[str, Any]) -> str:
    """`backup list -o json`: the status fields as the API has them, history newest first."""
    status = policy.get("status") or {}
    return json.dumps({
        "policy": policy["metadata"]["name"],
        "namespace": policy["metadata"]["namespace"],
        "lastBackup": status.get("lastBackup"),
        "lastVerifiedBackup": status.get("lastVerifiedBackup"),
        "history": newest_first(status.get("history") or []),
    }, indent=2) + "\n"


def backup_now_job(jobs: Iterable[dict[str, Any]], token: str) -> str | None:
    """The name of the Job the operator created for `token` (it carries the token as an
    annotation), so the wait follows that run and not an older on-demand one."""
    for job in jobs:
        meta = job.get("metadata") or {}
        if (meta.get("annotations") or {}).get(BACKUP_NOW_ANNOTATION) == token[:253]:
            return str(meta["name"])
    return None


def history_entry(policy: dict[str, Any], job_name: str) -> dict[str, Any] | None:
    history = (policy.get("status") or {}).get("history") or []
    return next((a for a in history if a.get("jobName") == job_name), None)


def describe_attempt(attempt: dict[str, Any]) -> tuple[bool, str]:
    """(succeeded, one line) for a run as the operator recorded it in status.history."""
    ok = attempt.get("outcome") == "Succeeded"
    name = attempt.get("jobName")
    detail = one_line(str(attempt.get("message") or ""))
    if ok:
        size = attempt.get("sizeBytes")
        line = f"backup {name} succeeded" + (f" ({human_size(size)})" if size is not None else "")
        return True, line + (f": {detail}" if detail else "")
    reason = attempt.get("reason") or "Failed"
    return False, f"backup {name} failed: {reason}" + (f": {detail}" if detail else "")


def runner_message(pods: Iterable[dict[str, Any]]) -> str | None:
    """The termination message of the newest finished `runner` container among `pods`."""
    finished = []
    for pod in pods:
        for container in (pod.get("status") or {}).get("containerStatuses") or []:
            terminated = (container.get("state") or {}).get("terminated")
            if container.get("name") == RUNNER_CONTAINER and terminated:
                finished.append((terminated.get("finishedAt") or "", terminated.get("message")))
    return max(finished)[1] if finished else None


def describe_restore(job: dict[str, Any], message: str | None) -> tuple[bool, str] | None:
    """(succeeded, one line) for a finished restore Job, None while it runs.

    As for backups, success needs both: the Job completed AND the runner reported a valid,
    successful result. A Job that completed without a result proves nothing.
    """
    record = finished_job(job)
    if record is None:
        return None
    name = record.name
    try:
        result = RestoreResult.model_validate_json(message) if message else None
    except ValueError:
        result = None
    if result is None:
        if record.outcome == "Succeeded":
            return False, (f"restore {name} completed, but the runner reported no result (no "
                           f"termination message from container {RUNNER_CONTAINER}); "
                           "the restore is not confirmed")
        why = one_line(f"{record.reason}: {record.message}".strip(": "))
        return False, f"restore {name} failed ({why}); the runner reported no result"
    if result.ok and record.outcome == "Succeeded":
        return True, (f"restore {name} succeeded: {one_line(result.message)}, from "
                      f"{result.key} in {result.duration_seconds:.1f}s")
    reason, detail = ((result.reason, result.message) if not result.ok
                      else (record.reason, record.message))
    return False, f"restore {name} failed: {reason}: {one_line(detail)}"


def wait_until(
    probe: Callable[[], T | None],
    deadline: float,
    what: str,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    interval: float = POLL_SECONDS,
) -> T:
    """Poll `probe` until it returns something other than None, or raise RunFailed at
    `deadline` (on `clock`). It sleeps only between polls, never past the deadline."""
    while True:
        found = probe()
        if found is not None:
            return found
        remaining = deadline - clock()
        if remaining <= 0:
            raise RunFailed(f"timed out waiting for {what}")
        sleep(min(interval, remaining))


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


class BackupApis(NamedTuple):
    """The API groups the backup commands use, sharing one configured client."""

    client: client.ApiClient
    custom: client.CustomObjectsApi
    batch: client.BatchV1Api
    core: client.CoreV1Api

    def plain(self, obj: Any) -> dict[str, Any]:
        """A typed client object as the API's JSON (camelCase keys), as the core expects."""
        result: dict[str, Any] = self.client.sanitize_for_serialization(obj)
        return result


def connect(args: argparse.Namespace) -> tuple[BackupApis, str]:
    """Clients for the kubeconfig and context chosen, and the namespace to work in."""
    config_file = kubeconfig_path(args)
    try:
        config.load_kube_config(config_file=config_file, context=args.context)
        namespace = args.namespace or context_namespace(config_file, args.context)
    except config.ConfigException as exc:
        raise PluginError(f"invalid kubeconfig: {exc}") from exc
    api = client.ApiClient()
    return BackupApis(api, client.CustomObjectsApi(api), client.BatchV1Api(api),
                      client.CoreV1Api(api)), namespace


def api_error(
    exc: Exception, action: str, namespace: str, missing: str | None = None
) -> PluginError:
    """One line for a failed request: `missing` for a 404 when given, how to check RBAC for a
    403, else what was attempted and the status."""
    if isinstance(exc, ApiException):
        if exc.status == 404 and missing:
            return PluginError(missing)
        if exc.status == 403:
            return PluginError(f"forbidden: cannot {action} in namespace {namespace!r}; "
                               "check your RBAC with kubectl auth can-i")
        return PluginError(f"cannot {action} in namespace {namespace!r}: "
                           f"{exc.status} {exc.reason}")
    return PluginError(f"cannot reach the cluster: {exc}")


def policy_missing(name: str, namespace: str) -> str:
    return f"BackupPolicy {name!r} not found in namespace {namespace!r}"


def read_policy(apis: BackupApis, namespace: str, name: str) -> dict[str, Any]:
    try:
        policy = cast(dict[str, Any], apis.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, POLICY_PLURAL, name,
            _request_timeout=REQUEST_TIMEOUT_SECONDS))
    except REQUEST_ERRORS as exc:
        raise api_error(exc, f"get BackupPolicy {name}", namespace,
                        policy_missing(name, namespace)) from exc
    return policy


def report(ok: bool, line: str) -> int:
    """A run's outcome: on stdout when it succeeded, on stderr when not; the exit code."""
    print(line, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def backup_now(args: argparse.Namespace) -> int:
    apis, namespace = connect(args)
    name = args.policy
    token = new_token(datetime.now(UTC), secrets.token_hex(3))
    try:
        apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, POLICY_PLURAL, name, backup_now_patch(token),
            _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except REQUEST_ERRORS as exc:
        raise api_error(exc, f"annotate BackupPolicy {name}", namespace,
                        policy_missing(name, namespace)) from exc
    print(f"backuppolicy/{name}: backup requested ({BACKUP_NOW_ANNOTATION}={token})")
    if not args.wait:
        return EXIT_OK
    deadline = time.monotonic() + args.timeout

    def acknowledged() -> dict[str, Any] | None:
        policy = read_policy(apis, namespace, name)
        if (policy.get("status") or {}).get("backupNowToken") == token:
            return policy
        stalled = condition(policy, "Stalled")
        if stalled.get("status") == "True":
            raise RunFailed(
                f"BackupPolicy {name} is stalled ({stalled.get('reason')}: "
                f"{one_line(str(stalled.get('message') or ''))}); the request runs once it is fixed"
            )
        return None

    def created_job() -> str | None:
        try:
            jobs = apis.batch.list_namespaced_job(
                namespace, label_selector=f"{POLICY_LABEL}={name}",
                _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except REQUEST_ERRORS as exc:
            raise api_error(exc, "list Jobs", namespace) from exc
        return backup_now_job((apis.plain(job) for job in jobs.items), token)

    wait_until(acknowledged, deadline, f"the operator to act on the request to {name}")
    job_name = wait_until(created_job, deadline, f"the Job for the request to {name}")
    print(f"job/{job_name} started")
    attempt = wait_until(
        lambda: history_entry(read_policy(apis, namespace, name), job_name), deadline,
        f"job/{job_name} to finish (it keeps running: kubectl runbook backup list {name} "
        f"-n {namespace})")
    return report(*describe_attempt(attempt))


def backup_list(args: argparse.Namespace) -> int:
    apis, namespace = connect(args)
    policy = read_policy(apis, namespace, args.policy)
    if args.output == "json":
        sys.stdout.write(backup_list_json(policy))
    else:
        width = shutil.get_terminal_size().columns if sys.stdout.isatty() else None
        sys.stdout.write(format_backup_list(policy.get("status") or {}, width))
    return EXIT_OK


def backup_restore(args: argparse.Namespace) -> int:
    apis, namespace = connect(args)
    name = args.policy
    policy = read_policy(apis, namespace, name)
    cron_name = cronjob_name(name)
    try:
        cronjob = apis.plain(apis.batch.read_namespaced_cron_job(
            cron_name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS))
    except REQUEST_ERRORS as exc:
        raise api_error(
            exc, f"get CronJob {cron_name}", namespace,
            f"CronJob {cron_name} not found: the operator has not rendered the backups of "
            f"{name} (see kubectl runbook status -n {namespace})") from exc
    token = new_token(datetime.now(UTC), secrets.token_hex(3))
    try:
        job = restore_job(policy, cronjob, args.into, args.backup, token,
                          into_claim=args.into_claim)
    except RestoreRequestError as exc:
        raise PluginError(str(exc)) from exc
    job_name = job["metadata"]["name"]
    try:
        # The client sends a dict as it is: the Job exactly as built, in the API's JSON.
        apis.batch.create_namespaced_job(
            namespace, job, _request_timeout=REQUEST_TIMEOUT_SECONDS)  # type: ignore[arg-type]
    except REQUEST_ERRORS as exc:
        raise api_error(exc, f"create Job {job_name}", namespace) from exc
    what = args.backup or "the newest backup"
    where = job["metadata"]["annotations"][TARGET_ANNOTATION]
    print(f"job/{job_name} created: restoring {what} of {name} into {where}")
    if not args.wait:
        return EXIT_OK
    timeout = args.timeout
    if timeout is None:  # the Job fails at its deadline; wait a little longer to see that
        job_deadline = job["spec"].get("activeDeadlineSeconds")
        timeout = (job_deadline + RESTORE_WAIT_GRACE_SECONDS if job_deadline
                   else duration_seconds(DEFAULT_NOW_TIMEOUT))

    def outcome() -> tuple[bool, str] | None:
        try:
            current = apis.plain(apis.batch.read_namespaced_job(
                job_name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS))
            if finished_job(current) is None:
                return None
            pods = apis.core.list_namespaced_pod(
                namespace, label_selector=f"{JOB_NAME_LABEL}={job_name}",
                _request_timeout=REQUEST_TIMEOUT_SECONDS)
        except REQUEST_ERRORS as exc:
            raise api_error(exc, f"read Job {job_name}", namespace) from exc
        return describe_restore(current, runner_message(apis.plain(p) for p in pods.items))

    ok, line = wait_until(
        outcome, time.monotonic() + timeout,
        f"job/{job_name} to finish (it keeps running: kubectl get job {job_name} -n {namespace})")
    return report(ok, line)


BACKUP_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "now": backup_now,
    "list": backup_list,
    "restore": backup_restore,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        if args.command == "backup":
            return BACKUP_COMMANDS[args.backup_command](args)
        if args.command == "alerts":
            return alerts(args)
        return status(args)
    except RunFailed as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
