"""A traffic generator for the demo app: requests through the gateway, tallied by the version
and pod that answered, so a test or the demo can say what share each version served.

:func:`send` sends a fixed number of requests and returns their :class:`Tally`; :class:`Load`
keeps a steady rate in the background (the demo's live traffic, the canary tests' traffic)
and hands out the tally of what it sent since the last look. An answer that did not come
from the demo app (the gateway's own 404/502/503, a refused connection) is tallied under
:data:`NO_VERSION`.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

import httpx

#: The version of an answer that did not come from the demo app.
NO_VERSION = "-"


@dataclass(frozen=True)
class Answer:
    version: str
    code: int
    pod: str = ""
    seconds: float = 0.0
    #: When the request was sent (Unix time): to line answers up with the operator's times.
    sent_at: float = 0.0


@dataclass
class Tally:
    """What a batch of requests got back."""

    answers: list[Answer] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.answers)

    def by_version(self) -> Counter[str]:
        return Counter(a.version for a in self.answers)

    def by_pod(self) -> Counter[str]:
        return Counter(a.pod for a in self.answers if a.pod)

    def codes(self) -> Counter[int]:
        return Counter(a.code for a in self.answers)

    def shares(self) -> dict[str, float]:
        """Share of all answers per version (including failed answers the app sent)."""
        total = self.total
        return {v: n / total for v, n in sorted(self.by_version().items())} if total else {}

    def error_rate(self, version: str | None = None) -> float:
        chosen = [a for a in self.answers if version is None or a.version == version]
        return sum(a.code >= 500 for a in chosen) / len(chosen) if chosen else 0.0

    def merged(self, other: Tally) -> Tally:
        return Tally([*self.answers, *other.answers])

    def summary(self) -> str:
        """``v1 80.0% (800), v2 20.0% (200) of 1000 answers; 5xx 1.0%``."""
        counts = self.by_version()
        parts = [f"{v} {share:.1%} ({counts[v]})" for v, share in self.shares().items()]
        return (f"{', '.join(parts) or 'nothing'} of {self.total} answers; "
                f"5xx {self.error_rate():.1%}")


def read_answer(response: httpx.Response, seconds: float = 0.0,
                sent_at: float = 0.0) -> Answer:
    """The version and pod a response came from, if the demo app sent it."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, Mapping) and isinstance(body.get("version"), str):
        return Answer(body["version"], response.status_code, str(body.get("pod", "")), seconds,
                      sent_at)
    return Answer(NO_VERSION, response.status_code, "", seconds, sent_at)


def _get(client: httpx.Client, url: str, headers: Mapping[str, str]) -> Answer:
    sent_at, started = time.time(), time.perf_counter()
    try:
        response = client.get(url, headers=dict(headers))
    except httpx.HTTPError:
        return Answer(NO_VERSION, 0, "", time.perf_counter() - started, sent_at)
    return read_answer(response, time.perf_counter() - started, sent_at)


def send(url: str, count: int, *, concurrency: int = 1,
         headers: Mapping[str, str] | None = None, timeout: float = 10.0) -> Tally:
    """`count` requests from `concurrency` workers, each one after the other over its own
    keep-alive connection."""
    def worker(share: int) -> list[Answer]:
        with httpx.Client(timeout=timeout) as client:
            return [_get(client, url, headers or {}) for _ in range(share)]

    shares = [count // concurrency + (i < count % concurrency) for i in range(concurrency)]
    with ThreadPoolExecutor(concurrency) as pool:
        return Tally([a for answers in pool.map(worker, shares) for a in answers])


def until_only(url: str, version: str, *, consecutive: int = 20, timeout: float = 60.0,
               headers: Mapping[str, str] | None = None) -> tuple[float, int]:
    """Send requests one after another until `consecutive` answers in a row came from
    `version`: the monotonic time of the first of them, and how many requests it took.
    Raises TimeoutError past `timeout`."""
    deadline = time.monotonic() + timeout
    run_started, run, sent = 0.0, 0, 0
    with httpx.Client(timeout=10.0) as client:
        while run < consecutive:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no {consecutive} answers in a row from {version} within "
                                   f"{timeout}s ({sent} requests)")
            sent_at = time.monotonic()
            answer = _get(client, url, headers or {})
            sent += 1
            if answer.version != version:
                run = 0
                continue
            if run == 0:
                run_started = sent_at
            run += 1
    return run_started, sent


class Load:
    """Steady background traffic at `rate` requests per second until stopped."""

    def __init__(self, url: str, rate: float, *, headers: Mapping[str, str] | None = None,
                 timeout: float = 10.0) -> None:
        self.url = url
        self.interval = 1 / rate
        self.headers = dict(headers or {})
        self.timeout = timeout
        self._tally = Tally()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> Load:
        self._thread = threading.Thread(target=self._run, name="traffic", daemon=True)
        self._thread.start()
        return self

    def _run(self) -> None:
        with httpx.Client(timeout=self.timeout) as client:
            due = time.monotonic()
            while not self._stop.is_set():
                answer = _get(client, self.url, self.headers)
                with self._lock:
                    self._tally.answers.append(answer)
                due += self.interval
                self._stop.wait(max(0.0, due - time.monotonic()))

    def take(self) -> Tally:
        """What was answered since the last take (or the start)."""
        with self._lock:
            taken, self._tally = self._tally, Tally()
        return taken

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()
