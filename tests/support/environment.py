"""The services the environment offers the tests: PostgreSQL and Redis when set."""

from __future__ import annotations

import os

TEST_DATABASE_URL = os.environ.get("JUNCTION_TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("JUNCTION_TEST_REDIS_URL")
