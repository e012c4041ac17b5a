"""Prometheus and Alertmanager as oracles for AlertRule: the operator's webhook compared with
Alertmanager's field by field, and the operator's state transitions with Prometheus' ALERTS
series, each turned into a table the tests print and assert on.

What may differ is listed here once, with the reason, and documented in README.md
("What differs from Alertmanager"); everything else must be equal."""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import ProtocolError

from runbook_operator.api.common import GROUP, VERSION
from runbook_operator.devcluster.waiting import wait_for

#: The e2e operator's --external-url (tests/e2e/conftest.py); Alertmanager is started with
#: the same --web.external-url, so externalURL must be equal.
OPERATOR_EXTERNAL_URL = "http://runbook-operator.example.test"
ZERO_TIME = "0001-01-01T00:00:00Z"
GROUP_FIELDS = ("version", "groupKey", "truncatedAlerts", "status", "receiver", "groupLabels",
                "commonLabels", "commonAnnotations", "externalURL")
ALERT_FIELDS = ("status", "labels", "annotations", "fingerprint")
#: Fields that may differ, and why (README.md, "What differs from Alertmanager").
DOCUMENTED = {
    "startsAt": "each evaluator's own evaluation time (within one interval plus scrape "
                "jitter; the operator's to the microsecond)",
    "endsAt": "each evaluator's own evaluation time (within one interval plus scrape "
              "jitter; the operator's to the microsecond)",
    "generatorURL": "Prometheus links its alerting expression, the operator the rule's query",
    "User-Agent": "the sender's name",
}


@dataclass(frozen=True)
class Row:
    """One compared field: the operator's value, Alertmanager's, and the verdict."""

    field: str
    ours: Any
    theirs: Any
    verdict: str
    """`same`, `documented: <why>`, or `DIFFERS`."""


def _time(text: str) -> datetime | None:
    return None if text == ZERO_TIME else datetime.fromisoformat(text)


def _times_agree(ours: str, theirs: str, tolerance: timedelta) -> bool:
    a, b = _time(ours), _time(theirs)
    if a is None or b is None:
        return a is b
    return abs(a - b) <= tolerance


def _generator_urls_agree(ours: str, theirs: str, query: str, expression: str) -> bool:
    """The same Prometheus and page; the operator's link shows the query, Prometheus' its
    expression (as it prints it)."""
    a, b = urlsplit(ours), urlsplit(theirs)
    qa, qb = parse_qs(a.query), parse_qs(b.query)
    return ((a.scheme, a.netloc, a.path) == (b.scheme, b.netloc, b.path) == (
        a.scheme, a.netloc, "/graph") and qa.get("g0.tab") == qb.get("g0.tab") == ["1"]
        and qa.get("g0.expr") == [query] and qb.get("g0.expr") == [expression])


def compare_webhooks(ours: Mapping[str, Any], theirs: Mapping[str, Any], *, query: str,
                     expression: str, tolerance: timedelta) -> list[Row]:
    """Every field of two Alertmanager-v4 bodies, the operator's and Alertmanager's."""
    rows = [Row("keys", sorted(ours), sorted(theirs),
                "same" if sorted(ours) == sorted(theirs) else "DIFFERS")]
    for field in GROUP_FIELDS:
        a, b = ours.get(field), theirs.get(field)
        rows.append(Row(field, a, b, "same" if a == b else "DIFFERS"))
    ours_alerts, theirs_alerts = ours.get("alerts", []), theirs.get("alerts", [])
    rows.append(Row("len(alerts)", len(ours_alerts), len(theirs_alerts),
                    "same" if len(ours_alerts) == len(theirs_alerts) else "DIFFERS"))
    for n, (a, b) in enumerate(zip(ours_alerts, theirs_alerts, strict=False)):
        rows.append(Row(f"alerts[{n}] keys", sorted(a), sorted(b),
                        "same" if sorted(a) == sorted(b) else "DIFFERS"))
        for field in ALERT_FIELDS:
            rows.append(Row(f"alerts[{n}].{field}", a.get(field), b.get(field),
                            "same" if a.get(field) == b.get(field) else "DIFFERS"))
        for field in ("startsAt", "endsAt"):
            x, y = a.get(field), b.get(field)
            agree = x == y or _times_agree(x, y, tolerance)
            rows.append(Row(f"alerts[{n}].{field}", x, y,
                            "same" if x == y else
                            f"documented: {DOCUMENTED[field]}" if agree else "DIFFERS"))
        x, y = a.get("generatorURL"), b.get("generatorURL")
        agree = _generator_urls_agree(x, y, query, expression)
        rows.append(Row(f"alerts[{n}].generatorURL", x, y,
                        "same" if x == y else
                        f"documented: {DOCUMENTED['generatorURL']}" if agree else "DIFFERS"))
    return rows


