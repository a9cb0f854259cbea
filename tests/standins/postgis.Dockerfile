# Test stand-in for pgrouting/pgrouting:15-* (the official postgres:15 image plus PostGIS and
# pgRouting), built only where that image cannot be pulled (tests/engine.py). Debian bookworm's
# PostgreSQL 15 with its PostGIS 3 and pgRouting packages (older minor versions than the tag
# names), and an entrypoint that behaves like the official one for what docker-compose.yml uses.
ARG BASE
FROM ${BASE}
RUN set -eux; \
    install -d /etc/postgresql-common; \
    echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.conf; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-15-postgis-3 postgresql-15-pgrouting; \
    rm -rf /var/lib/apt/lists/*; \
    install -d -o postgres -g postgres -m 3777 /var/run/postgresql; \
    install -d -o postgres -g postgres -m 1777 /var/lib/postgresql/data
COPY postgres-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
ENV PG_MAJOR=15 LANG=C.UTF-8 PGDATA=/var/lib/postgresql/data \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:/usr/lib/postgresql/15/bin
VOLUME /var/lib/postgresql/data
ENTRYPOINT ["docker-entrypoint.sh"]
# Fast shutdown, as the official image: SIGTERM would wait for every client to disconnect.
STOPSIGNAL SIGINT
EXPOSE 5432
CMD ["postgres"]
