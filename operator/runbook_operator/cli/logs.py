"""Logging setup: plain text for people, JSON lines for log pipelines."""

from __future__ import annotations

import logging
import re
import sys

from pythonjsonlogger.json import JsonFormatter

PLAIN_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


_HANDLER_SUCCEEDED = re.compile(r"Handler '[^']+' succeeded\.")


class WatchEventSuccesses(logging.Filter):
    """Drops kopf's "Handler '…' succeeded." line. Every handler here is a watch-event handler
    that runs on each event, including the operator's own status writes, so the line said
    nothing and with 1,000 AlertRules was a megabyte of log every few minutes. Failures and
    retries are still logged."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.levelno == logging.INFO
                    and _HANDLER_SUCCEEDED.fullmatch(record.getMessage()))


def configure(level: str, json_logs: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if json_logs:
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            )
        )
    else:
        handler.setFormatter(logging.Formatter(PLAIN_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("kopf.objects").addFilter(WatchEventSuccesses())
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
