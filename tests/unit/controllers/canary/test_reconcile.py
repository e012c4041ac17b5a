from __future__ import annotations

from datetime import timedelta

import pytest
from prometheus_client import REGISTRY

from runbook_operator.api.canaryrollout import (
    COMMAND_ANNOTATIONS,
    AcknowledgedCommand,
    CanaryRolloutSpec,
    CanaryRolloutStatus,
    Measurement,
    Rollback,
    RouterStatus,
)
from runbook_operator.api.common import API_VERSION, NotificationRecord
from runbook_operator.controllers.canary import metrics
from runbook_operator.controllers.canary.reconcile import (
    Compiled,
    Unusable,
    backup_seen,
    new_commands,
    observe,
    prepare,
    request_backup,
    rollout_status_patch,
    write_status,
)
from runbook_operator.core.canary import messages
from runbook_operator.core.canary.objects import REVISION_ANNOTATION
from runbook_operator.core.backuppolicy.names import BACKUP_NOW_ANNOTATION
from runbook_operator.integrations.kubeapi import ApiError, NotFound
from tests.support.canary_world import START, spec
from tests.support.fakes import FakeCluster

SPEC = {"targetRef": {"name": "checkout"}, "service": {"port": 80},
        "router": {"gatewayAPI": {"httpRoute": "checkout"}},
        "canary": {"stepWeight": 25},
        "analysis": {"metrics": [{"name": "ok", "query": "up{job='{{ target }}'}",
                                  "thresholdRange": {"min": 1}}]}}


def body(spec: dict | None = None, annotations: dict | None = None) -> dict:
    return {"metadata": {"name": "checkout", "namespace": "shop", "annotations":
                         annotations or {}}, "spec": SPEC if spec is None else spec}


def test_a_generation_is_compiled_once_into_steps_and_queries() -> None:
    compiled = prepare(body())
    assert isinstance(compiled, Compiled)
    assert [c.query for c in compiled.checks] == ["up{job='checkout'}"]
    assert compiled.backends.canary == "checkout-canary"
    assert len(compiled.steps) == 4  # 25 and 50, each analysed


def test_an_unusable_spec_says_why() -> None:
    invalid = prepare(body({**SPEC, "canary": None}))
    assert isinstance(invalid, Unusable) and invalid.reason == "InvalidSpec"
    unknown = prepare(body({**SPEC, "analysis": {"metrics": [
        {"name": "x", "query": "up{job='{{ app }}'}", "thresholdRange": {"min": 1}}]}}))
    assert isinstance(unknown, Unusable) and unknown.reason == "InvalidQuery"
    assert "{{ app }}" in unknown.message


def test_only_tokens_not_acted_on_are_new_commands() -> None:
    acted = CanaryRolloutStatus(commands=[
        AcknowledgedCommand(command="pause", token="t2", time=START),
        AcknowledgedCommand(command="pause", token="t1", time=START)])
    annotations = {COMMAND_ANNOTATIONS["pause"]: "t2", COMMAND_ANNOTATIONS["abort"]: "t3"}
    found = new_commands(body(annotations=annotations), acted)
    assert [(c.command, c.token) for c in found] == [("abort", "t3")]
    older = {COMMAND_ANNOTATIONS["pause"]: "t1"}
    assert [c.token for c in new_commands(body(annotations=older), acted)] == ["t1"]


def sample(name: str, labels: dict[str, str]) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_metrics_show_weight_phase_verdicts_and_rollbacks_and_are_forgotten() -> None:
    labels = {"namespace": "metrics", "name": "checkout"}
    status = CanaryRolloutStatus(phase="Progressing", weight=30)
    metrics.publish("metrics", "checkout", status)
    run = [Measurement(time=START, revision="r", step=1, metric="ok", verdict="Fail")]
    rollback = Rollback(reason="FailureLimit", started_at=START + timedelta(seconds=1))
    metrics.count("metrics", "checkout", run, rollback)
    assert sample("runbook_canary_weight_percent", labels) == 30
    assert sample("runbook_canary_phase", {**labels, "phase": "Progressing"}) == 1
    assert sample("runbook_canary_phase", {**labels, "phase": "Failed"}) == 0
    assert sample("runbook_canary_analysis_results_total",
                  {**labels, "metric": "ok", "verdict": "Fail"}) == 1
    assert sample("runbook_canary_rollbacks_total", {**labels, "reason": "FailureLimit"}) == 1
    metrics.forget("metrics", "checkout")
    assert sample("runbook_canary_weight_percent", labels) is None
    assert sample("runbook_canary_phase", {**labels, "phase": "Progressing"}) is None


