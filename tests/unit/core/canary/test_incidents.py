from __future__ import annotations

from datetime import timedelta

from runbook_operator.api.canaryrollout import CanaryRolloutStatus, Measurement, Rollback
from runbook_operator.core.canary.incidents import rollback_report
from runbook_operator.core.incident.sources import incident_name, new_incident
from tests.support.canary_world import START, spec

META = {"namespace": "shop", "name": "checkout", "uid": "u-1"}
WITH_INCIDENT = spec(incident={"severity": "P2"})


def failed(revision: str = "r2", started=START, completed=True,
           reason: str = "FailureLimit") -> CanaryRolloutStatus:
    def measured(metric: str, value: str, verdict: str, minutes: int) -> Measurement:
        return Measurement(time=START + timedelta(minutes=minutes), revision=revision, step=1,
                           metric=metric, value=value, verdict=verdict, message="why")
    return CanaryRolloutStatus(
        phase="Failed", revision=revision,
        rollback=Rollback(reason=reason, message="2 failed analysis runs", started_at=started,
                          completed_at=started + timedelta(seconds=3) if completed else None),
        measurements=[measured("success-rate", "95", "Fail", 2),
                      measured("latency", "0.1", "Pass", 2),
                      measured("success-rate", "96", "Fail", 1),
                      measured("success-rate", "97", "Fail", 1).model_copy(
                          update={"revision": "other"})])


def test_a_completed_rollback_opens_an_incident_carrying_the_failing_measurements() -> None:
    report = rollback_report(META, WITH_INCIDENT, failed())
    assert report is not None and report.firing
    assert [a.labels["metric"] for a in report.alerts] == ["success-rate"]
    assert report.alerts[0].labels["value"] == "95"  # the newest failure
    body = new_incident(report)
    assert body["spec"]["severity"] == "P2"
    assert body["spec"]["source"]["kind"] == "CanaryRollout"
    description = body["spec"]["description"]
    assert "FailureLimit" in description and "success-rate = 95" in description
    assert "success-rate = 96" in description and "97" not in description


def test_one_incident_per_revision_and_a_new_one_per_rollback_episode() -> None:
    first = rollback_report(META, WITH_INCIDENT, failed())
    again = rollback_report(META, WITH_INCIDENT, failed())
    other = rollback_report(META, WITH_INCIDENT, failed("r3"))
    retried = rollback_report(META, WITH_INCIDENT, failed(started=START + timedelta(hours=1)))
    assert first is not None and again is not None and other is not None
    assert retried is not None
    assert first.label == again.label == retried.label != other.label
    assert incident_name(first) == incident_name(again) != incident_name(retried)


def test_an_abort_without_failed_metrics_still_says_why() -> None:
    status = failed(reason="Aborted").model_copy(update={"measurements": []})
    report = rollback_report(META, WITH_INCIDENT, status)
    assert report is not None
    assert [a.labels["reason"] for a in report.alerts] == ["Aborted"]


def test_no_incident_unless_asked_and_the_rollback_is_complete() -> None:
    assert rollback_report(META, spec(), failed()) is None
    assert rollback_report(META, WITH_INCIDENT, failed(completed=False)) is None
    assert rollback_report(META, WITH_INCIDENT, CanaryRolloutStatus(phase="Succeeded",
                                                                    revision="r2")) is None
