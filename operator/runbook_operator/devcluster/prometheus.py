"""Real Prometheus and Alertmanager for AlertRule tests and benchmarks, from Debian's packages
(hack/install-test-deps.sh), plus an in-process exporter whose series the test sets.

Same approach as ``services.py``: free loopback ports, a throw-away work dir, readiness polled
against a deadline, and each process dies with the thread that started it
(``PR_SET_PDEATHSIG``), so a killed test run leaves no server behind.

Facts that shaped this:

- Prometheus scrapes and evaluates every second: a test sees a value it set within ~1-2 s
  and a rule's ``for: 3s`` is meaningful. ``scrape_timeout`` must not exceed the interval.
- ``honor_labels: true`` lets the exporter's series carry their own ``instance``/``job``, so
  tests control every label an alert is identified by.
- Alertmanager's gossip cluster is disabled (``--cluster.listen-address=``): it would bind a
  fixed port (9094) and wait for peers before settling.
- Prometheus can evaluate alerting rules of its own (``rule_groups``, written to a rule file)
  and send their alerts to Alertmanagers (``alertmanagers``): the tests compare the operator
  with both. Its first alert reaches an Alertmanager after target discovery's 5 s throttle.
"""

from __future__ import annotations

import math
import re
import signal
import threading
from collections.abc import Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self

import httpx
import yaml

from runbook_operator.devcluster.waiting import free_port
from runbook_operator.devcluster.services import ServiceError, _Server, _ServerProcess

PROMETHEUS_BIN = Path("/usr/bin/prometheus")
ALERTMANAGER_BIN = Path("/usr/bin/prometheus-alertmanager")
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

SeriesKey = tuple[str, tuple[tuple[str, str], ...]]


