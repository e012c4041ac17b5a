"""Backup runner benchmark: `runbook-operator runner` against the plain shell pipelines.

Starts a throw-away PostgreSQL 15 (devcluster's PostgresServer) under a temp dir, generates two
databases of about `--size-mb` and `--small-size-mb` (measured with pg_database_size; MB here are
pg_size_pretty's MB, i.e. MiB), and measures, in the same run, several times each (the order
rotates from run to run):

  A          pg_dump -Fc -Z0 DB | zstd -1 > file    the fastest plain pipeline (the baseline)
  B          pg_dump DB | gzip > file.sql.gz        the runbooks' own script
  runner     python -m runbook_operator.cli.main runner (what the Job runs): pg_dump -Fc -Z0 ->
             zstd (default level 3) -> AES-256-GCM -> sha256 -> local storage (fsync'd), decoded
             on a second thread while it streams (decrypt, decompress, pg_restore --list), then
             read back (size, sha256), then the manifest
  runner-z1  the same with compressionLevel 1 (baseline A's zstd level)

It reports wall time (median), CPU seconds (the command, its children and the PostgreSQL backend
serving the dump), the runner's peak RSS at both sizes (VmHWM, sampled from /proc), and how busy
the machine was with other work meanwhile. It asserts nothing about timings. The runner cannot
skip its verification (run_backup always verifies), so there is no "runner without verification"
line; the runner's own log timestamps split each run into start-up, stream and verify phases.

--experiments starts the runner code differently: E1 runs runner.main directly (without
cli.main's dispatch), E2 adds compressionLevel 1, E3 compresses in a zstd worker thread, E4
verifies after the stream instead of during it (re-read, sha256, decrypt, decompress,
pg_restore --list: the runner's method before streamed verification). --profile times each
stage alone and runs the runner under cProfile.

    python bench/backup_runner.py [--size-mb 1000] [--small-size-mb 250] [--runs 3]
                                  [--experiments] [--profile] [--no-level1]
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Self

MIB = 1024 * 1024
PASSWORD_ENV = "BENCH_PGPASSWORD"
KEY_ENV = "BENCH_ENCRYPTION_KEY"
RSS_LIMIT_MIB = 100
GOAL_RATIO = 0.9
SAMPLE_INTERVAL = 0.1

SCHEMA = """
CREATE TABLE customers (
    id integer PRIMARY KEY,
    name text NOT NULL,
    email text NOT NULL,
    country text NOT NULL,
    created_at timestamptz NOT NULL
);
CREATE TABLE orders (
    id bigint PRIMARY KEY,
    customer_id integer NOT NULL,
    status text NOT NULL,
    amount numeric(12, 2) NOT NULL,
    currency char(3) NOT NULL,
    created_at timestamptz NOT NULL,
    updated_at timestamptz,
    sku text NOT NULL,
    quantity smallint NOT NULL,
    note text,
    token text NOT NULL
);
CREATE TABLE events (
    order_id bigint NOT NULL,
    at timestamptz NOT NULL,
    kind text NOT NULL,
    payload jsonb NOT NULL
);
CREATE INDEX events_order ON events (order_id);
INSERT INTO customers
    SELECT g, 'Customer ' || g, 'customer' || g || '@example.com',
           (ARRAY['DE', 'FR', 'NL', 'US', 'GB', 'ES', 'IT', 'PL'])[1 + g % 8],
           timestamptz '2020-01-01 00:00:00+00' + g * interval '13 minutes'
    FROM generate_series(1, 200000) g;
"""

# One batch of orders (id range) plus two events per order: text, numbers, timestamps, jsonb,
# some of it repetitive (statuses, SKUs, notes, JSON keys) and some not (md5 hex, random).
BATCH_SQL = """
INSERT INTO orders
    SELECT g, 1 + (g * 7919) % 200000,
           (ARRAY['new', 'paid', 'shipped', 'delivered', 'cancelled', 'refunded'])[1 + g % 6],
           round((random() * 500)::numeric + 0.99, 2), 'EUR',
           timestamptz '2023-01-01 00:00:00+00' + g * interval '3 seconds',
           CASE WHEN g % 4 <> 0
                THEN timestamptz '2023-01-01 00:00:00+00' + g * interval '3 seconds'
                     + (g % 7200) * interval '1 second' END,
           'SKU-' || lpad((g % 50000)::text, 6, '0'), 1 + g % 5,
           CASE g % 5 WHEN 0 THEN 'gift wrap requested; leave the parcel at the front desk'
                      WHEN 1 THEN 'customer asked for the invoice by email: order ' || g
                      WHEN 2 THEN NULL
                      ELSE 'priority ' || (g % 3) || ', warehouse ' || (g % 17) END,
           md5(g::text || 'salt')
    FROM generate_series({start}::bigint, {stop}::bigint) g;
