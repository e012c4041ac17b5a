"""mysqldump source, mysql restore target and trailer verifier against a real MariaDB."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from runbook_operator.devcluster.waiting import free_port
from runbook_operator.devcluster.services import MariaDBServer
from runbook_operator.runner.interfaces import RestoreError, SourceError, VerificationError
from runbook_operator.runner.sources import build_restore_target, build_source, build_verifier

from tests.support.databases import (
    MYSQL_ITEMS,
    MYSQL_PASSWORD_ENV as PASSWORD_ENV,
    MYSQL_SCHEMA as SCHEMA,
    mysql_connection as connection,
    mysql_fingerprint as fingerprint,
)
from tests.support.streams import feed, pump, read_dump


@pytest.fixture(scope="module")
def store(mariadb: MariaDBServer) -> str:
    mariadb.create_database("store")
    mariadb.sql(SCHEMA, "store")
    return "store"


@pytest.fixture
def password(mariadb: MariaDBServer, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(PASSWORD_ENV, mariadb.password)
    return mariadb.password


def test_dump_and_restore_round_trip(
    mariadb: MariaDBServer, store: str, password: str, unique: Callable[[str], str]
) -> None:
    scratch = unique("restored")
    source = build_source("mysql", connection(mariadb, database=store))
    target = build_restore_target(
        "mysql",
        connection(
            mariadb, database=scratch, checkQuery="SELECT COUNT(*) FROM items",
            expect=str(MYSQL_ITEMS),
        ),
    )
    sink = target.start()
    moved = pump(source.start(), sink)

    assert moved > 4 * 1024 * 1024
    assert fingerprint(mariadb, scratch) == fingerprint(mariadb, store)
    assert sink.check_result == str(MYSQL_ITEMS)  # type: ignore[attr-defined]
    assert mariadb.sql("SELECT item_total(7)", scratch) == mariadb.sql(
        "SELECT item_total(7)", store
    )
    assert (
        mariadb.sql(
            "SELECT COUNT(*) FROM information_schema.triggers WHERE trigger_schema = DATABASE()",
            scratch,
        )
        == "1"
    )


def test_verifier_wants_the_dump_completed_trailer(
    mariadb: MariaDBServer, store: str, password: str
) -> None:
    data = read_dump(build_source("mysql", connection(mariadb, database=store)))
    verifier = build_verifier("mysql", connection(mariadb, database=store))
    assert verifier is not None
    feed(verifier, data)
    with pytest.raises(VerificationError, match="Dump completed"):
        feed(verifier, data[: len(data) - 200])
    assert (
        build_verifier("mysql", connection(mariadb, database=store, extraArgs=["--skip-comments"]))
        is None
    )


def test_wrong_password_fails_without_the_password(
    mariadb: MariaDBServer, store: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wrong = "Wr0ng-s3cret-" + mariadb.password[:6]
    monkeypatch.setenv(PASSWORD_ENV, wrong)
    dump = build_source("mysql", connection(mariadb, database=store)).start()
    assert dump.stream.read() == b""
    with pytest.raises(SourceError, match="Access denied") as failure:
        dump.finish()
    assert wrong not in str(failure.value) and mariadb.password not in str(failure.value)


def test_unreachable_server_fails(mariadb: MariaDBServer, password: str) -> None:
    dump = build_source("mysql", connection(mariadb, port=free_port(), database="store")).start()
    dump.stream.read()
    with pytest.raises(SourceError, match="Can't connect"):
        dump.finish()


def test_restore_reports_the_clients_error(
    mariadb: MariaDBServer, password: str, unique: Callable[[str], str]
) -> None:
    target = build_restore_target("mysql", connection(mariadb, database=unique("broken")))
    with pytest.raises(RestoreError, match="(?s)mysql restore into .* failed .*SQL syntax"):
        feed(target, b"CREATE TABLE t (id INT);\nTHIS IS NOT SQL;\n")


def test_restore_refuses_an_existing_database_unless_told_to_drop_it(
    mariadb: MariaDBServer, store: str, password: str, unique: Callable[[str], str]
) -> None:
    scratch = unique("existing")
    mariadb.create_database(scratch)
    with pytest.raises(RestoreError, match="database exists"):
        build_restore_target("mysql", connection(mariadb, database=scratch)).start()
    data = read_dump(build_source("mysql", connection(mariadb, database=store)))
    feed(
        build_restore_target("mysql", connection(mariadb, database=scratch, dropExisting=True)),
        data,
    )
    assert fingerprint(mariadb, scratch) == fingerprint(mariadb, store)
