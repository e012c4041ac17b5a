"""`incident open|ack|resolve|note|assign|list|show`: work an incident from the command line.

Every action records who acted: the username the API server knows the caller by (what `kubectl
auth whoami` prints, from the SelfSubjectReview API), which the admission policy shipped in
manifests/ checks against the request's own identity. Actions write only the Incident's spec
(status is the operator's): `ack` sets spec.acknowledgement with a merge patch; `note`,
`assign`, `resolve` and `open` add a note signed by the caller (a JSON patch that appends, so
concurrent notes are all kept), so the record says who did what.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.api.common import API_VERSION, GROUP, VERSION
from runbook_operator.api.incident import Incident
from runbook_operator.cli.plugin import connection
from runbook_operator.cli.plugin.connection import REQUEST_TIMEOUT_SECONDS, Apis
from runbook_operator.cli.plugin.errors import EXIT_OK, REQUEST_ERRORS, PluginError, api_error
from runbook_operator.cli.plugin.table import (
    age_of,
    format_columns,
    human_duration,
    one_line,
    terminal_width,
)
from runbook_operator.core.delivery import rfc3339

KIND = Incident.info.kind
PLURAL = Incident.info.plural
RESOURCE = f"{PLURAL}.{GROUP}"
MERGE_PATCH = "application/merge-patch+json"
JSON_PATCH = "application/json-patch+json"
SEVERITIES = ("P0", "P1", "P2", "P3")
LIST_HEADERS = ("NAMESPACE", "NAME", "SEVERITY", "STATUS", "LEVEL", "ACKNOWLEDGED", "AGE",
                "TITLE")
TIMELINE_HEADERS = ("TIME", "EVENT", "BY", "MESSAGE")
NOTE_HEADERS = ("TIME", "BY", "NOTE")
NOTIFICATION_HEADERS = ("TIME", "CHANNEL", "EVENT", "LEVEL", "SEVERITY", "RESULT")
ALERT_HEADERS = ("STATUS", "STARTED", "ALERT")
#: Tries of an append that raced with another writer (only the first note can race).
APPEND_ATTEMPTS = 3
NAME_STEM_LIMIT = 40


# --- pure part: no I/O, unit tested -------------------------------------------------------------


def note(user: str, text: str, now: datetime) -> dict[str, str]:
    return {"at": rfc3339(now), "by": user, "text": text}


def ack_patch(user: str, now: datetime) -> dict[str, Any]:
    """A merge patch setting only spec.acknowledgement."""
    return {"spec": {"acknowledgement": {"by": user, "at": rfc3339(now)}}}


def append_note(incident: Mapping[str, Any], added: Mapping[str, str],
                also: Sequence[Mapping[str, Any]] = ()) -> list[dict[str, Any]]:
    """A JSON patch applying `also` and appending `added` to spec.notes. With no list yet, the
    list is created, guarded by the resourceVersion read, so a concurrent first note is never
    overwritten (the request fails and is tried again)."""
    spec = incident.get("spec") or {}
    if "notes" in spec:
        return [*also, {"op": "add", "path": "/spec/notes/-", "value": dict(added)}]
    guard = {"op": "test", "path": "/metadata/resourceVersion",
             "value": incident["metadata"]["resourceVersion"]}
    return [guard, *also, {"op": "add", "path": "/spec/notes", "value": [dict(added)]}]


def spec_set(path: str, value: Any) -> dict[str, Any]:
    return {"op": "add", "path": f"/spec/{path}", "value": value}


def generated_name(title: str) -> str:
    """generateName for a new incident: its title as a name (the server adds a suffix)."""
    stem = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")[:NAME_STEM_LIMIT].strip("-")
    return f"{stem or 'incident'}-"


def new_incident(args: argparse.Namespace, user: str, now: datetime) -> dict[str, Any]:
    """The Incident `open` creates, with a note saying who opened it."""
    spec: dict[str, Any] = {"title": args.title, "severity": args.severity,
                            "notes": [note(user, args.note or "Opened.", now)]}
    if args.description:
        spec["description"] = args.description
    if args.policy:
        spec["escalationPolicyRef"] = {"name": args.policy}
    if args.commander:
        spec["commander"] = args.commander
    if args.service:
        spec["impact"] = {"services": list(dict.fromkeys(args.service))}
    metadata = {"name": args.name} if args.name else {"generateName": generated_name(args.title)}
    return {"apiVersion": API_VERSION, "kind": KIND, "metadata": metadata, "spec": spec}


def lifecycle(incident: Mapping[str, Any]) -> str:
    """The status the operator acted on, else the one people set."""
    return str((incident.get("status") or {}).get("phase")
               or (incident.get("spec") or {}).get("status") or "Open")


def acknowledged_by(incident: Mapping[str, Any]) -> str | None:
    status = incident.get("status") or {}
    ack = (incident.get("spec") or {}).get("acknowledgement") or {}
    return status.get("acknowledgedBy") or ack.get("by")


def _level(incident: Mapping[str, Any]) -> str:
    escalation = (incident.get("status") or {}).get("escalation") or {}
    return str(escalation.get("level") or "-")


def list_rows(incidents: Iterable[Mapping[str, Any]], now: datetime) -> list[tuple[str, ...]]:
    """One row per incident: unresolved first, the most severe first, then the newest."""
    newest_first = sorted(incidents, reverse=True,
                          key=lambda i: i["metadata"].get("creationTimestamp") or "")
    ordered = sorted(newest_first, key=lambda i: (
        lifecycle(i) == "Resolved", (i.get("spec") or {}).get("severity", "P9")))
    rows = []
    for incident in ordered:
        meta, spec = incident["metadata"], incident.get("spec") or {}
        rows.append((
            meta.get("namespace", ""), meta["name"], spec.get("severity", "-"),
            lifecycle(incident), _level(incident), acknowledged_by(incident) or "-",
            age_of(meta.get("creationTimestamp"), now), one_line(str(spec.get("title") or ""))))
    return rows


def _when(value: str | None, now: datetime) -> str:
    return f"{value} ({age_of(value, now)} ago)" if value else "-"


def _source(spec: Mapping[str, Any]) -> str:
    source = spec.get("source") or {}
    if not source:
        return "opened by hand"
    fingerprint = source.get("fingerprint") or ""
    return " ".join(p for p in (source.get("kind"), source.get("name"),
                                f"(fingerprint {fingerprint[:12]})" if fingerprint else "") if p)


def _impact(spec: Mapping[str, Any]) -> str:
    impact = spec.get("impact") or {}
    parts = []
    if impact.get("services"):
        parts.append("services " + ", ".join(impact["services"]))
    if impact.get("usersAffected") is not None:
        parts.append(f"{impact['usersAffected']} users affected")
    if impact.get("summary"):
        parts.append(one_line(impact["summary"]))
    return "; ".join(parts) or "-"


def _escalation(spec: Mapping[str, Any], status: Mapping[str, Any]) -> str:
    policy = (spec.get("escalationPolicyRef") or {}).get("name")
    if not policy:
        return "no policy"
    escalation = status.get("escalation") or {}
    parts = [f"level {escalation.get('level') or 0}"]
    if escalation.get("nextDeadline"):
        parts.append(f"next {escalation['nextDeadline']}")
    if escalation.get("onCall"):
        parts.append(f"on call {escalation['onCall']}")
    return f"{policy} ({', '.join(parts)})"


def _durations(status: Mapping[str, Any]) -> str:
    parts = [f"{name} {human_duration(float(status[key]))}"
             for name, key in (("MTTA", "mttaSeconds"), ("MTTR", "mttrSeconds"))
             if status.get(key) is not None]
    return ", ".join(parts) or "-"


def _section(title: str, headers: Sequence[str], rows: Sequence[Sequence[str]],
             width: int | None, empty: str) -> list[str]:
    if not rows:
        return [f"{title}: {empty}"]
    table = format_columns(headers, rows, width)
    return [f"{title}:", *("  " + line for line in table.splitlines())]


def format_show(incident: Mapping[str, Any], now: datetime, width: int | None) -> str:
    """`show`: what the incident is, who has it, its alerts, notes, timeline and pages."""
    meta, spec = incident["metadata"], incident.get("spec") or {}
    status = incident.get("status") or {}
    ack = spec.get("acknowledgement") or {}
    acknowledged = (f"{ack['by']} at {ack.get('at', '-')}" if ack.get("by")
                    else "not acknowledged")
    people_status = spec.get("status") or "Open"
    state = lifecycle(incident)
    shown_state = state if state == people_status else f"{state} (spec.status {people_status})"
    lines = [
        f"Name:          {meta['name']}",
        f"Namespace:     {meta.get('namespace', '-')}",
        f"Title:         {one_line(str(spec.get('title') or ''))}",
        f"Severity:      {spec.get('severity', '-')}",
        f"Status:        {shown_state}",
        f"Commander:     {spec.get('commander') or '-'}",
        f"Escalation:    {_escalation(spec, status)}",
        f"Source:        {_source(spec)}",
        f"Opened:        {_when(status.get('openedAt') or meta.get('creationTimestamp'), now)}",
        f"Acknowledged:  {acknowledged}",
        f"Resolved:      {_when(status.get('resolvedAt'), now)}",
        f"MTTA/MTTR:     {_durations(status)}",
        f"Impact:        {_impact(spec)}",
    ]
    if spec.get("description"):
        lines += ["Description:", *("  " + line for line in spec["description"].splitlines())]
    alerts = status.get("alerts") or []
    firing = sum(1 for a in alerts if a.get("status") == "firing")
    truncated = status.get("truncatedAlerts") or 0
    counted = f"{firing} firing, {len(alerts) - firing} resolved" + (
        f", {truncated} more not listed" if truncated else "")
    lines += _section(f"Alerts ({counted})", ALERT_HEADERS, [
        (a.get("status", "-"), a.get("startsAt") or "-", _alert_text(a)) for a in alerts
    ], width, "none")
    lines += _section("Notes", NOTE_HEADERS, [
        (n.get("at", "-"), n.get("by", "-"), one_line(n.get("text", "")))
        for n in spec.get("notes") or []], width, "none")
    timeline = status.get("timeline") or []
    total = status.get("timelineTotal") or len(timeline)
    title = "Timeline" + (f" (newest {len(timeline)} of {total}"
                          + (f"; all in ConfigMap {status['timelineRef']}"
                             if status.get("timelineRef") else "") + ")"
                          if total > len(timeline) else "")
    lines += _section(title, TIMELINE_HEADERS, [
        (e.get("time", "-"), e.get("event", "-"), e.get("by") or "operator",
         one_line(e.get("message", ""))) for e in timeline], width, "empty")
    lines += _section("Notifications", NOTIFICATION_HEADERS, [
        (r.get("time", "-"), r.get("channel", "-"), r.get("event", "-"), str(r.get("level", 0)),
         r.get("severity", "-"), r.get("result", "-"))
        for r in status.get("notifications") or []], width, "none sent")
    if status.get("postmortemRef"):
        lines.append(f"Postmortem:    ConfigMap {status['postmortemRef']}")
    return "\n".join(lines) + "\n"


def _alert_text(alert: Mapping[str, Any]) -> str:
    labels = dict(alert.get("labels") or {})
    name = labels.pop("alertname", "")
    inner = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    return name + (f"{{{inner}}}" if inner else "")


# --- I/O part ------------------------------------------------------------------------------------


def whoami(apis: Apis) -> str:
    """The caller's username as the API server knows it (SelfSubjectReview, what `kubectl auth
    whoami` asks)."""
    review = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
    try:
        answer = client.AuthenticationV1Api(apis.client).create_self_subject_review(
            review, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="create", resource="selfsubjectreviews.authentication.k8s.io",
                        what="a SelfSubjectReview (who am I)", namespace=None) from exc
    username = answer.status.user_info.username if answer.status else None
    if not username:
        raise PluginError("the API server did not say who you are (SelfSubjectReview)")
    return str(username)


def _refused(exc: Exception, verb: str, what: str, namespace: str,
             missing: str | None = None) -> PluginError:
    """The admission policy's own words when it refused; otherwise the shared messages."""
    if isinstance(exc, ApiException) and exc.status in (403, 422):
        try:
            message = json.loads(exc.body or "{}").get("message", "")
        except ValueError:
            message = ""
        if "ValidatingAdmissionPolicy" in message or exc.status == 422:
            return PluginError(f"cannot {verb} {what}: {message}")
    return api_error(exc, verb=verb, resource=RESOURCE, what=what, namespace=namespace,
                     missing=missing)


def _connect(args: argparse.Namespace) -> tuple[Apis, str]:
    apis, namespace = connection.connect(args)
    assert namespace is not None  # only `list` takes -A
    return apis, namespace


def _missing(name: str, namespace: str) -> str:
    return f"Incident {name!r} not found in namespace {namespace!r}"


def read_incident(apis: Apis, namespace: str, name: str) -> dict[str, Any]:
    try:
        return cast(dict[str, Any], apis.custom.get_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, _request_timeout=REQUEST_TIMEOUT_SECONDS))
    except REQUEST_ERRORS as exc:
        raise _refused(exc, "get", f"{KIND} {name}", namespace, _missing(name, namespace)
                       ) from exc


def _patch(apis: Apis, namespace: str, name: str, body: Any, content_type: str) -> None:
    try:
        apis.custom.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, name, body, _content_type=content_type,
            _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except REQUEST_ERRORS as exc:
        raise _refused(exc, "patch", f"{KIND} {name}", namespace, _missing(name, namespace)
                       ) from exc


def _append(apis: Apis, namespace: str, name: str, added: Mapping[str, str],
            also: Sequence[Mapping[str, Any]] = ()) -> None:
    """Append a note (and apply `also`), read again and retried if another writer raced."""
    for attempt in range(APPEND_ATTEMPTS):
        incident = read_incident(apis, namespace, name)
        try:
            _patch(apis, namespace, name, append_note(incident, added, also), JSON_PATCH)
            return
        except PluginError:
            if attempt == APPEND_ATTEMPTS - 1 or "notes" in (incident.get("spec") or {}):
                raise


def _acting(args: argparse.Namespace) -> tuple[Apis, str, str, datetime]:
    apis, namespace = _connect(args)
    return apis, namespace, whoami(apis), datetime.now(UTC)


def incident_open(args: argparse.Namespace) -> int:
    apis, namespace, user, now = _acting(args)
    body = new_incident(args, user, now)
    try:
        created = apis.custom.create_namespaced_custom_object(
            GROUP, VERSION, namespace, PLURAL, body, _request_timeout=REQUEST_TIMEOUT_SECONDS)
    except REQUEST_ERRORS as exc:
        raise _refused(exc, "create", "an Incident", namespace) from exc
    print(f"incident/{created['metadata']['name']} opened ({args.severity}) by {user}: "
          f"{args.title}")
    return EXIT_OK


def incident_ack(args: argparse.Namespace) -> int:
    apis, namespace, user, now = _acting(args)
    current = read_incident(apis, namespace, args.incident)
    ack = (current.get("spec") or {}).get("acknowledgement") or {}
    if ack.get("by"):
        print(f"incident/{args.incident} was acknowledged by {ack['by']} at {ack.get('at')}")
        return EXIT_OK
    _patch(apis, namespace, args.incident, ack_patch(user, now), MERGE_PATCH)
    print(f"incident/{args.incident} acknowledged by {user}")
    return EXIT_OK


def incident_note(args: argparse.Namespace) -> int:
    apis, namespace, user, now = _acting(args)
    _append(apis, namespace, args.incident, note(user, args.text, now))
    print(f"incident/{args.incident}: note added by {user}")
    return EXIT_OK


def incident_assign(args: argparse.Namespace) -> int:
    apis, namespace, user, now = _acting(args)
    text = f"Assigned to {args.commander}." + (f" {args.note}" if args.note else "")
    _append(apis, namespace, args.incident, note(user, text, now),
            [spec_set("commander", args.commander)])
    print(f"incident/{args.incident} assigned to {args.commander} by {user}")
    return EXIT_OK


def incident_resolve(args: argparse.Namespace) -> int:
    apis, namespace, user, now = _acting(args)
    text = "Resolved." + (f" {args.note}" if args.note else "")
    _append(apis, namespace, args.incident, note(user, text, now),
            [spec_set("status", "Resolved")])
    print(f"incident/{args.incident} resolved by {user}")
    return EXIT_OK


def incident_list(args: argparse.Namespace) -> int:
    apis, namespace = connection.connect(args)
    try:
        found = connection.list_kind(apis.custom, KIND, PLURAL, namespace)
    except REQUEST_ERRORS as exc:
        raise api_error(exc, verb="list", resource=RESOURCE, what="Incidents",
                        namespace=namespace) from exc
    if not args.all:
        found = [i for i in found if lifecycle(i) != "Resolved"]
    rows = list_rows(found, datetime.now(UTC))
    if not rows:
        print("No incidents found." if args.all else "No open incidents (--all shows "
              "resolved ones too).", file=sys.stderr)
        return EXIT_OK
    sys.stdout.write(format_columns(LIST_HEADERS, rows, terminal_width()))
    return EXIT_OK


def incident_show(args: argparse.Namespace) -> int:
    apis, namespace = _connect(args)
    incident = read_incident(apis, namespace, args.incident)
    sys.stdout.write(format_show(incident, datetime.now(UTC), terminal_width()))
    return EXIT_OK


ACTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "open": incident_open,
    "ack": incident_ack,
    "note": incident_note,
    "assign": incident_assign,
    "resolve": incident_resolve,
    "list": incident_list,
    "show": incident_show,
}


def run(args: argparse.Namespace) -> int:
    return ACTIONS[args.incident_command](args)


def add_parser(commands: Any) -> None:
    """`incident open|ack|resolve|note|assign|list|show`."""
    scoped = argparse.ArgumentParser(add_help=False)
    scoped.add_argument("-n", "--namespace",
                        help="namespace of the incident (default: the current context's)")
    connection.add_connection_flags(scoped)
    named = argparse.ArgumentParser(add_help=False, parents=[scoped])
    named.add_argument("incident", metavar="INCIDENT", help="name of the Incident")
    incident = commands.add_parser(
        "incident", help="open, acknowledge, note, assign, resolve, list and show incidents",
        description="Work incidents; every action is signed with your username (kubectl auth "
        "whoami).")
    incident.set_defaults(run=run)
    actions = incident.add_subparsers(dest="incident_command", required=True, metavar="ACTION")

    opened = actions.add_parser("open", parents=[scoped], help="open an incident",
                                description="Open an incident by hand.")
    opened.add_argument("title", metavar="TITLE", help="one line: what is wrong")
    opened.add_argument("--severity", required=True, choices=SEVERITIES,
                        help="P0 (critical, everyone) to P3 (low)")
    opened.add_argument("--description", help="details")
    opened.add_argument("--policy", metavar="NAME", help="EscalationPolicy to follow")
    opened.add_argument("--commander", metavar="USER", help="who leads the response")
    opened.add_argument("--service", action="append", default=[], metavar="SERVICE",
                        help="an affected service (repeatable)")
    opened.add_argument("--name", help="the Incident's name (default: from the title)")
    opened.add_argument("--note", help="the first note (default: 'Opened.')")

    actions.add_parser("ack", parents=[named], help="acknowledge: stops escalation",
                       description="Acknowledge the incident as yourself; escalation stops.")
    noted = actions.add_parser("note", parents=[named], help="add a note",
                               description="Add a note signed with your username.")
    noted.add_argument("text", metavar="TEXT", help="the note")
    assigned = actions.add_parser("assign", parents=[named], help="set the commander",
                                  description="Make USER the incident commander.")
    assigned.add_argument("commander", metavar="USER", help="the new commander")
    assigned.add_argument("--note", help="why, added to the note recording it")
    resolved = actions.add_parser("resolve", parents=[named], help="resolve the incident",
                                  description="Set the incident's status to Resolved.")
    resolved.add_argument("--note", help="what fixed it, added to the note recording it")

    listed = actions.add_parser("list", help="list open incidents",
                                description="Open incidents, the most severe first.")
    connection.add_scope_flags(listed, "incidents")
    connection.add_connection_flags(listed)
    listed.add_argument("--all", action="store_true", help="resolved incidents too")
    actions.add_parser("show", parents=[named], help="show one incident",
                       description="An incident with its alerts, notes, timeline and "
                       "notifications.")
