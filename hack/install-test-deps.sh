#!/usr/bin/env bash
# Installs the Debian packages the backup runner's tests need (real PostgreSQL and MariaDB
# servers and their clients), only those missing: `apt-get update` runs only if something is.
# Services are not started by it: the tests start their own servers on free ports.
# Idempotent; needs root (or sudo) only when something is missing.
set -euo pipefail

packages=(
  postgresql-15         # server binaries in /usr/lib/postgresql/15/bin (initdb, postgres)
  postgresql-client-15  # pg_dump, pg_restore, psql, createdb, dropdb
  mariadb-server        # mariadbd, mariadb-install-db
  mariadb-client        # mysqldump, mysql, mariadb-admin
)

missing=()
for p in "${packages[@]}"; do
  status="$(dpkg-query -W -f='${db:Status-Status}' "$p" 2>/dev/null || true)"
  [[ "$status" == "installed" ]] || missing+=("$p")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi

log() { echo "[install-test-deps] $*" >&2; }
sudo=()
if [[ $(id -u) -ne 0 ]]; then
  command -v sudo >/dev/null || { log "need root to install: ${missing[*]}"; exit 1; }
  sudo=(sudo)
fi
log "installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
"${sudo[@]}" apt-get update -qq
# RUNLEVEL=1: the packages' maintainer scripts must not start system-wide servers.
"${sudo[@]}" env RUNLEVEL=1 apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
log "installed ${missing[*]}"
