#!/usr/bin/env bash
# Builds Traefik (the local cluster's Gateway API implementation) from its Go module and caches
# the binary per user and version, beside the Gateway API standard CRDs of the version that
# Traefik release supports (the one its go.mod requires). Prints the directory holding both.
#
# Traefik's go.mod has `replace` lines, which `go install module@version` refuses, so the
# module is downloaded (checked against the Go checksum database), copied to a writable
# directory and built there with its own go.mod and go.sum (-mod=readonly: nothing is
# resolved anew). First run on 2 cores: ≈ 2.3 GB of module downloads and 4-10 minutes.
#
# Why v3.6: the v3.7 line (the first whose ingress-nginx provider serves the canary
# annotations, traefik/traefik#12739) replaces github.com/traefik/traefik/dynamic/ext with a
# directory nested in its repository, which the module zip leaves out and no proxy serves,
# and requires a fork (github.com/containous/go-http-auth) at a version the module proxy this
# project builds through does not serve.
# Progress goes to stderr; the go tool's output to $RUNBOOK_BUILD_LOG (default: build.log in
# the cache dir).
set -euo pipefail

version="${TRAEFIK_VERSION:-v3.6.12}"
module=github.com/traefik/traefik/v3
build_name=build-traefik
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
export GOTOOLCHAIN=local
# Bump when the build flags below change, so cached binaries are rebuilt.
build_revision=1
crds=gateway-api-standard-crds.yaml

out="$cache_root/traefik/$version-$build_revision"
if [[ -x "$out/traefik" && -f "$out/$crds" ]]; then
  echo "$out"
  exit 0
fi

module_dir() {  # module@version → its directory in the module cache (downloaded if needed)
  go mod download -json "$1" 2>>"$build_log" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p'
}

log "building Traefik $version into $out (first time on a machine: ≈ 2.3 GB of downloads,"
log "4-10 minutes on 2 cores); the go tool's output goes to $build_log"
mkdir -p "$out"
staging="$(mktemp -d "$out/.build.XXXXXX")"
trap 'chmod -R u+w "$staging" 2>/dev/null; rm -rf "$staging"' EXIT

source_dir="$(module_dir "$module@$version")"
[[ -n "$source_dir" ]] || fail "downloading $module@$version"
cp -r "$source_dir" "$staging/src"
chmod -R u+w "$staging/src"

gateway_api="$(awk '$1 == "sigs.k8s.io/gateway-api" {print $2}' "$staging/src/go.mod")"
crd_dir="$(module_dir "sigs.k8s.io/gateway-api@$gateway_api")/config/crd/standard"
[[ -d "$crd_dir" ]] || fail "downloading sigs.k8s.io/gateway-api@$gateway_api"
for f in "$crd_dir"/*.yaml; do
  echo "---"
  cat "$f"
done >"$staging/$crds"
log "Gateway API $gateway_api standard CRDs (the version Traefik $version requires)"

log "downloading Traefik's dependencies ($(elapsed) elapsed)"
(cd "$staging/src" && go mod download) >>"$build_log" 2>&1 || fail "downloading dependencies"
log "compiling ($(elapsed) elapsed)"
stamp="github.com/traefik/traefik/v3/pkg/version"
(cd "$staging/src" && go build -trimpath \
  -ldflags "-s -w -X $stamp.Version=$version -X $stamp.BuildDate=1970-01-01T00:00:00Z" \
  -o "$staging/traefik" ./cmd/traefik) >>"$build_log" 2>&1 || fail "compiling Traefik"
mv "$staging/$crds" "$out/$crds"
mv "$staging/traefik" "$out/traefik"
for stale in "$cache_root"/traefik/*; do  # builds of earlier versions
  [[ "$stale" == "$out" ]] || rm -rf "$stale"
done
log "Traefik $version ready in $out ($(elapsed))"
echo "$out"
