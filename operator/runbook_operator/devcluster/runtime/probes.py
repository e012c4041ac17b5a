"""Readiness probes: when to probe, what a result does to readiness (thresholds), and the
httpGet/tcpSocket checks themselves. ``exec`` probes run in the container's sandbox (shell)."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import httpx


@dataclass(frozen=True)
class ProbeSettings:
    initial_delay: timedelta
    period: timedelta
    timeout: float
    success_threshold: int
    failure_threshold: int

    @classmethod
    def of(cls, probe: Mapping[str, Any]) -> ProbeSettings:
        """The API's defaults: period 10 s, timeout 1 s, thresholds 1 and 3."""
        return cls(
            initial_delay=timedelta(seconds=probe.get("initialDelaySeconds", 0)),
            period=timedelta(seconds=probe.get("periodSeconds", 10)),
            timeout=float(probe.get("timeoutSeconds", 1)),
            success_threshold=probe.get("successThreshold", 1),
            failure_threshold=probe.get("failureThreshold", 3),
        )


@dataclass(frozen=True)
class ProbeState:
    """Consecutive results so far; a container starts unready until its first success run."""

    ready: bool = False
    successes: int = 0
    failures: int = 0
    last_probe: datetime | None = None


def probe_due(settings: ProbeSettings, state: ProbeState, started: datetime,
              now: datetime) -> bool:
    if now < started + settings.initial_delay:
        return False
    return state.last_probe is None or now >= state.last_probe + settings.period


def observe(settings: ProbeSettings, state: ProbeState, ok: bool, now: datetime) -> ProbeState:
    """Ready after ``successThreshold`` successes in a row, unready after
    ``failureThreshold`` failures in a row."""
    if ok:
        successes = state.successes + 1
        ready = state.ready or successes >= settings.success_threshold
        return replace(state, ready=ready, successes=successes, failures=0, last_probe=now)
    failures = state.failures + 1
    ready = state.ready and failures < settings.failure_threshold
    return replace(state, ready=ready, successes=0, failures=failures, last_probe=now)


def probe_port(port: int | str, container: Mapping[str, Any]) -> int:
    """A numeric port, or a named one looked up in the container's ports."""
    if isinstance(port, int) or str(port).isdigit():
        return int(port)
    for declared in container.get("ports") or []:
        if declared.get("name") == port:
            return int(declared["containerPort"])
    raise ValueError(f"no container port named {port!r}")


def http_get(action: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str,
             timeout: float) -> bool:
    """Success is a status from 200 to 399, as the kubelet judges it."""
    host = action.get("host") or pod_ip
    port = probe_port(action["port"], container)
    scheme = action.get("scheme", "HTTP").lower()
    path = action.get("path", "/")
    headers = {h["name"]: h["value"] for h in action.get("httpHeaders") or []}
    try:
        response = httpx.get(f"{scheme}://{host}:{port}{path}", headers=headers,
                             timeout=timeout, verify=False)
    except httpx.HTTPError:
        return False
    return 200 <= response.status_code < 400


def tcp_socket(action: Mapping[str, Any], container: Mapping[str, Any], pod_ip: str,
               timeout: float) -> bool:
    host = action.get("host") or pod_ip
    try:
        with socket.create_connection((host, probe_port(action["port"], container)), timeout):
            return True
    except OSError:
        return False
