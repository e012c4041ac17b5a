"""`make demo`: a local control plane, the operator under its own ServiceAccount, the examples
applied and their status shown. Ctrl-C stops everything; `--once` stops after the status (CI)."""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from runbook_operator.devcluster.cluster import LocalCluster, repo_root
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.waiting import wait_for
from runbook_operator.devcluster.prometheus import MetricsExporter, PrometheusServer

DEMO_NAMESPACE = "runbook-demo"
OPERATOR_NAMESPACE = "runbook-system"
OPERATOR_ACCOUNT = "runbook-operator"


def say(text: str) -> None:
    print(f"\n==> {text}", flush=True)


def demo_exporter() -> MetricsExporter:
    """The series the example AlertRules query, as a small shop would expose them: the queue
    backlog is high, so `queue-backlog` goes Pending; everything else is healthy."""
    exporter = MetricsExporter()
    exporter.start()
    checkout = {"service": "checkout"}
    exporter.set("up", {"job": "checkout", "instance": "checkout-0"}, 1)
    exporter.set("http_requests_total", {**checkout, "code": "200"}, 120_000)
    exporter.set("http_requests_total", {**checkout, "code": "500"}, 300)
    for le, count in (("0.25", 90_000), ("1", 119_000), ("2", 120_200), ("+Inf", 120_300)):
        exporter.set("http_request_duration_seconds_bucket", {**checkout, "le": le}, count)
    exporter.set("http_request_duration_seconds_sum", checkout, 21_000)
    exporter.set("http_request_duration_seconds_count", checkout, 120_300)
    exporter.set("container_memory_working_set_bytes", {"container": "checkout"}, 310e6)
    exporter.set("container_spec_memory_limit_bytes", {"container": "checkout"}, 512e6)
    exporter.set("container_cpu_usage_seconds_total", {"container": "checkout"}, 5400)
    exporter.set("node_filesystem_avail_bytes", {"mountpoint": "/"}, 41e9)
    exporter.set("node_filesystem_size_bytes", {"mountpoint": "/"}, 100e9)
    exporter.set("kube_job_status_start_time", {"job_name": "nightly-report"}, time.time() - 600)
    exporter.set("kube_job_status_active", {"job_name": "nightly-report"}, 1)
    exporter.set("queue_backlog_messages", {"queue": "orders"}, 75)
    return exporter


def install(cluster: LocalCluster, repo: Path) -> None:
    say("installing CRDs, namespace, ServiceAccount and least-privilege RBAC (manifests/)")
    print(cluster.kubectl("apply", "--server-side", "-k", str(repo / "hack" / "local-install")).stdout)
    cluster.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd", "-l", "app.kubernetes.io/part-of=runbook-operator",
    )
    cluster.kubectl("api-resources")


def apply_examples(cluster: LocalCluster, repo: Path) -> None:
    say(f"applying examples/ into namespace {DEMO_NAMESPACE}")
    cluster.kubectl("create", "namespace", DEMO_NAMESPACE)
    wait_for(
        lambda: cluster.kubectl("get", "serviceaccount", "default", "-n", DEMO_NAMESPACE,
                                check=False).returncode == 0,
        "the demo namespace's default ServiceAccount",
    )
    print(cluster.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", str(repo / "examples")).stdout)
    say("waiting for every runbook resource to be Ready")
    for kind in ("notificationchannels.runbook.dev", "backuppolicies.runbook.dev",
                 "alertrules.runbook.dev"):
        print(cluster.kubectl(
            "wait", "--for=condition=Ready", "--timeout=120s", "-n", DEMO_NAMESPACE, kind, "--all",
        ).stdout)


def run_one_backup(cluster: LocalCluster) -> None:
    """Run one backup now so the status shows a last success without waiting for the
    schedule. (kwok plays the kubelet here: the pod completes without running a container.)"""
    say("asking for one config-export run now (annotation runbook.dev/backup-now)")
    cluster.kubectl(
        "annotate", "-n", DEMO_NAMESPACE, "backuppolicy/config-export",
        "runbook.dev/backup-now=demo",
    )

    def recorded() -> bool:
        out = cluster.kubectl(
            "get", "backuppolicy", "config-export", "-n", DEMO_NAMESPACE, "-o", "json"
        ).stdout
        return bool(json.loads(out).get("status", {}).get("lastSuccessfulTime"))

    wait_for(recorded, "the run's success in the policy status", timeout=60)


def show(cluster: LocalCluster) -> None:
    say("kubectl get runbook -A")
    print(cluster.kubectl("get", "runbook", "-A", "-o", "wide").stdout)
    say("kubectl runbook status -A")
    print(subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-runbook"), "status", "-A"],
        env=cluster.env(), capture_output=True, text=True, check=False,
    ).stdout)
    say("kubectl runbook alerts -A")
    print(subprocess.run(
        [str(Path(sys.executable).parent / "kubectl-runbook"), "alerts", "-A"],
        env=cluster.env(), capture_output=True, text=True, check=False,
    ).stdout)
    say(f"kubectl get cronjobs,jobs -n {DEMO_NAMESPACE}")
    print(cluster.kubectl("get", "cronjobs,jobs", "-n", DEMO_NAMESPACE).stdout)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after showing the status")
    parser.add_argument(
        "--workdir", type=Path, default=Path(".demo"), help="where kubeconfigs and logs go"
    )
    args = parser.parse_args(argv)
    repo = repo_root()
    workdir = args.workdir.resolve()
    if workdir.exists():
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    started = time.monotonic()
    say("starting the local control plane (the first run builds it from Go modules)")
    with LocalCluster(workdir=workdir / "cluster", remove_workdir=False) as cluster:
        print(f"control plane up in {time.monotonic() - started:.1f}s at {cluster.server}")
        install(cluster, repo)
        kubeconfig = cluster.service_account_kubeconfig(
            OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, workdir / "operator.kubeconfig"
        )
        say("starting Prometheus (Debian package) scraping the demo's metrics")
        exporter = demo_exporter()
        prometheus = PrometheusServer([exporter.target])
        prometheus.start()
        prometheus.wait_targets_up()
        say("starting the operator as system:serviceaccount:runbook-system:runbook-operator")
        operator = LocalOperator(kubeconfig, workdir / "operator.log", resync_seconds=10,
                                 extra_args=(f"--prometheus-url={prometheus.url}",))
        operator.start()
        try:
            apply_examples(cluster, repo)
            run_one_backup(cluster)
            show(cluster)
            say("explore it yourself")
            print(f"  export KUBECONFIG={cluster.admin_kubeconfig}")
            print(f"  export PATH={cluster.bin_dir}:$PATH")
            print("  kubectl get runbook -A; kubectl describe bp -n runbook-demo app-db-nightly")
            print("  kubectl get cronjob -n runbook-demo app-db-nightly-backup -o yaml")
            print(f"  operator log: {operator.log_path}")
            if not args.once:
                print("\nPress Ctrl-C to stop the operator and the control plane.", flush=True)
                try:
                    while not stop.wait(1):
                        if not operator.alive():
                            print("operator exited; see its log", file=sys.stderr)
                            return 1
                except KeyboardInterrupt:
                    pass
        finally:
            say("stopping")
            operator.stop()
            prometheus.stop()
            exporter.stop()
    print("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
