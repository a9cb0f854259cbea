# Test stand-in for python:3.11-slim-bookworm, built only where that image cannot be pulled
# (tests/engine.py). Debian bookworm's own Python 3.11, laid out where the official image keeps
# its interpreter (/usr/local/bin) and with pip usable as root, which is all the project's
# Dockerfile relies on. The host's CA bundle and package-index settings (host-pip.conf,
# host-uv.toml, written from the host at test time) let pip and uv reach the index from inside.
ARG BASE
FROM ${BASE}
COPY host-ca.crt /usr/local/share/ca-certificates/pg-schema-sync-test-host.crt
COPY host-pip.conf /etc/pip.conf
COPY host-uv.toml /etc/uv/uv.toml
RUN set -eux; \
    apt-get update; \
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      ca-certificates netbase tzdata python3.11 python3-pip; \
    update-ca-certificates; \
    rm -f /usr/lib/python3.11/EXTERNALLY-MANAGED; \
    for name in python3.11 python3 python; do ln -s /usr/bin/python3.11 "/usr/local/bin/$name"; done; \
    for name in pip pip3 pip3.11; do ln -s /usr/bin/pip3 "/usr/local/bin/$name"; done; \
    rm -rf /var/lib/apt/lists/*; \
    python3 --version
ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8
CMD ["python3"]
