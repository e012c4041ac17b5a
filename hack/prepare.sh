#!/usr/bin/env bash
# Installs and builds everything `make demo`, `make test` and the benchmarks use (with
# `--images`, also what only the tests use), so every target that starts the local cluster or
# its services has the same prerequisites (a fresh machine once failed `make demo` because only
# `make test` installed Prometheus). The cluster runs in a network namespace with no route out,
# so nothing can be fetched once it runs.
# Each step is cached or idempotent; a warm run takes about a second. One progress line per
# step (and per binary built) with the elapsed time; the tools' own output (apt, go) goes to
# the log file named on the first line.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cache_root="${RUNBOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/runbook-operator}"
mkdir -p "$cache_root"
export RUNBOOK_BUILD_LOG="${RUNBOOK_BUILD_LOG:-$cache_root/build.log}"
: >"$RUNBOOK_BUILD_LOG"
start=$SECONDS
say() { echo "[prepare] $(date +%H:%M:%S) +$((SECONDS - start))s $*" >&2; }

say "installing and building what the cluster and its services use (details: $RUNBOOK_BUILD_LOG)"
steps=(
  "Debian packages: PostgreSQL, MariaDB, Prometheus, bubblewrap, buildah…|install-test-deps.sh"
  "Kubernetes control plane and kwok (Go; first run ≈ 7 min on 2 cores)|build-control-plane.sh"
  "Traefik and Gateway API CRDs (Go; first run ≈ 2.5 GB downloaded, 6-12 min)|build-traefik.sh"
  "Prometheus with Kubernetes discovery (Go; first run ≈ 3 min)|build-prometheus.sh"
  "MinIO (Go; first run ≈ 4 min on 2 cores)|build-minio.sh"
  "Istio's VirtualService CRD (Go module download, seconds)|build-istio-crds.sh"
)
# The images and helm only for the tests that install the operator as users do (`make test`):
# the demo runs the operator from this checkout and would only wait for them.
if [[ "${1:-}" == "--images" ]]; then
  steps+=(
    "the operator and runner images (buildah, Debian bases; first run ≈ 4 min)|build-image.sh"
    "helm (Go; first run ≈ 4 min on 2 cores)|build-helm.sh"
  )
fi
for i in "${!steps[@]}"; do
  what="${steps[$i]%|*}" script="${steps[$i]#*|}"
  say "$((i + 1))/${#steps[@]} $what"
  if ! "$here/$script" >/dev/null; then
    say "$script failed; the end of $RUNBOOK_BUILD_LOG:"
    tail -n 30 "$RUNBOOK_BUILD_LOG" >&2
    exit 1
  fi
done
say "ready"