INSERT INTO events
    SELECT g,
           timestamptz '2023-01-01 00:00:00+00' + g * interval '3 seconds' + e * interval '1 hour',
           (ARRAY['created', 'payment', 'shipment', 'delivery'])[1 + (g + e) % 4],
           jsonb_build_object(
               'ip', '10.' || (g % 256) || '.' || ((g / 256) % 256) || '.' || (e * 7 % 256),
               'agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120.0',
               'path', '/api/v1/orders/' || g || '/events',
               'session', md5(random()::text),
               'latency_ms', (random() * 250)::int,
               'ok', g % 50 <> 0)
    FROM generate_series({start}::bigint, {stop}::bigint) g, generate_series(1, 2) e;
"""


# --------------------------------------------------------------------------------------------
# Environment
# --------------------------------------------------------------------------------------------


def ensure_zstd() -> None:
    if shutil.which("zstd"):
        return
    print("zstd CLI missing; installing the Debian package", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "zstd"], check=True, env=env)
    if not shutil.which("zstd"):
        sys.exit("could not install zstd")


# --------------------------------------------------------------------------------------------
# Data generation
# --------------------------------------------------------------------------------------------


def db_size(server, database: str) -> int:  # type: ignore[no-untyped-def]
    return int(server.psql(f"SELECT pg_database_size('{database}')"))


def generate(server, database: str, target_bytes: int) -> int:  # type: ignore[no-untyped-def]
    """Fill `database` in batches until pg_database_size reaches about `target_bytes`."""
    started = time.monotonic()
    server.create_database(database)
    server.psql(SCHEMA, database)
    next_id, batch = 1, 20_000
    size = db_size(server, database)
    while size < target_bytes:
        server.psql(BATCH_SQL.format(start=next_id, stop=next_id + batch - 1), database)
        next_id += batch
        new_size = db_size(server, database)
        per_row = max(1.0, (new_size - size) / batch)
        size = new_size
        remaining = int((target_bytes - size) / per_row)
        batch = max(1, min(1_000_000, remaining))
        print(
            f"  {database}: {size / MIB:7.0f} MiB, {next_id - 1:>9,} orders "
            f"({time.monotonic() - started:4.0f} s)",
            flush=True,
        )
    # Set hint bits and the visibility map now, so no measured dump pays for them.
    server.psql("VACUUM (FREEZE, ANALYZE)", database)
    server.psql("CHECKPOINT")
    size = db_size(server, database)
    print(
        f"  {database}: {size / MIB:.0f} MiB after VACUUM, generated in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return size


# --------------------------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------------------------


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _ppid(pid: str) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return None
    # comm may hold spaces and parentheses: the fields after the last ')' are fixed.
    return int(data[data.rindex(b")") + 2 :].split()[1])


def _busy_seconds() -> float:
    """CPU time all CPUs spent busy since boot (user, nice, system, irq, softirq, steal)."""
    with open("/proc/stat") as handle:
        fields = [int(v) for v in handle.readline().split()[1:9]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def _process_cpu_seconds(pid: int) -> float:
    """utime + stime + cutime + cstime: a process and its reaped children (the postmaster's
    backends, once their connections end)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            data = handle.read()
    except OSError:
        return 0.0
    fields = data[data.rindex(b")") + 2 :].split()
    return sum(int(v) for v in fields[11:15]) / CLOCK_TICKS


def _children(pid: int) -> set[int]:
    return {int(entry) for entry in os.listdir("/proc") if entry.isdigit() and _ppid(entry) == pid}


