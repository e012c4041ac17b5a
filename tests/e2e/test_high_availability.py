"""Two operator instances under the same ServiceAccount, each with its own identity: only
the holder of the leader-election Lease reconciles, evaluates or notifies; killed with
SIGKILL, it is replaced by the standby within the lease duration; an alert pending across the
hand-over fires once, and an escalation climbs to its next level once. SIGTERM lets work in
flight finish: a slow notification is delivered and recorded in status before the process
exits 0."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import alert_rule, errors_of, escalation_policy, incident, policy_body
from tests.support.incidents import pages, receiving
from tests.support.kube import (
    ALERT_RULES,
    BACKUP_POLICIES,
    ESCALATION_POLICIES,
    INCIDENTS,
    alert_notifications,
    alert_state,
    create_webhook_channel,
)
from tests.support.leadership import lease_holder, work_done
from tests.support.operator_metrics import wait_for_evaluations, wait_for_policy_reconciles
from tests.support.prometheus import exporter, prometheus  # noqa: F401
from tests.support.receivers import HTTPReceiver, Reply

#: The Lease lasts 15 s; the standby looks every 2 s and kopf needs a moment to start.
HANDOVER_DEADLINE = 30
#: Kubernetes' default terminationGracePeriodSeconds.
GRACE_SECONDS = 30


@pytest.fixture
def instances(api: client.ApiClient, operator: LocalOperator, operator_kubeconfig: Path,
              tmp_path: Path) -> Iterator[tuple[LocalOperator, LocalOperator]]:
    """The first instance leading, the second standing by. The session's operator is stopped
    (it would hold the Lease); `running_operator` restarts it for later tests."""
    operator.stop()
    first = LocalOperator(operator_kubeconfig, tmp_path / "first.log")
    second = LocalOperator(operator_kubeconfig, tmp_path / "second.log")
    try:
        first.start()
        wait_for(lambda: lease_holder(api) == first.identity, "the first instance to lead",
                 timeout=60)
        second.start()
        yield first, second
    finally:
        first.stop()
        second.stop()


def test_only_the_leader_acts_and_a_standby_takes_over_after_a_kill(
    api: client.ApiClient, namespace: str, instances: tuple[LocalOperator, LocalOperator],
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
    figures: dict[str, list[float]],
) -> None:
    first, second = instances
    series = {"service": f"ha-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.01)
    with HTTPReceiver() as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        BACKUP_POLICIES.create(api, namespace, policy_body("nightly"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "sticky", prometheus.url, **{"for": "20s"}, query=errors_of(series)))
        wait_for(lambda: alert_state(api, namespace, "sticky") == "Normal", "Normal",
                 timeout=60)
        wait_for_policy_reconciles(first, namespace, "nightly", 3,
                                   "three resyncs of the policy by the leader")
        wait_for_evaluations(first, namespace, "sticky", 3, "three evaluations by the leader")
        assert set(work_done(second).values()) == {0.0}, work_done(second)
        assert "leading:" not in second.log_text()

        exporter.set("http_errors_ratio", series, 0.5)
        wait_for(lambda: alert_state(api, namespace, "sticky") == "Pending", "Pending",
                 timeout=60)
        (pending,) = ALERT_RULES.get(api, namespace, "sticky")["status"]["instances"]

        killed = time.monotonic()
        first.kill9()
        wait_for(lambda: lease_holder(api) == second.identity,
                 "the standby to take the Lease over", timeout=HANDOVER_DEADLINE)
        taken_over = time.monotonic() - killed
        wait_for_evaluations(second, namespace, "sticky", 1,
                             "the new leader's first evaluation", timeout=HANDOVER_DEADLINE)
        evaluating = time.monotonic() - killed
        figures.setdefault("HA: Lease taken over after kill -9 (s)", []).append(taken_over)
        figures.setdefault("HA: first evaluation by the new leader after kill -9 (s)",
                           []).append(evaluating)
        print(f"\nhand-over after kill -9: Lease {taken_over:.1f} s, "
              f"first evaluation {evaluating:.1f} s")

        wait_for(lambda: alert_state(api, namespace, "sticky") == "Firing", "Firing",
                 timeout=60)
        (firing,) = ALERT_RULES.get(api, namespace, "sticky")["status"]["instances"]
        assert firing["pendingSince"] == pending["pendingSince"]
        wait_for(lambda: receiver.bodies(status="firing"), "the firing notification",
                 timeout=30)
        wait_for_evaluations(second, namespace, "sticky", 3, "three more evaluations")
        assert len(receiver.bodies(status="firing")) == 1


def test_sigterm_lets_a_slow_notification_finish_and_record_itself(
    api: client.ApiClient, namespace: str, instances: tuple[LocalOperator, LocalOperator],
    exporter: MetricsExporter, prometheus: PrometheusServer,  # noqa: F811
) -> None:
    first, second = instances
    series = {"service": f"term-{namespace[-5:]}"}
    exporter.set("http_errors_ratio", series, 0.5)
    with HTTPReceiver(default=Reply(delay=5)) as receiver:
        create_webhook_channel(api, namespace, receiver.url("/alerts"))
        ALERT_RULES.create(api, namespace, alert_rule(
            "slow", prometheus.url, **{"for": "0s"}, query=errors_of(series)))
        wait_for(lambda: receiver.bodies(status="firing"), "the slow delivery to start",
                 timeout=60)
        assert first.process is not None
        asked = time.monotonic()
        first.process.send_signal(signal.SIGTERM)
        code = first.process.wait(timeout=GRACE_SECONDS)
        print(f"\nexited {code} {time.monotonic() - asked:.1f} s after SIGTERM")
        assert code == 0
        # The delivery finished and its outcome is in status: not sent-but-unrecorded.
        (recorded,) = alert_notifications(api, namespace, "slow")
        assert (recorded["event"], recorded["result"]) == ("firing", "delivered"), recorded
        assert alert_state(api, namespace, "slow") == "Firing"
        # The released Lease goes to the standby at once, which does not send it again.
        wait_for(lambda: lease_holder(api) == second.identity, "the standby to lead",
                 timeout=10)
        wait_for_evaluations(second, namespace, "slow", 2, "two evaluations by the standby")
        assert len(receiver.bodies(status="firing")) == 1


def test_an_escalation_due_after_the_hand_over_pages_its_next_level_once(
    api: client.ApiClient, namespace: str, instances: tuple[LocalOperator, LocalOperator],
) -> None:
    first, second = instances
    levels = [{"after": "0s", "channels": ["l1"]}, {"after": "40s", "channels": ["l2"]}]
    with receiving(api, namespace, "l1", "l2") as receiver:
        ESCALATION_POLICIES.create(api, namespace, escalation_policy("ladder", levels))
        ESCALATION_POLICIES.wait_ready(api, namespace, "ladder")
        INCIDENTS.create(api, namespace, incident("db", "ladder"))
        wait_for(lambda: (INCIDENTS.status(api, namespace, "db").get("escalation") or {}).get(
            "step") == 1, "L1 paged and recorded by the leader")

        first.kill9()
        wait_for(lambda: lease_holder(api) == second.identity,
                 "the standby to take the Lease over", timeout=HANDOVER_DEADLINE)
        assert (INCIDENTS.status(api, namespace, "db").get("escalation") or {}).get(
            "step") == 1, "L2 came due before the hand-over: too late to tell"
        wait_for(lambda: pages(receiver, "l2", "db"), "L2 paged by the new leader", timeout=60)
        wait_for(lambda: INCIDENTS.status(api, namespace, "db")["escalation"]["step"] == 2,
                 "L2 recorded")
        assert [len(pages(receiver, channel, "db")) for channel in ("l1", "l2")] == [1, 1]
