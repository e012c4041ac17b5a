"""`canary promote [--full] | abort | retry | pause | resume | status ROLLOUT`: steer one
CanaryRollout by hand, and see where it stands.

A command sets its annotation (`runbook.dev/canary-<command>`) to a new token; the operator
acts on each token once and records it in status.commands, which `--wait` waits for. The spec
is never touched, so a GitOps tool sees no drift.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from datetime import UTC, datetime
from typing import Any, cast

from runbook_operator.api.canaryrollout import COMMAND_ANNOTATIONS, CanaryRollout, Command
from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.cli.plugin import connection
from runbook_operator.cli.plugin.backup import duration_seconds, new_token, wait_until
from runbook_operator.cli.plugin.connection import REQUEST_TIMEOUT_SECONDS, Apis
from runbook_operator.cli.plugin.errors import EXIT_OK, REQUEST_ERRORS, api_error
from runbook_operator.cli.plugin.table import one_line

KIND = CanaryRollout.info.kind
RESOURCE = f"{CanaryRollout.info.plural}.{GROUP}"
MERGE_PATCH = "application/merge-patch+json"
DEFAULT_TIMEOUT = "1m"
#: Measurements `status` shows (the newest).
SHOWN_MEASUREMENTS = 10


# --- pure part: no I/O, unit tested -------------------------------------------------------------


def command_of(action: str, full: bool = False) -> Command:
    """The status.commands name of a plugin action."""
    return "promoteFull" if action == "promote" and full else cast(Command, action)


def command_patch(command: Command, token: str) -> dict[str, Any]:
    """A merge patch setting only the command's annotation."""
    return {"metadata": {"annotations": {COMMAND_ANNOTATIONS[command]: token}}}


def acknowledgement(rollout: dict[str, Any], command: Command, token: str) -> str | None:
    """What the operator said it did with `token`, None until it acted on it."""
    for entry in (rollout.get("status") or {}).get("commands") or []:
        if entry.get("command") == command and entry.get("token") == token:
            return str(entry.get("result") or "done")
    return None


def format_status(rollout: dict[str, Any]) -> str:
    """`canary status` as text: the phase and weight, why, the last rollback, the backup
    waited for, the gates and the newest measurements."""
    status = rollout.get("status") or {}
    meta = rollout["metadata"]
    lines = [
        f"CanaryRollout {meta['namespace']}/{meta['name']}",
        f"Phase:     {status.get('phase') or 'Pending'}",
        f"Weight:    {status.get('weight', 0)}%  step {status.get('step') or '-'}",
        f"Revision:  {status.get('revision') or '-'} (primary "
        f"{status.get('primaryRevision') or '-'})",
        f"Failed:    {status.get('failedChecks', 0)} analysis runs"
        + (f" ({status['failedMetrics']})" if status.get("failedMetrics") else ""),
        f"Message:   {one_line(str(status.get('message') or '')) or '-'}",
    ]
    rollback = status.get("rollback")
    if rollback:
        done = rollback.get("completedAt") or "in progress"
        lines.append(f"Rollback:  {rollback.get('reason')} at {rollback.get('startedAt')} "
                     f"(completed {done}): {one_line(str(rollback.get('message') or ''))}")
    if status.get("incident"):
        lines.append(f"Incident:  {status['incident']}")
    backup = status.get("backup")
    if backup:
        lines.append(f"Backup:    {backup.get('state')} (BackupPolicy {backup.get('policy')}, "
                     f"since {backup.get('since')}): "
                     f"{one_line(str(backup.get('message') or ''))}")
    for gate in status.get("gates") or []:
        state = "open" if gate.get("open") else "closed"
        lines.append(f"Gate:      {gate.get('name')} {state} at {gate.get('time')}: "
                     f"{one_line(str(gate.get('message') or ''))}")
    measurements = (status.get("measurements") or [])[:SHOWN_MEASUREMENTS]
    if measurements:
        lines.append("Measurements (newest first):")
        lines += [f"  {m.get('time')}  step {m.get('step')}  {m.get('metric')} = "
                  f"{m.get('value', '-')}  {m.get('verdict')}  {one_line(m.get('message', ''))}"
                  for m in measurements]
    return "\n".join(lines) + "\n"


