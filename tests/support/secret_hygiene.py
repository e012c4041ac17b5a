"""Secret hygiene over a whole e2e session: no value of any Secret created during the run may
appear in what the operator writes — its logs, Events, the status of runbook resources, the
objects it creates (managed-by label) — plainly or in any encoding the code could produce
(base64 at any offset, URL-encoded, JSON-escaped), nor the path of a secret URL.

Tests create Secrets in many places, so nothing depends on how: :class:`Recorder` watches every
Secret, Event, runbook resource and managed object in the cluster from the session's start
(deleted namespaces included, every version seen), and :func:`find_leaks` scans what it saw
and the operator's log files at the end. A report names the Secret, the encoding and where,
never the value."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from kubernetes.dynamic import DynamicClient
from urllib3.exceptions import HTTPError

from runbook_operator.api.common import API_VERSION, MANAGED_BY_LABEL, MANAGED_BY_VALUE
from runbook_operator.api.registry import KINDS
from runbook_operator.core.delivery import redact_url, url_secrets

#: Shorter values (a 6-letter password of a runtime test) match innocent text by chance.
MIN_LENGTH = 8
#: The path of a secret URL counts on its own from this length: shorter ones are the route
#: names of in-test receivers (`/alerts`, `/operator`), found innocently in any file path.
MIN_URL_PART_LENGTH = 16
#: Objects the operator creates for runbook resources (found by their managed-by label).
MANAGED = (("batch/v1", "CronJob"), ("batch/v1", "Job"), ("v1", "ConfigMap"), ("v1", "Pod"),
           ("apps/v1", "Deployment"), ("v1", "Service"))
WATCH_SECONDS = 5


def _base64_cores(value: bytes, alphabet: Callable[[bytes], bytes]) -> dict[str, str]:
    """The base64 text `value` becomes wherever it starts in a longer encoded text: at each
    of the three offsets, the characters that depend on `value`'s bytes alone."""
    found = {}
    for offset in range(3):
        encoded = alphabet(b"\0" * offset + value).decode()
        first, end = (8 * offset + 5) // 6, 8 * (offset + len(value)) // 6
        found[encoded[first:end]] = f"base64 at offset {offset}"
    return found


def encodings(value: bytes) -> dict[str, str]:
    """Every form of `value` to look for, with the name of its encoding."""
    found = _base64_cores(value, base64.b64encode)
    found |= {k: f"url-safe {v}" for k, v in _base64_cores(value, base64.urlsafe_b64encode)
              .items() if k not in found}
    try:
        text = value.decode()
    except UnicodeDecodeError:
        return found
    forms = {"url-encoded": quote(text, safe=""), "url-encoded (form)": quote_plus(text),
             "url-encoded (path)": quote(text), "json-escaped": json.dumps(text)[1:-1],
             "json-escaped (utf-8)": json.dumps(text, ensure_ascii=False)[1:-1]}
    for name, form in forms.items():
        found.setdefault(form, name)
    found[text] = "plain"
    return found


def secret_values(secret: Mapping[str, Any]) -> dict[str, bytes]:
    """What a Secret holds, by `namespace/name/key` (a URL's path and query as well), leaving
    out values too short to search for and URLs that are an origin alone."""
    meta = secret["metadata"]
    found = {}
    for key, data in (secret.get("data") or {}).items():
        value = base64.b64decode(data)
        where = f"{meta.get('namespace')}/{meta['name']}/{key}"
        parts = {where: value}
        try:
            text = value.decode()
        except UnicodeDecodeError:
            text = ""
        if "://" in text and redact_url(text) == text.rstrip("/"):
            continue  # an origin alone: what the operator shows of every secret URL
        if "://" in text:
            parts |= {f"{where} (URL part)": p.encode() for p in url_secrets(text)[1:]
                      if len(p) >= MIN_URL_PART_LENGTH}
        found |= {k: v for k, v in parts.items() if len(v) >= MIN_LENGTH}
    return found


@dataclass(frozen=True)
class Leak:
    """A Secret's value, in some encoding, found in something the operator wrote."""

    secret: str
    encoding: str
    where: str

    def __str__(self) -> str:
        return f"{self.secret} ({self.encoding}) in {self.where}"


