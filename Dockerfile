# syntax=docker/dockerfile:1
# One image for every role: the command picks it (`serve`, `worker`, `scheduler`, `migrate`,
# `seed`). Build: `docker build -t junction .` (or podman). The base is an argument so that a
# machine without a registry can build from a local Python base (scripts/container-base).
ARG BASE_IMAGE=python:3.11-slim-bookworm

# ---- builder: the locked dependencies, then the project, into /app/.venv ----
FROM ${BASE_IMAGE} AS builder
ARG UV_VERSION=0.13.9
# true where PyPI is reached through a proxy whose CA is in the system's bundle.
ARG UV_NATIVE_TLS=false
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# uv from PyPI into a venv of its own, which the final stage does not copy.
RUN python3 -m venv /opt/uv \
    && /opt/uv/bin/pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /app
# Dependencies first, in their own layer: it is rebuilt only when the lock file changes.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --locked --no-dev --no-group bench --no-install-project --python python3
COPY alembic.ini ./
COPY migrations ./migrations
COPY src ./src
RUN --mount=type=cache,target=/root/.cache/uv \
    /opt/uv/bin/uv sync --locked --no-dev --no-group bench --python python3

# ---- final: Python, tini and the app; no compiler, no uv, no pip cache ----
FROM ${BASE_IMAGE}
# tini as PID 1 forwards SIGTERM to Junction (whose shutdown is graceful) and reaps children.
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini=0.19.* \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 junction \
    && useradd --system --uid 10001 --gid junction --home-dir /app --shell /usr/sbin/nologin junction
COPY --from=builder --chown=root:root /app /app
ENV PATH=/app/.venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    JUNCTION_HOST=0.0.0.0 \
    JUNCTION_PORT=8000
# The code is read-only; the embedded defaults (SQLite and files under ./var) land in /data.
RUN mkdir -p /data && chown junction:junction /data
WORKDIR /data
VOLUME ["/data"]
USER 10001:10001
EXPOSE 8000
# No curl in the image: Python asks /up. Roles without HTTP (worker, scheduler) override it.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(f\"http://127.0.0.1:{os.environ.get('JUNCTION_PORT', '8000')}/up\", timeout=2)"]
ENTRYPOINT ["/usr/bin/tini", "--", "junction"]
CMD ["serve"]
