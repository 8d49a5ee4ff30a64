# Persona service image.
#
#   docker build -t persona .
#   docker run -p 8080:8080 \
#     -e PERSONA_REDIS_URL=redis://redis:6379/0 \
#     -e PERSONA_COOKIE_SECRETS=<32+ chars> \
#     -e PERSONA_CUSTOMER_ID_KEY=<32+ chars> \
#     -e PERSONA_SITE_SECRETS=<32+ chars> \
#     -e PERSONA_API_KEYS=<32+ chars> \
#     persona
#
# The image has no redis-server: PERSONA_REDIS_URL must point at a Redis
# (without it the service exits with a message). Set the four secrets: without
# them each container generates its own into /app/data, so cookies signed by one
# replica (or before a restart) are rejected by the next.
#
# The model is compiled at build time with lleaves, which targets the CPU of
# the build host (it uses e.g. AVX-512 when the builder has it). Build the
# image on the CPU generation it will run on.

# One base for both stages: a venv is tied to its interpreter's path.
# Pin it by digest for reproducible builds: --build-arg PYTHON_IMAGE=python:3.11-slim@sha256:...
ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
# LightGBM's wheel links against the system's OpenMP runtime.
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
# The venv lives at /app/.venv in both stages (venvs are not relocatable).
WORKDIR /app
COPY pyproject.toml README.md ./
COPY requirements ./requirements
COPY scripts ./scripts
COPY service ./service
COPY persona_client ./persona_client
COPY models ./models
# The same install command as the README's quick start and .ci/run (scripts/test).
RUN scripts/bootstrap --prod
# Compile the model now, so the service starts at once and never compiles in production.
ENV PERSONA_CACHE_DIR=/app/cache
RUN .venv/bin/persona compile-model
# Bytecode now: the runtime user cannot write it next to the sources.
RUN .venv/bin/python -m compileall -q service persona_client models

FROM ${PYTHON_IMAGE} AS runtime
RUN apt-get update \
    && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 persona \
    && useradd --system --uid 10001 --gid 10001 --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin persona
WORKDIR /app
COPY --from=build /app /app
# Code and venv stay root-owned (read-only to the service). The data folder and
# the model cache are the user's: a model mounted at PERSONA_MODEL_DIR is
# compiled into the cache at start instead of falling back to LightGBM's
# slower predictor.
RUN mkdir -p /app/data && chown -R 10001:10001 /app/data /app/cache
# Numeric, so Kubernetes' runAsNonRoot can verify it.
USER 10001:10001
ENV PERSONA_HOST=0.0.0.0 \
    PERSONA_PORT=8080 \
    PERSONA_CACHE_DIR=/app/cache \
    PERSONA_DATA_DIR=/app/data \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
EXPOSE 8080
# Ready = Redis answers, a model and a catalog are loaded (urllib: no curl in slim;
# a 503 raises, so the exit status is 1). Orchestrators: probe /healthz for
# liveness and /readyz for readiness instead.
HEALTHCHECK --interval=10s --timeout=3s --start-period=20s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PERSONA_PORT', '8080'), timeout=2).status == 200 else 1)"]
# Exec form: persona is PID 1 and handles SIGTERM (a graceful stop).
CMD ["/app/.venv/bin/persona", "serve"]
