"""core.incident.sources: what AlertRules and BackupPolicies report, the incident a report opens
(its deterministic name, spec and labels) and how an open incident's status follows reports."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from runbook_operator.api.common import DNS_NAME_PATTERN
from runbook_operator.api.incident import (
    MAX_RELATED,
    Incident,
    IncidentAlert,
    IncidentSource,
    IncidentSpec,
    IncidentStatus,
    RelatedObject,
)
from runbook_operator.core.incident.records import SOURCE_LABEL, source_label
from runbook_operator.core.incident.sources import (
    Opening,
    Report,
    after_report,
    alert_rule_reports,
    alerts_message,
    backup_policy_report,
    by_label,
    incident_name,
    is_open,
    label_selector,
    new_incident,
    open_incident,
    recorded,
)

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
TRIGGER = {"severity": "P2", "escalationPolicyRef": {"name": "team"},
           "resolveWhenRecovered": True}


def rule_body(instances: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "checkout-5xx", "namespace": "shop", "uid": "u-1"},
        "spec": {"query": "errors", "condition": {"operator": "gt", "threshold": 0.05},
                 "labels": {"team": "shop"}, "incident": TRIGGER,
                 "annotations": {"summary": "{{ $labels.service }} fails at {{ $value }}"},
                 **spec},
        "status": {"instances": instances},
    }


def instance(fingerprint: str, state: str, **times: datetime) -> dict[str, Any]:
    wire = {re.sub(r"_(\w)", lambda m: m.group(1).upper(), k): v.isoformat()
            for k, v in times.items()}
    return {"fingerprint": fingerprint, "labels": {"service": "checkout"}, "state": state,
            "lastValue": "0.09", **wire}


def policy_body(job: dict[str, Any] | None = None, rpo_met: bool | None = None,
                last_success: datetime | None = None) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": []}
    if job is not None:
        status["lastJob"] = job
    if rpo_met is not None:
        status["conditions"].append({
            "type": "RPOMet", "status": str(rpo_met), "reason": "R", "message": "rpo says",
            "lastTransitionTime": (T0 + 5 * MIN).isoformat()})
    if last_success is not None:
        status["lastSuccessfulTime"] = last_success.isoformat()
    return {
        "metadata": {"name": "shop-db", "namespace": "shop", "uid": "u-2"},
        "spec": {"schedule": "0 2 * * *", "rpo": "25h", "incident": TRIGGER,
                 "source": {"command": {"image": "busybox", "command": ["true"]}}},
        "status": status,
    }


def failed_job(name: str = "shop-db-now-1", minute: int = 0) -> dict[str, Any]:
    return {"name": name, "outcome": "Failed", "finishedAt": (T0 + minute * MIN).isoformat(),
            "reason": "DumpFailed", "message": "password authentication failed"}


def report(firing: bool = True, episode: str = "e1", alerts: tuple[IncidentAlert, ...] = (),
           **changes: Any) -> Report:
    base: dict[str, Any] = {
        "source": IncidentSource(kind="AlertRule", name="checkout-5xx", fingerprint="f1"),
        "what": "AlertRule checkout-5xx", "firing": firing, "episode": episode,
        "alerts": alerts or (alert("a1", "firing" if firing else "resolved"),),
        "opening": Opening(title="Checkout fails", severity="P1", policy="team",
                           resolve_when_recovered=True),
        "recovered_at": None if firing else T0 + 9 * MIN,
    }
    return Report(**{**base, **changes})


def alert(fingerprint: str, status: str = "firing", start: int = 0,
          **labels: str) -> IncidentAlert:
    return IncidentAlert(fingerprint=fingerprint, status=status,
                         labels={"alertname": "Errors", **labels},
                         starts_at=T0 + start * MIN if status == "firing" else None)


def spec(resolve: bool = True) -> IncidentSpec:
    return IncidentSpec(title="t", severity="P1", resolve_when_source_recovers=resolve)


# AlertRule reports


def test_an_alert_rule_without_incident_trigger_reports_nothing() -> None:
    body = rule_body([instance("f1", "Firing", firing_since=T0)])
    del body["spec"]["incident"]
    assert alert_rule_reports(body) == []


def test_a_firing_instance_reports_its_episode_alert_and_rendered_title() -> None:
    body = rule_body([instance("f1", "Firing", firing_since=T0),
                      instance("f2", "Pending", pending_since=T0),
                      instance("f3", "Normal", resolved_at=T0 + MIN)])
    firing, resolved = alert_rule_reports(body)
    assert firing.firing and not resolved.firing
    assert firing.source == IncidentSource(kind="AlertRule", name="checkout-5xx",
                                           fingerprint="f1")
    assert firing.episode == "u-1/2026-12-01T09:00:00Z"
    assert firing.opening == Opening(title="checkout fails at 0.09", severity="P2",
                                     description="AlertRule checkout-5xx: errors gt 0.05",
                                     policy="team", resolve_when_recovered=True)
    (only,) = firing.alerts
    assert only.labels == {"team": "shop", "service": "checkout", "alertname": "checkout-5xx"}
    assert (only.status, only.starts_at, only.ends_at) == ("firing", T0, None)
    assert firing.related == (RelatedObject(api_version="runbook.dev/v1alpha1",
                                            kind="AlertRule", name="checkout-5xx"),)
    assert resolved.source.fingerprint == "f3" and resolved.recovered_at == T0 + MIN
    assert resolved.alerts[0].status == "resolved"


def test_a_recovering_instance_still_fires_and_a_rule_without_summary_names_its_labels() -> None:
    body = rule_body([instance("f1", "Recovering", firing_since=T0)], annotations={})
    (recovering,) = alert_rule_reports(body)
    assert recovering.firing
    assert recovering.opening.title == "checkout-5xx is firing (service=checkout)"


# BackupPolicy reports


def test_a_failed_backup_run_fires_and_relates_its_job() -> None:
    found = backup_policy_report(policy_body(failed_job(), rpo_met=True,
                                             last_success=T0 - 60 * MIN))
    assert found is not None and found.firing
    assert found.episode == "u-2/shop-db-now-1"
    assert found.opening.title == "Backup shop-db failed: DumpFailed"
    assert "password authentication failed" in found.opening.description
    failed, rpo = found.alerts
    assert (failed.status, failed.labels["job"], failed.starts_at) == (
        "firing", "shop-db-now-1", T0)
    assert rpo.status == "resolved"
    assert [r.kind for r in found.related] == ["BackupPolicy", "Job"]


def test_an_rpo_breach_fires_without_a_failed_run_and_a_success_recovers() -> None:
    breached = backup_policy_report(policy_body(rpo_met=False))
    assert breached is not None and breached.firing
    assert breached.episode == "u-2/rpo/2026-12-01T09:05:00Z"
    assert breached.opening.title == "Backup shop-db breached its RPO of 25h"
    assert [a.status for a in breached.alerts] == ["resolved", "firing"]
    ok = dict(failed_job(), outcome="Succeeded")
    recovered = backup_policy_report(policy_body(ok, rpo_met=True, last_success=T0))
    assert recovered is not None and not recovered.firing and recovered.recovered_at == T0


def test_each_failed_run_is_an_episode_of_the_one_source() -> None:
    first = backup_policy_report(policy_body(failed_job("j1", 0), last_success=T0 - MIN))
    retry = backup_policy_report(policy_body(failed_job("j1", 0), last_success=T0 - MIN))
    again = backup_policy_report(policy_body(failed_job("j2", 5), last_success=T0 - MIN))
    assert first and retry and again
    assert incident_name(first) == incident_name(retry) != incident_name(again)
    assert first.source == again.source


def incident_of(report_: Report, status: IncidentStatus, name: str = "x") -> dict[str, Any]:
    return {"metadata": {"name": name}, "status": status.to_wire()}


def test_a_problem_is_recorded_by_its_name_or_by_one_of_its_firing_alerts() -> None:
    opened = report(alerts=(alert("a1", start=0), alert("a2", start=1)))
    held = after_report(IncidentStatus(), spec(), opened, T0)
    assert recorded(opened, [incident_of(opened, IncidentStatus(), incident_name(opened))])
    assert recorded(opened, [incident_of(opened, held)])
    one_goes_on = report(episode="e2", alerts=(alert("a2", start=1), alert("a3", start=7)))
    assert recorded(one_goes_on, [incident_of(opened, held)])
    anew = report(episode="e3", alerts=(alert("a1", start=20),))
    assert not recorded(anew, [incident_of(opened, held)])
    assert not recorded(opened, [])


# The incident a report opens


@given(st.text(min_size=0, max_size=300), st.text(max_size=40))
def test_names_are_valid_stable_and_differ_by_episode(source: str, episode: str) -> None:
    one = report(source=IncidentSource(kind="AlertRule", name=source[:253], fingerprint="f"),
                 episode=episode)
    name = incident_name(one)
    assert re.fullmatch(DNS_NAME_PATTERN, name) and len(name) <= 63
    assert name == incident_name(one)
    assert name != incident_name(report(source=one.source, episode=episode + "x"))


def test_a_new_incident_has_the_source_label_and_no_owner() -> None:
    opened = report()
    body = new_incident(opened)
    incident = Incident.model_validate(body)
    assert body["metadata"]["labels"][SOURCE_LABEL] == source_label(
        "AlertRule", "checkout-5xx", "f1")
    assert "ownerReferences" not in body["metadata"]
    assert body["metadata"]["name"].startswith("checkout-5xx-")
    assert incident.spec.source == opened.source
    assert (incident.spec.severity, incident.spec.status) == ("P1", "Open")
    assert incident.spec.escalation_policy_ref is not None
    assert incident.spec.escalation_policy_ref.name == "team"
    assert incident.spec.resolve_when_source_recovers
    assert incident.spec.acknowledgement is None and incident.spec.notes == []


def test_open_means_resolved_neither_by_people_nor_by_the_operator() -> None:
    def body(name: str, created: str, spec_status: str = "Open",
             phase: str | None = None) -> dict[str, Any]:
        return {"metadata": {"name": name, "creationTimestamp": created,
                             "labels": {SOURCE_LABEL: "l"}},
                "spec": {"status": spec_status}, "status": {"phase": phase} if phase else {}}

    people = body("a", "2026-12-01T09:00:00Z", spec_status="Resolved")
    operator = body("b", "2026-12-01T09:01:00Z", phase="Resolved")
    newer, older = body("d", "2026-12-01T09:03:00Z"), body("c", "2026-12-01T09:02:00Z")
    assert not is_open(people) and not is_open(operator) and is_open(newer)
    assert open_incident([people, operator, newer, older]) is older
    assert open_incident([people]) is None
    assert by_label([people, {"metadata": {"name": "x"}}]) == {"l": [people]}


def test_one_selector_finds_the_incidents_of_several_reports() -> None:
    one, two = report(), report(source=IncidentSource(kind="AlertRule", name="n",
                                                      fingerprint="f2"))
    assert label_selector([two, one, one]) == (
        f"{SOURCE_LABEL} in ({','.join(sorted([one.label, two.label]))})")


# How an open incident follows its source


def test_the_first_report_records_the_alerts_and_the_same_report_changes_nothing() -> None:
    opened = report(alerts=(alert("a1", service="checkout"), alert("a2")))
    first = after_report(IncidentStatus(), spec(), opened, T0)
    assert [a.fingerprint for a in first.alerts] == ["a1", "a2"]
    (entry,) = first.timeline
    assert (entry.event, entry.by) == ("AlertsChanged", None)
    assert entry.message == 'alerts: 2 firing, 0 resolved: Errors{service="checkout"}; Errors'
    assert first.related == [] and first.phase is None
    assert after_report(first, spec(), opened, T0 + MIN) == first


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.booleans(), st.booleans()),
                min_size=1, max_size=12))
def test_any_report_applied_twice_is_applied_once(steps: list[tuple[str, bool, bool]]) -> None:
    status = IncidentStatus()
    for minute, (fingerprint, firing, source_firing) in enumerate(steps):
        now = T0 + minute * MIN
        one = report(firing=source_firing,
                     alerts=(alert(fingerprint, "firing" if firing else "resolved", minute),))
        status = after_report(status, spec(resolve=False), one, now)
        assert after_report(status, spec(resolve=False), one, now + MIN) == status


def test_recovery_is_recorded_once_and_resolving_is_left_to_the_incident() -> None:
    opened = after_report(IncidentStatus(), spec(), report(), T0)
    recovered = report(firing=False)
    for resolve in (True, False):
        after = after_report(opened, spec(resolve=resolve), recovered, T0 + 10 * MIN)
        assert after.source_recovered_at == T0 + 10 * MIN
        assert after.phase is None and after.resolved_at is None
        assert [(a.status, a.starts_at, a.ends_at) for a in after.alerts] == [
            ("resolved", T0, T0 + 9 * MIN)]
        entry = after.timeline[-1]
        assert (entry.event, entry.message) == ("SourceRecovered",
                                                "AlertRule checkout-5xx recovered")
        assert after_report(after, spec(resolve=resolve), recovered, T0 + 11 * MIN) == after


def test_a_source_that_recovers_ends_alerts_it_no_longer_reports() -> None:
    opened = after_report(IncidentStatus(), spec(), report(alerts=(alert("a1"), alert("a2"))),
                          T0)
    only_one = report(firing=False, alerts=(alert("a1", "resolved"),))
    after = after_report(opened, spec(resolve=False), only_one, T0 + 10 * MIN)
    assert {(a.fingerprint, a.status, a.ends_at) for a in after.alerts} == {
        ("a1", "resolved", T0 + 9 * MIN), ("a2", "resolved", T0 + 9 * MIN)}


def test_firing_again_while_open_updates_the_same_incident() -> None:
    opened = after_report(IncidentStatus(), spec(resolve=False), report(), T0)
    recovered = after_report(opened, spec(resolve=False), report(firing=False), T0 + 10 * MIN)
    again = after_report(recovered, spec(resolve=False),
                         report(episode="e2", alerts=(alert("a1", start=20),)), T0 + 20 * MIN)
    assert again.alerts[0].status == "firing" and again.alerts[0].starts_at == T0 + 20 * MIN
    assert again.timeline[-1].message.startswith("firing again: 1 firing")
    assert [e.event for e in again.timeline] == ["AlertsChanged", "SourceRecovered",
                                                 "AlertsChanged"]
    assert recovered.source_recovered_at is not None and again.source_recovered_at is None


def test_resolved_alerts_the_incident_never_had_are_not_added() -> None:
    opened = after_report(IncidentStatus(), spec(), report(alerts=(alert("a1"),)), T0)
    both = report(alerts=(alert("a1"), alert("zz", "resolved")))
    assert after_report(opened, spec(), both, T0 + MIN) == opened


def test_alerts_and_related_objects_stay_bounded() -> None:
    many = tuple(alert(f"a{n:02d}") for n in range(55))
    related = tuple(RelatedObject(api_version="batch/v1", kind="Job", name=f"j{n}")
                    for n in range(MAX_RELATED + 5))
    status = after_report(IncidentStatus(), spec(), report(alerts=many, truncated=3,
                                                           related=related), T0)
    assert len(status.alerts) == 50 and status.truncated_alerts == 5 + 3
    assert len(status.related) == MAX_RELATED
    assert status.related[0].name == "j0" and status.related[-1].name == f"j{MAX_RELATED + 4}"
    assert "8 more not listed" in status.timeline[-1].message


def test_the_timeline_message_names_a_few_alerts_and_counts_the_rest() -> None:
    alerts = [alert(f"a{n}", instance=f"web-{n}") for n in range(5)] + [alert("r", "resolved")]
    assert alerts_message(alerts, 0, again=False) == (
        'alerts: 5 firing, 1 resolved: Errors{instance="web-0"}; Errors{instance="web-1"}; '
        'Errors{instance="web-2"}; and 2 more')
