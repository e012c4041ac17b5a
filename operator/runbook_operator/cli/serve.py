"""`runbook-operator run`: the operator process (kopf, the controllers, metrics, health)."""

from __future__ import annotations

import argparse
import logging
import socket

import kopf
from prometheus_client import disable_created_metrics, start_http_server

from runbook_operator.api.common import MANAGED_BY_LABEL, MANAGED_BY_VALUE
from runbook_operator.cli.logs import configure
from runbook_operator.controllers import register_all
from runbook_operator.controllers.registration import OperatorConfig
from runbook_operator.core.incident.alertmanager import DEFAULT_MAX_BODY_BYTES, ReceiverSettings
from runbook_operator.integrations.alertmanager_receiver import ReceiverConfig
from runbook_operator.integrations.kubernetes import Kube, load_client_config


def operator_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    """kopf settings chosen on purpose rather than left at their defaults."""
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = args.watch_timeout
    settings.watching.client_timeout = args.watch_timeout + 30
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    # Per-object workers are coroutines, left unbounded: a cap below the number of objects
    # made 1,000 new AlertRules wait minutes to be seen (bench/). `execution.max_workers`
    # bounds the threads that synchronous handlers run in.
    settings.queueing.worker_limit = None
    # kopf keeps a finished object's worker alive this long for more events (default 5 s).
    settings.queueing.idle_timeout = 0.5
    settings.execution.max_workers = args.workers
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "runbook-operator"
    settings.posting.reporting_instance = socket.gethostname()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="runbook.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="runbook.dev")
    settings.peering.mandatory = not args.standalone
    settings.peering.lifetime = args.peering_lifetime
    settings.peering.clusterwide = not args.namespace
    # Watching chosen namespaces is the namespace-scoped install (manifests-namespaced/): no
    # right to list namespaces or watch CRDs there, so kopf neither tries nor warns.
    settings.scanning.disabled = bool(args.namespace)
    return settings


def peering_objects(name: str, namespaces: list[str]) -> list[dict[str, object]]:
    """The peering records the replicas share: a ClusterKopfPeering, or a KopfPeering in each
    watched namespace (kopf's namespaced peering). Created here rather than in manifests/
    because a custom resource cannot be applied in the same pass as its CRD."""
    meta = {"name": name, "labels": {MANAGED_BY_LABEL: MANAGED_BY_VALUE}}
    if not namespaces:
        return [{"apiVersion": "kopf.dev/v1", "kind": "ClusterKopfPeering", "metadata": meta}]
    return [{"apiVersion": "kopf.dev/v1", "kind": "KopfPeering",
             "metadata": {**meta, "namespace": namespace}} for namespace in namespaces]


def receiver_config(args: argparse.Namespace) -> ReceiverConfig | None:
    """The Alertmanager receiver the flags ask for (None: no --alertmanager-port)."""
    if not args.alertmanager_port:
        return None
    namespace, _, secret = args.alertmanager_token_secret.rpartition("/")
    limit = args.alertmanager_max_body_bytes
    return ReceiverConfig(
        port=args.alertmanager_port,
        token_namespace=namespace or args.alertmanager_namespace,
        token_secret=secret,
        token_key=args.alertmanager_token_key,
        settings=ReceiverSettings(
            namespace=args.alertmanager_namespace,
            severity=args.alertmanager_severity,
            policy=args.alertmanager_escalation_policy,
            resolve_when_resolved=args.alertmanager_resolve,
        ),
        max_body_bytes=DEFAULT_MAX_BODY_BYTES if limit is None else limit,
    )


def run(args: argparse.Namespace) -> None:
    configure(args.log_level, args.json_logs)
    load_client_config()
    registry = kopf.OperatorRegistry()

    @kopf.on.login(registry=registry)
    def login(**kwargs: object) -> kopf.ConnectionInfo | None:
        return kopf.login_via_client(**kwargs)

    kube = Kube()
    if not args.standalone:
        for peering in peering_objects(args.peering, args.namespace):
            kube.apply(peering)
    settings = operator_settings(args)
    config = OperatorConfig(
        runner_image=args.runner_image,
        default_prometheus=args.prometheus_url,
        prometheus_external_url=args.prometheus_external_url,
        external_url=args.external_url,
        resync_seconds=args.resync_interval,
        namespaces=tuple(args.namespace),
        alertmanager=receiver_config(args),
    )
    register_all(registry, settings, kube, config)
    if args.metrics_port:
        # A `_created` sample per series adds nothing to alert on and ~10 % to every scrape.
        disable_created_metrics()
        start_http_server(args.metrics_port)
    kopf.run(
        registry=registry,
        settings=settings,
        standalone=args.standalone,
        peering_name=None if args.standalone else args.peering,
        priority=args.priority,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=f"http://0.0.0.0:{args.health_port}/healthz",
    )
