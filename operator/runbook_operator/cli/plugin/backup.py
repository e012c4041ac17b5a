"""`backup now|list|restore POLICY`: act on one BackupPolicy.

`now` asks the operator for one backup through the `runbook.dev/backup-now` annotation it acts
on; `list` shows the newest backup, the newest restore test and the recent runs; `restore`
restores a backup into a named target with a Job built from the policy's backup CronJob.
"""

from __future__ import annotations

import argparse
import json
import secrets
import sys
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

from runbook_operator.api.backuppolicy import BackupPolicy
from runbook_operator.api.common import GROUP, VERSION, parse_duration
from runbook_operator.cli.plugin import connection
from runbook_operator.cli.plugin.connection import REQUEST_TIMEOUT_SECONDS, Apis
from runbook_operator.cli.plugin.errors import (
    EXIT_FAILED,
    EXIT_OK,
    REQUEST_ERRORS,
    PluginError,
    RunFailed,
    api_error,
)
from runbook_operator.cli.plugin.status import condition
from runbook_operator.cli.plugin.table import (
    format_columns,
    human_duration,
    human_size,
    one_line,
    terminal_width,
    truncate,
)
from runbook_operator.core.backuppolicy.job_outcome import finished_job, runner_message
from runbook_operator.core.backuppolicy.names import (
    BACKUP_NOW_ANNOTATION,
    JOB_NAME_LABEL,
    POLICY_LABEL,
    RUNNER_CONTAINER,
    cronjob_name,
)
from runbook_operator.core.backuppolicy.restore_job import (
    TARGET_ANNOTATION,
    RestoreRequestError,
    restore_job,
)
from runbook_operator.runner.results import RestoreResult

POLL_SECONDS = 1.0
DEFAULT_NOW_TIMEOUT = "10m"
RESTORE_WAIT_GRACE_SECONDS = 60  # for the Job controller to mark a Job past its deadline
HISTORY_HEADERS = ("TIME", "JOB", "OUTCOME", "REASON", "SIZE", "MESSAGE")
HISTORY_MESSAGE_LIMIT = 100  # when not on a terminal; `-o json` has the whole message
POLICY_KIND = BackupPolicy.info.kind
POLICY_RESOURCE = f"{BackupPolicy.info.plural}.{GROUP}"
MERGE_PATCH = "application/merge-patch+json"

T = TypeVar("T")


# --- pure part: no I/O, unit tested -------------------------------------------------------------


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
             f"took {human_duration(float(record.get('durationSeconds') or 0))}",
             f"job {record.get('jobName') or '-'}"]
    if record.get("keyId"):
        parts.append(f"key {record['keyId']}")
    if record.get("location"):
        parts.append(str(record["location"]))
    return "  ".join(parts)


def describe_last_verified(record: dict[str, Any] | None) -> str:
    if not record:
        return "none"
    parts = [str(record.get("time") or "-"), str(record.get("backupKey") or "-"),
             str(record.get("outcome") or "-")]
    if record.get("outcome") == "Succeeded":
        parts.append(f"restored in {human_duration(float(record.get('durationSeconds') or 0))}")
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
                      f"{result.key} in {human_duration(result.duration_seconds)}")
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


def _connect(args: argparse.Namespace) -> tuple[Apis, str]:
    apis, namespace = connection.connect(args)
    assert namespace is not None  # backup commands have no -A
    return apis, namespace


def policy_missing(name: str, namespace: str) -> str:
    return f"BackupPolicy {name!r} not found in namespace {namespace!r}"


def read_policy(apis: Apis, namespace: str, name: str) -> dict[str, Any]:
    try:
        policy = cast(dict[str, Any], apis.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, BackupPolicy.info.plural, name,
            _request_timeout=REQUEST_TIMEOUT_SECONDS))
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="get", resource=POLICY_RESOURCE, what=f"{POLICY_KIND} {name}",
                        namespace=namespace, missing=policy_missing(name, namespace)) from exc
    return policy


def report(ok: bool, line: str) -> int:
    """A run's outcome: on stdout when it succeeded, on stderr when not; the exit code."""
    print(line, file=sys.stdout if ok else sys.stderr)
    return EXIT_OK if ok else EXIT_FAILED


def backup_now(args: argparse.Namespace) -> int:
    apis, namespace = _connect(args)
    name = args.policy
    token = new_token(datetime.now(UTC), secrets.token_hex(3))
    try:
        apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, BackupPolicy.info.plural, name, backup_now_patch(token),
            _content_type=MERGE_PATCH, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="patch", resource=POLICY_RESOURCE,
                        what=f"{POLICY_KIND} {name}", namespace=namespace,
                        missing=policy_missing(name, namespace)) from exc
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
            raise api_error(exc, verb="list", resource="jobs.batch", what="Jobs",
                            namespace=namespace) from exc
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
    apis, namespace = _connect(args)
    policy = read_policy(apis, namespace, args.policy)
    if args.output == "json":
        sys.stdout.write(backup_list_json(policy))
    else:
        sys.stdout.write(format_backup_list(policy.get("status") or {}, terminal_width()))
    return EXIT_OK


def backup_restore(args: argparse.Namespace) -> int:
    apis, namespace = _connect(args)
    name = args.policy
    policy = read_policy(apis, namespace, name)
    cron_name = cronjob_name(name)
    try:
        cronjob = apis.plain(apis.batch.read_namespaced_cron_job(
            cron_name, namespace, _request_timeout=REQUEST_TIMEOUT_SECONDS))
    except REQUEST_ERRORS as exc:
        raise api_error(
            exc, verb="get", resource="cronjobs.batch", what=f"CronJob {cron_name}",
            namespace=namespace,
            missing=f"CronJob {cron_name} not found: the operator has not rendered the backups "
            f"of {name} (see kubectl runbook status -n {namespace})") from exc
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
        raise api_error(exc, verb="create", resource="jobs.batch", what=f"Job {job_name}",
                        namespace=namespace) from exc
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
            raise api_error(exc, verb="get", resource="jobs.batch", what=f"Job {job_name}",
                            namespace=namespace) from exc
        return describe_restore(current, runner_message(apis.plain(p) for p in pods.items))

    ok, line = wait_until(
        outcome, time.monotonic() + timeout,
        f"job/{job_name} to finish (it keeps running: kubectl get job {job_name} -n {namespace})")
    return report(ok, line)


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "now": backup_now,
    "list": backup_list,
    "restore": backup_restore,
}


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.backup_command](args)


def add_parser(commands: Any) -> None:
    """`backup now|list|restore POLICY`, sharing the namespace and kubeconfig flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("policy", metavar="POLICY", help="name of the BackupPolicy")
    common.add_argument(
        "-n", "--namespace", help="namespace of the policy (default: the current context's)"
    )
    connection.add_connection_flags(common)
    backup = commands.add_parser(
        "backup",
        help="run, list and restore the backups of a BackupPolicy",
        description="Run, list and restore the backups of a BackupPolicy.",
    )
    backup.set_defaults(run=run)
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
