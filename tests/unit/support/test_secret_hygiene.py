"""The e2e session's secret scanner finds a leaked value in every encoding the code could
produce, wherever it sits in a longer text, and nothing else: the check that fails a run."""

from __future__ import annotations

import base64
import json
from urllib.parse import quote, quote_plus

from hypothesis import given
from hypothesis import strategies as st

from tests.support.secret_hygiene import MIN_LENGTH, find_leaks, operator_logs, secret_values

TOKEN = "xoxb-T0KEN/with+odd chars&é\"quote"
SECRETS = {"shop/chat/token": TOKEN.encode()}


def secret(namespace: str, name: str, **data: str) -> dict:
    return {"metadata": {"namespace": namespace, "name": name},
            "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()}}


def leaked(text: str) -> list[str]:
    return [str(leak) for leak in find_leaks(SECRETS, {"where": text})]


def test_a_plain_value_in_a_log_line_is_found_and_reported_without_it() -> None:
    [report] = leaked(f'{{"message": "posting with {TOKEN} now"}}')
    assert report == "shop/chat/token (plain) in where"
    assert TOKEN not in report


def test_every_encoding_the_code_could_produce_is_found() -> None:
    forms = {
        "url-encoded": quote(TOKEN, safe=""),
        "url-encoded (form)": quote_plus(TOKEN),
        "json-escaped": json.dumps(TOKEN)[1:-1],
        "base64 at offset 0": base64.b64encode(TOKEN.encode()).decode(),
        "url-safe base64 at offset 0": base64.urlsafe_b64encode(TOKEN.encode()).decode(),
    }
    for encoding, form in forms.items():
        reports = leaked(f"prefix {form} suffix")
        if "base64" in encoding:  # the standard and url-safe forms agree without + or /
            assert reports and all("base64" in r for r in reports), encoding
        else:
            assert reports == [f"shop/chat/token ({encoding}) in where"]


@given(st.binary(max_size=40), st.binary(max_size=40))
def test_base64_of_a_longer_text_holding_the_value_is_found_at_any_offset(
    before: bytes, after: bytes,
) -> None:
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        text = encode(before + TOKEN.encode() + after).decode()
        assert leaked(text), (before, after)


def test_what_the_operator_may_show_is_no_leak() -> None:
    url = "https://hooks.slack.example/services/T000/B000/XXXXXXXXXXXXXXXX"
    values = secret_values(secret("shop", "chat", slack=url, pin="1234"))
    assert set(values) == {"shop/chat/slack", "shop/chat/slack (URL part)"}
    haystacks = {"status": '{"endpoint": "https://hooks.slack.example", "secret": "chat"}'}
    assert find_leaks(values, haystacks) == []
    haystacks["log"] = "POST failed: 404 for /services/T000/B000/XXXXXXXXXXXXXXXX"
    assert [str(leak) for leak in find_leaks(values, haystacks)] == [
        "shop/chat/slack (URL part) (plain) in log"]


def test_values_too_short_to_search_for_are_left_out() -> None:
    assert secret_values(secret("shop", "db", password="x" * (MIN_LENGTH - 1))) == {}
    assert list(secret_values(secret("shop", "hook", url="http://127.0.0.1:8080/operator"))) == [
        "shop/hook/url"]
    assert secret_values(secret("shop", "hook", url="http://127.0.0.1:8080/")) == {}


def test_operator_logs_are_every_operator_log_under_the_session(tmp_path) -> None:
    (tmp_path / "operator-log0").mkdir()
    (tmp_path / "operator-log0" / "operator.log").write_text(TOKEN)
    (tmp_path / "cluster0").mkdir()
    (tmp_path / "cluster0" / "etcd.log").write_text(TOKEN)
    logs = operator_logs(tmp_path)
    assert list(logs) == [str(tmp_path / "operator-log0" / "operator.log")]
    assert [str(leak) for leak in find_leaks(SECRETS, logs)] == [
        f"shop/chat/token (plain) in {tmp_path / 'operator-log0' / 'operator.log'}"]
