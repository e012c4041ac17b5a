"""The devcluster runtime as a kubelet: pods of the project's image run as real processes, with
the env, files, identity and status a kubelet gives them; probes, restarts with back-off, kill on
delete, and the Job controller's backoffLimit all work against the real control plane."""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path
from typing import Any

from runbook_operator.devcluster.cluster import LocalCluster
from runbook_operator.devcluster.waiting import wait_for

IMAGE = "runbook-operator:0.1.0"
WAIT = "--timeout=120s"


def _apply(cluster: LocalCluster, namespace: str, *objects: dict[str, Any]) -> None:
    body = json.dumps({"apiVersion": "v1", "kind": "List", "items": list(objects)})
    cluster.kubectl("apply", "-n", namespace, "-f", "-", input=body)


def _get(cluster: LocalCluster, namespace: str, what: str) -> dict[str, Any]:
    return json.loads(cluster.kubectl("get", what, "-n", namespace, "-o", "json").stdout)


def _finished(cluster: LocalCluster, namespace: str, name: str) -> dict[str, Any]:
    """The pod once it reached a terminal phase; its log in the message if it failed."""
    pod = wait_for(lambda: (p := _get(cluster, namespace, f"pod/{name}"))["status"].get(
        "phase") in ("Succeeded", "Failed") and p, f"pod {name} to finish", timeout=120)
    logs = cluster.kubectl("logs", name, "-n", namespace, check=False)
    assert pod["status"]["phase"] == "Succeeded", logs.stdout + logs.stderr
    return pod


def _pod(name: str, script: str, **spec: Any) -> dict[str, Any]:
    container = {"name": "main", "image": IMAGE, "command": ["python", "-c", script]}
    container |= spec.pop("container", {})
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name},
            "spec": {"restartPolicy": "Never", "automountServiceAccountToken": False,
                     "containers": [container], **spec}}


FACTS = """
import json, os
facts = {"uid": os.getuid(), "gid": os.getgid(), "groups": sorted(os.getgroups()),
         "cwd": os.getcwd(), "env": {k: os.environ.get(k) for k in
         ("GREETING", "PASSWORD", "MODE", "CFG_level", "POD", "NAMESPACE", "POD_IP")},
         "secret": open("/etc/app/secret/password").read(),
         "config": open("/etc/app/config/conf/level").read()}
open("/claim/written-by-pod", "w").write("hello from " + os.environ["POD"])
print(json.dumps(facts))
open("/dev/termination-log", "w").write("facts printed")
"""


