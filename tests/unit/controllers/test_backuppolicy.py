"""The BackupPolicy controller's own decisions: when to reconcile, and that a finished Job's
verdict reaches the policy's status (the core's tests cover what the verdict is)."""

import logging
from typing import Any

from runbook_operator.controllers.backuppolicy import (
    needs_reconcile,
    reconcile,
    record_finished_job,
    record_schedule,
)
from tests.support.fakes import FakeCluster, FakeKube


def body(generation: int, status: dict | None = None) -> dict:
    return {"metadata": {"name": "p", "generation": generation}, "status": status or {}}


def ready_status(generation: int) -> dict:
    return {
        "observedGeneration": generation,
        "conditions": [{"type": "Ready", "status": "True", "reason": "Scheduled"}],
    }


def test_needs_reconcile() -> None:
    assert needs_reconcile(body(1))
    assert needs_reconcile(body(2, ready_status(1)))
    assert not needs_reconcile(body(2, ready_status(2)))
    stalled = {"observedGeneration": 2, "conditions": [{"type": "Ready", "status": "False"}]}
    assert needs_reconcile(body(2, stalled))
    waiting = body(2, ready_status(2))
    waiting["metadata"]["annotations"] = {"runbook.dev/backup-now": "t-1"}
    assert needs_reconcile(waiting)


def policy() -> dict[str, Any]:
    ready = {"type": "Ready", "status": "True", "reason": "Scheduled", "message": "ok",
             "lastTransitionTime": "2026-03-01T00:00:00Z", "observedGeneration": 1}
    return {"metadata": {"name": "p", "namespace": "ns", "generation": 1,
                         "resourceVersion": "1"},
            "spec": {"schedule": "@daily",
                     "source": {"command": {"image": "busybox", "command": ["true"]}}},
            "status": {"observedGeneration": 1, "conditions": [ready]}}


def finished(name: str, condition: str, when: str) -> dict[str, Any]:
    labels = {"runbook.dev/backuppolicy": "p", "runbook.dev/operation": "backup",
              "runbook.dev/runner": "false"}
    return {"metadata": {"name": name, "namespace": "ns", "labels": labels},
            "status": {"completionTime": when, "conditions": [
                {"type": condition, "status": "True", "lastTransitionTime": when,
                 "reason": "BackoffLimitExceeded" if condition == "Failed" else ""}]}}


def test_a_failed_job_turns_the_policy_backup_failing() -> None:
    kube = FakeKube(policy())
    record_finished_job(kube, finished("p-backup-1", "Failed", "2026-03-01T02:00:00Z"))
    status = kube.stored["status"]
    assert status["lastJob"]["name"] == "p-backup-1"
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("False", "BackupFailing")
    assert "p-backup-1" in ready["message"]
    assert needs_reconcile(kube.stored)  # so a later success is followed by a reconcile


def test_a_running_job_changes_nothing() -> None:
    kube = FakeKube(policy())
    record_finished_job(kube, {"metadata": {"name": "j", "namespace": "ns", "labels": {}},
                               "status": {"active": 1}})
    assert kube.requests == []


def test_schedule_times_reach_the_status_once() -> None:
    kube = FakeKube(policy())
    cronjob = {"metadata": {"name": "p-backup", "namespace": "ns",
                            "labels": {"runbook.dev/backuppolicy": "p"}},
               "status": {"lastScheduleTime": "2026-03-01T02:00:00Z"}}
    record_schedule(kube, cronjob)
    assert kube.stored["status"]["lastScheduleTime"] == "2026-03-01T02:00:00Z"
    version = kube.stored["metadata"]["resourceVersion"]
    record_schedule(kube, cronjob)
    assert kube.stored["metadata"]["resourceVersion"] == version


def test_a_new_policy_costs_its_cronjob_and_one_status_write() -> None:
    """A policy just created (generation 1, no restore test, no Secrets): the CronJob
    applied and status written from the event's copy, guarded by its resourceVersion: no
    read of the policy, none of a restore-test CronJob it never had."""
    created = {"apiVersion": "runbook.dev/v1alpha1", "kind": "BackupPolicy",
               "metadata": {"name": "p", "namespace": "ns", "uid": "u-1"},
               "spec": policy()["spec"]}
    cluster = FakeCluster(created)
    event = cluster.of_kind("BackupPolicy")[0]
    reconcile(cluster, event, logging.getLogger("test"), "runner:1")  # type: ignore[arg-type]
    assert cluster.requests == ["apply CronJob/p-backup", "patch BackupPolicy/p"]
    [stored] = cluster.of_kind("BackupPolicy")
    ready = next(c for c in stored["status"]["conditions"] if c["type"] == "Ready")
    assert (ready["status"], ready["reason"]) == ("True", "Scheduled")
    assert stored["status"]["cronJobName"] == "p-backup"