POLICY = {"apiVersion": API_VERSION, "kind": "BackupPolicy",
          "metadata": {"name": "db", "namespace": "shop"}, "spec": {}}
WITH_BACKUP = CanaryRolloutSpec.model_validate(
    {**SPEC, "backupBefore": {"backupPolicyRef": {"name": "db"}}})


def test_a_backup_is_asked_of_the_policy_by_its_annotation_and_read_back() -> None:
    cluster = FakeCluster(POLICY)
    status = CanaryRolloutStatus(phase="Progressing", revision="abc", rollout_started_at=START)
    seen = backup_seen(cluster, WITH_BACKUP, body(), status)  # type: ignore[arg-type]
    assert seen.found and seen.outcome is None
    assert request_backup(cluster, WITH_BACKUP, "shop", seen.token)  # type: ignore[arg-type]
    stored = cluster.get(API_VERSION, "BackupPolicy", "db", "shop")
    assert stored["metadata"]["annotations"] == {BACKUP_NOW_ANNOTATION: seen.token}
    assert stored["metadata"]["generation"] == 1
    gone = FakeCluster()
    assert not backup_seen(gone, WITH_BACKUP, body(), status).found  # type: ignore[arg-type]


class PolicyDeleted:
    """The policy deleted between the look and the request."""

    def merge_patch(self, *args: object) -> None:
        raise NotFound(404, "Not Found", "")


def test_a_policy_deleted_before_the_request_leaves_the_tick_undecided() -> None:
    assert not request_backup(PolicyDeleted(), WITH_BACKUP, "shop", "t")  # type: ignore[arg-type]


def test_a_router_answer_is_patched_whole_so_a_cleared_confirmation_is_cleared() -> None:
    confirmed = RouterStatus(weight=20, verified="Yes", time=START, confirmed_at=START)
    unknown = RouterStatus(weight=0, verified="Unknown", time=START + timedelta(seconds=5))
    old = CanaryRolloutStatus(router=confirmed)
    patch = rollout_status_patch(old, CanaryRolloutStatus(router=unknown))
    assert patch == {"router": {"weight": 0, "verified": "Unknown", "message": "",
                                "time": "2026-03-01T12:00:05Z", "confirmedAt": None}}
    assert rollout_status_patch(old, old) is None
    assert rollout_status_patch(old, CanaryRolloutStatus(phase="Failed", router=confirmed)) \
        == {"phase": "Failed"}


PROGRESSING = CanaryRolloutStatus(phase="Progressing")
NOTIFIED = spec(notifications={"channels": ["oncall"], "events": ["RolledBack"]})
ROLLED_BACK = CanaryRolloutStatus(
    phase="Failed", revision="r2", rollout_started_at=START,
    rollback=Rollback(reason="FailureLimit", started_at=START, completed_at=START))


def stored_rollout(status: CanaryRolloutStatus, uid: str = "uid-1") -> dict:
    return {"apiVersion": API_VERSION, "kind": "CanaryRollout",
            "metadata": {"name": "checkout", "namespace": "shop", "uid": uid},
            "spec": SPEC, "status": status.to_wire()}


def notified(old: CanaryRolloutStatus) -> CanaryRolloutStatus:
    """`old` after the tick told the channel of the rollback."""
    delivered = NotificationRecord(time=START, channel="oncall", fingerprint="x", event="y",
                                   severity="critical", result="delivered")
    return messages.record(old, "shop", "checkout", "RolledBack", [delivered])


def still_due(found: dict) -> list[str]:
    status = CanaryRolloutStatus.model_validate(found.get("status") or {})
    return [d.event for d in messages.due(NOTIFIED, "checkout", "shop", status, START)]


def annotated_meanwhile(cluster: FakeCluster) -> None:
    """A person (or kopf, or a GitOps tool) annotates the rollout: its resourceVersion moves
    on and the tick's write answers 409 once."""
    stored = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    stored["metadata"]["annotations"] = {"note": "deploying on Friday"}
    cluster.put(stored)


def test_a_notification_sent_before_a_conflicting_write_is_recorded_not_sent_again() -> None:
    cluster = FakeCluster(stored_rollout(PROGRESSING.model_copy(update={"revision": "r2"})))
    body = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    old = CanaryRolloutStatus.model_validate(body["status"])
    new = notified(ROLLED_BACK)
    assert still_due({"status": ROLLED_BACK.to_wire()}) == ["RolledBack"]
    annotated_meanwhile(cluster)
    written = write_status(cluster, body, old, new)  # type: ignore[arg-type]
    stored = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    assert written == stored and stored["status"]["phase"] == "Progressing"
    assert [r["channel"] for r in stored["status"]["notifications"]] == ["oncall"]
    assert still_due({"status": {**stored["status"], **ROLLED_BACK.to_wire(),
                                 "notifications": stored["status"]["notifications"]}}) == []


