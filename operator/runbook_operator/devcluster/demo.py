"""`make demo`: a local control plane in a network namespace of its own, the operator under its
own ServiceAccount, the examples applied and their status shown, and real work: the demo app
answers through the gateway under steady traffic (the share each version served, the time a
weight change takes to show), every example AlertRule evaluates series those pods, the
kubelet and the gateway really expose, the backup runner dumps a real PostgreSQL into MinIO
and a volume directory, the objects are listed from storage with their size and sha256, and a
restore test restores the newest backup into a scratch database and reports its RTO, and a
CanaryRollout promotes a healthy version and rolls back a failing one under live traffic.

The examples name in-cluster services (``app-db.default.svc``, a MinIO service, Slack and
PagerDuty); the demo points them at the local PostgreSQL, MinIO and a local receiver that
only records what it is sent (:func:`localize`); nothing could leave the namespace anyway.
The API server, the gateway and Prometheus are relayed to the host's loopback for the
"explore it yourself" lines. Ctrl-C stops everything; `--once` stops after the status (CI)."""

from __future__ import annotations

import argparse
import hashlib
import json
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import yaml

from runbook_operator.core.backuppolicy.runner_config import BACKUPS_MOUNT
from runbook_operator.devcluster import discovery, network
from runbook_operator.devcluster.cluster import LocalCluster, build_scripts, repo_root
from runbook_operator.devcluster.demo_canary import NAMESPACE as CANARY_NAMESPACE
from runbook_operator.devcluster.demo_canary import CanaryDemo
from runbook_operator.devcluster.demo_live import (
    ANOMALY_RULE,
    LiveApp,
    anomaly_for_the_demo,
    print_table,
)
from runbook_operator.devcluster.local_operator import LocalOperator
from runbook_operator.devcluster.services import MinioServer, PostgresServer
from runbook_operator.devcluster.waiting import free_port, wait_for

DEMO_NAMESPACE = "runbook-demo"
#: What the "explore it yourself" lines reach from the user's shell.
RELAYS = ("kube-apiserver", "gateway", "prometheus")
OPERATOR_NAMESPACE = "runbook-system"
OPERATOR_ACCOUNT = "runbook-operator"
APP_DATABASE = "app"
BUCKET = "backups"
BACKUP_CLAIM = "backup-volume"
BACKUPS = ("app-db-nightly", "app-db-hourly")
RESTORE_TESTED = "app-db-nightly"
#: The incident walk-through: a copy of an example rule that opens an Incident, paged along a
#: demo-speed copy of the runbooks' EscalationPolicy (seconds where the runbooks say minutes).
INCIDENT_RULE = "queue-backlog-incident"
DEMO_LADDER = "default-demo-speed"
DEMO_LEVEL_DELAYS = ("0s", "10s", "20s", "30s")
APP_SCHEMA = """
CREATE TABLE users (id serial PRIMARY KEY, email text UNIQUE NOT NULL, created timestamptz);
CREATE TABLE orders (id bigserial PRIMARY KEY, user_id int REFERENCES users (id),
                     amount numeric(10, 2), note text);
INSERT INTO users (email, created)
    SELECT 'user' || g || '@example.com', now() - g * interval '1 hour'
    FROM generate_series(1, 5000) g;
INSERT INTO orders (user_id, amount, note)
    SELECT 1 + g % 5000, (g % 500) + 0.99, md5(g::text) FROM generate_series(1, 50000) g;
"""


class Progress:
    """One line per step, with the time since the demo started."""

    def __init__(self) -> None:
        self.started = time.monotonic()

    def say(self, text: str) -> None:
        print(f"\n==> [{time.monotonic() - self.started:5.1f}s] {text}", flush=True)


@dataclass(frozen=True)
class LocalEndpoints:
    """Where the examples' services really are during the demo."""

    postgres_host: str
    postgres_port: int
    postgres_user: str
    postgres_password: str
    s3_endpoint: str
    s3_access_key: str
    s3_secret_key: str
    receiver_url: str


