"""Containers of Junction's image, run with podman on the host's network, for the tests
that prove the shipped topology (``JUNCTION_TEST_IMAGE`` names the image)."""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import pytest

IMAGE = os.environ.get("JUNCTION_TEST_IMAGE")
REQUIRED = os.environ.get("JUNCTION_TEST_REQUIRE_IMAGE") == "1"


def image_or_skip() -> str:
    """The image under test; a skip where there is none, a failure where CI requires it."""
    if IMAGE and shutil.which("podman"):
        return IMAGE
    message = "needs JUNCTION_TEST_IMAGE (scripts/build-image) and podman"
    if REQUIRED:
        pytest.fail(message)
    pytest.skip(message)


def podman(*args: str, check: bool = True, timeout: float = 120) -> str:
    done = subprocess.run(
        ["podman", *args], capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and done.returncode != 0:
        raise RuntimeError(f"podman {' '.join(args)}: {done.stderr.strip()}")
    return done.stdout.strip()


@dataclass
class Container:
    name: str
    role: str

    def logs(self) -> str:
        done = subprocess.run(
            ["podman", "logs", self.name], capture_output=True, text=True, timeout=60, check=False
        )
        return done.stdout + done.stderr

    def kill(self) -> None:
        podman("kill", "--signal", "KILL", self.name)

    def stop(self, grace_seconds: int = 60) -> int:
        """SIGTERM, then the exit code (SIGKILL only if the grace runs out)."""
        podman("stop", "--time", str(grace_seconds), self.name, timeout=grace_seconds + 30)
        return int(podman("inspect", "--format", "{{.State.ExitCode}}", self.name))


@dataclass
class Topology:
    """The containers a test started; every one is removed at the end."""

    image: str
    environment: dict[str, str]
    mounts: list[str] = field(default_factory=list)
    containers: list[Container] = field(default_factory=list)

    def start(self, role: str, *args: str, **extra_env: str) -> Container:
        name = f"junction-test-{role}-{uuid.uuid4().hex[:8]}"
        env = [f"--env={key}={value}" for key, value in {**self.environment, **extra_env}.items()]
        volumes = [f"--volume={mount}" for mount in self.mounts]
        podman(
            "run", "--detach", "--name", name, "--hostname", name, "--network", "host",
            *env, *volumes, self.image, *args,
        )  # fmt: skip
        container = Container(name, role)
        self.containers.append(container)
        return container

    def logs(self) -> str:
        return "\n".join(f"--- {c.name}\n{c.logs()[-4000:]}" for c in self.containers)


@contextmanager
def topology(image: str, environment: dict[str, str], mounts: list[str]) -> Iterator[Topology]:
    running = Topology(image, environment, mounts)
    try:
        yield running
    finally:
        for container in running.containers:
            podman("rm", "--force", "--time", "0", container.name, check=False)