class CpuMeter:
    """CPU seconds of the database server during a measurement, and of everything else on the
    machine that is neither the measured command nor the server (other users' work: noise)."""

    def __init__(self, server_pid: int) -> None:
        self.server_pid = server_pid

    def __enter__(self) -> Self:
        self._backends = _children(self.server_pid)
        self._busy = _busy_seconds()
        self._server = _process_cpu_seconds(self.server_pid)
        self._self = time.process_time()
        self._wall = time.monotonic()
        return self

    def finish(self, own_cpu: float) -> tuple[float, float]:
        """(server CPU seconds, background cores) given the measured command's CPU seconds."""
        wall = time.monotonic() - self._wall
        # A backend's CPU reaches the postmaster's cutime once it is reaped: wait for that.
        deadline = time.monotonic() + 2.0
        while not _children(self.server_pid) <= self._backends and time.monotonic() < deadline:
            time.sleep(0.01)
        server = _process_cpu_seconds(self.server_pid) - self._server
        sampler = time.process_time() - self._self  # this benchmark's own threads
        background = _busy_seconds() - self._busy - server - own_cpu - sampler
        return server, max(0.0, background) / wall if wall > 0 else 0.0

    def __exit__(self, *exc_info: object) -> None:
        return None


@dataclass
class Measurement:
    seconds: float
    cpu: float  # CPU seconds of the command and its children, plus the server's backend
    out_bytes: int
    background: float  # cores busy with other processes on the machine meanwhile


def _cpu(usage: os.struct_rusage | object) -> float:
    return usage.ru_utime + usage.ru_stime  # type: ignore[attr-defined]


def shell(server, cmd: str, out: Path, keep: bool = False) -> Measurement:  # type: ignore[no-untyped-def]
    """Run a pipeline under bash (which waits for every member, so its rusage covers them)."""
    env = {**os.environ, **server.env()}
    with CpuMeter(server.process.popen.pid) as meter:
        started = time.monotonic()
        proc = subprocess.Popen(
            ["bash", "-o", "pipefail", "-c", cmd],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        assert proc.stderr is not None
        errors = proc.stderr.read()
        _, status, usage = os.wait4(proc.pid, 0)
        elapsed = time.monotonic() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        server_cpu, background = meter.finish(_cpu(usage))
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd!r} failed: {errors.decode(errors='replace')[-2000:]}")
    size = out.stat().st_size
    if not keep:
        out.unlink()
    return Measurement(elapsed, _cpu(usage) + server_cpu, size, background)


def baseline_fast(server, database: str, out: Path) -> Measurement:  # type: ignore[no-untyped-def]
    return shell(server, f"pg_dump -Fc -Z0 --no-password -d {database} | zstd -1 -q > {out}", out)


def baseline_gzip(server, database: str, out: Path) -> Measurement:  # type: ignore[no-untyped-def]
    return shell(server, f"pg_dump --no-password {database} | gzip > {out}", out)


def _memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM): current and peak resident memory of a process's own address space."""
    rss = hwm = 0
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
                elif line.startswith("VmHWM:"):
                    hwm = int(line.split()[1])
    except OSError:
        pass
    return rss, hwm


def _comm(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/comm") as handle:
            return handle.read().strip()
    except OSError:
        return ""


class TreeRssSampler:
    """Peak memory of a process and its descendants, read from /proc every 100 ms.

    `root_peak_kib` is the runner's own VmHWM (the kernel's high-water mark, exact, read until
    just before exit). wait4's ru_maxrss is no use here: it carries over the high-water mark of
    the process that spawned the child (this benchmark) across exec. `tree_peak_kib` is the
    largest sampled sum of VmRSS over the runner and its children (pg_dump, pg_restore)."""

    def __init__(self, root: int) -> None:
        self.root = root
        self.root_peak_kib = 0
        self.tree_peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _tree(self) -> list[int]:
        children: dict[int, list[int]] = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                parent = _ppid(entry)
                if parent is not None:
                    children.setdefault(parent, []).append(int(entry))
        tree, todo = [], [self.root]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo.extend(children.get(pid, []))
        return tree

    def _run(self) -> None:
        root_comm = _comm(self.root)
        while not self._stop.is_set():
            tree = self._tree()
            rss, hwm = _memory_kib(self.root)
            self.root_peak_kib = max(self.root_peak_kib, hwm)
            # A child between fork and exec still shows the runner's memory: count a child
            # only once it runs its own program (pg_dump, pg_restore).
            total = rss + sum(
                _memory_kib(pid)[0] for pid in tree[1:] if _comm(pid) not in (root_comm, "")
            )
            self.tree_peak_kib = max(self.tree_peak_kib, total)
            self._stop.wait(SAMPLE_INTERVAL)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


LOG_LINE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) \S+\s+\S+: (.*)$")
PHASE_MARKS = {
    "start": "backing up ",
    "stored": "stored ",
    "committed": "verified and committed",
}


@dataclass
class RunnerRun(Measurement):
    raw_bytes: int = 0
    self_peak_kib: int = 0  # the runner process's VmHWM
    tree_peak_kib: int = 0  # sampled sum over the runner and its children (pg_dump, pg_restore)
    phases: dict[str, float] = field(default_factory=dict)


