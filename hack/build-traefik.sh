#!/usr/bin/env bash
# Builds Traefik (the local cluster's Gateway API implementation) from its Go module and caches
# the binary per user and version, beside the Gateway API standard CRDs of the version that
# Traefik release supports (the one its go.mod requires). Prints the directory holding both.
#
# Traefik's go.mod has `replace` lines, which `go install module@version` refuses, so the
# module is downloaded (checked against the Go checksum database), copied to a writable
# directory and built there with its own go.mod and go.sum (no requirement is resolved anew).
# First run on 2 cores: ≈ 2.5 GB of module downloads and 6-12 minutes.
#
# Why v3.7: its ingress-nginx provider is the first to serve the canary annotations
# (`canary`, `canary-weight`; traefik/traefik#12739), which the NGINX router of CanaryRollout
# writes. Three things its module needs are not served by the module proxy this project builds
# through, so the build copy is adjusted (and only the copy; each step says why):
# - `replace github.com/traefik/traefik/dynamic/ext => ./pkg/config/dynamic/ext`: a module nested
#   in Traefik's repository, which module zips leave out. Its published content is two empty
#   extension structs (`ext.HTTP`, `ext.Router`, embedded inline in dynamic.HTTP and
#   dynamic.Router for downstream builds to extend); the copy gets that empty module.
# - the fork github.com/containous/go-http-auth at the v3.7 line's pseudo-version is refused; the
#   fork's version the v3.6 line used (served, checked against the checksum database) takes its
#   place. It backs the basicAuth/digestAuth middlewares, which the devcluster does not use.
# - lego's DNS-challenge provider registry imports about fourteen cloud SDKs the proxy refuses;
#   the copy's ACME provider gets a registry that knows no DNS provider (ACME's HTTP and TLS
#   challenges are unchanged; the devcluster uses no ACME at all).
# Progress goes to stderr; the go tool's output to $RUNBOOK_BUILD_LOG (default: build.log in
# the cache dir).
set -euo pipefail

version="${TRAEFIK_VERSION:-v3.7.13}"
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

log "building Traefik $version into $out (first time on a machine: ≈ 2.5 GB of downloads,"
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

log "adjusting the copy for the modules the proxy does not serve (see the top of this script)"
ext="$staging/src/pkg/config/dynamic/ext"
mkdir -p "$ext"
printf 'module github.com/traefik/traefik/dynamic/ext\n\ngo 1.26.0\n' >"$ext/go.mod"
cat >"$ext/ext.go" <<'GO'
// Package ext holds the extension points of Traefik's dynamic configuration; empty here.
package ext

// HTTP extends dynamic.HTTP.
type HTTP struct{}

// Router extends dynamic.Router.
type Router struct{}
GO
served_http_auth=github.com/containous/go-http-auth@v0.4.1-0.20200324110947-a37a7636d23e
(cd "$staging/src" &&
  go mod edit -replace "github.com/abbot/go-http-auth=$served_http_auth" &&
  sed -i '/^github.com\/containous\/go-http-auth /d' go.sum) >>"$build_log" 2>&1 ||
  fail "replacing go-http-auth"
nodns="$staging/src/pkg/provider/acme/nodns"
mkdir -p "$nodns"
cat >"$nodns/nodns.go" <<'GO'
// Package nodns stands in for lego's DNS-challenge provider registry: this build has none.
package nodns

import (
	"fmt"

	"github.com/go-acme/lego/v5/challenge"
)

// NewDNSChallengeProviderByName refuses every provider name.
func NewDNSChallengeProviderByName(name string) (challenge.Provider, error) {
	return nil, fmt.Errorf("DNS challenge provider %q is not in this build", name)
}
GO
acme="$staging/src/pkg/provider/acme/provider.go"
grep -q '"github.com/go-acme/lego/v5/providers/dns"' "$acme" || fail "finding lego's DNS registry"
sed -i 's#"github.com/go-acme/lego/v5/providers/dns"#dns "github.com/traefik/traefik/v3/pkg/provider/acme/nodns"#' \
  "$acme"
# -mod=mod: go.sum gains the served fork's checksums (verified against the checksum database);
# only the modules the build imports are downloaded, not the refused ones.
export GOFLAGS="-mod=mod -buildvcs=false"
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
