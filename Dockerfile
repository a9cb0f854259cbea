# syntax=docker/dockerfile:1
# pg-schema-sync: runs next to the production database; see docs/compose.md.
# Checked without a Docker engine by tests/test_container.py (essentials, and the command line
# run as a plain process with docker-compose.yml's environment), and built and run with
# docker-compose.yml under a real engine by tests/test_container_engine.py.

# --- build: resolve the locked dependencies into a self-contained virtualenv ------------------
FROM python:3.11-slim-bookworm AS build
RUN pip install --no-cache-dir "uv>=0.9,<1"
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
# Dependencies first (a layer that survives code changes), exactly as locked.
RUN uv sync --frozen --no-dev --no-install-project
COPY service ./service
# --no-editable: the package goes into the venv itself, which is all the runtime stage copies.
RUN uv sync --frozen --no-dev --no-editable

# --- runtime: Python, a current pg_dump and psql, the venv; nothing else ----------------------
FROM python:3.11-slim-bookworm
# pg_dump cannot dump a server newer than itself, and dumps every server from 9.2 up to its own
# major version: take the newest client from the PostgreSQL project's apt repository (PGDG).
# For a newer server, rebuild with --build-arg PG_CLIENT_MAJOR=<its major version>.
# git + openssh-client: git delivery (optional) runs the git CLI, see docs/git.md.
# PG_CLIENT_SOURCE=debian takes Debian bookworm's own client instead (postgresql-client-15, so
# also --build-arg PG_CLIENT_MAJOR=15): for servers up to 15, where apt.postgresql.org cannot be
# reached; it is what the tests build, as their machine cannot reach it.
ARG PG_CLIENT_SOURCE=pgdg
ARG PG_CLIENT_MAJOR=18
RUN set -eu; \
    case "$PG_CLIENT_SOURCE" in \
      pgdg) ;; \
      debian) if [ "$PG_CLIENT_MAJOR" != 15 ]; then \
          echo "PG_CLIENT_SOURCE=debian: bookworm ships postgresql-client-15 only; add --build-arg PG_CLIENT_MAJOR=15" >&2; \
          exit 1; fi ;; \
      *) echo "PG_CLIENT_SOURCE must be pgdg or debian, not '$PG_CLIENT_SOURCE'" >&2; exit 1 ;; \
    esac; \
    apt-get update; \
    apt-get install -y --no-install-recommends ca-certificates tini; \
    if [ "$PG_CLIENT_SOURCE" = pgdg ]; then \
      apt-get install -y --no-install-recommends curl gnupg; \
      install -d /usr/share/postgresql-common/pgdg; \
      curl -fsSL -o /usr/share/postgresql-common/pgdg/apt.postgresql.org.asc \
        https://www.postgresql.org/media/keys/ACCC4CF8.asc; \
      echo "deb [signed-by=/usr/share/postgresql-common/pgdg/apt.postgresql.org.asc] https://apt.postgresql.org/pub/repos/apt bookworm-pgdg main" \
        > /etc/apt/sources.list.d/pgdg.list; \
      apt-get update; \
    fi; \
    apt-get install -y --no-install-recommends "postgresql-client-${PG_CLIENT_MAJOR}" \
      git openssh-client; \
    if [ "$PG_CLIENT_SOURCE" = pgdg ]; then apt-get purge -y curl gnupg; fi; \
    apt-get autoremove -y; \
    rm -rf /var/lib/apt/lists/*; \
    "/usr/lib/postgresql/${PG_CLIENT_MAJOR}/bin/pg_dump" --version
RUN groupadd --system --gid 10001 schemasync \
 && useradd --system --uid 10001 --gid schemasync --home-dir /work --shell /usr/sbin/nologin schemasync \
 && install -d -o schemasync -g schemasync /work /work/sql /work/backups /work/config
COPY --from=build /app/.venv /app/.venv
COPY config/pg-schema-sync.example.toml /work/config/
# The client by its full path: its version is the one documented, never what a wrapper picks;
# psql (used by verify) is taken from beside it. No secrets here: configuration comes from the
# environment or a file mounted at /work/config/pg-schema-sync.toml.
ENV PATH="/app/.venv/bin:$PATH" \
    PYTHONUNBUFFERED=1 \
    SCHEMA_SYNC_LOG_FORMAT=json \
    SCHEMA_SYNC_PG_DUMP=/usr/lib/postgresql/${PG_CLIENT_MAJOR}/bin/pg_dump
WORKDIR /work
# Numeric, so that orchestrators can verify runAsNonRoot.
USER 10001:10001
VOLUME ["/work/sql", "/work/backups"]
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=60s --timeout=10s --start-period=120s --retries=3 \
  CMD ["pg-schema-sync", "health"]
# tini (PID 1) forwards SIGHUP (sync now) and SIGTERM (graceful stop) to the daemon and reaps
# children; exec form, so no shell stands between them.
ENTRYPOINT ["/usr/bin/tini", "--", "pg-schema-sync"]
CMD ["run"]
