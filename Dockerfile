# syntax=docker/dockerfile:1
# pg-schema-sync: runs next to the production database; see README "Deployment".

# --- build: resolve the locked dependencies into a virtualenv -------------------------------
FROM python:3.12-slim-bookworm AS build
RUN pip install --no-cache-dir "uv>=0.9,<1"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
RUN uv sync --frozen --no-dev

# --- runtime: Python, a current pg_dump, the venv; nothing else --------------------------------
FROM python:3.12-slim-bookworm
# pg_dump cannot dump a server newer than itself: take the newest client from the PostgreSQL
# project's apt repository; it dumps every server from 9.2 up to its own major version.
ARG PG_CLIENT_MAJOR=17
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl gnupg tini \
 && install -d /usr/share/postgresql-common/pgdg \
 && curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
      https://www.postgresql.org/media/keys/ACCC4CF8.asc \
 && echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
      > /etc/apt/sources.list.d/pgdg.list \
 && apt-get update \
 && apt-get install -y --no-install-recommends "postgresql-client-${PG_CLIENT_MAJOR}" \
 && apt-get purge -y curl gnupg && apt-get autoremove -y && rm -rf /var/lib/apt/lists/*
RUN groupadd --system --gid 10001 schemasync \
 && useradd --system --uid 10001 --gid schemasync --home-dir /work --shell /usr/sbin/nologin schemasync \
 && install -d -o schemasync -g schemasync /work /work/sql /work/backups /work/config
COPY --from=build /app/.venv /app/.venv
COPY --from=build /app/service /app/service
COPY config/pg-schema-sync.example.toml /work/config/
ENV PATH="/app/.venv/bin:$PATH" PYTHONUNBUFFERED=1 SCHEMA_SYNC_LOG_FORMAT=json
WORKDIR /work
USER schemasync
VOLUME ["/work/sql", "/work/backups"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
  CMD ["pg-schema-sync", "health"]
# tini forwards SIGHUP (sync now) and SIGTERM (graceful stop) to the daemon and reaps children.
ENTRYPOINT ["/usr/bin/tini", "--", "pg-schema-sync"]
CMD ["run"]
