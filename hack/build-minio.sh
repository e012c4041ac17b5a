#!/usr/bin/env bash
# Builds MinIO (the S3-compatible server the runner's storage tests talk to) from its Go module
# and caches the binary per user and version, so only the first run on a machine pays for the
# build. Prints the path of the binary.
#
# The version is a module pseudo-version: MinIO tags releases as RELEASE.<date>, which are not
# semantic versions, and the module proxy serves only the pseudo-versions of its commits.
# MinIO's go.mod has no replace directives, so `go install module@version` works as is.
# Progress goes to stderr; the go tool's output to $RUNBOOK_BUILD_LOG (default: build.log in
# the cache dir).
set -euo pipefail

version="${MINIO_VERSION:-v0.0.0-20260212201848-7aac2a2c5b7c}"
build_name=build-minio
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOTOOLCHAIN=local

bin_dir="$cache_root/minio/$version"
if [[ -x "$bin_dir/minio" ]]; then
  echo "$bin_dir/minio"
  exit 0
fi

log "building MinIO $version into $bin_dir (first time on a machine: several minutes)"
log "the go tool's output goes to $build_log"
mkdir -p "$bin_dir"
staging="$(mktemp -d "$bin_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
if ! GOBIN="$staging" go install -trimpath -ldflags "-s -w" "github.com/minio/minio@$version" \
    >>"$build_log" 2>&1; then
  fail "building MinIO"
fi
mv "$staging/minio" "$bin_dir/minio"
for stale in "$cache_root"/minio/*; do  # binaries of earlier versions
  [[ "$stale" == "$bin_dir" ]] || rm -rf "$stale"
done
log "MinIO $version ready in $bin_dir ($(elapsed))"
echo "$bin_dir/minio"
