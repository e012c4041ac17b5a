# syntax=docker/dockerfile:1
# The runbook-operator image: the project and its dependencies as wheels, built in a throw-away
# stage so that the final image holds no compilers, no sources and no build caches.

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# Only what the wheel is built from, so that edits to tests or docs do not bust this layer.
COPY pyproject.toml README.md ./
COPY operator/ operator/
# Wheels for the project and every dependency, so the final stage installs offline.
RUN pip wheel --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="runbook-operator" \
      org.opencontainers.image.description="A Kubernetes operator that turns SRE runbooks (backups, alerts, canaries, incidents) into custom resources." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The same image runs backup Jobs (`runbook-operator runner`), which need the dump and restore
# clients: PostgreSQL (pg_dump/pg_restore/psql) and MariaDB/MySQL (mysqldump/mysql).
RUN apt-get update \
 && apt-get install -y --no-install-recommends postgresql-client mariadb-client \
 && rm -rf /var/lib/apt/lists/*
# A passwd entry for the numeric user, so libraries that look up the home directory do not fail.
RUN groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
# Bind-mount the wheels instead of copying them, so they never become an image layer.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-index --find-links=/wheels runbook-operator
# Numeric, so that the pod's `runAsNonRoot: true` can verify it without a passwd lookup.
USER 65532:65532
# 8080: /healthz; 9090: Prometheus /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["runbook-operator"]
CMD ["run"]