def test_pods_get_env_files_identity_and_status_as_from_a_kubelet(
    cluster: LocalCluster, namespace: str
) -> None:
    claim = cluster.create_claim(namespace, "shared")
    cluster.kubectl("create", "secret", "generic", "db", "-n", namespace,
                    "--from-literal=password=s3cr3t")
    cluster.kubectl("create", "configmap", "settings", "-n", namespace,
                    "--from-literal=MODE=demo", "--from-literal=level=debug")
    env = [
        {"name": "NAME", "value": "world"},
        {"name": "GREETING", "value": "hello $(NAME) $$(NAME)"},
        {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": "db", "key": "password"}}},
        {"name": "MODE", "valueFrom": {"configMapKeyRef": {"name": "settings", "key": "MODE"}}},
        {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
        {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    ]
    mounts = [{"name": "secret", "mountPath": "/etc/app/secret"},
              {"name": "config", "mountPath": "/etc/app/config"},
              {"name": "work", "mountPath": "/data"},
              {"name": "shared", "mountPath": "/claim"}]
    volumes = [{"name": "secret", "secret": {"secretName": "db"}},
               {"name": "config", "configMap": {"name": "settings", "items": [
                   {"key": "level", "path": "conf/level"}]}},
               {"name": "work", "emptyDir": {}},
               {"name": "shared", "persistentVolumeClaim": {"claimName": "shared"}}]
    _apply(cluster, namespace, _pod(
        "facts", FACTS, volumes=volumes,
        securityContext={"runAsUser": 1234, "runAsGroup": 2345, "fsGroup": 3456},
        container={"env": env, "envFrom": [{"prefix": "CFG_", "configMapRef": {
            "name": "settings"}}], "volumeMounts": mounts, "workingDir": "/data"}))
    pod = _finished(cluster, namespace, "facts")
    [status] = pod["status"]["containerStatuses"]
    terminated = status["state"]["terminated"]
    assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
    assert terminated["message"] == "facts printed"
    ip = pod["status"]["podIP"]
    assert ip.startswith("10.244.") and pod["status"]["hostIP"] == "127.0.0.1"
    facts = json.loads(cluster.kubectl("logs", "facts", "-n", namespace).stdout)
    assert (facts["uid"], facts["gid"], facts["groups"]) == (1234, 2345, [2345, 3456])
    assert facts["cwd"] == "/data"
    assert facts["env"] == {"GREETING": "hello world $(NAME)", "PASSWORD": "s3cr3t",
                            "MODE": "demo", "CFG_level": "debug", "POD": "facts",
                            "NAMESPACE": namespace, "POD_IP": ip}
    assert (facts["secret"], facts["config"]) == ("s3cr3t", "debug")
    assert (claim / "written-by-pod").read_text() == "hello from facts"


def test_a_missing_secret_keeps_the_container_waiting_until_it_exists(
    cluster: LocalCluster, namespace: str
) -> None:
    env = [{"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "late", "key": "token"}}}]
    _apply(cluster, namespace, _pod("waits", "import os; print(os.environ['TOKEN'])",
                                    container={"env": env}))

    def waiting_reason() -> str | None:
        statuses = _get(cluster, namespace, "pod/waits")["status"].get("containerStatuses")
        return statuses and statuses[0]["state"].get("waiting", {}).get("reason")

    assert wait_for(waiting_reason, "a waiting reason") == "CreateContainerConfigError"
    cluster.kubectl("create", "secret", "generic", "late", "-n", namespace,
                    "--from-literal=token=arrived")
    _finished(cluster, namespace, "waits")
    assert cluster.kubectl("logs", "waits", "-n", namespace).stdout.strip() == "arrived"


# A pod binds its own address: the pods share the cluster's network namespace.
SERVE = """
import http.server, os
server = http.server.HTTPServer((os.environ["POD_IP"], int(os.environ["PORT"])),
                                http.server.SimpleHTTPRequestHandler)
server.serve_forever()
"""
POD_IP = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def _deployment(name: str, script: str, **container: Any) -> dict[str, Any]:
    labels = {"app": name}
    return {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": name},
            "spec": {"replicas": 1, "selector": {"matchLabels": labels}, "template": {
                "metadata": {"labels": labels},
                "spec": {"automountServiceAccountToken": False, "containers": [
                    {"name": "main", "image": IMAGE, "command": ["python", "-c", script],
                     **container}]}}}}


def test_deployments_become_available_by_readiness_probe(
    cluster: LocalCluster, namespace: str
) -> None:
    port = 8080
    probe = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1}
    web = _deployment("web", SERVE, env=[{"name": "PORT", "value": str(port)}, POD_IP],
                      ports=[{"name": "http", "containerPort": port}], readinessProbe=probe)
    web["spec"]["template"]["spec"]["containers"].append(
        {"name": "worker", "image": IMAGE, "command": ["sleep", "3600"],
         "readinessProbe": {"exec": {"command": ["test", "-f", "/tmp/ready"]},
                            "periodSeconds": 1}})
    _apply(cluster, namespace, web)

    def statuses() -> dict[str, bool]:
        pods = _get(cluster, namespace, "pods")["items"]
        found = pods and pods[0]["status"].get("containerStatuses") or []
        return {c["name"]: c["ready"] for c in found}

    assert wait_for(lambda: statuses().get("main") and statuses(), "the server ready") == {
        "main": True, "worker": False}
    # The worker's /tmp, as the runtime keeps it: the exec probe sees what is written there.
    [tmp] = cluster.runtime_dir.glob(f"pods/{namespace}_web-*/containers/worker/0/tmp")
    (tmp / "ready").touch()
    cluster.kubectl("rollout", "status", "deployment/web", "-n", namespace, WAIT)
    [pod] = _get(cluster, namespace, "pods")["items"]
    ready = {c["type"]: c["status"] for c in pod["status"]["conditions"]}
    assert ready["Ready"] == ready["ContainersReady"] == "True"
    assert statuses() == {"main": True, "worker": True}


def test_crashing_containers_restart_with_back_off(
    cluster: LocalCluster, namespace: str
) -> None:
    _apply(cluster, namespace, _deployment("crasher", "import sys; print('boom'); sys.exit(4)"))

    def backing_off() -> dict[str, Any] | None:
        pods = _get(cluster, namespace, "pods")["items"]
        statuses = pods[0]["status"].get("containerStatuses") if pods else None
        waiting = statuses and statuses[0]["state"].get("waiting") or {}
        return statuses[0] if "back-off 20s" in waiting.get("message", "") else None

    status = wait_for(backing_off, "the second back-off (20 s)", timeout=120)
    assert status["restartCount"] == 1
    assert status["state"]["waiting"]["reason"] == "CrashLoopBackOff"
    assert status["lastState"]["terminated"]["exitCode"] == 4
    pod = _get(cluster, namespace, "pods")["items"][0]["metadata"]["name"]
    previous = cluster.kubectl("logs", pod, "-n", namespace, "--previous").stdout
    assert previous.strip() == "boom"


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_deleting_a_pod_sends_sigterm_then_sigkill_after_the_grace_period(
    cluster: LocalCluster, namespace: str
) -> None:
    marker = f"stubborn-{uuid.uuid4().hex}"
    script = f"""
import signal, sys, time
def refuse(*_):
    print("got SIGTERM, ignoring it", flush=True)
signal.signal(signal.SIGTERM, refuse)
print("started {marker}", flush=True)
while True:
    time.sleep(0.1)
"""
    _apply(cluster, namespace, _pod("stubborn", script, terminationGracePeriodSeconds=3))
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Ready", "pod/stubborn", WAIT)
    assert wait_for(lambda: _processes_with(marker), "the pod's process")

    started = time.monotonic()
    cluster.kubectl("delete", "pod", "stubborn", "-n", namespace, "--wait=true", "--timeout=60s")
    took = time.monotonic() - started
    assert not _processes_with(marker)
    assert took >= 3, f"deleted after {took:.1f}s, before the grace period ended"
    [log] = cluster.runtime_dir.glob(f"pods/{namespace}_stubborn_*/logs/main/0.log")
    assert "got SIGTERM, ignoring it" in log.read_text()


def test_job_backoff_limit_counts_real_failures(cluster: LocalCluster, namespace: str) -> None:
    template = _pod("", "import sys; sys.exit(7)")
    job = {"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "fails"},
           "spec": {"backoffLimit": 1, "template": {"spec": template["spec"]}}}
    _apply(cluster, namespace, job)
    cluster.kubectl("wait", "-n", namespace, "--for=condition=Failed", "job/fails", WAIT)
    status = _get(cluster, namespace, "job/fails")["status"]
    assert status["failed"] == 2
    assert next(c for c in status["conditions"] if c["type"] == "Failed")["reason"] == (
        "BackoffLimitExceeded")
    pods = _get(cluster, namespace, "pods")["items"]
    codes = [p["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"]
             for p in pods]
    assert codes == [7, 7]
