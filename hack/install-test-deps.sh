#!/usr/bin/env bash
# Installs the Debian packages the tests need (real PostgreSQL and MariaDB servers and their
# clients for the backup runner, Prometheus and Alertmanager for AlertRule, buildah and
# mmdebstrap for the images), only those
# missing: `apt-get update` runs only if something is.
# Services are not started by it: the tests start their own servers on free ports.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  postgresql-15         # server binaries in /usr/lib/postgresql/15/bin (initdb, postgres)
  postgresql-client-15  # pg_dump, pg_restore, psql, createdb, dropdb
  mariadb-server        # mariadbd, mariadb-install-db
  mariadb-client        # mysqldump, mysql, mariadb-admin
  prometheus            # /usr/bin/prometheus
  prometheus-alertmanager  # /usr/bin/prometheus-alertmanager
  bubblewrap            # bwrap: the devcluster runtime's sandbox for pods of the project's images
  iproute2              # ip: the tests and the demo read the cluster's network namespace with it
  buildah               # builds the Dockerfile without a Docker engine (hack/build-image.sh)
  mmdebstrap            # bootstraps the images' Debian bases from packages (no registry)
)

missing=()
for p in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

log() { echo "[install-test-deps] $(date +%H:%M:%S) $*" >&2; }
# apt's own output goes to $RUNBOOK_BUILD_LOG when set (hack/prepare.sh sets it).
apt_log="${RUNBOOK_BUILD_LOG:-/dev/stderr}"
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { log "need root to install: ${missing[*]}"; exit 1; }
  sudo=(sudo)
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq >>"$apt_log" 2>&1
# RUNLEVEL=1: the packages' maintainer scripts must not start system-wide servers.
"${sudo[@]}" env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" \
  >>"$apt_log" 2>&1
# Under systemd, prometheus' and prometheus-alertmanager's postinst start their units through
# deb-systemd-invoke, which ignores RUNLEVEL (invoke-rc.d, used without systemd, honours it and
# policy-rc.d). Stop a unit only if this run installed its package: a system Prometheus the
# machine already had is left alone.
if [[ -d /run/systemd/system ]]; then
  for p in "${missing[@]}"; do
    case "$p" in
      prometheus | prometheus-alertmanager)
        if systemctl is-active --quiet "$p.service"; then
          log "stopping $p.service, started by its package"
          "${sudo[@]}" systemctl stop "$p.service"
        fi
        ;;
    esac
  done
fi
log "installed ${missing[*]}"
