"""The operator's console at ``/console``: jobs, queues, schedules, integrations and live
channels in the browser, read from the platform and acted on through it. See
docs/console.md."""