# --- I/O part ------------------------------------------------------------------------------------


def _missing(name: str, namespace: str) -> str:
    return f"{KIND} {name!r} not found in namespace {namespace!r}"


def read_rollout(apis: Apis, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], apis.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, CanaryRollout.info.plural, name,
            _request_timeout=REQUEST_TIMEOUT_SECONDS))
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="get", resource=RESOURCE, what=f"{KIND} {name}",
                        namespace=namespace, missing=_missing(name, namespace)) from exc


def send(args: argparse.Namespace) -> int:
    apis, namespace = connection.connect(args)
    assert namespace is not None
    name = args.rollout
    command = command_of(args.canary_command, getattr(args, "full", False))
    token = new_token(datetime.now(UTC), secrets.token_hex(3))
    try:
        apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, CanaryRollout.info.plural, name,
            command_patch(command, token), _content_type=MERGE_PATCH,
            _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="patch", resource=RESOURCE, what=f"{KIND} {name}",
                        namespace=namespace, missing=_missing(name, namespace)) from exc
    print(f"canaryrollout/{name}: {command} requested ({COMMAND_ANNOTATIONS[command]}={token})")
    if not args.wait:
        return EXIT_OK
    result = wait_until(
        lambda: acknowledgement(read_rollout(apis, namespace, name), command, token),
        time.monotonic() + args.timeout, f"the operator to act on {command} of {name}")
    print(f"canaryrollout/{name}: {result}")
    return EXIT_OK


def show(args: argparse.Namespace) -> int:
    apis, namespace = connection.connect(args)
    assert namespace is not None
    sys.stdout.write(format_status(read_rollout(apis, namespace, args.rollout)))
    return EXIT_OK


def run(args: argparse.Namespace) -> int:
    return show(args) if args.canary_command == "status" else send(args)


def add_parser(commands: Any) -> None:
    """`canary ACTION ROLLOUT`, sharing the namespace and kubeconfig flags."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("rollout", metavar="ROLLOUT", help="name of the CanaryRollout")
    common.add_argument(
        "-n", "--namespace", help="namespace of the rollout (default: the current context's)")
    connection.add_connection_flags(common)
    waiting = argparse.ArgumentParser(add_help=False, parents=[common])
    waiting.add_argument("--wait", action="store_true",
                         help="wait until the operator has acted on the command")
    waiting.add_argument("--timeout", type=duration_seconds, default=DEFAULT_TIMEOUT,
                         metavar="DURATION",
                         help="how long --wait waits (default: %(default)s)")
    canary = commands.add_parser(
        "canary", help="promote, abort, retry, pause, resume or show a CanaryRollout",
        description="Steer a CanaryRollout by hand through annotations the operator "
        "acknowledges in status.commands, or show where it stands.")
    canary.set_defaults(run=run)
    actions = canary.add_subparsers(dest="canary_command", required=True, metavar="ACTION")
    promote = actions.add_parser(
        "promote", parents=[waiting], help="skip the current step (or a pause)",
        description="Skip the current step; with --full, promote at once.")
    promote.add_argument("--full", action="store_true",
                         help="skip every remaining step and promote")
    for action, text in (("abort", "roll back to the primary now"),
                         ("retry", "roll a rolled-back revision out again"),
                         ("pause", "hold the rollout where it is"),
                         ("resume", "go on after a pause")):
        actions.add_parser(action, parents=[waiting], help=text, description=text + ".")
    actions.add_parser("status", parents=[common], help="where the rollout stands",
                       description="Phase, weight, rollback, backup, gates and "
                       "measurements.")
