#!/usr/bin/env bash
# Entrypoint of the PostgreSQL stand-in image (tests only), behaving like the official postgres
# image's for what the compose file uses: on an empty data folder, initdb with POSTGRES_USER and
# POSTGRES_PASSWORD, create POSTGRES_DB, run /docker-entrypoint-initdb.d/*.sql and *.sh once on
# a server that listens on the socket only, then serve: trust on the local socket, a password
# (scram-sha-256) over TCP. Runs the server as the postgres user.
set -Eeuo pipefail

if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi
if [ "$1" != postgres ]; then exec "$@"; fi
shift

if [ "$(id -u)" = 0 ]; then
  install -d -m 0700 "$PGDATA"
  install -d -m 3775 /var/run/postgresql
  chown -R postgres:postgres "$PGDATA" /var/run/postgresql
  exec setpriv --reuid=postgres --regid=postgres --init-groups "$0" postgres "$@"
fi

POSTGRES_USER=${POSTGRES_USER:-postgres}
POSTGRES_DB=${POSTGRES_DB:-$POSTGRES_USER}

if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo 'error: the database is not initialised and POSTGRES_PASSWORD is empty: set it' >&2
    exit 1
  fi
  initdb -D "$PGDATA" --username="$POSTGRES_USER" --auth-local=trust \
    --auth-host=scram-sha-256 --pwfile=<(printf '%s\n' "$POSTGRES_PASSWORD")
  printf "\nlisten_addresses = '*'\n" >> "$PGDATA/postgresql.conf"
  printf '\nhost all all all scram-sha-256\n' >> "$PGDATA/pg_hba.conf"

  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start
  run_sql() {
    PGHOST= PGHOSTADDR= psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --no-password \
      --no-psqlrc "$@"
  }
  if [ "$POSTGRES_DB" != postgres ]; then
    run_sql --dbname postgres --set db="$POSTGRES_DB" <<<'CREATE DATABASE :"db";'
  fi
  shopt -s nullglob
  for f in /docker-entrypoint-initdb.d/*; do
    case "$f" in
      *.sql) echo "$0: running $f"; run_sql --dbname "$POSTGRES_DB" -f "$f" ;;
      *.sh) echo "$0: running $f"; if [ -x "$f" ]; then "$f"; else . "$f"; fi ;;
      *) echo "$0: ignoring $f" ;;
    esac
  done
  pg_ctl -D "$PGDATA" -m fast -w stop
  echo "$0: init process complete; ready for start up"
fi

exec postgres "$@"