def localize(docs: list[dict[str, Any]], local: LocalEndpoints) -> list[dict[str, Any]]:
    """The examples with their service addresses and Secret values replaced by the demo's
    local ones, and the anomaly rule's training sized to a demo's minutes
    (:func:`.demo_live.anomaly_for_the_demo`); everything else (schedules, retention,
    restore tests, every other rule) as written."""
    secrets = {
        "app-db-credentials": {"password": local.postgres_password},
        "backup-bucket-credentials": {"AWS_ACCESS_KEY_ID": local.s3_access_key,
                                      "AWS_SECRET_ACCESS_KEY": local.s3_secret_key},
        "notification-endpoints": {"slack-webhook-url": f"{local.receiver_url}/slack",
                                   "incident-webhook-url": f"{local.receiver_url}/webhook"},
    }
    result = []
    for doc in docs:
        doc = json.loads(json.dumps(doc))
        name = doc["metadata"]["name"]
        if doc["kind"] == "Secret" and name in secrets:
            doc["stringData"] = {**doc.get("stringData", {}), **secrets[name]}
        spec = doc.get("spec") or {}
        database = (spec.get("source") or {}).get("postgres")
        if doc["kind"] == "BackupPolicy" and database:
            database.update(host=local.postgres_host, port=local.postgres_port,
                            user=local.postgres_user)
        s3 = (spec.get("destination") or {}).get("s3")
        if doc["kind"] == "BackupPolicy" and s3:
            s3["endpoint"] = local.s3_endpoint
        if doc["kind"] == "NotificationChannel" and "pagerduty" in spec:
            spec["pagerduty"]["endpoint"] = f"{local.receiver_url}/pagerduty"
        if doc["kind"] == "AlertRule" and name == ANOMALY_RULE:
            doc["spec"] = anomaly_for_the_demo(spec)
        result.append(doc)
    return result


#: Examples that bring an app and a route of their own: the canary part of the demo applies
#: them into a namespace of their own (`demo_canary`).
CANARY_EXAMPLES = "canaryrollout*.yaml"


