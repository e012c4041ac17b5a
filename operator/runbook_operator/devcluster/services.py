"""Real servers the backup runner talks to, as local processes on free loopback ports: PostgreSQL
and MariaDB from Debian's packages, MinIO built from its Go module by ``hack/build-minio.sh``.

Tests start one of each per session; nothing here needs containers.

Facts that shaped this:

- ``initdb``/``postgres`` and ``mariadbd`` refuse to run as root. As root, the servers run as an
  unprivileged account (``postgres``/``mysql`` when Debian's packages created them, else
  ``nobody``) through ``subprocess.Popen(user=..., group=...)``, in a work dir that account owns
  under a traversable temp dir (pytest's own temp dirs are ``0700`` root).
- Durability is off (``fsync=off``, ``innodb_flush_log_at_trx_commit=0``, ...): the data is
  throw-away and fsync dominates start and load times on CI disks.
- Each server dies with the thread that started it (``PR_SET_PDEATHSIG``), so a killed test run
  leaves no orphans; PostgreSQL gets ``SIGINT`` (fast shutdown; ``SIGTERM`` would wait for its
  clients).
- PostgreSQL authenticates TCP clients with SCRAM and a random password, so tests can exercise
  wrong passwords. MariaDB's ``root@localhost`` keeps ``unix_socket`` authentication (the harness
  administers through the socket) and a ``runbook`` user with a random password serves TCP clients.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import pwd
import secrets
import shutil
import signal
import stat
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Self

import httpx

from runbook_operator.devcluster.cluster import repo_root
from runbook_operator.devcluster.waiting import free_port

log = logging.getLogger(__name__)

START_TIMEOUT = 120.0
STOP_GRACE_SECONDS = 15.0
_PR_SET_PDEATHSIG = 1
# Resolved before any fork: the child between fork and exec should only make the syscall.
_prctl = ctypes.CDLL(None, use_errno=True).prctl


class ServiceError(RuntimeError):
    """A test service could not be built, started or used."""


def _service_account(preferred: str) -> pwd.struct_passwd | None:
    """The account a server runs as: None when not root (run as ourselves)."""
    if os.geteuid() != 0:
        return None
    for name in (preferred, "nobody"):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    raise ServiceError(f"running as root and neither {preferred!r} nor 'nobody' exists")


def _traversable_temp_dir() -> Path:
    """A temp dir every account can traverse: ``$TMPDIR`` if so, else ``/tmp``."""
    base = Path(tempfile.gettempdir()).resolve()
    for path in (base, *base.parents):
        if not path.stat().st_mode & stat.S_IXOTH:
            return Path("/tmp")
    return base


def _tail(path: Path, lines: int = 30) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return "(no log)"
    return "\n".join(text.splitlines()[-lines:]) or "(empty log)"


class _ServerProcess:
    """One long-running server process: work dir, log file, start with readiness, stop."""

    def __init__(self, name: str, account: pwd.struct_passwd | None, stop_signal: int) -> None:
        self.name = name
        self.account = account
        self.stop_signal = stop_signal
        self.workdir = Path(
            tempfile.mkdtemp(prefix=f"runbook-{name}-", dir=_traversable_temp_dir())
        )
        self.log_path = self.workdir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None
        self.own(self.workdir)

    def own(self, path: Path) -> None:
        """Hand `path` to the server's account (a no-op when we are that account)."""
        if self.account is not None:
            os.chown(path, self.account.pw_uid, self.account.pw_gid)

    def run(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> str:
        """A one-shot command as the server's account (initdb, install-db)."""
        proc = subprocess.run(
            list(args),
            cwd=self.workdir,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            **self._identity(),
            check=False,
        )
        output = proc.stdout.decode(errors="replace")
        if proc.returncode != 0:
            raise ServiceError(
                f"{Path(args[0]).name} failed ({proc.returncode}):\n{output[-3000:]}"
            )
        return output

    def spawn(self, args: Sequence[str], env: Mapping[str, str] | None = None) -> None:
        pdeathsig = threading.current_thread() is threading.main_thread()
        sig = self.stop_signal

        def die_with_parent() -> None:
            _prctl(_PR_SET_PDEATHSIG, sig)

        with self.log_path.open("ab") as out:
            self.popen = subprocess.Popen(
                list(args),
                cwd=self.workdir,
                env={**os.environ, **(env or {})},
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=die_with_parent if pdeathsig else None,
                **self._identity(),
            )

    def wait_ready(
        self, probe: Callable[[], bool], what: str, timeout: float = START_TIMEOUT
    ) -> None:
        """Poll `probe` until true; fail at once, with the log, if the process exits first."""
        assert self.popen is not None
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while True:
            if self.popen.poll() is not None:
                raise ServiceError(
                    f"{self.name} exited with {self.popen.returncode} before {what}:\n"
                    f"{self.log_tail()}"
                )
            try:
                if probe():
                    return
            except Exception as error:  # noqa: BLE001 - reported if the deadline passes
                last_error = error
            if time.monotonic() > deadline:
                detail = f" (last error: {last_error!r})" if last_error else ""
                raise ServiceError(
                    f"timed out after {timeout}s waiting for {what}{detail}:\n{self.log_tail()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        if self.popen is not None and self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(self.stop_signal)
            try:
                self.popen.wait(timeout=STOP_GRACE_SECONDS)
            except subprocess.TimeoutExpired:
                log.warning("%s ignored signal %s; killing it", self.name, self.stop_signal)
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)
        self.popen = None
        shutil.rmtree(self.workdir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        return _tail(self.log_path, lines)

    def _identity(self) -> dict[str, Any]:
        if self.account is None:
            return {}
        return {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": []}


class _Server:
    """Context-manager plumbing shared by the servers."""

    _process: _ServerProcess | None = None

    def start(self) -> None:
        """Start and wait until ready; a server that fails to start leaves nothing behind."""
        try:
            self._start()
        except BaseException:
            self.stop()
            raise

    def _start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def process(self) -> _ServerProcess:
        if self._process is None:
            raise ServiceError(f"{type(self).__name__} is not running")
        return self._process

    def log_tail(self, lines: int = 30) -> str:
        return self.process.log_tail(lines)


def postgres_bin_dir() -> Path:
    """The newest Debian PostgreSQL server's bin dir (``postgresql-NN`` installs it there)."""
    candidates = sorted(
        (p for p in Path("/usr/lib/postgresql").glob("*/bin") if (p / "initdb").is_file()),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
    )
    if not candidates:
        raise ServiceError(
            "no PostgreSQL server under /usr/lib/postgresql; run hack/prepare.sh"
        )
    return candidates[-1]


class PostgresServer(_Server):
    """A throw-away PostgreSQL cluster on 127.0.0.1, password (SCRAM) authentication over TCP."""

    host = "127.0.0.1"

    def __init__(self, user: str = "postgres", bin_dir: Path | None = None) -> None:
        self.bin_dir = bin_dir or postgres_bin_dir()
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.port = 0

    def _start(self) -> None:
        self._process = process = _ServerProcess(
            "postgres", _service_account("postgres"), signal.SIGINT
        )
        data = process.workdir / "data"
        pwfile = process.workdir / "pwfile"
        pwfile.write_text(self.password + "\n")
        pwfile.chmod(0o600)
        process.own(pwfile)
        process.run(
            [
                str(self.bin_dir / "initdb"),
                f"--pgdata={data}",
                f"--username={self.user}",
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--locale=C",
                "--no-sync",
                "--no-instructions",
            ]
        )
        pwfile.unlink()
        self.port = free_port()
        process.spawn(
            [
                str(self.bin_dir / "postgres"),
                "-D",
                str(data),
                "-c",
                f"listen_addresses={self.host}",
                "-c",
                f"port={self.port}",
                "-c",
                f"unix_socket_directories={process.workdir}",
                "-c",
                "fsync=off",
                "-c",
                "synchronous_commit=off",
                "-c",
                "full_page_writes=off",
            ]
        )
        process.wait_ready(self._accepting, f"PostgreSQL on {self.host}:{self.port}")

    def _accepting(self) -> bool:
        probe = subprocess.run(
            [
                str(self.bin_dir / "pg_isready"),
                "-h",
                self.host,
                "-p",
                str(self.port),
                "-U",
                self.user,
                "-d",
                "postgres",
                "-t",
                "2",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return probe.returncode == 0

    def dsn(self, database: str = "postgres") -> str:
        """A libpq URL without the password (take that from :meth:`env`)."""
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"

    def env(self) -> dict[str, str]:
        """libpq environment for clients: where to connect and the password."""
        return {
            "PGHOST": self.host,
            "PGPORT": str(self.port),
            "PGUSER": self.user,
            "PGPASSWORD": self.password,
        }

    def psql(self, sql: str, database: str = "postgres", stdin: bytes | None = None) -> str:
        """Run SQL (stopping at the first error) and return unaligned, tuples-only output."""
        proc = subprocess.run(
            [
                str(self.bin_dir / "psql"),
                "-X",
                "-q",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-d",
                database,
                "-c",
                sql,
            ],
            input=stdin,
            env={**os.environ, **self.env()},
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ServiceError(
                f"psql failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout.decode().strip()

    def create_database(self, name: str) -> None:
        self.psql(f'CREATE DATABASE "{name}"')

    def drop_database(self, name: str) -> None:
        self.psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class MariaDBServer(_Server):
    """A throw-away MariaDB server on 127.0.0.1 with a password-authenticated TCP user."""

    host = "127.0.0.1"

    def __init__(self, user: str = "runbook") -> None:
        self.user = user
        self.password = secrets.token_urlsafe(18)
        self.port = 0

    @property
    def socket(self) -> Path:
        return self.process.workdir / "mysqld.sock"

    def _start(self) -> None:
        server = shutil.which("mariadbd", path=f"/usr/sbin:{os.environ.get('PATH', '')}")
        install_db = shutil.which("mariadb-install-db")
        if server is None or install_db is None:
            raise ServiceError("MariaDB server not installed; run hack/prepare.sh")
        self._process = process = _ServerProcess(
            "mariadb", _service_account("mysql"), signal.SIGTERM
        )
        data, tmp = process.workdir / "data", process.workdir / "tmp"
        for path in (data, tmp):
            path.mkdir()
            process.own(path)
        tuning = [
            "--skip-name-resolve",
            "--skip-log-bin",
            "--innodb-flush-log-at-trx-commit=0",
            "--innodb-doublewrite=0",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=32M",
            f"--tmpdir={tmp}",
        ]
        process.run(
            [
                install_db,
                "--no-defaults",
                f"--datadir={data}",
                "--skip-test-db",
                "--auth-root-authentication-method=socket",
                *tuning,
            ]
        )
        self.port = free_port()
        process.spawn(
            [
                server,
                "--no-defaults",
                f"--datadir={data}",
                f"--socket={process.workdir / 'mysqld.sock'}",
                f"--port={self.port}",
                f"--bind-address={self.host}",
                f"--pid-file={process.workdir / 'mysqld.pid'}",
                *tuning,
            ]
        )
        process.wait_ready(self._alive, f"MariaDB on {self.host}:{self.port}")
        self.sql(
            f"CREATE USER '{self.user}'@'%' IDENTIFIED BY '{self.password}';"
            f"GRANT ALL PRIVILEGES ON *.* TO '{self.user}'@'%' WITH GRANT OPTION;"
        )

    def _alive(self) -> bool:
        probe = subprocess.run(
            [
                "mariadb-admin",
                "--no-defaults",
                f"--socket={self.socket}",
                "-u",
                "root",
                "--connect-timeout=2",
                "ping",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            check=False,
        )
        return probe.returncode == 0

    def sql(self, statements: str, database: str | None = None) -> str:
        """Run SQL as root over the socket and return tab-separated rows without headers."""
        proc = subprocess.run(
            [
                "mariadb",
                "--no-defaults",
                f"--socket={self.socket}",
                "-u",
                "root",
                "--batch",
                "--default-character-set=utf8mb4",
                "--skip-column-names",
                *([database] if database else []),
                "-e",
                statements,
            ],
            capture_output=True,
            check=False,
        )
        if proc.returncode != 0:
            raise ServiceError(
                f"mariadb failed ({proc.returncode}): {proc.stderr.decode(errors='replace')}"
            )
        return proc.stdout.decode().strip()

    def create_database(self, name: str) -> None:
        self.sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")

    def drop_database(self, name: str) -> None:
        self.sql(f"DROP DATABASE IF EXISTS `{name}`")


def build_minio() -> Path:
    """Run the (cached) build script and return the MinIO binary."""
    script = repo_root() / "hack" / "build-minio.sh"
    proc = subprocess.run(["bash", str(script)], stdout=subprocess.PIPE, text=True, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines or not Path(lines[-1]).is_file():
        raise ServiceError(f"{script} failed with exit code {proc.returncode}")
    return Path(lines[-1])


class MinioServer(_Server):
    """A single-drive MinIO on 127.0.0.1 with random root credentials."""

    host = "127.0.0.1"
    region = "us-east-1"

    def __init__(self, binary: Path | None = None) -> None:
        self.binary = binary
        self.access_key = "runbook-" + secrets.token_hex(6)
        self.secret_key = secrets.token_urlsafe(24)
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def _start(self) -> None:
        binary = self.binary or build_minio()
        self._process = process = _ServerProcess("minio", None, signal.SIGTERM)
        self.port = free_port()
        console = free_port()
        process.spawn(
            [
                str(binary),
                "server",
                "--quiet",
                f"--address={self.host}:{self.port}",
                f"--console-address={self.host}:{console}",
                f"--certs-dir={process.workdir / 'certs'}",
                str(process.workdir / "data"),
            ],
            env={
                "MINIO_ROOT_USER": self.access_key,
                "MINIO_ROOT_PASSWORD": self.secret_key,
                "MINIO_BROWSER": "off",
                "MINIO_UPDATE": "off",
                "HOME": str(process.workdir),
            },
        )
        process.wait_ready(self._ready, f"MinIO on {self.endpoint_url}")

    def _ready(self) -> bool:
        return httpx.get(f"{self.endpoint_url}/minio/health/ready", timeout=2).status_code == 200

    def client(self) -> Any:
        """A boto3 S3 client with the root credentials."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint_url,
            region_name=self.region,
            aws_access_key_id=self.access_key,
            aws_secret_access_key=self.secret_key,
            config=Config(s3={"addressing_style": "path"}),
        )

    def create_bucket(self, name: str) -> None:
        self.client().create_bucket(Bucket=name)