def test_a_conflict_without_notifications_only_reads_the_fresh_copy() -> None:
    cluster = FakeCluster(stored_rollout(PROGRESSING))
    body = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    annotated_meanwhile(cluster)
    cluster.requests.clear()
    written = write_status(cluster, body, PROGRESSING,  # type: ignore[arg-type]
                           ROLLED_BACK)
    assert cluster.requests == ["patch CanaryRollout/checkout", "get CanaryRollout/checkout"]
    assert written["status"]["phase"] == "Progressing"


def test_records_are_not_written_onto_another_rollout_of_the_same_name() -> None:
    cluster = FakeCluster(stored_rollout(PROGRESSING))
    body = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    cluster.put(stored_rollout(CanaryRolloutStatus(), uid="uid-2"))
    write_status(cluster, body, PROGRESSING,  # type: ignore[arg-type]
                 notified(ROLLED_BACK))
    stored = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    assert stored["metadata"]["uid"] == "uid-2"
    assert not stored["status"].get("notifications")


def unavailable() -> ApiError:
    return ApiError(503, "Service Unavailable", "")


class LostAnswers(FakeCluster):
    """An API server whose status writes land but whose answers are lost (a 503 from a
    restarting server or proxy), `lost` times in all."""

    def __init__(self, *bodies: dict, lost: int) -> None:
        super().__init__(*bodies)
        self.lost = lost

    def _status_write(self, kind, name, namespace, patch):
        written = super()._status_write(kind, name, namespace, patch)
        if self.lost:
            self.lost -= 1
            raise unavailable()
        return written


def test_a_write_that_landed_although_it_failed_is_not_recorded_twice() -> None:
    cluster = LostAnswers(stored_rollout(PROGRESSING), lost=1)
    body = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")
    pauses: list[float] = []
    written = write_status(cluster, body, PROGRESSING,  # type: ignore[arg-type]
                           notified(ROLLED_BACK), pauses.append)
    assert pauses == [] and cluster.lost == 0
    assert [r["channel"] for r in written["status"]["notifications"]] == ["oncall"]
    assert still_due(written) == []


def test_records_that_cannot_be_written_after_a_few_attempts_fail_the_tick() -> None:
    cluster = LostAnswers(stored_rollout(PROGRESSING), lost=0)
    body = cluster.get(API_VERSION, "CanaryRollout", "checkout", "shop")

    def down(*args: object) -> None:
        raise unavailable()

    cluster.patch_status = down  # type: ignore[method-assign]
    cluster.update_status = down  # type: ignore[method-assign]
    pauses: list[float] = []
    with pytest.raises(ApiError):
        write_status(cluster, body, PROGRESSING,  # type: ignore[arg-type]
                     notified(ROLLED_BACK), pauses.append)
    assert pauses == [0.5, 1.0, 2.0]


def _deployment(name: str, app: str, annotations: dict | None = None) -> dict:
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": "shop", "annotations": annotations or {}},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": app}},
                     "template": {"metadata": {"labels": {"app": app}}}},
            "status": {"observedGeneration": 1, "replicas": 1, "updatedReplicas": 1,
                       "readyReplicas": 1, "availableReplicas": 1}}


def _pod(name: str, app: str, deleted_until: str | None = None) -> dict:
    meta = {"name": name, "namespace": "shop", "labels": {"app": app}}
    if deleted_until:
        meta["deletionTimestamp"] = deleted_until
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta}


def test_the_primarys_old_pods_still_stopping_are_counted_while_it_takes_a_revision() -> None:
    """The Deployment's status leaves out its deleted pods; a draining one still answers."""
    kube = FakeCluster(_deployment("checkout", "checkout"),
                       _deployment("checkout-primary", "checkout-primary",
                                   {REVISION_ANNOTATION: "r2"}),
                       _pod("new", "checkout-primary"),
                       _pod("old", "checkout-primary", "2999-01-01T00:00:00Z"),
                       _pod("gone", "checkout-primary", "2000-01-01T00:00:00Z"),
                       _pod("canary", "checkout", "2999-01-01T00:00:00Z"))
    compiled = prepare(body())
    assert isinstance(compiled, Compiled)
    promoting = observe(kube, compiled, "shop", "Promoting")  # type: ignore[arg-type]
    assert not isinstance(promoting, str) and promoting.primary_stopping == 1
    kube.requests.clear()
    progressing = observe(kube, compiled, "shop", "Progressing")  # type: ignore[arg-type]
    assert not isinstance(progressing, str) and progressing.primary_stopping == 0
    assert "list Pod" not in kube.requests  # pods are listed only while the primary changes
