"""The fault suites run in the PostgreSQL + Redis configuration (as CI's second pass does),
each on servers of its own (tests/support/servers.py)."""

from __future__ import annotations

import pytest

from tests.support.environment import TEST_DATABASE_URL


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    if TEST_DATABASE_URL:
        return
    skip = pytest.mark.skip(reason="fault suites run with JUNCTION_TEST_DATABASE_URL set")
    for item in items:
        if "tests/faults/" in str(item.fspath):
            item.add_marker(skip)