def example_documents(repo: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted((repo / "examples").glob("*.yaml")):
        if not path.match(CANARY_EXAMPLES):
            docs += [d for d in yaml.safe_load_all(path.read_text()) if d]
    return docs


@contextmanager
def notification_sink(log_path: Path) -> Iterator[str]:
    """A local HTTP server standing in for Slack, PagerDuty and the webhook: it answers 200
    and appends each request's path and body to `log_path`."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            with log_path.open("ab") as out:
                out.write(self.path.encode() + b" " + body + b"\n")
            self.send_response(200 if self.path != "/pagerduty" else 202)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002
            return

    server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


class Demo:
    def __init__(self, cluster: LocalCluster, progress: Progress, workdir: Path) -> None:
        self.cluster = cluster
        self.say = progress.say
        self.workdir = workdir
        self.plugin = str(Path(sys.executable).parent / "kubectl-runbook")

    def kubectl(self, *args: str, **kwargs: Any) -> str:
        return self.cluster.kubectl(*args, **kwargs).stdout

    def kubectl_runbook(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([self.plugin, *args], env=self.cluster.env(), capture_output=True,
                              text=True, check=False, timeout=600)

    def policy(self, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "backuppolicy", name, "-n", DEMO_NAMESPACE,
                                       "-o", "json"))

    def install(self, repo: Path) -> None:
        self.say("installing CRDs, namespace, ServiceAccount and least-privilege RBAC "
                 "(manifests/)")
        print(self.kubectl("apply", "--server-side", "-k", str(repo / "hack" / "local-install")))
        self.cluster.wait_established("crd", "-l", "app.kubernetes.io/part-of=runbook-operator")
        self.kubectl("api-resources")

    def create_namespace(self) -> None:
        self.kubectl("create", "namespace", DEMO_NAMESPACE)
        wait_for(lambda: self.cluster.kubectl("get", "serviceaccount", "default", "-n",
                                              DEMO_NAMESPACE, check=False).returncode == 0,
                 "the demo namespace's default ServiceAccount")

    def apply_examples(self, docs: list[dict[str, Any]]) -> None:
        self.say(f"applying examples/ into namespace {DEMO_NAMESPACE} (addresses and Secrets "
                 "pointed at the local services), with a bound claim for the backup volume")
        self.cluster.create_claim(DEMO_NAMESPACE, BACKUP_CLAIM)
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": docs})
        print(self.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", "-", input=body))
        self.say("waiting for every runbook resource to be Ready")
        for kind in ("notificationchannels.runbook.dev", "backuppolicies.runbook.dev",
                     "alertrules.runbook.dev"):
            print(self.kubectl("wait", "--for=condition=Ready", "--timeout=120s",
                               "-n", DEMO_NAMESPACE, kind, "--all"))

    def run_backups(self) -> None:
        """`kubectl runbook backup now --wait` for each database policy, side by side: the
        operator starts a Job, the runtime runs the runner's pod as a real process."""
        self.say("backing up the app database now: " + ", ".join(
            f"kubectl runbook backup now {name} --wait" for name in BACKUPS))
        runs = {name: subprocess.Popen(
            [self.plugin, "backup", "now", name, "-n", DEMO_NAMESPACE, "--wait",
             "--timeout", "5m"],
            env=self.cluster.env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
            for name in BACKUPS}
        failed = []
        for name, process in runs.items():
            output, _ = process.communicate(timeout=600)
            print(output.rstrip())
            if process.returncode != 0:
                failed.append(name)
        if failed:
            raise SystemExit(f"backup of {', '.join(failed)} failed; see above")

    def show_stored(self, minio: MinioServer) -> None:
        """Each backup as the storage holds it, checked against what the runner reported."""
        self.say("the backups as stored: listed from MinIO and from the volume's directory, "
                 "size and sha256 computed here from the stored bytes")
        rows = [("POLICY", "STORED OBJECT", "SIZE", "SHA256", "MATCHES STATUS")]
        for name in BACKUPS:
            last = self.policy(name)["status"]["lastBackup"]
            for key, data in self._stored_objects(name, last["location"], minio):
                digest = hashlib.sha256(data).hexdigest()
                same = len(data) == last["sizeBytes"] and digest == last["sha256"]
                rows.append((name, key, str(len(data)), digest[:16] + "…", "yes" if same else "NO"))
        print_table(rows)
        if any(row[-1] == "NO" for row in rows[1:]):
            raise SystemExit("a stored backup differs from what its status says")

    def _stored_objects(self, name: str, location: str,
                        minio: MinioServer) -> list[tuple[str, bytes]]:
        if location.startswith("s3://"):
            bucket, _, prefix = location.removeprefix("s3://").partition("/")
            s3 = minio.client()
            keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)
                    .get("Contents", []) if not o["Key"].endswith("manifest.json")]
            return [(f"s3://{bucket}/{k}", s3.get_object(Bucket=bucket, Key=k)["Body"].read())
                    for k in keys]
        inside = Path(unquote(urlparse(location).path)).relative_to(BACKUPS_MOUNT)
        directory = self.cluster.claim_dir(DEMO_NAMESPACE, BACKUP_CLAIM) / inside
        return [(f"pvc/{BACKUP_CLAIM}:/{inside / p.name}", p.read_bytes())
                for p in sorted(directory.iterdir()) if p.name != "manifest.json"]

    def run_restore_test(self, postgres: PostgresServer) -> None:
        """The weekly restore test, started now from its CronJob as `kubectl create job
        --from` would: the runner restores the newest backup into a scratch database."""
        cronjob = f"{RESTORE_TESTED}-restore"
        self.say(f"restore test now: kubectl create job --from=cronjob/{cronjob} (restores the "
                 "newest backup into a scratch database)")
        print(self.kubectl("create", "job", f"{cronjob}-demo", f"--from=cronjob/{cronjob}",
                           "-n", DEMO_NAMESPACE))

        def verified() -> dict[str, Any] | None:
            status = self.policy(RESTORE_TESTED).get("status") or {}
            tested = status.get("lastVerifiedBackup")
            return status if tested and tested["jobName"] == f"{cronjob}-demo" else None

        status = wait_for(verified, "the restore test's result", timeout=300)
        tested = status["lastVerifiedBackup"]
        condition = next(c for c in status["conditions"] if c["type"] == "Verified")
        print(f"Verified={condition['status']} ({condition['reason']}): {condition['message']}")
        if tested["outcome"] != "Succeeded":
            raise SystemExit("the restore test failed; see above")
        scratch = f"{APP_DATABASE}_restore_test"
        users = postgres.psql("SELECT count(*) FROM users", scratch)
        print(f"RTO {tested['durationSeconds']:.1f}s: backup {tested['backupKey']} restored into "
              f"database {scratch} ({users} users, checked by the policy's checkQuery)")

    def incident_walkthrough(self, docs: list[dict[str, Any]]) -> None:
        """An alert opens an Incident, which climbs a demo-speed copy of the runbooks' ladder
        until someone acknowledges it; on resolution the operator writes the postmortem."""
        policy = next(d for d in docs if d["kind"] == "EscalationPolicy"
                      and d["metadata"]["name"] == "default")
        rule = next(d for d in docs if d["kind"] == "AlertRule"
                    and d["metadata"]["name"] == "queue-backlog")
        ladder = json.loads(json.dumps(policy))
        ladder["metadata"] = {"name": DEMO_LADDER}
        for level, after in zip(ladder["spec"]["levels"], DEMO_LEVEL_DELAYS, strict=True):
            level["after"] = after
        for key in ("repeat", "ackTimeout"):
            ladder["spec"].pop(key, None)
        alert = {"apiVersion": rule["apiVersion"], "kind": "AlertRule",
                 "metadata": {"name": INCIDENT_RULE},
                 "spec": {**{k: v for k, v in rule["spec"].items() if k != "actions"},
                          # One series per queue, not per pod: one Incident to walk through.
                          "query": f"max by (service, queue) ({rule['spec']['query']})",
                          "for": "5s", "interval": "5s",
                          "incident": {"severity": "P1",
                                       "escalationPolicyRef": {"name": DEMO_LADDER},
                                       "resolveWhenRecovered": True}}}
        self.say(f"an alert opens an Incident: AlertRule {INCIDENT_RULE} (queue-backlog per "
                 "queue rather than per pod, `for: 5s` and spec.incident P1) paged along "
                 f"EscalationPolicy {DEMO_LADDER}, "
                 "the runbooks' ladder at demo speed (L1 0 s, L2 10 s, L3 20 s, L4 30 s "
                 "where the runbooks say 0 m, 30 m, 1 h, 2 h)")
        body = json.dumps({"apiVersion": "v1", "kind": "List", "items": [ladder, alert]})
        print(self.kubectl("apply", "-n", DEMO_NAMESPACE, "-f", "-", input=body))

        def opened() -> dict[str, Any] | None:
            found = json.loads(self.kubectl("get", "incidents", "-n", DEMO_NAMESPACE, "-o",
                                            "json"))["items"]
            return next((i for i in found if (i["spec"].get("source") or {}).get("name")
                         == INCIDENT_RULE), None)

        name = wait_for(opened, "the Incident the alert opens", timeout=120)["metadata"]["name"]
        level = wait_for(lambda: self.incident(name)["status"].get("escalation", {})
                         .get("level", 0) >= 2 and self.incident(name),
                         "escalation to L2 (10 s after opening)", timeout=60)
        print(self.kubectl("get", "incident", name, "-n", DEMO_NAMESPACE))
        print(f"level {level['status']['escalation']['level']} reached; paged: " + ", ".join(
            sorted({n["channel"] for n in level["status"].get("notifications") or []})))
        self.say(f"kubectl runbook incident ack {name} (signed with your own username; "
                 "escalation stops at once)")
        print(self.kubectl_runbook("incident", "ack", name, "-n", DEMO_NAMESPACE).stdout)
        acknowledged = wait_for(lambda: self.incident(name)["status"].get("acknowledgedBy")
                                and self.incident(name), "the acknowledgement", timeout=60)
        print(f"acknowledged by {acknowledged['status']['acknowledgedBy']}, MTTA "
              f"{acknowledged['status']['mttaSeconds']:.0f}s; L3 is never paged")
        self.say(f"kubectl runbook incident resolve {name} --note ... (the operator writes the "
                 "postmortem)")
        print(self.kubectl_runbook("incident", "resolve", name, "-n", DEMO_NAMESPACE, "--note",
                                   "scaled the queue workers; backlog drains").stdout)
        resolved = wait_for(lambda: self.incident(name)["status"].get("postmortemRef")
                            and self.incident(name), "the postmortem", timeout=60)
        status = resolved["status"]
        print(f"resolved, MTTR {status['mttrSeconds']:.0f}s; level reached "
              f"{status['escalation']['level']}, timeline of {status['timelineTotal']} entries")
        postmortem = json.loads(self.kubectl("get", "configmap", status["postmortemRef"], "-n",
                                             DEMO_NAMESPACE, "-o", "json"))["data"]
        self.say(f"the postmortem (ConfigMap {status['postmortemRef']}), up to the root cause "
                 "and action items people write")
        print(postmortem["postmortem.md"].split("\n## Root cause", 1)[0].rstrip())
        self.kubectl("delete", "alertrule", INCIDENT_RULE, "-n", DEMO_NAMESPACE)

    def incident(self, name: str) -> dict[str, Any]:
        return json.loads(self.kubectl("get", "incident", name, "-n", DEMO_NAMESPACE,
                                       "-o", "json"))

    def show(self) -> None:
        self.say("kubectl get runbook -A")
        print(self.kubectl("get", "runbook", "-A", "-o", "wide"))
        for args in (("status", "-A"), ("alerts", "-A"),
                     *(("backup", "list", name, "-n", DEMO_NAMESPACE) for name in BACKUPS)):
            self.say(f"kubectl runbook {' '.join(args)}")
            print(self.kubectl_runbook(*args).stdout)
        self.say(f"kubectl get cronjobs,jobs,pods -n {DEMO_NAMESPACE}")
        print(self.kubectl("get", "cronjobs,jobs,pods", "-n", DEMO_NAMESPACE))
        job = self.policy(RESTORE_TESTED)["status"]["lastBackup"]["jobName"]
        self.say(f"kubectl logs job/{job} -n {DEMO_NAMESPACE} (the runner's own log)")
        print(self.kubectl("logs", f"job/{job}", "-n", DEMO_NAMESPACE))


