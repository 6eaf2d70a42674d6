"""GET /api/v1/events through the shipped nginx configuration against nginx serving the
same bytes from a file, measured with wrk in the same run. Goal: at least 0.8 of nginx.

Junction runs as users run it: ``python -m junction serve`` as its own process, default
settings (logging on at INFO, embedded worker and scheduler), on a fresh SQLite file, or on
PostgreSQL (and Redis) when ``JUNCTION_BENCH_DATABASE_URL`` (``JUNCTION_BENCH_REDIS_URL``)
is set; the events are migrated and seeded as in bench/events_api.py. In front of it, one
nginx runs ``deploy/nginx/junction.conf`` unchanged but for what a loopback run needs: the
upstream is Junction's port, ``listen`` a free loopback port, the cache path a temporary
folder. The same nginx has a second ``server`` on another free port that answers the same
URL from a file holding exactly the bytes of the events answer (fetched once through
Junction), with the same Content-Type: the baseline, nginx serving the same bytes from a
file. Both servers share the same worker, so they run on the same nginx settings.

The ``http`` block is that of the nginx image the Compose proxy runs (``nginx:*-alpine``:
``sendfile on``, ``keepalive_timeout 65``, ``worker_connections 1024``, an access log in the
``main`` format), with three changes: the files are in the temporary folder, the log
format ends with the server port and ``$upstream_cache_status`` (so every proxied request
of a run can be checked to be a cache HIT), and ``worker_processes 1`` rather than
``auto``: this machine's other core is wrk's, and a second nginx worker would only take CPU
from the one being measured (Junction is idle while the proxy answers from its cache).

Each round runs wrk (one thread, 64 connections, as bench/events_api.py) for ``--seconds``
against the proxied URL, then the file URL; there are two rounds after a warm-up of each,
and the figure is the best run of each side: other work on the machine can only slow a run
down, so the fastest is the least disturbed. Every run is listed in the parameters. The
proxied answer must be a HIT with the same bytes just before and just after each run
(httpx), and the access log must show every proxied request of the runs as a 200 HIT; the
whole measurement must fit within the answer's max-age (60 s), or nginx would revalidate it
mid-run. The parameters also give the nginx worker's CPU time (user + system) per request in
the best run of each side: on a shared machine a run's throughput depends on how much CPU
the worker gets, its CPU per request much less so. ``--conf`` measures another site
configuration (a modified copy of the shipped one) against the same baseline. Prints one
JSON line.

    uv run python bench/proxy_events.py [--seconds 10] [--conf deploy/nginx/junction.conf]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.support.live import free_port

from bench.events_api import QUERY, seed
from bench.report import emit
from junction.platform.migrations import upgrade_to_head
from junction.settings import Settings

REPOSITORY = Path(__file__).resolve().parents[1]
SHIPPED_CONF = REPOSITORY / "deploy" / "nginx" / "junction.conf"
CONNECTIONS = 64
ROUNDS = 2
WARM_UP_SECONDS = 2
PATH = f"/api/v1/events?{QUERY}"
# The access log line: the image's `main` format, then the server port and cache status.
LOG_LINE = re.compile(
    r'"GET (?P<uri>\S+) HTTP/1\.1" (?P<status>\d{3}) .* (?P<port>\d+) (?P<cache>\S+)$'
)


@dataclass
class Run:
    rps: float
    p99_ms: float
    requests: int  # in the access log, every one with the expected status
    cpu_us_per_request: float  # of the nginx worker


def nginx_binary() -> str:
    for candidate in ("/usr/sbin/nginx", "/usr/bin/nginx", shutil.which("nginx")):
        if candidate and os.path.exists(candidate):
            return candidate
    sys.exit("nginx is needed: apt-get install nginx")


def nginx_version(binary: str) -> str:
    out = subprocess.run([binary, "-v"], capture_output=True, text=True, check=True).stderr
    return out.strip().rsplit("/", 1)[-1]


def substituted(conf: str, old: str, new: str) -> str:
    if conf.count(old) != 1:
        sys.exit(f"the nginx configuration no longer has exactly one {old!r}")
    return conf.replace(old, new)


def write_nginx_conf(
    tmp: Path, shipped: Path, junction_port: int, proxy_port: int, file_port: int, mime: str
) -> Path:
    site = shipped.read_text()
    site = substituted(site, "server web:8000;", f"server 127.0.0.1:{junction_port};")
    site = substituted(site, "listen 80;", f"listen 127.0.0.1:{proxy_port};")
    site = substituted(site, "/var/cache/nginx/junction", str(tmp / "nginx-cache"))
    (tmp / "site.conf").write_text(site)
    (tmp / "baseline.conf").write_text(
        "server {\n"
        f"    listen 127.0.0.1:{file_port};\n"
        "    server_tokens off;\n"
        "    location = /api/v1/events {\n"
        f"        root {tmp / 'www'};\n"
        f"        default_type {mime};\n"
        "    }\n"
        "}\n"
    )
    # Started as root, nginx's workers would run as nobody, who cannot enter tmp.
    user = "user root root;\n" if os.geteuid() == 0 else ""
    temp_paths = "".join(
        f"    {kind}_temp_path {tmp / kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = tmp / "nginx.conf"
    main.write_text(
        f"{user}worker_processes 1;\n"
        f"pid {tmp / 'nginx.pid'};\n"
        f"error_log {tmp / 'nginx-error.log'} notice;\n"
        "events { worker_connections 1024; }\n"
        "http {\n"
        "    default_type application/octet-stream;\n"
        "    log_format main '$remote_addr - $remote_user [$time_local] \"$request\" '\n"
        "                    '$status $body_bytes_sent \"$http_referer\" '\n"
        '                    \'"$http_user_agent" "$http_x_forwarded_for" \'\n'
        "                    '$server_port $upstream_cache_status';\n"
        f"    access_log {tmp / 'access.log'} main;\n"
        "    sendfile on;\n"
        "    keepalive_timeout 65;\n"
        f"{temp_paths}"
        f"    include {tmp / 'site.conf'};\n"
        f"    include {tmp / 'baseline.conf'};\n"
        "}\n"
    )
    return main


def wait_for(url: str, what: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        if process.poll() is not None:
            sys.exit(f"{what} exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            sys.exit(f"{what} did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)


def wrk(url: str, seconds: int) -> tuple[float, float]:
    """Requests per second and p99 latency in milliseconds; any non-2xx/3xx answer or
    socket error stops the benchmark."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if "Non-2xx" in out or "Socket errors" in out:
        sys.exit(f"wrk saw errors against {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    value, unit = re.search(r"99%\s+([\d.]+)(us|ms|s)", out).groups()  # type: ignore[union-attr]
    return rps, float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def nginx_workers(master: int) -> list[int]:
    """The worker processes of an nginx master (not its cache manager and loader)."""
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return [
        int(pid)
        for pid in children
        if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"nginx: worker")
    ]


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes so far."""
    ticks = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Proxy:
    """The running nginx: the proxied URL, its access log and worker, the expected bytes."""

    url: str
    body: bytes
    access_log: Path
    workers: list[int]

    def check_hit(self) -> None:
        answer = httpx.get(self.url)
        if answer.headers.get("x-proxy-cache") != "HIT" or answer.content != self.body:
            sys.exit(
                f"the proxied answer is not a HIT with the same bytes: "
                f"{answer.status_code} {answer.headers.get('x-proxy-cache')}"
            )

    def logged(self) -> Counter[str]:
        """``"port status cache-status"`` of every request logged since the last call;
        then the log is emptied (nginx appends, so it writes on from the start)."""
        counts: Counter[str] = Counter()
        for line in self.access_log.read_text().splitlines():
            match = LOG_LINE.search(line)
            key = f"{match['port']} {match['status']} {match['cache']}" if match else "unparsed"
            counts[key] += 1
        os.truncate(self.access_log, 0)
        return counts

    def measure(self, url: str, seconds: int, expected: str) -> Run:
        """wrk against ``url``; every request it made must be logged as ``expected``
        (``"port status cache-status"``), and the proxied answer a HIT before and after."""
        self.check_hit()
        self.logged()
        cpu = cpu_seconds(self.workers)
        rps, p99 = wrk(url, seconds)
        cpu = cpu_seconds(self.workers) - cpu
        statuses = self.logged()
        self.check_hit()
        if set(statuses) != {expected}:
            sys.exit(f"{url}: not every request was answered {expected!r}: {dict(statuses)}")
        requests = statuses.total()
        return Run(rps, p99, requests, cpu * 1e6 / requests)


def server_environment(database_url: str, redis_url: str | None) -> dict[str, str]:
    """This environment without Junction's settings, so the server runs on its defaults."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("JUNCTION_") and key not in ("DATABASE_URL", "REDIS_URL")
    }
    env["JUNCTION_DATABASE_URL"] = database_url
    if redis_url:
        env["JUNCTION_REDIS_URL"] = redis_url
    return env


def stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")  # so that nginx and Junction are stopped


def main() -> None:
    signal.signal(signal.SIGTERM, stop)
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument(
        "--conf", type=Path, default=SHIPPED_CONF, help="The proxy's site configuration."
    )
    args = parser.parse_args()
    seconds: int = args.seconds
    if shutil.which("wrk") is None:
        sys.exit("wrk is needed: apt-get install wrk")
    nginx = nginx_binary()
    with tempfile.TemporaryDirectory() as directory:
        tmp = Path(directory)
        postgres_url = os.environ.get("JUNCTION_BENCH_DATABASE_URL")
        redis_url = (os.environ.get("JUNCTION_BENCH_REDIS_URL") or None) if postgres_url else None
        database_url = postgres_url or f"sqlite+aiosqlite:///{tmp / 'bench.db'}"
        upgrade_to_head(Settings(database_url=database_url))
        asyncio.run(seed(database_url))

        junction_port, proxy_port, file_port = free_port(), free_port(), free_port()
        junction_log = tmp / "junction.log"
        with junction_log.open("wb") as log_file:
            junction = subprocess.Popen(
                [sys.executable, "-m", "junction", "serve", "--port", str(junction_port)],
                env=server_environment(database_url, redis_url),
                cwd=tmp,  # its ./var (files) in the temporary folder
                stdout=log_file,
                stderr=subprocess.STDOUT,
            )
        proxy: subprocess.Popen[bytes] | None = None
        try:
            direct = f"http://127.0.0.1:{junction_port}{PATH}"
            wait_for(f"http://127.0.0.1:{junction_port}/ready", "junction", junction, junction_log)
            httpx.get(direct)  # builds the cached answer
            answer = httpx.get(direct)
            if answer.status_code != 200 or answer.headers.get("x-cache") != "hit":
                sys.exit(f"{direct}: {answer.status_code}\n{junction_log.read_text()[-3000:]}")
            body, mime = answer.content, answer.headers["content-type"]
            max_age = int(answer.headers["cache-control"].rsplit("max-age=", 1)[1])
            if WARM_UP_SECONDS * 2 + ROUNDS * 2 * seconds + 5 > max_age:
                sys.exit(f"--seconds {seconds}: the runs would outlast max-age={max_age}")
            (tmp / "www" / "api" / "v1").mkdir(parents=True)
            (tmp / "www" / "api" / "v1" / "events").write_bytes(body)

            conf = write_nginx_conf(tmp, args.conf, junction_port, proxy_port, file_port, mime)
            nginx_log = tmp / "nginx-error.log"
            nginx_log.touch()
            proxy = subprocess.Popen(
                [nginx, "-p", str(tmp), "-e", str(nginx_log), "-c", str(conf), "-g", "daemon off;"]
            )
            proxy_url = f"http://127.0.0.1:{proxy_port}{PATH}"
            file_url = f"http://127.0.0.1:{file_port}{PATH}"
            wait_for(f"http://127.0.0.1:{proxy_port}/proxy-health", "nginx", proxy, nginx_log)
            running = Proxy(proxy_url, body, tmp / "access.log", nginx_workers(proxy.pid))
            if len(running.workers) != 1:
                sys.exit(f"expected one nginx worker, found {running.workers}")
            first = httpx.get(proxy_url)  # fills nginx's cache
            assert first.headers["x-proxy-cache"] == "MISS", first.headers
            running.check_hit()
            from_file = httpx.get(file_url)
            assert from_file.content == body, "the file does not hold the answer's bytes"
            assert from_file.headers["content-type"] == mime

            junction_logged = len(junction_log.read_text())
            wrk(proxy_url, WARM_UP_SECONDS)
            wrk(file_url, WARM_UP_SECONDS)
            proxied: list[Run] = []
            served: list[Run] = []
            for _ in range(ROUNDS):
                proxied.append(running.measure(proxy_url, seconds, f"{proxy_port} 200 HIT"))
                served.append(running.measure(file_url, seconds, f"{file_port} 200 -"))
            # Requests that reached Junction during the runs (its access log, at INFO).
            junction_requests = junction_log.read_text()[junction_logged:].count("/api/v1/events")
        finally:
            if proxy is not None:
                proxy.send_signal(signal.SIGQUIT)
                proxy.wait(30)
            junction.terminate()
            junction.wait(30)
    best_proxied = max(proxied, key=lambda run: run.rps)
    best_served = max(served, key=lambda run: run.rps)
    params: dict[str, Any] = {
        "connections": CONNECTIONS,
        "seconds": seconds,
        "rounds": ROUNDS,
        "figure": "best run of each",
        "proxy_runs_rps": "/".join(f"{run.rps:.0f}" for run in proxied),
        "file_runs_rps": "/".join(f"{run.rps:.0f}" for run in served),
        "proxy_p99_ms": round(best_proxied.p99_ms, 2),
        "file_p99_ms": round(best_served.p99_ms, 2),
        "proxy_cpu_us_per_request": round(best_proxied.cpu_us_per_request, 2),
        "file_cpu_us_per_request": round(best_served.cpu_us_per_request, 2),
        "proxy_hits": sum(run.requests for run in proxied),
        "junction_requests": junction_requests,
        "body_bytes": len(body),
        "nginx": nginx_version(nginx),
        "nginx_workers": 1,
        "database": "postgresql" if postgres_url else "sqlite",
        "conf": args.conf.name,
    }
    emit("events_through_nginx_proxy", best_proxied.rps, "requests/s", best_served.rps, params)


if __name__ == "__main__":
    main()