def _phases(log_text: str, spawned: float, ended: float) -> dict[str, float]:
    marks: dict[str, float] = {}
    for line in log_text.splitlines():
        match = LOG_LINE.match(line)
        if not match:
            continue
        stamp = datetime.strptime(match.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
        for name, text in PHASE_MARKS.items():
            if name not in marks and text in match.group(2):
                marks[name] = stamp
    if len(marks) != len(PHASE_MARKS):
        return {}
    return {
        "start-up (imports, config)": marks["start"] - spawned,
        "stream (dump, compress, encrypt, sha256, store; decode, list on a 2nd thread)":
            marks["stored"] - marks["start"],
        "verify (read back, sha256)": marks["committed"] - marks["stored"],
        "commit and exit": ended - marks["committed"],
    }


#: How `runbook-operator runner` starts in the backup Job (the console script calls this main).
CLI_LAUNCHER = ["-m", "runbook_operator.cli.main", "runner"]
#: Experiment: the runner's own entry point, without the operator's imports (kopf, kubernetes,
#: controllers) that `runbook_operator.cli.main` loads before it dispatches `runner`.
DIRECT_LAUNCHER = [
    "-c",
    "import sys; from runbook_operator.runner.main import main; sys.exit(main(sys.argv[1:]))",
]
#: Experiment: as DIRECT, and zstd compresses in a worker thread (ZstdCompressor(threads=1)),
#: so compression overlaps with reading the dump, encrypting, hashing and writing.
THREADED_LAUNCHER = [
    "-c",
    """
import sys
import zstandard
from runbook_operator.runner import compression, pipeline
original = pipeline.compressor
def threaded(kind, level=None):
    stage = original(kind, level)  # validates kind and level
    if kind != "zstd":
        return stage
    chosen = compression.DEFAULT_LEVELS[kind] if level is None else level
    compressor = zstandard.ZstdCompressor(level=chosen, write_checksum=True, threads=1)
    return compression._ObjCompressor(compressor.compressobj())
pipeline.compressor = threaded
from runbook_operator.runner.main import main
sys.exit(main(sys.argv[1:]))
""",
]
#: Experiment: as DIRECT, verifying as the runner did before it verified while streaming:
#: nothing during the stream, then the stored object re-read and decoded end to end.
AFTER_LAUNCHER = [
    "-c",
    """
import sys
from runbook_operator.runner import pipeline, verification
class VerifyAfterTheStream:
    def __init__(self, compression, key, checker, read_size):
        def decode_stored(storage, data_key, expected, size):
            verification.verify_object(storage, data_key, expected, compression, key, checker,
                                       size)
        pipeline.check_stored_copy = decode_stored
    def write(self, data):
        pass
    def finish(self, raw_size):
        pass
    def abandon(self):
        pass
pipeline.StreamVerifier = VerifyAfterTheStream
from runbook_operator.runner.main import main
sys.exit(main(sys.argv[1:]))
""",
]


def runner_config(server, database: str, storage: Path, level: int | None) -> dict:  # type: ignore[no-untyped-def]
    config: dict[str, object] = {
        "operation": "backup",
        "policy": "bench",
        "namespace": "bench",
        "compression": "zstd",
        "encryption": {"mode": "aes-256-gcm", "keyEnv": KEY_ENV},
        "storage": {"local": {"path": str(storage)}},
        "source": {
            "kind": "postgres",
            "settings": {
                "host": server.host,
                "port": server.port,
                "user": server.user,
                "passwordEnv": PASSWORD_ENV,
                "database": database,
            },
        },
    }
    if level is not None:
        config["compressionLevel"] = level
    return config


def runner_env(server, config: dict) -> dict[str, str]:  # type: ignore[no-untyped-def]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        {
            "RUNBOOK_RUNNER_CONFIG": json.dumps(config),
            KEY_ENV: base64.b64encode(os.urandom(32)).decode(),
            PASSWORD_ENV: server.password,
            "RUNBOOK_LOG_LEVEL": "INFO",
        }
    )
    return env


