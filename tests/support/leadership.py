"""The operator's leader election as tests observe it: the Lease's holder, and whether an
instance did any work (its own /metrics)."""

from __future__ import annotations

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from runbook_operator.cli.main import LEASE_NAME
from tests.support.operator_metrics import MetricsSource, counter

LEASE_NAMESPACE = "runbook-system"
#: Counters that move whenever an instance reconciles, evaluates or notifies.
WORK_COUNTERS = ("runbook_operator_reconcile", "runbook_backup_reconciles",
                 "runbook_alert_evaluations", "runbook_operator_notifications")


def lease_holder(api: client.ApiClient) -> str | None:
    try:
        lease = client.CoordinationV1Api(api).read_namespaced_lease(LEASE_NAME, LEASE_NAMESPACE)
    except ApiException as error:
        if error.status == 404:
            return None
        raise
    return lease.spec.holder_identity


def work_done(operator: MetricsSource) -> dict[str, float]:
    """Each work counter's total over all its series, as the instance reports it."""
    return {family: counter(operator, family, {}) for family in WORK_COUNTERS}
