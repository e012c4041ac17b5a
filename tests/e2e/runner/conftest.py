"""Names for the backup runner's tests; the real servers they use (PostgreSQL, MariaDB, MinIO)
are the e2e session's, from tests/e2e/conftest.py."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest


@pytest.fixture
def unique() -> Callable[[str], str]:
    """Names that never collide between tests sharing a session's servers."""
    return lambda stem: f"{stem}_{uuid.uuid4().hex[:8]}"
