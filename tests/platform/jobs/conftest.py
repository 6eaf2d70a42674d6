"""Fixtures of the job tests: short leases (worker processes and queue reads are in
``tests/support/processes.py`` and ``tests/support/queue.py``).

The ``database`` fixture is the shared one, made from ``settings``: ``job_settings`` only
changes job timings, which a ``Database`` never reads."""

from __future__ import annotations

import pytest

import tests.support.jobs  # noqa: F401  (registers the test handlers in this process too)
from junction.settings import Settings
from tests.support.processes import FAST_JOBS


@pytest.fixture
def settings(settings: Settings) -> Settings:
    """The job tests load the test handlers only, not the domains' jobs."""
    return settings.model_copy(update={"job_modules": ["tests.support.jobs"]})


@pytest.fixture
def job_settings(settings: Settings) -> Settings:
    return settings.model_copy(update={**FAST_JOBS, "job_modules": ["tests.support.jobs"]})
