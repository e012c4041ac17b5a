"""The custom command source and restore target, and the process plumbing all tools share."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from runbook_operator.runner.interfaces import RestoreError, SourceError
from runbook_operator.runner.sources import build_restore_target, build_source

from tests.support.streams import feed, read_dump, sha256


def python(code: str) -> dict[str, list[str]]:
    return {"command": [sys.executable, "-c", code]}


def test_stdout_is_the_backup() -> None:
    code = "import sys\nfor i in range(100000): sys.stdout.write(f'line {i}\\n')"
    data = read_dump(build_source("command", python(code)))
    assert data == b"".join(f"line {i}\n".encode() for i in range(100000))


def test_args_are_not_run_through_a_shell() -> None:
    data = read_dump(build_source("command", {"command": ["echo"], "args": ["$HOME", "; ls", "*"]}))
    assert data == b"$HOME ; ls *\n"


def test_non_zero_exit_fails_with_the_stderr_tail() -> None:
    code = (
        "import sys\nsys.stdout.write('partial output')\n"
        "sys.stderr.write('noise\\n' * 5000 + 'disk full: cannot continue\\n')\nsys.exit(3)"
    )
    dump = build_source("command", python(code)).start()
    assert dump.stream.read() == b"partial output"
    with pytest.raises(SourceError) as failure:
        dump.finish()
    message = str(failure.value)
    assert "exit status 3" in message and message.endswith("disk full: cannot continue")
    assert len(message) < 2000


def test_death_by_signal_is_a_failure() -> None:
    dump = build_source(
        "command", python("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)")
    ).start()
    dump.stream.read()
    with pytest.raises(SourceError, match="killed by SIGKILL"):
        dump.finish()


def test_missing_command_fails_clearly() -> None:
    with pytest.raises(SourceError, match="no-such-backup-tool not found"):
        build_source("command", {"command": ["no-such-backup-tool"]}).start()


def test_secrets_are_passed_by_environment_and_scrubbed(monkeypatch: pytest.MonkeyPatch) -> None:
    secret = "s3cr3t-T0ken-value"
    monkeypatch.setenv("BACKUP_TOKEN", secret)
    monkeypatch.setenv("BUCKET_REGION", "eu-west-1")
    monkeypatch.setenv("RUNNER_ENCRYPTION_KEY", "must-not-leak")
    code = (
        "import os, sys\n"
        "sys.stdout.write(os.environ['BACKUP_TOKEN'] + ' ' + os.environ['BUCKET_REGION'] + ' '"
        " + os.environ['LITERAL'] + ' ' + str('RUNNER_ENCRYPTION_KEY' in os.environ))\n"
        # A long error whose tail cut may fall inside the secret: no fragment may survive.
        "sys.stderr.write(('x' * 7 + os.environ['BACKUP_TOKEN']) * 400 + ' token rejected')\n"
        "sys.exit(1)"
    )
    settings = {
        **python(code),
        "secretEnv": ["BACKUP_TOKEN"],
        "passEnv": ["BUCKET_REGION"],
        "env": {"LITERAL": "plain"},
    }
    dump = build_source("command", settings).start()
    assert dump.stream.read() == f"{secret} eu-west-1 plain False".encode()
    with pytest.raises(SourceError) as failure:
        dump.finish()
    message = str(failure.value)
    assert message.endswith("token rejected")
    for fragment in (secret[:6], secret[-6:], secret[5:11]):
        assert fragment not in message
    assert "[REDACTED]" in message


def test_named_variable_must_exist(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ABSENT_TOKEN", raising=False)
    with pytest.raises(SourceError, match="ABSENT_TOKEN is not set"):
        build_source("command", {"command": ["true"], "secretEnv": ["ABSENT_TOKEN"]}).start()


def test_restore_command_reads_the_stream(tmp_path: Path) -> None:
    out = tmp_path / "restored.bin"
    payload = bytes(range(256)) * 40000
    code = f"import shutil, sys\nshutil.copyfileobj(sys.stdin.buffer, open({str(out)!r}, 'wb'))"
    feed(build_restore_target("command", python(code)), payload)
    assert sha256(out.read_bytes()) == sha256(payload)


def test_restore_command_failure_surfaces_while_writing() -> None:
    code = "import sys\nsys.stdin.buffer.read(10)\nsys.stderr.write('bad header')\nsys.exit(2)"
    sink = build_restore_target("command", python(code)).start()
    with pytest.raises(RestoreError, match="exit status 2.*bad header"):
        for _ in range(1000):
            sink.stream.write(b"\0" * 65536)
        sink.stream.close()
        sink.finish()


def test_restore_command_that_ignores_its_input_is_a_failure() -> None:
    sink = build_restore_target("command", {"command": ["true"]}).start()
    with pytest.raises(RestoreError, match="exited before reading all of its input"):
        for _ in range(100):
            sink.stream.write(b"\0" * 65536)
        sink.stream.close()
        sink.finish()
