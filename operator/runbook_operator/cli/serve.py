"""`runbook-operator run`: the operator process (kopf, the controllers, metrics, health)."""

from __future__ import annotations

import argparse
import asyncio
import gc
import gzip
import logging
import os
import socket
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import kopf
from aiohttp import web
from prometheus_client import disable_created_metrics
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from runbook_operator.cli.logs import configure
from runbook_operator.controllers import metrics, register_all
from runbook_operator.controllers.incident_sources import receiver_loop
from runbook_operator.controllers.leadership import Elector, Term, lead_in_terms
from runbook_operator.controllers.registration import OperatorConfig
from runbook_operator.core.leadership import Timing
from runbook_operator.core.incident.alertmanager import DEFAULT_MAX_BODY_BYTES, ReceiverSettings
from runbook_operator.integrations.alertmanager_receiver import ReceiverConfig
from runbook_operator.integrations.kubeapi import Connection, load_connection
from runbook_operator.integrations.kubernetes import Kube, connect
from runbook_operator.integrations.lease import LeaseRef, Leases

log = logging.getLogger(__name__)
LIST_PAGE_SIZE = 500
GC_YOUNG_THRESHOLD = 50_000
IDLE_WORKER_SECONDS = 0.05


class NoDiffBase(kopf.DiffBaseStorage):
    """No copy of an object's last handled spec. kopf keeps one for change-detecting handlers
    (on.create, on.update, on.resume), but every kind here reacts to watch events (on.event)
    and keeps its own state in status; kopf still deep-copied each event's body into one and
    threw it away, 4 % of the operator's CPU at 5,000 AlertRules (bench/README.md). A kind
    that registers a change-detecting handler needs kopf.AnnotationsDiffBaseStorage back, and
    tests/unit/controllers/test_registration.py fails until it has it."""

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        """Nothing is kept (see the class docstring)."""


def operator_settings(args: argparse.Namespace) -> kopf.OperatorSettings:
    """kopf settings chosen on purpose rather than left at their defaults."""
    settings = kopf.OperatorSettings()
    settings.watching.server_timeout = args.watch_timeout
    settings.watching.client_timeout = args.watch_timeout + 30
    settings.watching.connect_timeout = 30
    settings.networking.request_timeout = 60
    # Objects handled at once (kopf's per-object workers): the events of the others wait in
    # their queues, read but not yet handled. Unbounded, a start with 1,800 new objects was
    # handled all at once and left the operator at 132 MiB; with 64, 112 MiB and as fast
    # (bench/README.md). A worker whose object has no more events ends after `idle_timeout`
    # and frees its place for the next object; at 0.5 s, 5,000 AlertRules' events queued
    # behind 64 idle workers and held 212 MiB. `execution.max_workers` bounds the threads
    # that synchronous handlers run in.
    settings.queueing.worker_limit = args.object_workers or None
    settings.queueing.idle_timeout = IDLE_WORKER_SECONDS
    settings.execution.max_workers = args.workers
    # The initial LIST in pages, as client-go's reflector does: one response of 5,000
    # AlertRules was decoded whole and set the operator's peak memory (bench/README.md).
    settings.watching.chunk_size = LIST_PAGE_SIZE
    settings.posting.level = logging.WARNING
    settings.posting.reporting_component = "runbook-operator"
    settings.posting.reporting_instance = socket.gethostname()
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="runbook.dev")
    settings.persistence.diffbase_storage = NoDiffBase()
    # One instance acts at a time by holding the Lease (controllers/leadership.py), not by
    # kopf's peering, which freezes every replica that shares the highest priority.
    settings.peering.standalone = True
    # Watching chosen namespaces is the namespace-scoped install (manifests-namespaced/): no
    # right to list namespaces or watch CRDs there, so kopf neither tries nor warns.
    settings.scanning.disabled = bool(args.namespace)
    return settings


def identity() -> str:
    """This instance's name in the Lease: the pod's name where the Deployment passes it (a
    container restarted in its pod is recognised as the holder it was), else host and a
    random suffix."""
    return os.environ.get("POD_ID") or f"{socket.gethostname()}-{uuid.uuid4().hex[:8]}"


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


async def serve_health(address: str, port: int) -> None:
    """`/healthz` on every instance, leading or standing by: it answers while the process's
    event loop runs, and never depends on the API server, so an API outage does not make the
    kubelet restart the operator."""

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    await _serve_get(address, port, "/healthz", healthz)