def _start(stack: ExitStack, server: Any) -> Any:
    server.start()
    stack.callback(server.stop)
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="make demo", description=__doc__)
    parser.add_argument("--once", action="store_true", help="stop after showing the status")
    parser.add_argument(
        "--workdir", type=Path, default=Path(".demo"), help="where kubeconfigs and logs go"
    )
    args = parser.parse_args(argv)
    repo = repo_root()
    net = network.enter(RELAYS, prepare=build_scripts())
    workdir = args.workdir.resolve()
    if workdir.exists():
        subprocess.run(["rm", "-rf", str(workdir)], check=True)
    workdir.mkdir(parents=True)

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    progress = Progress()
    progress.say(f"entered {net.note}" if net.isolated else net.note)
    if net.isolated:
        print(subprocess.run(["ip", "-brief", "address"], capture_output=True, text=True,
                             check=True).stdout.rstrip())
        print(subprocess.run(["ip", "route", "show", "table", "all"], capture_output=True,
                             text=True, check=True).stdout.rstrip())
    progress.say("starting the local control plane: etcd, kube-apiserver, controller-manager, "
                 "scheduler, kwok, and the runtime that runs the project's and the gateway's "
                 "pods")
    with LocalCluster(workdir=workdir / "cluster", remove_workdir=False) as cluster, \
            ExitStack() as stack:
        print(f"control plane up at {cluster.server}, pod network {cluster.pod_network.cidr}")
        demo = Demo(cluster, progress, workdir)
        demo.install(repo)
        demo.create_namespace()
        live = LiveApp(cluster, progress.say, repo, DEMO_NAMESPACE) if cluster.isolated else None
        if live is not None:
            live.install_gateway()
            live.deploy()
            live.start_traffic(stack)
        progress.say(f"starting PostgreSQL (database {APP_DATABASE!r}), MinIO (bucket "
                     f"{BUCKET!r}), Prometheus discovering pods and the kubelet through the "
                     "API server, and a local receiver for notifications")
        postgres = _start(stack, PostgresServer())
        postgres.create_database(APP_DATABASE)
        postgres.psql(APP_SCHEMA, APP_DATABASE)
        minio = _start(stack, MinioServer())
        minio.create_bucket(BUCKET)
        prometheus = _start(stack, discovery.discovering_prometheus(cluster, workdir))
        prometheus_port = cluster.relay_to_host("prometheus", prometheus.host, prometheus.port)
        received = workdir / "notifications.log"
        receiver = stack.enter_context(notification_sink(received))
        print(f"PostgreSQL {postgres.host}:{postgres.port}, MinIO {minio.endpoint_url}, "
              f"Prometheus {prometheus.url}, receiver {receiver}")
        kubeconfig = cluster.service_account_kubeconfig(
            OPERATOR_NAMESPACE, OPERATOR_ACCOUNT, workdir / "operator.kubeconfig")
        progress.say(f"starting the operator as system:serviceaccount:{OPERATOR_NAMESPACE}:"
                     f"{OPERATOR_ACCOUNT}")
        operator = LocalOperator(kubeconfig, workdir / "operator.log", resync_seconds=10,
                                 extra_args=(f"--prometheus-url={prometheus.url}",))
        operator.start()
        stack.callback(operator.stop)
        local = LocalEndpoints(postgres.host, postgres.port, postgres.user, postgres.password,
                               minio.endpoint_url, minio.access_key, minio.secret_key,
                               receiver)
        docs = localize(example_documents(repo), local)
        if live is not None:
            live.wait_for_series(prometheus, docs)
        demo.apply_examples(docs)
        demo.run_backups()
        demo.show_stored(minio)
        demo.run_restore_test(postgres)
        demo.incident_walkthrough(docs)
        if live is not None:
            live.show_traffic(prometheus)
            live.wait_for_anomaly_model()
        demo.show()
        if live is not None:
            CanaryDemo(cluster, progress.say, repo).run()
        progress.say("explore it yourself (from any shell: the relays reach into the "
                     "cluster's network namespace)" if cluster.isolated else
                     "explore it yourself")
        print(f"  export KUBECONFIG={cluster.host_kubeconfig}")
        print(f"  export PATH={cluster.bin_dir}:$PATH")
        print(f"  kubectl get runbook -A; kubectl describe bp -n {DEMO_NAMESPACE} "
              f"{RESTORE_TESTED}")
        print(f"  kubectl logs -n {DEMO_NAMESPACE} -l runbook.dev/backuppolicy={RESTORE_TESTED}")
        if live is not None:
            print(f"  curl -s http://127.0.0.1:{cluster.relays['gateway']}/   "
                  "# the demo app through the gateway")
            print(f"  kubectl patch httproute checkout -n {DEMO_NAMESPACE} --type=json -p "
                  "'[{\"op\":\"replace\",\"path\":\"/spec/rules/0/backendRefs/1/weight\","
                  "\"value\":50}]'")
            print(f"  kubectl runbook canary status checkout -n {CANARY_NAMESPACE}")
        print(f"  curl -s 'http://127.0.0.1:{prometheus_port}/api/v1/query?query=up'   "
              "# Prometheus' API (built without its web UI)")
        print(f"  operator log: {operator.log_path}; notifications received: {received}")
        print(f"  pods' files and logs: {cluster.runtime_dir}")
        if not args.once:
            print("\nPress Ctrl-C to stop the operator and the control plane.", flush=True)
            try:
                while not stop.wait(1):
                    if not operator.alive():
                        print("operator exited; see its log", file=sys.stderr)
                        return 1
            except KeyboardInterrupt:
                pass
        progress.say("stopping")
    print("stopped cleanly")
    return 0


if __name__ == "__main__":
    sys.exit(main())
