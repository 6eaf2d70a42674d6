"""A PostgreSQL and a Redis of the test's own, on free ports, that a fault test may stop,
restart or kill without disturbing any other test.

PostgreSQL is made with ``initdb`` in a temporary folder (as the ``postgres`` user when the
tests run as root: PostgreSQL refuses to run as root) and trusts local connections; Redis
keeps nothing on disk. Both need their server binaries on the machine; without them the
test is skipped, or fails when ``JUNCTION_TEST_REQUIRE_FAULT_SERVERS=1``.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.live import free_port

REQUIRED = os.environ.get("JUNCTION_TEST_REQUIRE_FAULT_SERVERS") == "1"


def _missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"{what} is required (JUNCTION_TEST_REQUIRE_FAULT_SERVERS=1)")
    pytest.skip(f"{what} is not installed")


def _postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


@dataclass
class PrivatePostgres:
    bin: Path
    data: Path
    port: int
    owner: str | None

    @property
    def url(self) -> str:
        return f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/junction"

    def _ctl(self, *args: str) -> None:
        command = [str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-t", "60", *args]
        subprocess.run(_as_owner(command, self.owner), check=True, capture_output=True)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._ctl("-o", options, "-l", str(self.data / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "stop")

    def restart(self) -> None:
        self.stop()
        self.start()


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    bin_dir = _postgres_bin()
    if bin_dir is None:
        _missing("PostgreSQL's server (initdb)")
        raise AssertionError  # unreachable: skipped or failed
    owner = "postgres" if os.geteuid() == 0 else None
    with tempfile.TemporaryDirectory(prefix="junction-pg-") as folder:
        data = Path(folder) / "data"
        data.mkdir()
        if owner:
            entry = pwd.getpwnam(owner)
            os.chown(folder, entry.pw_uid, entry.pw_gid)
            os.chown(data, entry.pw_uid, entry.pw_gid)
        initdb = [str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"]
        subprocess.run(_as_owner(initdb, owner), check=True, capture_output=True)
        server = PrivatePostgres(bin_dir, data, free_port(), owner)
        server.start()
        try:
            createdb = [str(bin_dir / "createdb"), "-h", "127.0.0.1", "-p", str(server.port)]
            subprocess.run([*createdb, "-U", "postgres", "junction"], check=True)
            yield server
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                server.stop("immediate")  # unless the test stopped it


@dataclass
class PrivateRedis:
    port: int
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while (
            subprocess.run(
                ["redis-cli", "-p", str(self.port), "ping"], capture_output=True
            ).stdout.strip()
            != b"PONG"
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the private Redis did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


@contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    server = PrivateRedis(free_port())
    server.start()
    try:
        yield server
    finally:
        server.stop()