def run_runner(  # type: ignore[no-untyped-def]
    server,
    database: str,
    work: Path,
    level: int | None = None,
    profile: Path | None = None,
    launcher: list[str] = CLI_LAUNCHER,
) -> RunnerRun:
    storage = work / "storage"
    storage.mkdir()
    result_file, log_file = work / "result.json", work / "runner.log"
    env = runner_env(server, runner_config(server, database, storage, level))
    prefix = [sys.executable]
    if profile is not None:
        prefix += ["-m", "cProfile", "-o", str(profile)]
    argv = [*prefix, *launcher, "--result-file", str(result_file)]
    try:
        with log_file.open("wb") as log, CpuMeter(server.process.popen.pid) as meter:
            spawned_wall, started = time.time(), time.monotonic()
            proc = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log)
            sampler = TreeRssSampler(proc.pid)
            _, status, usage = os.wait4(proc.pid, 0)
            elapsed = time.monotonic() - started
            ended_wall = time.time()
            sampler.stop()
            proc.returncode = os.waitstatus_to_exitcode(status)
            server_cpu, background = meter.finish(_cpu(usage))
        log_text = log_file.read_text(errors="replace")
        if proc.returncode != 0:
            raise RuntimeError(f"runner exited {proc.returncode}:\n{log_text[-3000:]}")
        result = json.loads(result_file.read_text())
        if not result.get("ok") or not result.get("verified"):
            raise RuntimeError(f"runner reported a failure: {result}")
        return RunnerRun(
            seconds=elapsed,
            cpu=_cpu(usage) + server_cpu,
            out_bytes=int(result["sizeBytes"]),
            background=background,
            raw_bytes=int(result["rawSizeBytes"]),
            self_peak_kib=sampler.root_peak_kib,
            tree_peak_kib=sampler.tree_peak_kib,
            phases=_phases(log_text, spawned_wall, ended_wall),
        )
    finally:
        shutil.rmtree(storage, ignore_errors=True)
        for path in (result_file, log_file):
            path.unlink(missing_ok=True)


def import_rss_kib(module: str) -> int:
    """Peak RSS (VmHWM) of a process that only imports `module`."""
    code = f"import {module}; print(open('/proc/self/status').read())"
    status = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return int(re.search(r"^VmHWM:\s+(\d+)", status, re.MULTILINE).group(1))  # type: ignore[union-attr]


# --------------------------------------------------------------------------------------------
# One size: several runs of every method
# --------------------------------------------------------------------------------------------

METHODS = ("A", "B", "runner", "runner-z1")
EXPERIMENTS = ("direct", "direct-z1", "direct-mt", "direct-after")


@dataclass
class SizeResults:
    database: str
    size: int
    runs: dict[str, list[Measurement]] = field(
        default_factory=lambda: {m: [] for m in METHODS + EXPERIMENTS}
    )

    def median(self, method: str, attr: str = "seconds") -> float:
        return statistics.median(getattr(m, attr) for m in self.runs[method])


def measure(  # type: ignore[no-untyped-def]
    server, database: str, size: int, runs: int, work: Path, methods: list[str]
) -> SizeResults:
    results = SizeResults(database, size)
    actions = {
        "A": lambda: baseline_fast(server, database, work / "a.dump.zst"),
        "B": lambda: baseline_gzip(server, database, work / "b.sql.gz"),
        "runner": lambda: run_runner(server, database, work),
        "runner-z1": lambda: run_runner(server, database, work, level=1),
        "direct": lambda: run_runner(server, database, work, launcher=DIRECT_LAUNCHER),
        "direct-z1": lambda: run_runner(server, database, work, 1, launcher=DIRECT_LAUNCHER),
        "direct-mt": lambda: run_runner(server, database, work, launcher=THREADED_LAUNCHER),
        "direct-after": lambda: run_runner(server, database, work, launcher=AFTER_LAUNCHER),
    }
    for run in range(runs):
        # Rotate the order so that no method always runs first or right after another.
        order = methods[run % len(methods) :] + methods[: run % len(methods)]
        line = []
        for method in order:
            measurement = actions[method]()
            results.runs[method].append(measurement)
            line.append(f"{method} {measurement.seconds:.1f}s")
        background = statistics.mean(results.runs[m][-1].background for m in methods)
        print(
            f"  {database} run {run + 1}/{runs}: {', '.join(line)} "
            f"(other load on the machine: {background:.2f} cores)",
            flush=True,
        )
    return results


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------


def mib_s(size: int, seconds: float) -> float:
    return size / MIB / seconds


Row = tuple[str, str, str, str, str, str]


def _row(figure: str, value: str = "", cpu: str = "", baseline: str = "", ratio: str = "",
         rate: str = "") -> Row:
    return (figure, value, cpu, baseline, ratio, rate)


