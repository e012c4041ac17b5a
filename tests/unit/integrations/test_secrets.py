"""Secret values from SecretKeyRefs: decoded once, trimmed, and errors that name the Secret
and key but never a value."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from runbook_operator.api.common import SecretKeyRef
from runbook_operator.integrations.secrets import (
    SecretError,
    SecretReader,
    key_names,
    read_secret,
    secret_value,
)

VALUE = "https://hooks.example.com/services/T0/B0/s3cr3t"


def encoded(text: str | bytes) -> str:
    raw = text.encode() if isinstance(text, str) else text
    return base64.b64encode(raw).decode()


def ref(name: str = "hook", key: str = "url") -> SecretKeyRef:
    return SecretKeyRef(name=name, key=key)


def test_data_is_decoded_and_the_newline_echo_leaves_is_trimmed() -> None:
    assert secret_value({"data": {"url": encoded(VALUE + "\n")}}, ref()) == VALUE


def test_string_data_is_used_as_it_is_but_trimmed() -> None:
    assert secret_value({"stringData": {"url": f"  {VALUE} "}}, ref()) == VALUE


@pytest.mark.parametrize(
    "secret, message",
    [
        (None, "Secret 'hook' not found"),
        ({"data": {"other": encoded(VALUE)}}, "Secret 'hook' has no key 'url'"),
        ({"data": {"url": encoded(" \n")}}, "Secret 'hook' key 'url' is empty"),
        ({"data": {"url": "not base64!"}}, "Secret 'hook' key 'url' is not base64-encoded UTF-8"),
        ({"data": {"url": encoded(b"\xff\xfe")}},
         "Secret 'hook' key 'url' is not base64-encoded UTF-8"),
    ],
)
def test_each_problem_is_named(secret: dict[str, Any] | None, message: str) -> None:
    with pytest.raises(SecretError) as raised:
        secret_value(secret, ref())
    assert str(raised.value) == message
    assert isinstance(raised.value, LookupError)  # callers that stall on LookupError keep doing so


@given(st.text(max_size=40))
def test_an_undecodable_value_is_never_quoted(value: str) -> None:
    with pytest.raises(SecretError) as raised:
        secret_value({"data": {"url": value + "!"}}, ref())
    assert str(raised.value) == "Secret 'hook' key 'url' is not base64-encoded UTF-8"


def test_key_names() -> None:
    assert key_names(None) is None
    assert key_names({"data": {"a": ""}, "stringData": {"b": "x"}}) == {"a", "b"}
    assert key_names({}) == set()


def test_a_reader_reads_each_secret_once_and_leaves_out_what_it_cannot_read() -> None:
    objects = {"hook": {"data": {"url": encoded(VALUE), "bad": "?"}}}
    reads: list[str] = []

    def read(name: str) -> dict[str, Any] | None:
        reads.append(name)
        return objects.get(name)

    reader = SecretReader(read)
    refs = [ref(), ref(key="bad"), ref(key="missing"), ref("gone", "x"), ref()]
    assert reader.values(refs) == {("hook", "url"): VALUE}
    assert reads == ["hook", "gone"]
    with pytest.raises(SecretError, match="Secret 'gone' not found"):
        reader.value(ref("gone", "x"))
    assert reads == ["hook", "gone"]


class SecretsOnly:
    """The one Kube method a Secret reader uses."""

    def __init__(self, secrets: dict[str, dict[str, Any]]) -> None:
        self.secrets = secrets
        self.asked: list[tuple[str, str, str, str | None]] = []

    def get(self, api_version: str, kind: str, name: str, namespace: str | None = None):
        self.asked.append((api_version, kind, name, namespace))
        return self.secrets.get(name)


def test_read_secret_asks_the_api_for_the_secret_in_the_namespace() -> None:
    kube = SecretsOnly({"hook": {"data": {"url": encoded(VALUE)}}})
    assert read_secret(kube, "prod", ref()) == VALUE  # type: ignore[arg-type]
    assert kube.asked == [("v1", "Secret", "hook", "prod")]