def find_leaks(secrets: Mapping[str, bytes], haystacks: Mapping[str, str]) -> list[Leak]:
    """Every Secret value of `secrets` found in a text of `haystacks` (by where it was seen)."""
    needles: dict[str, tuple[str, str]] = {}
    for secret, value in sorted(secrets.items()):
        for form, encoding in encodings(value).items():
            needles.setdefault(form, (secret, encoding))
    everything = "\0".join(haystacks.values())
    leaks = []
    for form, (secret, encoding) in needles.items():
        if form in everything:
            leaks += [Leak(secret, encoding, where) for where, text in haystacks.items()
                      if form in text]
    return sorted(set(leaks), key=str)


def operator_logs(root: Path) -> dict[str, str]:
    """Every operator log file the session wrote under `root`, by path."""
    return {str(path): path.read_text(errors="replace")
            for path in sorted(root.rglob("*operator*.log"))}


class Recorder:
    """Watches the cluster from start to stop (a thread per resource, all namespaces): every
    Secret's values, and every Event, runbook resource status and managed object as text."""

    def __init__(self, api: client.ApiClient) -> None:
        self._dynamic = DynamicClient(api)
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._failures: dict[str, str] = {}
        self.secrets: dict[str, bytes] = {}
        self.haystacks: dict[str, str] = {}

    def _watched(self) -> Iterable[tuple[str, str, str | None, Callable[[dict], None]]]:
        managed = f"{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"
        yield "v1", "Secret", None, self._secret
        yield "v1", "Event", None, self._whole
        for model in KINDS:
            yield API_VERSION, model.info.kind, None, self._runbook
        for api_version, kind in MANAGED:
            yield api_version, kind, managed, self._whole

    def start(self) -> None:
        for api_version, kind, selector, collect in self._watched():
            resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
            thread = threading.Thread(target=self._watch, args=(resource, selector, collect),
                                      name=f"hygiene-{kind}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        """Stops watching, then reads what exists now once more (the last writes)."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=WATCH_SECONDS + 30)
        for api_version, kind, selector, collect in self._watched():
            resource = self._dynamic.resources.get(api_version=api_version, kind=kind)
            for item in self._dynamic.get(resource, label_selector=selector).to_dict()["items"]:
                collect(item)
        if self._failures:
            raise AssertionError(f"the secret hygiene watch failed: {self._failures}")

    def _watch(self, resource: Any, selector: str | None,
               collect: Callable[[dict], None]) -> None:
        """Lists, then watches from there; lists again after a 410 Gone. While the API server
        is away (a test stops it), retries each second; a failure that lasts until stop
        fails the check."""
        version = None
        while not self._stop.is_set():
            try:
                if version is None:
                    listed = self._dynamic.get(resource, label_selector=selector).to_dict()
                    self._failures.pop(resource.kind, None)
                    for item in listed["items"]:
                        collect(item)
                    version = listed["metadata"]["resourceVersion"]
                for event in self._dynamic.watch(resource, label_selector=selector,
                                                 resource_version=version,
                                                 timeout=WATCH_SECONDS):
                    if event["type"] == "ERROR":
                        version = None
                        break
                    collect(event["raw_object"])
                    version = event["raw_object"]["metadata"]["resourceVersion"]
            except (ApiException, HTTPError, OSError) as error:
                if not (isinstance(error, ApiException) and error.status == 410):
                    self._failures[resource.kind] = f"{type(error).__name__}: {error}"
                    self._stop.wait(1)
                version = None

    def _secret(self, secret: dict) -> None:
        if secret.get("type", "Opaque") == "Opaque":
            with self._lock:
                self.secrets |= secret_values(secret)

    def _whole(self, obj: dict) -> None:
        self._add(obj, obj)

    def _runbook(self, obj: dict) -> None:
        managed = (obj["metadata"].get("labels") or {}).get(MANAGED_BY_LABEL) == MANAGED_BY_VALUE
        self._add(obj, obj if managed else obj.get("status") or {})

    def _add(self, obj: dict, shown: Any) -> None:
        meta = obj["metadata"]
        where = (f"{obj.get('kind')} {meta.get('namespace', '')}/{meta['name']} "
                 f"(resourceVersion {meta.get('resourceVersion')})")
        with self._lock:
            self.haystacks[where] = json.dumps(shown, ensure_ascii=False)