def _timed_row(results: SizeResults, name: str, method: str, base: str = "A") -> Row:
    label = f"{results.size / MIB:.0f} MiB"
    seconds, base_s = results.median(method), results.median(base)
    return _row(
        f"{name} ({label})", f"{seconds:.1f} s", f"{results.median(method, 'cpu'):.1f} s",
        f"{base} {base_s:.1f} s" if method != base else "", f"{base_s / seconds:.2f}x",
        f"{mib_s(results.size, seconds):.0f} MiB/s",
    )


def _print_table(rows: list[Row]) -> None:
    headers = ("figure", "value", "CPU", "baseline", "ratio", "throughput")
    widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(headers)]
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def _peaks(results: SizeResults, methods: tuple[str, ...]) -> tuple[float, float]:
    measured = [r for m in methods for r in results.runs[m]]
    own = max(r.self_peak_kib for r in measured) / 1024  # type: ignore[attr-defined]
    tree = max(r.tree_peak_kib for r in measured) / 1024  # type: ignore[attr-defined]
    return own, tree


PHASE_LABELS = {
    "runner": "runner",
    "runner-z1": "runner, level 1",
    "direct": "E1",
    "direct-z1": "E2",
    "direct-mt": "E3",
    "direct-after": "E4",
}


def _print_phases(results: SizeResults) -> None:
    """Median phase durations of every runner variant, from the runners' log timestamps."""
    table = []
    for method, label in PHASE_LABELS.items():
        phases = [r.phases for r in results.runs[method] if r.phases]  # type: ignore[attr-defined]
        if phases:
            names = list(phases[0])
            medians = (f"{statistics.median(p[n] for p in phases):.2f}" for n in names)
            table.append([label, *medians])
    if not table:
        return
    headers = ["phases, s", *(n.split(" ")[0] for n in names)]
    widths = [max(len(h), *(len(r[i]) for r in table)) for i, h in enumerate(headers)]
    print()
    print(f"Runner phases on the {results.size / MIB:.0f} MiB database (medians, from log times):")
    print("  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip())
    for r in table:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def report(
    big: SizeResults, small: SizeResults, runs: int, import_rss: dict[str, int]
) -> None:
    rows: list[Row] = []
    for results in (big, small):
        rows.append(_timed_row(results, "A: pg_dump -Fc -Z0 | zstd -1 > file", "A"))
        if results.runs["B"]:
            rows.append(_timed_row(results, "B: pg_dump | gzip > file.sql.gz", "B"))
        rows.append(_timed_row(results, "runner, full: zstd-3+aes+sha256+store+verify", "runner"))
        if results.runs["B"]:
            rows.append(_timed_row(results, "runner, full, vs the gzip script", "runner", "B"))
        if results.runs["runner-z1"]:
            rows.append(_timed_row(results, "runner, compressionLevel 1", "runner-z1"))
        if results is big:
            phases = [r.phases for r in big.runs["runner"] if r.phases]  # type: ignore[attr-defined]
            for name in phases[0] if phases else ():
                median = statistics.median(p[name] for p in phases)
                rows.append(_row(f"  runner phase: {name}", f"{median:.1f} s"))
    for results in (small, big):
        label = f"{results.size / MIB:.0f} MiB"
        own, tree = _peaks(results, ("runner", "runner-z1"))
        rows.append(_row(f"runner peak RSS, runner process ({label})", f"{own:.0f} MiB", "",
                         f"limit {RSS_LIMIT_MIB} MiB", f"{own / RSS_LIMIT_MIB:.2f}"))
        rows.append(_row(f"runner peak RSS, + pg_dump, pg_restore ({label})", f"{tree:.0f} MiB"))
    rows.append(_row("  of which imports alone (cli.main, no data)",
                     f"{import_rss['runbook_operator.cli.main'] / 1024:.0f} MiB"))

    print()
    print(f"Backup runner: medians of {runs} runs on {os.cpu_count()} CPUs. value = wall time; "
          "CPU = user+sys of the command, its children and the server backend;")
    print(f"ratio = throughput / the baseline's (runner goal >= {GOAL_RATIO}x A); "
          "throughput = pg_database_size / wall time.")
    _print_table(rows)

    if big.runs["direct"]:
        rows = []
        for results in (big, small):
            rows.append(_timed_row(results, "runner, full (as above)", "runner"))
            rows.append(_timed_row(results, "E1: runner.main directly (no operator imports)",
                                   "direct"))
            rows.append(_timed_row(results, "E2: E1 + compressionLevel 1", "direct-z1"))
            rows.append(_timed_row(results, "E3: E1 + zstd in a worker thread", "direct-mt"))
            rows.append(_timed_row(results, "E4: E1, verified after the stream", "direct-after"))
        for results in (small, big):
            label = f"{results.size / MIB:.0f} MiB"
            for method, name in (("direct", "E1"), ("direct-z1", "E2"), ("direct-mt", "E3"),
                                 ("direct-after", "E4")):
                own, tree = _peaks(results, (method,))
                rows.append(_row(f"{name} peak RSS, process / + children ({label})",
                                 f"{own:.0f} MiB", "", f"limit {RSS_LIMIT_MIB} MiB",
                                 f"{own / RSS_LIMIT_MIB:.2f}", f"{tree:.0f} MiB"))
        rows.append(_row("  of which imports alone (runner.main, no data)",
                         f"{import_rss['runbook_operator.runner.main'] / 1024:.0f} MiB"))
        print()
        print("Experiments (the benchmark starts the runner code differently):")
        _print_table(rows)

    _print_phases(big)

    print()
    big_label = f"{big.size / MIB:.0f} MiB"
    sizes = ", ".join(
        f"{m} {big.median(m, 'out_bytes') / MIB:.0f} MiB"
        for m in METHODS + EXPERIMENTS
        if big.runs[m]
    )
    raw = big.median("runner", "raw_bytes")
    print(f"outputs for the {big_label} database (pg_dump -Fc -Z0 stream {raw / MIB:.0f} MiB): "
          f"{sizes}")
    everything = [m for r in (big, small) for ms in r.runs.values() for m in ms]
    print(f"other load on the machine during the measurements: median "
          f"{statistics.median(m.background for m in everything):.2f} cores, max "
          f"{max(m.background for m in everything):.2f} (of {os.cpu_count()})")
    ratio = big.median("A") / big.median("runner")
    peak = max(_peaks(big, ("runner",))[0], _peaks(small, ("runner",))[0])
    print(f"goal: runner >= {GOAL_RATIO}x the fast pipeline: {ratio:.2f}x "
          f"({'met' if ratio >= GOAL_RATIO else 'missed'}); runner peak RSS < {RSS_LIMIT_MIB} MiB "
          f"at both sizes: {peak:.0f} MiB ({'met' if peak < RSS_LIMIT_MIB else 'missed'})")
    print("No timing is asserted. The runner always verifies (run_backup has no switch to skip "
          "it), so there is no no-verification line; see the phases instead.")


# --------------------------------------------------------------------------------------------
# --profile: where the runner's time goes
# --------------------------------------------------------------------------------------------


def _stage_costs(server, database: str, work: Path) -> None:  # type: ignore[no-untyped-def]
    """The runner's own stages, one at a time over a dump file in the page cache."""
    import hashlib

    import zstandard
    from runbook_operator.runner.compression import compressor, decompressing_reader
    from runbook_operator.runner.crypto import DecryptingReader, Encryptor, Key
    from runbook_operator.runner.pipeline import DEFAULT_READ_SIZE

    dump = work / "stages.dump"
    plain = shell(server, f"pg_dump -Fc -Z0 --no-password -d {database} > {dump}", dump, True)
    size = dump.stat().st_size
    cli = shell(server, f"zstd -1 -q -c {dump} > {dump}.zst", Path(f"{dump}.zst"))
    cli3 = shell(server, f"zstd -3 -q -c {dump} > {dump}.zst", Path(f"{dump}.zst"))
    print(f"\nwhere the time goes ({size / MIB:.0f} MiB -Z0 dump of {database}; "
          "each stage alone, input from the page cache):")
    print(f"  pg_dump -Fc -Z0 > file           {plain.seconds:6.2f} s wall, "
          f"{plain.cpu:5.2f} s CPU incl. server")
    print(f"  zstd CLI -1 / -3 on the file     {cli.seconds:6.2f} s / {cli3.seconds:.2f} s  "
          f"(output {cli.out_bytes / MIB:.0f} / {cli3.out_bytes / MIB:.0f} MiB)")

    def timed_blocks(label: str, transform, finish=None) -> None:  # type: ignore[no-untyped-def]
        spent = 0.0
        out = 0
        with dump.open("rb") as handle:
            while block := handle.read(DEFAULT_READ_SIZE):
                started = time.perf_counter()
                out += len(transform(block))
                spent += time.perf_counter() - started
        if finish is not None:
            out += len(finish())
        size_note = f", output {out / MIB:.0f} MiB" if finish is not None else ""
        print(f"  {label:32s} {spent:6.2f} s  ({size / MIB / spent:5.0f} MiB/s of dump"
              f"{size_note})")

    for level in (1, 3):
        stage = compressor("zstd", level)
        timed_blocks(f"runner zstd level {level}", stage.update, stage.finish)
    threaded = zstandard.ZstdCompressor(level=3, write_checksum=True, threads=1).compressobj()
    timed_blocks("zstd level 3, threads=1 (calls)", threaded.compress, threaded.flush)
    key = Key(os.urandom(32))
    timed_blocks("AES-256-GCM Encryptor", Encryptor(key).update)
    digest = hashlib.sha256()
    timed_blocks("sha256", lambda b: (digest.update(b), b)[1])

    # Verification's decode path over a real stored object (zstd-3 + AES-GCM).
    stored = work / "stages.enc"
    stage, encryptor = compressor("zstd", 3), Encryptor(key)
    with dump.open("rb") as src, stored.open("wb") as dst:
        while block := src.read(DEFAULT_READ_SIZE):
            dst.write(encryptor.update(stage.update(block)))
        dst.write(encryptor.update(stage.finish()) + encryptor.finish())
    started = time.perf_counter()
    with stored.open("rb") as raw:
        reader = decompressing_reader(DecryptingReader(raw, key), "zstd")  # type: ignore[arg-type]
        while reader.read(DEFAULT_READ_SIZE):
            pass
    spent = time.perf_counter() - started
    print(f"  {'decode: decrypt + decompress':32s} {spent:6.2f} s  "
          f"({size / MIB / spent:5.0f} MiB/s of dump)")
    for path in (dump, stored):
        path.unlink(missing_ok=True)


def profile(server, database: str, work: Path) -> None:  # type: ignore[no-untyped-def]
    import pstats

    _stage_costs(server, database, work)
    out = work / "runner.prof"
    run = run_runner(server, database, work, profile=out)
    print(f"\ncProfile of one runner backup of {database} ({run.seconds:.1f} s under the "
          "profiler, main thread only), top functions by own time:")
    stats = pstats.Stats(str(out))
    stats.sort_stats("tottime").print_stats(12)
    out.unlink(missing_ok=True)


# --------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=1000, help="big database (MiB)")
    parser.add_argument("--small-size-mb", type=int, default=250, help="small database (MiB)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-level1", action="store_true",
                        help="skip the extra runner measurement with compressionLevel 1")
    parser.add_argument("--experiments", action="store_true",
                        help="also measure the runner started without cli.main's dispatch "
                        "(E1), plus compressionLevel 1 (E2), plus zstd in a worker thread (E3), "
                        "and E1 verifying after the stream instead of during it (E4)")
    parser.add_argument("--profile", action="store_true",
                        help="also time each pipeline stage alone and run the runner once under "
                        "cProfile")
    args = parser.parse_args(argv)

    ensure_zstd()
    from runbook_operator.devcluster.services import PostgresServer

    base = Path(tempfile.mkdtemp(prefix="runbook-bench-"))
    base.chmod(0o755)  # PostgreSQL runs as an unprivileged account and keeps its data below
    old_tempdir = tempfile.tempdir
    tempfile.tempdir = str(base)
    work = base / "work"
    work.mkdir()
    total = time.monotonic()
    try:
        server = PostgresServer()
        print(f"starting PostgreSQL under {base}", flush=True)
        server.start()
        try:
            print("generating data", flush=True)
            small_size = generate(server, "bench_small", args.small_size_mb * MIB)
            big_size = generate(server, "bench_big", args.size_mb * MIB)
            print("measuring", flush=True)
            methods = [m for m in METHODS if not (args.no_level1 and m == "runner-z1")]
            if args.experiments:
                methods += EXPERIMENTS
            small = measure(server, "bench_small", small_size, args.runs, work, methods)
            big = measure(server, "bench_big", big_size, args.runs, work, methods)
            modules = ("runbook_operator.cli.main", "runbook_operator.runner.main")
            report(big, small, args.runs, {m: import_rss_kib(m) for m in modules})
            if args.profile:
                profile(server, "bench_big", work)
        finally:
            server.stop()
    finally:
        tempfile.tempdir = old_tempdir
        shutil.rmtree(base, ignore_errors=True)
    print(f"\ntotal time {time.monotonic() - total:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        sys.exit(main())
    sys.exit(130)
