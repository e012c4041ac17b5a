"""Read the values that SecretKeyRefs point at: the one place that decodes a Secret.

Every kind keeps its credentials (webhook URLs, routing keys, tokens, passwords) in Secrets and
names them by reference. Values are returned to the caller and nowhere else: a `SecretError`
names the Secret and key and what is wrong with them, never a value, so it may go to status,
Events and logs as it is.
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

from runbook_operator.api.common import SecretKeyRef

if TYPE_CHECKING:
    from runbook_operator.integrations.kubernetes import Kube

#: A Secret by name, as the API serves it, or None when there is none.
ReadSecret = Callable[[str], Mapping[str, Any] | None]


class SecretError(LookupError):
    """A referenced Secret key has no usable value. The message never holds a value."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        super().__init__(f"Secret {name!r} {problem}")


def key_names(secret: Mapping[str, Any] | None) -> set[str] | None:
    """The key names a Secret holds, or None when there is no Secret."""
    if secret is None:
        return None
    return set(secret.get("data") or {}) | set(secret.get("stringData") or {})


def secret_value(secret: Mapping[str, Any] | None, ref: SecretKeyRef) -> str:
    """The value `ref` selects in `secret`, without surrounding whitespace (the newline that
    `echo` leaves). Raises SecretError when the Secret, the key or a value is missing, or the
    value is not base64-encoded UTF-8."""
    if secret is None:
        raise SecretError(ref.name, "not found")
    plain = secret.get("stringData") or {}
    encoded = secret.get("data") or {}
    if ref.key in plain:
        value = str(plain[ref.key])
    elif ref.key in encoded:
        try:
            value = base64.b64decode(encoded[ref.key], validate=True).decode()
        except (ValueError, TypeError):  # binascii.Error and UnicodeDecodeError are ValueErrors
            raise SecretError(ref.name, f"key {ref.key!r} is not base64-encoded UTF-8") from None
    else:
        raise SecretError(ref.name, f"has no key {ref.key!r}")
    if not value.strip():
        raise SecretError(ref.name, f"key {ref.key!r} is empty")
    return value.strip()


class SecretReader:
    """The Secrets of one namespace, each read at most once: one reader per delivery or
    evaluation, so a changed Secret is seen the next time."""

    def __init__(self, read: ReadSecret) -> None:
        self._read = read
        self._objects: dict[str, Mapping[str, Any] | None] = {}

    @classmethod
    def of(cls, kube: Kube, namespace: str) -> SecretReader:
        return cls(lambda name: kube.get("v1", "Secret", name, namespace))

    def _secret(self, name: str) -> Mapping[str, Any] | None:
        if name not in self._objects:
            self._objects[name] = self._read(name)
        return self._objects[name]

    def value(self, ref: SecretKeyRef) -> str:
        """The value of one key (raises SecretError)."""
        return secret_value(self._secret(ref.name), ref)

    def values(self, refs: Iterable[SecretKeyRef]) -> dict[tuple[str, str], str]:
        """(Secret name, key) → value for every readable key; the others are left out, for
        the caller to report when it needs them."""
        found: dict[tuple[str, str], str] = {}
        for ref in refs:
            try:
                found[(ref.name, ref.key)] = self.value(ref)
            except SecretError:
                continue
        return found


def read_secret(kube: Kube, namespace: str, ref: SecretKeyRef) -> str:
    """One value from the API (blocking; raises SecretError)."""
    return SecretReader.of(kube, namespace).value(ref)
