"""``python -m runbook_operator.demoapp [serve | report --seconds N]``: the demo app image's
entry point. ``serve`` (the default) runs the HTTP service of :mod:`.app`; ``report`` is a
batch job (the example CronJob ``nightly-report``) that works for N seconds and exits 0."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from runbook_operator.demoapp.app import Settings, pod_name, serve


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runbook_operator.demoapp")
    sub = parser.add_subparsers(dest="command")
    sub.add_parser("serve", help="the HTTP service (the default)")
    report = sub.add_parser("report", help="a batch job that works for --seconds")
    report.add_argument("--seconds", type=float, required=True)
    args = parser.parse_args(argv)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    if args.command == "report":
        print(f"nightly report: working for {args.seconds:.0f}s", flush=True)
        interrupted = stop.wait(args.seconds)
        print("nightly report: " + ("interrupted" if interrupted else "done"), flush=True)
        return 143 if interrupted else 0
    serve(Settings.from_env(os.environ), pod_name(), stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
