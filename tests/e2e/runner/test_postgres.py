"""pg_dump source, pg_restore target and pg_restore --list verifier against a real PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runbook_operator.devcluster.waiting import free_port
from runbook_operator.devcluster.services import PostgresServer
from runbook_operator.runner.interfaces import RestoreError, SourceError, VerificationError
from runbook_operator.runner.sources import build_restore_target, build_source, build_verifier

from tests.support.databases import (
    POSTGRES_ORDERS as ORDERS,
    POSTGRES_PASSWORD_ENV as PASSWORD_ENV,
    POSTGRES_SCHEMA as SCHEMA,
    postgres_connection as connection,
    postgres_fingerprint as fingerprint,
)
from tests.support.streams import feed, pump, read_dump


@pytest.fixture(scope="module")
def shop(postgres: PostgresServer) -> str:
    """A database with a few MB of rows, a view, an index and a function."""
    postgres.create_database("shop")
    postgres.psql(SCHEMA, "shop")
    return "shop"


@pytest.fixture
def password(postgres: PostgresServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV, postgres.password)
    return postgres.password


def test_dump_streams_a_real_database_and_restores_identically(
    postgres: PostgresServer, shop: str, password: str, unique: Callable[[str], str]
) -> None:
    scratch = unique("restored")
    source = build_source("postgres", connection(postgres, database=shop))
    target = build_restore_target(
        "postgres",
        connection(
            postgres, database=scratch, checkQuery="SELECT count(*) FROM orders", expect=str(ORDERS)
        ),
    )

    sink = target.start()
    moved = pump(source.start(), sink)

    assert moved > 4 * 1024 * 1024, "the database holds a few MB, uncompressed (-Z0)"
    assert fingerprint(postgres, scratch) == fingerprint(postgres, shop)
    assert sink.check_result == str(ORDERS)  # type: ignore[attr-defined]
    assert postgres.psql("SELECT order_total(7)", scratch) == postgres.psql(
        "SELECT order_total(7)", shop
    )
    assert postgres.psql("SELECT count(*) FROM big_orders", scratch) == postgres.psql(
        "SELECT count(*) FROM big_orders", shop
    )


def test_dump_is_custom_format_and_uncompressed(
    postgres: PostgresServer, shop: str, password: str
) -> None:
    data = read_dump(build_source("postgres", connection(postgres, database=shop)))
    assert data.startswith(b"PGDMP")
    # -Z0: the notes' md5 text is stored as is, so it is findable in the dump.
    assert b"c4ca4238a0b923820dcc509a6f75849b" in data


def test_verifier_lists_the_toc_and_accepts_the_whole_stream(
    postgres: PostgresServer, shop: str, password: str
) -> None:
    data = read_dump(build_source("postgres", connection(postgres, database=shop)))
    verifier = build_verifier("postgres", connection(postgres, database=shop))
    assert verifier is not None
    sink = feed(verifier, data)  # pg_restore --list exits after the TOC; the rest is accepted
    assert sink.entries >= 5  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (lambda data: b"this is not a dump" * 100, "pg_restore --list failed"),
        (lambda data: data[:1000], "pg_restore --list failed"),
        (lambda data: b"", "pg_restore --list failed"),
    ],
    ids=["garbage", "truncated-toc", "empty"],
)
def test_verifier_rejects_what_is_not_a_dump(
    postgres: PostgresServer,
    shop: str,
    password: str,
    damage: Callable[[bytes], bytes],
    expected: str,
) -> None:
    data = read_dump(build_source("postgres", connection(postgres, database=shop)))
    verifier = build_verifier("postgres", {})
    assert verifier is not None
    with pytest.raises(VerificationError, match=expected):
        feed(verifier, damage(data))


def test_wrong_password_fails_with_the_reason_and_without_the_password(
    postgres: PostgresServer, shop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-s3cret-" + postgres.password[:6]
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    dump = build_source("postgres", connection(postgres, database=shop)).start()
    assert dump.stream.read() == b""
    with pytest.raises(SourceError) as failure:
        dump.finish()
    message = str(failure.value)
    assert "password authentication failed" in message
    assert failure.value.reason == "DumpFailed"
    assert wrong not in message and postgres.password not in message


def test_unreachable_server_fails_with_the_reason(postgres: PostgresServer, password: str) -> None:
    closed_port = free_port()
    dump = build_source("postgres", connection(postgres, port=closed_port, database="shop")).start()
    dump.stream.read()
    with pytest.raises(SourceError, match="Connection refused|could not connect") as failure:
        dump.finish()
    assert str(closed_port) in str(failure.value)
    assert password not in str(failure.value)


def test_password_travels_only_in_the_environment(
    postgres: PostgresServer, shop: str, password: str
) -> None:
    dump = build_source("postgres", connection(postgres, database=shop)).start()
    pid = dump._tool.proc.pid  # type: ignore[attr-defined]
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as cmdline:
            argv = cmdline.read()
        with open(f"/proc/{pid}/environ", "rb") as environ:
            env = environ.read().split(b"\0")
    finally:
        while dump.stream.read(1 << 20):
            pass
        dump.finish()
    assert password.encode() not in argv
    assert f"PGPASSWORD={password}".encode() in env
    assert not any(v.startswith(PASSWORD_ENV.encode()) for v in env), "only what pg_dump needs"


def test_missing_password_variable_is_named(postgres: PostgresServer, monkeypatch) -> None:
    monkeypatch.delenv(PASSWORD_ENV, raising=False)
    with pytest.raises(SourceError, match=PASSWORD_ENV):
        build_source("postgres", connection(postgres, database="shop")).start()


def test_restore_refuses_an_existing_database_unless_told_to_drop_it(
    postgres: PostgresServer, shop: str, password: str, unique: Callable[[str], str]
) -> None:
    scratch = unique("existing")
    postgres.create_database(scratch)
    postgres.psql("CREATE TABLE marker (x int)", scratch)
    data = read_dump(build_source("postgres", connection(postgres, database=shop)))

    with pytest.raises(RestoreError, match="already exists"):
        build_restore_target("postgres", connection(postgres, database=scratch)).start()

    feed(
        build_restore_target("postgres", connection(postgres, database=scratch, dropExisting=True)),
        data,
    )
    assert postgres.psql("SELECT to_regclass('marker') IS NULL", scratch) == "t"
    assert fingerprint(postgres, scratch) == fingerprint(postgres, shop)


def test_failed_check_query_fails_the_restore(
    postgres: PostgresServer, shop: str, password: str, unique: Callable[[str], str]
) -> None:
    data = read_dump(build_source("postgres", connection(postgres, database=shop)))
    target = build_restore_target(
        "postgres",
        connection(
            postgres,
            database=unique("checked"),
            checkQuery="SELECT count(*) FROM orders",
            expect="1",
        ),
    )
    with pytest.raises(RestoreError, match=f"returned '{ORDERS}', expected '1'") as failure:
        feed(target, data)
    assert failure.value.reason == "CheckFailed"


def test_restore_of_a_damaged_dump_fails_with_pg_restores_reason(
    postgres: PostgresServer, shop: str, password: str, unique: Callable[[str], str]
) -> None:
    data = read_dump(build_source("postgres", connection(postgres, database=shop)))
    target = build_restore_target("postgres", connection(postgres, database=unique("damaged")))
    with pytest.raises(RestoreError, match="pg_restore into .* failed"):
        feed(target, data[: len(data) // 2])


def test_settings_are_validated_without_echoing_values() -> None:
    from runbook_operator.runner.interfaces import RunnerError

    with pytest.raises(RunnerError, match="passwordEnv|password_env") as failure:
        build_source("postgres", {"user": "u", "database": "d", "passwordEnv": "not a name!"})
    assert "not a name!" not in str(failure.value)
    assert failure.value.reason == "InvalidSettings"
    with pytest.raises(RunnerError, match="unknown source kind 'oracle'"):
        build_source("oracle", {})
    with pytest.raises(RunnerError, match="password: Extra inputs") as failure:
        build_source("postgres", {"user": "u", "database": "d", "password": "hunter2"})
    assert "hunter2" not in str(failure.value)
