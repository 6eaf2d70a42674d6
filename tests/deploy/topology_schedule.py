"""A one-second schedule for the topology test, loaded by its scheduler containers
(``JUNCTION_JOB_MODULES=tests.support.jobs,tests.deploy.topology_schedule``)."""

from __future__ import annotations

from junction.platform.jobs import registry

TOPOLOGY_TICK = "tests.topology_tick"
TICK_SECONDS = 1.0

registry.schedule(TOPOLOGY_TICK, "tests.noop", every=TICK_SECONDS)