def compare_headers(ours: Mapping[str, str], theirs: Mapping[str, str]) -> list[Row]:
    """The request headers a receiver could look at."""
    rows = []
    for name in ("content-type", "user-agent"):
        a, b = ours.get(name), theirs.get(name)
        verdict = ("same" if a == b else f"documented: {DOCUMENTED['User-Agent']}"
                   if name == "user-agent" else "DIFFERS")
        rows.append(Row(name, a, b, verdict))
    return rows


def table(title: str, rows: Sequence[Row]) -> str:
    """The rows as text for the test's output."""
    lines = [f"== {title}"]
    for row in rows:
        lines.append(f"{row.verdict:<10.10} {row.field}")
        if row.verdict != "same" or row.field.endswith(("labels", "annotations")):
            lines.append(f"    operator:     {row.ours!r}")
            lines.append(f"    alertmanager: {row.theirs!r}")
        if row.verdict.startswith("documented"):
            lines.append(f"    ({row.verdict})")
    return "\n".join(lines)


def undocumented(rows: Sequence[Row]) -> list[Row]:
    return [row for row in rows if row.verdict == "DIFFERS"]


# --- state transitions ------------------------------------------------------------------------

#: The operator's instance states as Prometheus' alert states.
PROMETHEUS_STATE = {"Normal": "inactive", "NoData": "inactive", "Pending": "pending",
                    "Firing": "firing", "Recovering": "firing", "Error": "error"}
Transition = tuple[str, datetime]


def prometheus_rule(prometheus_url: str, name: str) -> dict[str, Any]:
    """The alerting rule `name` as Prometheus' /api/v1/rules shows it (state,
    lastEvaluation, alerts)."""
    groups = httpx.get(f"{prometheus_url}/api/v1/rules", params={"type": "alert"},
                       timeout=5).json()["data"]["groups"]
    return next(r for g in groups for r in g["rules"] if r["name"] == name)


def wait_until_restored(prometheus_url: str, name: str, interval: timedelta) -> None:
    """Until Prometheus writes ALERTS for its rules: it starts to after restoring their `for`
    state, which follows its second evaluation of the group."""
    def evaluated() -> datetime | None:
        last = prometheus_rule(prometheus_url, name)["lastEvaluation"]
        return None if last.startswith("0001") else datetime.fromisoformat(last)

    first = wait_for(evaluated, f"Prometheus' first evaluation of {name}", timeout=60)
    wait_for(lambda: (evaluated() or first) >= first + 2 * interval,
             f"Prometheus' third evaluation of {name}", timeout=60)


def prometheus_transitions(prometheus_url: str, name: str, window: timedelta,
                           interval: timedelta) -> list[Transition]:
    """Prometheus' own transitions of alert `name` from its ALERTS series over `window`:
    one sample per evaluation while pending or firing, none while inactive, so an alert is
    inactive from one interval after a sample that the next one does not follow within
    about an interval, or after the last one when the rule is inactive now."""
    now = datetime.now(UTC)
    answer = httpx.get(f"{prometheus_url}/api/v1/query", timeout=10, params={
        "query": f'ALERTS{{alertname="{name}"}}[{int(window.total_seconds())}s]',
        "time": now.timestamp()}).json()
    samples = sorted((datetime.fromtimestamp(float(t), UTC), series["metric"]["alertstate"])
                     for series in answer["data"]["result"] for t, _ in series["values"])
    gap = 1.5 * interval
    transitions: list[Transition] = []
    for n, (at, state) in enumerate(samples):
        if n and at - samples[n - 1][0] > gap:
            transitions.append(("inactive", samples[n - 1][0] + interval))
        if not transitions or transitions[-1][0] != state:
            transitions.append((state, at))
    inactive = prometheus_rule(prometheus_url, name)["state"] == "inactive"
    if samples and (inactive or now - samples[-1][0] > gap):
        transitions.append(("inactive", samples[-1][0] + interval))
    return transitions