def format_sample_value(value: float) -> str:
    """The exposition format's spelling of a value, including NaN and the infinities."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))


def _escape_label_value(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class MetricsExporter:
    """An HTTP server on 127.0.0.1 serving ``/metrics`` with exactly the gauges the test set.

    Removing a series makes Prometheus mark it stale on the next scrape, which is how a test
    produces "no data"."""

    def __init__(self) -> None:
        self._series: dict[SeriesKey, float] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def _key(name: str, labels: Mapping[str, str] | None) -> SeriesKey:
        if not _METRIC_NAME.fullmatch(name):
            raise ValueError(f"invalid metric name {name!r}")
        for label in labels or {}:
            if not _LABEL_NAME.fullmatch(label) or label.startswith("__"):
                raise ValueError(f"invalid label name {label!r}")
        return name, tuple(sorted((labels or {}).items()))

    def set(self, name: str, labels: Mapping[str, str] | None, value: float) -> None:
        """Create or update one series (a gauge); NaN and ±Inf are allowed."""
        self.set_many(name, [(labels or {}, value)])

    def set_many(self, name: str, series: Sequence[tuple[Mapping[str, str], float]]) -> None:
        """Create or update several series of `name` at once: no scrape sees some of them
        changed and others not."""
        keyed = {self._key(name, labels): float(value) for labels, value in series}
        with self._lock:
            self._series.update(keyed)

    def remove(self, name: str, labels: Mapping[str, str] | None = None) -> None:
        """Drop one series, or every series of `name` when `labels` is None."""
        with self._lock:
            if labels is None:
                for key in [k for k in self._series if k[0] == name]:
                    del self._series[key]
            else:
                self._series.pop(self._key(name, labels), None)

    def render(self) -> str:
        """The current series in the Prometheus text format (version 0.0.4)."""
        with self._lock:
            series = sorted(self._series.items())
        lines: list[str] = []
        current = None
        for (name, labels), value in series:
            if name != current:
                lines.append(f"# TYPE {name} gauge")
                current = name
            rendered = ",".join(f'{k}="{_escape_label_value(v)}"' for k, v in labels)
            selector = f"{name}{{{rendered}}}" if rendered else name
            lines.append(f"{selector} {format_sample_value(value)}")
        return "\n".join(lines) + "\n"

    def start(self) -> None:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?", 1)[0] != "/metrics":
                    self.send_error(404)
                    return
                body = exporter.render().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002
                """Silent: Prometheus scrapes every second."""

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="metrics-exporter", daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None

    @property
    def target(self) -> str:
        """``host:port`` as a Prometheus static target."""
        if self._server is None:
            raise ServiceError("MetricsExporter is not running")
        host, port = self._server.server_address[:2]
        return f"{host}:{port}"

    @property
    def url(self) -> str:
        return f"http://{self.target}/metrics"

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def _require(binary: Path) -> str:
    if not binary.is_file():
        raise ServiceError(f"{binary} not installed; run hack/prepare.sh")
    return str(binary)


def _ready(url: str) -> bool:
    return httpx.get(f"{url}/-/ready", timeout=2).status_code == 200


class PrometheusServer(_Server):
    """Prometheus on 127.0.0.1 scraping `targets` every `scrape_interval`, evaluating
    `rule_files` (absolute paths) and `rule_groups` (rule groups as a rule file holds them,
    written to one) every `evaluation_interval` (or the group's own `interval`), sending
    alerts to `alertmanagers` (host:port), and linking them to `external_url`;
    `scrape_configs` adds jobs that find their targets themselves (:mod:`.discovery`: through
    the API server)."""

    host = "127.0.0.1"

    def __init__(
        self,
        targets: Sequence[str],
        *,
        rule_files: Sequence[Path] = (),
        rule_groups: Sequence[Mapping[str, object]] = (),
        alertmanagers: Sequence[str] = (),
        external_url: str | None = None,
        scrape_configs: Sequence[Mapping[str, object]] = (),
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        binary: Path = PROMETHEUS_BIN,
    ) -> None:
        self.targets = list(targets)
        self.rule_files = [Path(p).resolve() for p in rule_files]
        self.rule_groups = [dict(group) for group in rule_groups]
        self.alertmanagers = list(alertmanagers)
        self.external_url = external_url
        self.scrape_configs = list(scrape_configs)
        self.scrape_interval = scrape_interval
        self.evaluation_interval = evaluation_interval
        self.binary = binary
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config(self, rule_files: Sequence[Path] = ()) -> dict:
        config: dict = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "scrape_timeout": self.scrape_interval,
                "evaluation_interval": self.evaluation_interval,
            },
            "rule_files": [str(p) for p in [*self.rule_files, *rule_files]],
            "scrape_configs": [
                {
                    "job_name": "exporter",
                    "honor_labels": True,
                    "static_configs": [{"targets": self.targets}],
                },
                *self.scrape_configs,
            ],
        }
        if self.alertmanagers:
            config["alerting"] = {"alertmanagers": [
                {"api_version": "v2", "static_configs": [{"targets": self.alertmanagers}]}]}
        return config

    def _start(self) -> None:
        binary = _require(self.binary)
        self._process = process = _ServerProcess("prometheus", None, signal.SIGTERM)
        rule_files = []
        if self.rule_groups:
            rules = process.workdir / "rules.yml"
            rules.write_text(yaml.safe_dump({"groups": self.rule_groups}, sort_keys=False,
                                            allow_unicode=True))
            rule_files.append(rules)
        config = process.workdir / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config(rule_files), sort_keys=False))
        self.port = free_port()
        external = [f"--web.external-url={self.external_url}"] if self.external_url else []
        process.spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={process.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                "--storage.tsdb.retention.time=1d",
                "--log.level=warn",
                *external,
            ]
        )
        process.wait_ready(lambda: _ready(self.url), f"Prometheus on {self.url}")

    def active_alertmanagers(self) -> list[str]:
        """The Alertmanager URLs Prometheus has discovered and sends alerts to."""
        answer = httpx.get(f"{self.url}/api/v1/alertmanagers", timeout=2).json()
        return [a["url"] for a in answer["data"]["activeAlertmanagers"]]

    def wait_targets_up(self, timeout: float = 30.0) -> None:
        """Until every target has been scraped successfully (the first scrape follows start
        by up to one interval)."""

        def all_up() -> bool:
            answer = httpx.get(f"{self.url}/api/v1/targets", timeout=2).json()
            active = [t for t in answer["data"]["activeTargets"]
                      if t["scrapePool"] == "exporter"]
            return len(active) == len(self.targets) and all(t["health"] == "up" for t in active)

        self.process.wait_ready(all_up, f"targets {self.targets} up", timeout)


class AlertmanagerServer(_Server):
    """Alertmanager on 127.0.0.1 sending every alert group (by `group_by`) to one webhook
    (payload v4) as `receiver`, with short group timers so tests see notifications within
    seconds; `external_url` is its --web.external-url (default: its own address). Optionally
    with a bearer token, at most `max_alerts` alerts per notification (the rest counted in
    `truncatedAlerts`), and a copy of every notification to `copy_to`."""

    host = "127.0.0.1"

    def __init__(
        self,
        webhook_url: str,
        *,
        receiver: str = "webhook",
        group_by: Sequence[str] = ("alertname",),
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        external_url: str | None = None,
        binary: Path = ALERTMANAGER_BIN,
        bearer_token: str | None = None,
        max_alerts: int = 0,
        copy_to: str | None = None,
    ) -> None:
        self.webhook_url = webhook_url
        self.receiver = receiver
        self.group_by = list(group_by)
        self.group_wait = group_wait
        self.group_interval = group_interval
        self.repeat_interval = repeat_interval
        self.external_url = external_url
        self.binary = binary
        self.bearer_token = bearer_token
        self.max_alerts = max_alerts
        self.copy_to = copy_to
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def target(self) -> str:
        """``host:port``, as Prometheus' alerting config names it."""
        return f"{self.host}:{self.port}"

    def config(self) -> dict:
        return {
            "route": {
                "receiver": self.receiver,
                "group_by": self.group_by,
                "group_wait": self.group_wait,
                "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval,
            },
            "receivers": [{"name": self.receiver, "webhook_configs": self._webhooks()}],
        }

    def _webhooks(self) -> list[dict]:
        limit = {"max_alerts": self.max_alerts} if self.max_alerts else {}
        hook: dict = {"url": self.webhook_url, "send_resolved": True, **limit}
        if self.bearer_token:
            hook["http_config"] = {"authorization": {"type": "Bearer",
                                                     "credentials": self.bearer_token}}
        copies = [{"url": self.copy_to, "send_resolved": True, **limit}] if self.copy_to else []
        return [hook, *copies]

    def post_alerts(self, alerts: Sequence[Mapping[str, object]]) -> None:
        """Fire (or, with `endsAt` in the past, resolve) alerts through the v2 API, as
        Prometheus does."""
        httpx.post(f"{self.url}/api/v2/alerts", json=list(alerts), timeout=10).raise_for_status()

    def _start(self) -> None:
        binary = _require(self.binary)
        self._process = process = _ServerProcess("alertmanager", None, signal.SIGTERM)
        config = process.workdir / "alertmanager.yml"
        config.write_text(yaml.safe_dump(self.config(), sort_keys=False))
        self.port = free_port()
        process.spawn(
            [
                binary,
                f"--config.file={config}",
                f"--storage.path={process.workdir / 'data'}",
                f"--web.listen-address={self.host}:{self.port}",
                f"--web.external-url={self.external_url or self.url}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ]
        )
        process.wait_ready(lambda: _ready(self.url), f"Alertmanager on {self.url}")
