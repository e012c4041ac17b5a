"""Real databases' test data: schemas with every kind of object a dump must carry, a
fingerprint of their rows to compare restores with, and the runner's connection settings."""

from __future__ import annotations

import hashlib

from runbook_operator.devcluster.services import MariaDBServer, PostgresServer

POSTGRES_ORDERS = 40_000
POSTGRES_PASSWORD_ENV = "RUNNER_TEST_PGPASSWORD"

POSTGRES_SCHEMA = f"""
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text UNIQUE,
                        created timestamptz NOT NULL);
CREATE TABLE orders (id bigint PRIMARY KEY, customer_id int REFERENCES customers (id),
                     amount numeric(12, 2), note text, payload bytea);
CREATE INDEX orders_customer ON orders (customer_id);
CREATE VIEW big_orders AS SELECT * FROM orders WHERE amount > 500;
CREATE FUNCTION order_total(c int) RETURNS numeric LANGUAGE sql
    AS 'SELECT coalesce(sum(amount), 0) FROM orders WHERE customer_id = c';
INSERT INTO customers (name, email, created)
    SELECT 'customer ' || g, 'c' || g || '@example.com',
           timestamptz '2024-01-01 00:00:00+00' + g * interval '1 hour'
    FROM generate_series(1, 1000) g;
INSERT INTO customers (name, email, created)
    VALUES ('Zoë Ünïcødé ☃', 'unicode@example.com', now());
INSERT INTO orders
    SELECT g, 1 + g % 1000, (g % 1000) + 0.25, repeat(md5(g::text), 4),
           decode(md5('p' || g), 'hex')
    FROM generate_series(1, {POSTGRES_ORDERS}) g;
"""


def postgres_fingerprint(server: PostgresServer, database: str) -> dict[str, str]:
    """Row count and md5 of the ordered rows of every table."""
    return {
        table: server.psql(
            f"SELECT count(*) || ' ' || md5(coalesce(string_agg(t::text, E'\\n' ORDER BY id), ''))"
            f" FROM {table} t",
            database,
        )
        for table in ("customers", "orders")
    }


def postgres_connection(server: PostgresServer, **overrides: object) -> dict[str, object]:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "passwordEnv": POSTGRES_PASSWORD_ENV,
        **overrides,
    }


MYSQL_ITEMS = 30_000
MYSQL_PASSWORD_ENV = "RUNNER_TEST_MYSQL_PWD"

MYSQL_SCHEMA = f"""
CREATE TABLE customers (id INT PRIMARY KEY AUTO_INCREMENT, name VARCHAR(200) NOT NULL,
                        email VARCHAR(200) UNIQUE) CHARACTER SET utf8mb4;
CREATE TABLE items (id INT PRIMARY KEY, customer_id INT, amount DECIMAL(12, 2), note TEXT,
                    payload VARBINARY(64), FOREIGN KEY (customer_id) REFERENCES customers (id))
                    CHARACTER SET utf8mb4;
CREATE TABLE audit (id INT PRIMARY KEY AUTO_INCREMENT, item_id INT);
CREATE TRIGGER items_audit AFTER INSERT ON items FOR EACH ROW
    INSERT INTO audit (item_id) VALUES (NEW.id);
CREATE FUNCTION item_total(c INT) RETURNS DECIMAL(14, 2) READS SQL DATA
    RETURN (SELECT COALESCE(SUM(amount), 0) FROM items WHERE customer_id = c);
INSERT INTO customers (name, email)
    SELECT CONCAT('customer ', seq), CONCAT('c', seq, '@example.com') FROM seq_1_to_500;
INSERT INTO customers (name, email) VALUES ('Zoë Ünïcødé ☃ 🚀', 'unicode@example.com');
INSERT INTO items SELECT seq, 1 + seq % 500, (seq % 1000) + 0.25,
    REPEAT(MD5(seq), 4), UNHEX(CONCAT(MD5(seq), '00ff')) FROM seq_1_to_{MYSQL_ITEMS};
"""


def mysql_fingerprint(server: MariaDBServer, database: str) -> dict[str, str]:
    """Row count and sha256 of the ordered rows of every table."""
    result = {}
    for table, columns in (
        ("customers", "*"),
        ("items", "id, customer_id, amount, note, HEX(payload)"),
        ("audit", "*"),
    ):
        rows = server.sql(f"SELECT {columns} FROM {table} ORDER BY id", database)
        result[table] = f"{len(rows.splitlines())} {hashlib.sha256(rows.encode()).hexdigest()}"
    return result


def mysql_connection(server: MariaDBServer, **overrides: object) -> dict[str, object]:
    return {
        "host": server.host,
        "port": server.port,
        "user": server.user,
        "passwordEnv": MYSQL_PASSWORD_ENV,
        **overrides,
    }