async def serve_metrics(address: str, port: int) -> None:
    """`/metrics` on every instance, in the Prometheus text format (gzipped when asked, at
    the fastest level: the per-rule series of 5,000 AlertRules are 1.6 MB, 67 ms to gzip at
    the default level and 8 ms at level 1). Rendered in a worker thread, off the loop."""

    async def scrape(request: web.Request) -> web.Response:
        gzipped = "gzip" in request.headers.get("Accept-Encoding", "")
        body = await asyncio.to_thread(_scrape_body, gzipped)
        headers = {"Content-Type": CONTENT_TYPE_PLAIN_0_0_4}
        if gzipped:
            headers["Content-Encoding"] = "gzip"
        return web.Response(body=body, headers=headers)

    await _serve_get(address, port, "/metrics", scrape)


async def _serve_get(address: str, port: int, path: str,
                     handler: Callable[[web.Request], Awaitable[web.Response]]) -> None:
    """Answer GET `path` until cancelled."""
    app = web.Application()
    app.router.add_get(path, handler)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, address, port).start()
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()


def _scrape_body(gzipped: bool) -> bytes:
    body = metrics.exposition()
    return gzip.compress(body, compresslevel=1) if gzipped else body


def connection_info(connection: Connection) -> kopf.ConnectionInfo:
    """The same credentials for kopf's own watches and patches."""
    token = connection.token
    return kopf.ConnectionInfo(
        server=connection.server,
        ca_path=connection.ca_path,
        ca_data=connection.ca_data,
        insecure=connection.insecure,
        certificate_path=connection.cert_path,
        certificate_data=connection.cert_data,
        private_key_path=connection.key_path,
        private_key_data=connection.key_data,
        token=token.value() if token else None,
        username=connection.username,
        password=connection.password,
        default_namespace=connection.namespace,
        expiration=token.expiration if token else None,
    )


def term(
    args: argparse.Namespace, kube: Kube, config: OperatorConfig, connection: Connection
) -> Term:
    """The operator proper for one term of leadership: a fresh registry (so fresh schedulers
    and loops) on every start."""

    async def run_until(stop: asyncio.Event) -> None:
        registry = kopf.OperatorRegistry()

        @kopf.on.login(registry=registry)
        def login(**_: object) -> kopf.ConnectionInfo:
            # Asked again when the API server refuses the credentials: a rotated token.
            if connection.token:
                connection.token.refresh()
            return connection_info(connection)

        settings = operator_settings(args)
        register_all(registry, settings, kube, config)
        await kopf.operator(
            registry=registry,
            settings=settings,
            clusterwide=not args.namespace,
            namespaces=args.namespace,
            stop_flag=stop,
        )

    return run_until


async def serve(args: argparse.Namespace, connection: Connection) -> None:
    """Health, the Alertmanager receiver and metrics on every instance; the operator proper
    while this instance leads (or always with --standalone)."""
    kube = connect(args.api_qps, args.api_burst, connection=connection)
    config = OperatorConfig(
        runner_image=args.runner_image,
        default_prometheus=args.prometheus_url,
        prometheus_external_url=args.prometheus_external_url,
        external_url=args.external_url,
        resync_seconds=args.resync_interval,
        namespaces=tuple(args.namespace),
        alertmanager=receiver_config(args),
        **({} if args.alert_heartbeat_writes is None
           else {"alert_heartbeat_writes": args.alert_heartbeat_writes}),
    )
    services = [asyncio.create_task(serve_health(args.bind_address, args.health_port))]
    if args.metrics_port:
        services.append(asyncio.create_task(serve_metrics(args.bind_address, args.metrics_port)))
    if config.alertmanager is not None:
        services.append(asyncio.create_task(receiver_loop(kube, config.alertmanager)(log)))
    try:
        if args.standalone:
            await term(args, kube, config, connection)(asyncio.Event())
        else:
            timing = Timing.for_lease(args.lease_duration)
            leases = Leases(LeaseRef(args.lease_namespace, args.lease), timing.retry_seconds * 2,
                            connection)
            await lead_in_terms(Elector(leases, identity(), timing),
                                term(args, kube, config, connection))
    finally:
        for task in services:
            task.cancel()


def tune_garbage_collection() -> None:
    """Young collections every 50,000 net allocations rather than 700: at 5,000 AlertRules a
    batch's short-lived objects were still alive at the young collections that ran mid-batch,
    so they were promoted, and the full collections that followed cost 1.4 % of a core; with
    this, 0.1 % (bench/README.md). Almost everything is freed by reference counting anyway."""
    gc.set_threshold(GC_YOUNG_THRESHOLD, 20, 10)


def run(args: argparse.Namespace) -> None:
    configure(args.log_level, args.json_logs)
    tune_garbage_collection()
    connection = load_connection()
    # A `_created` sample per series adds nothing to alert on and ~10 % to every scrape.
    disable_created_metrics()
    asyncio.run(serve(args, connection))
