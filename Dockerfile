# Persona service image.
#   docker build -t persona .
#   docker run -p 8080:8080 -e PERSONA_REDIS_URL=redis://redis:6379/0 \
#              -e PERSONA_COOKIE_SECRETS=<32+ chars> persona
# The image has no redis-server: PERSONA_REDIS_URL must point at a Redis.

FROM python:3.11-slim AS build
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md ./
COPY scripts ./scripts
COPY service ./service
COPY models ./models
# The same install command as the README's quick start and .ci/run.
RUN scripts/bootstrap --prod
# Compile the model at build time so the service starts at once.
ENV PERSONA_CACHE_DIR=/app/cache
RUN .venv/bin/persona compile-model

FROM python:3.11-slim
WORKDIR /app
RUN apt-get update && apt-get install -y --no-install-recommends libgomp1 \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10001 --home-dir /app persona
COPY --from=build /app /app
RUN mkdir -p /app/data && chown persona /app/data
USER persona
ENV PERSONA_HOST=0.0.0.0 \
    PERSONA_PORT=8080 \
    PERSONA_CACHE_DIR=/app/cache \
    PERSONA_DATA_DIR=/app/data
EXPOSE 8080
HEALTHCHECK --interval=10s --timeout=2s --start-period=10s --retries=3 \
    CMD ["/app/.venv/bin/python", "-c", "import urllib.request, sys; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:8080/readyz', timeout=1).status == 200 else 1)"]
CMD ["/app/.venv/bin/persona", "serve"]
