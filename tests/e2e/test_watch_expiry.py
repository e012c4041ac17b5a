"""Watches that expire while the operator is cut off (410 Gone) are listed again within the
same term: nothing changed meanwhile is lost, and the process neither restarts nor logs a
traceback.

Made certain, not left to timing: the operator is stopped (SIGSTOP) before kube-apiserver is
restarted, so it holds only resourceVersions handed out before the restart. While the server
is down the test writes a key outside /registry into etcd, moving etcd's revision past every
one of them. The restarted server serves watches that name a resourceVersion from its watch
cache (on by default, for custom resources too), which starts at etcd's revision when it
fills and answers older ones "too old resource version" (410 Gone); the test waits until it
answers so to a resourceVersion it read before the restart, which also rules out the 429 of a
cache still filling. Compacting etcd instead would not do: it expires only watches that etcd
serves itself, and the cache answers these. The changes are made before the operator
continues, and its resync loop is off (one hour), so only the watches' new LIST can find them."""

from __future__ import annotations

from pathlib import Path

from kubernetes import client

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from tests.support.builders import policy_body
from tests.support.faults import (
    frozen,
    patient_operator,
    restart_apiserver_past_watches,
    watch_expired,
)
from tests.support.kube import BACKUP_POLICIES, read_cronjob

RECOVERY_DEADLINE = 120
NO_RESYNC = 3600.0


def test_watches_expired_while_cut_off_are_listed_again_in_the_same_term(
    cluster: LocalCluster, api: client.ApiClient, namespace: str, operator: LocalOperator,
    operator_kubeconfig: Path, tmp_path: Path,
) -> None:
    with patient_operator(api, operator, operator_kubeconfig,
                          tmp_path / "watch-expiry-operator.log", resync_seconds=NO_RESYNC,
                          extra_args=("--log-level=DEBUG",)) as watcher:
        assert watcher.process is not None
        pid = watcher.process.pid
        BACKUP_POLICIES.create(api, namespace, policy_body("before"))
        seen = BACKUP_POLICIES.wait_ready(api, namespace, "before")["metadata"]["resourceVersion"]

        with frozen(watcher):
            restart_apiserver_past_watches(cluster)
            wait_for(lambda: watch_expired(api, BACKUP_POLICIES.plural, seen),
                     "the restarted API server to answer 410 Gone to a watch from before",
                     timeout=60)
            BACKUP_POLICIES.create(api, namespace, policy_body("after"))
            BACKUP_POLICIES.patch(api, namespace, "before", {"spec": {"schedule": "0 3 * * *"}})

        BACKUP_POLICIES.wait_ready(api, namespace, "after", timeout=RECOVERY_DEADLINE)
        BACKUP_POLICIES.wait_ready(api, namespace, "before", timeout=RECOVERY_DEADLINE)
        cronjob = read_cronjob(api, namespace, "before-backup")
        assert cronjob is not None and cronjob.spec.schedule == "0 3 * * *"
        log = watcher.log_text()
        assert "Restarting the watch-stream for backuppolicies" in log  # kopf's 410 branch
        assert watcher.alive() and watcher.process.pid == pid
        assert "Traceback" not in log
        assert log.count("leading:") == 1 and "lost the Lease" not in log
