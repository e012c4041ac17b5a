from runbook_operator.api.common import SecretKeyRef
from runbook_operator.core.secret_refs import missing_secrets


def test_missing_secrets_reports_secret_and_key() -> None:
    refs = [SecretKeyRef(name="a", key="k"), SecretKeyRef(name="b", key="k"),
            SecretKeyRef(name="c", key="k")]
    found = {"a": {"k"}, "b": None, "c": {"other"}}
    assert missing_secrets(refs, found) == [
        "Secret 'b' not found",
        "Secret 'c' has no key 'k'",
    ]