def operator_transitions(statuses: Sequence[Mapping[str, Any]]) -> list[Transition]:
    """The operator's transitions from every status it wrote for one rule, in order: each
    state (as Prometheus names it) from the evaluation that first showed it."""
    transitions: list[Transition] = []
    for status in statuses:
        if not status.get("state") or not status.get("lastEvaluation"):
            continue
        state = PROMETHEUS_STATE[status["state"]]
        at = datetime.fromisoformat(status["lastEvaluation"])
        if not transitions or transitions[-1][0] != state:
            transitions.append((state, at))
    if transitions and transitions[0][0] == "inactive":
        transitions = transitions[1:]
    return transitions


def compare_transitions(ours: Sequence[Transition], theirs: Sequence[Transition],
                        tolerance: timedelta) -> list[str]:
    """What disagrees: the order of states, or a transition further apart than
    `tolerance`."""
    problems = []
    if [s for s, _ in ours] != [s for s, _ in theirs]:
        problems.append(f"states differ: operator {[s for s, _ in ours]}, "
                        f"Prometheus {[s for s, _ in theirs]}")
    for (state, a), (_, b) in zip(ours, theirs, strict=False):
        if abs(a - b) > tolerance:
            problems.append(f"{state}: operator at {a:%H:%M:%S.%f}, Prometheus at "
                            f"{b:%H:%M:%S.%f}, {abs(a - b).total_seconds():.1f}s apart")
    return problems


def transitions_table(name: str, ours: Sequence[Transition],
                      theirs: Sequence[Transition]) -> str:
    lines = [f"== {name}: operator | Prometheus ALERTS | operator - Prometheus"]
    for n in range(max(len(ours), len(theirs))):
        a = ours[n] if n < len(ours) else None
        b = theirs[n] if n < len(theirs) else None
        shown = [f"{t[0]:<8} {t[1]:%H:%M:%S.%f}"[:24] if t else f"{'-':<24}" for t in (a, b)]
        gap = f"{(a[1] - b[1]).total_seconds():+.2f}s" if a and b else "-"
        lines.append(f"  {shown[0]} | {shown[1]} | {gap}")
    return "\n".join(lines)


class StatusRecorder:
    """Every status the operator writes for the AlertRules of a namespace, in order, from a
    watch (a status written and overwritten between two polls would be missed by polling).
    A watch the API server ends is resumed from the last resourceVersion seen."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.api = api
        self.namespace = namespace
        self.statuses: dict[str, list[dict[str, Any]]] = {}
        self._watch = watch.Watch()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        objects = client.CustomObjectsApi(self.api)
        version: str | None = None
        while not self._stopped.is_set():
            try:
                for event in self._watch.stream(
                        objects.list_namespaced_custom_object, GROUP, VERSION, self.namespace,
                        "alertrules", resource_version=version, timeout_seconds=60):
                    body = event["object"]
                    version = body["metadata"]["resourceVersion"]
                    status = body.get("status") or {}
                    history = self.statuses.setdefault(body["metadata"]["name"], [])
                    if not history or history[-1] != status:
                        history.append(status)
            except ApiException as error:
                if error.status != 410:
                    raise
                version = None  # too old: list again (repeats nothing: equal statuses)
            except ProtocolError:
                continue

    def of(self, name: str) -> list[dict[str, Any]]:
        return list(self.statuses.get(name, []))

    def __enter__(self) -> StatusRecorder:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopped.set()
        self._watch.stop()
