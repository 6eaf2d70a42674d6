"""A fast schedule for the scheduler tests, loaded only by the scheduler processes they
start (``JUNCTION_JOB_MODULES=tests.support.jobs,tests.support.schedules``)."""

from __future__ import annotations

from junction.platform.jobs import registry

TICK_SCHEDULE = "tests.tick"

registry.schedule(TICK_SCHEDULE, "tests.noop", every=0.3)
