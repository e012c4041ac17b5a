#!/usr/bin/env bash
# Builds helm (the chart in charts/runbook-operator is rendered and installed with it) from
# its Go module and caches the binary per user and version, so only the first run on a
# machine pays. Prints the path of the binary. Helm's go.mod has no replace lines, so
# `go install module@version` works as is; the version is stamped as its Makefile does.
# Progress goes to stderr; the go tool's output to $RUNBOOK_BUILD_LOG (default: build.log in
# the cache dir).
set -euo pipefail

version="${HELM_VERSION:-v3.22.0}"
build_name=build-helm
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOTOOLCHAIN=local

bin_dir="$cache_root/helm/$version"
if [[ -x "$bin_dir/helm" ]]; then
  echo "$bin_dir/helm"
  exit 0
fi

log "building helm $version into $bin_dir (first time on a machine: a few minutes)"
log "the go tool's output goes to $build_log"
mkdir -p "$bin_dir"
staging="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
stamp=helm.sh/helm/v3/internal/version
if ! GOBIN="$staging" go install -trimpath \
    -ldflags "-s -w -X $stamp.version=$version -X $stamp.gitTreeState=clean" \
    "helm.sh/helm/v3/cmd/helm@$version" >>"$build_log" 2>&1; then
  fail "building helm"
fi
mv "$staging/helm" "$bin_dir/helm"
for stale in "$cache_root"/helm/*; do  # binaries of earlier versions
  [[ "$stale" == "$bin_dir" ]] || rm -rf "$stale"
done
log "helm $version ready in $bin_dir ($(elapsed))"
echo "$bin_dir/helm"
