#!/usr/bin/env bash
# Builds Prometheus with Kubernetes service discovery from its Go module and caches the binary
# per user and version, so only the first run on a machine pays. Prints the path of the binary.
#
# Debian's prometheus package (hack/install-test-deps.sh; the AlertRule tests' Prometheus) is
# built without Kubernetes service discovery ("removed, due to the insane amount of
# dependencies in their client library", its NEWS.Debian), and the local cluster's Prometheus
# finds its targets through the API server as in a cluster. Prometheus' go.mod has no replace
# lines, so `go install module@version` works; the build tags keep only the Kubernetes
# discoverer (besides the built-in static, file and HTTP ones), which leaves the cloud SDKs
# out of the download and the build. Without the `builtinassets` tag the web UI is not
# embedded: the HTTP API is what the harness and the operator use.
# Progress goes to stderr; the go tool's output to $RUNBOOK_BUILD_LOG (default: build.log in
# the cache dir).
set -euo pipefail

module_version="${PROMETHEUS_MODULE_VERSION:-v0.316.0}"  # the module's tag of Prometheus 3.16.0
build_name=build-prometheus
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOTOOLCHAIN=local

bin_dir="$cache_root/prometheus/$module_version"
if [[ -x "$bin_dir/prometheus" ]]; then
  echo "$bin_dir/prometheus"
  exit 0
fi

log "building Prometheus $module_version with Kubernetes service discovery into $bin_dir"
log "the go tool's output goes to $build_log"
mkdir -p "$bin_dir"
staging="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
release="${module_version#v0.}"  # v0.316.0 → 3.16.0
release="${release:0:1}.${release:1}"
stamp=github.com/prometheus/common/version
if ! GOBIN="$staging" go install -trimpath -tags remove_all_sd,enable_kubernetes_sd \
    -ldflags "-s -w -X $stamp.Version=$release -X $stamp.Branch=HEAD" \
    "github.com/prometheus/prometheus/cmd/prometheus@$module_version" >>"$build_log" 2>&1; then
  fail "building Prometheus"
fi
mv "$staging/prometheus" "$bin_dir/prometheus"
for stale in "$cache_root"/prometheus/*; do  # binaries of earlier versions
  [[ "$stale" == "$bin_dir" ]] || rm -rf "$stale"
done
log "Prometheus $release ready in $bin_dir ($(elapsed))"
echo "$bin_dir/prometheus"
