# syntax=docker/dockerfile:1
# Two images from one file, as two targets:
#   operator (the default, last stage): the controllers; Python and the operator's dependencies
#            on a distroless Debian 12 Python base: no shell, no package manager, no pip.
#   runner:  what backup Jobs run (`runbook-operator runner`): the dump and restore clients
#            (PostgreSQL, MariaDB/MySQL) and only the Python packages the runner imports.
# Both are built from Debian 12's own python3, so a virtualenv made in a Debian stage runs
# unchanged in the distroless one (the same /usr/bin/python3.11). hack/build-image.sh builds
# them without a Docker engine (buildah, bases bootstrapped from Debian packages):
#   docker build --target runner -t runbook-runner:0.1.0 .
#   docker build -t runbook-operator:0.1.0 .

ARG DEBIAN_IMAGE=debian:bookworm-slim
ARG PYTHON_RUNTIME_IMAGE=gcr.io/distroless/python3-debian12

FROM ${DEBIAN_IMAGE} AS python
ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv \
 && rm -rf /var/lib/apt/lists/*

# The project as a wheel, built once for both images. Where the package registries are trusted
# through a CA of the network's own, pass a pip.conf and that CA as the optional build secrets
# pip.conf and ca.crt (the pip.conf naming /run/secrets/ca.crt); hack/build-image.sh does.
FROM python AS wheel
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY operator/ operator/
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf,required=false \
    --mount=type=secret,id=ca.crt,target=/run/secrets/ca.crt,required=false \
    python3 -m venv /tmp/build \
 && /tmp/build/bin/pip wheel --no-deps --wheel-dir /wheels .

# One virtualenv per image at /opt/venv (hack/image-venv.py): its dependencies first (a layer
# only a change of pyproject.toml rebuilds), then the project's wheel; what the image never
# runs is left out (pip, setuptools, test suites, the Kubernetes client's asyncio copy,
# byte-code). Each final stage then imports every module its command can reach, on its own
# root, so a dependency or a shared library left out by mistake fails the build.
FROM python AS operator-venv
WORKDIR /src
COPY pyproject.toml hack/image-venv.py ./
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf,required=false \
    --mount=type=secret,id=ca.crt,target=/run/secrets/ca.crt,required=false \
    python3 image-venv.py dependencies operator
COPY --from=wheel /wheels /wheels
RUN python3 image-venv.py project operator /wheels

FROM python AS runner-venv
WORKDIR /src
COPY pyproject.toml hack/image-venv.py ./
RUN --mount=type=secret,id=pip.conf,target=/etc/pip.conf,required=false \
    --mount=type=secret,id=ca.crt,target=/run/secrets/ca.crt,required=false \
    python3 image-venv.py dependencies runner
COPY --from=wheel /wheels /wheels
RUN python3 image-venv.py project runner /wheels

# Backup Jobs: a full Debian (the clients are Debian packages; pg_dump's wrapper is a Perl
# script), the runner's virtualenv, the non-root user every Job runs as. Of MariaDB's client
# tools only the two the runner calls are installed (mysqldump and mysql); the others are
# about 55 MB of statically linked programs.
FROM ${DEBIAN_IMAGE} AS runner
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="runbook-runner" \
      org.opencontainers.image.description="The backup runner of runbook-operator: dump, compress, encrypt, store, verify, prune." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
ARG DEBIAN_FRONTEND=noninteractive
RUN printf '%s\n' 'path-exclude=/usr/bin/mariadb-*' 'path-exclude=/usr/bin/mysql*' \
      'path-exclude=/usr/bin/my_print_defaults' 'path-exclude=/usr/bin/perror' \
      'path-exclude=/usr/bin/replace' 'path-exclude=/usr/bin/resolve_stack_dump' \
      'path-exclude=/usr/bin/innotop' 'path-exclude=/usr/bin/mytop' \
      'path-exclude=/usr/bin/msql2mysql' 'path-include=/usr/bin/mariadb-dump' \
      'path-include=/usr/bin/mysqldump' 'path-include=/usr/bin/mysql' \
      >/etc/dpkg/dpkg.cfg.d/runbook-runner \
 && apt-get update \
 && apt-get install -y --no-install-recommends python3 postgresql-client mariadb-client \
 && rm -rf /var/lib/apt/lists/* /var/cache/debconf/*-old /var/log/apt /var/log/dpkg.log \
 && groupadd --gid 65532 nonroot \
 && useradd --uid 65532 --gid 65532 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin nonroot
COPY --from=runner-venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
RUN --mount=type=bind,from=runner-venv,source=/src/image-venv.py,target=/tmp/image-venv.py \
    ["/opt/venv/bin/python3", "/tmp/image-venv.py", "check", "runner"]
# Numeric, so that a pod's `runAsNonRoot: true` can verify it without a passwd lookup.
USER 65532:65532
ENTRYPOINT ["runbook-operator"]
CMD ["runner"]

# The operator: the distroless base already has the nonroot user (65532) and the CA bundle.
FROM ${PYTHON_RUNTIME_IMAGE} AS operator
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="runbook-operator" \
      org.opencontainers.image.description="A Kubernetes operator that turns SRE runbooks (backups, alerts, canaries, incidents) into custom resources." \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}"
COPY --from=operator-venv /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# Exec form: the base has no shell.
RUN --mount=type=bind,from=operator-venv,source=/src/image-venv.py,target=/tmp/image-venv.py \
    ["/opt/venv/bin/python3", "/tmp/image-venv.py", "check", "operator"]
USER 65532:65532
# 8080: /healthz; 9090: Prometheus /metrics.
EXPOSE 8080 9090
ENTRYPOINT ["runbook-operator"]
CMD ["run"]
