#!/usr/bin/env bash
# Caches Istio's VirtualService CRD, per user and version, for the Istio router's e2e tests:
# the CRD YAML generated from Istio's protos, shipped in the `istio.io/api` Go module
# (kubernetes/customresourcedefinitions.gen.yaml, every Istio CRD in one file), downloaded
# through the Go module proxy and checked against the Go checksum database. No Istio runs in
# the local cluster: the router's weights are verified by read-back. Prints the directory.
set -euo pipefail

version="${ISTIO_API_VERSION:-v1.32.0}"
module=istio.io/api
build_name=build-istio-crds
source "$(dirname "${BASH_SOURCE[0]}")/go-build.sh"
crd=istio-virtualservice-crd.yaml

out="$cache_root/istio/$version"
if [[ -f "$out/$crd" ]]; then
  echo "$out"
  exit 0
fi

log "extracting the VirtualService CRD from $module@$version"
source_dir="$(go mod download -json "$module@$version" 2>>"$build_log" \
  | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')"
all="$source_dir/kubernetes/customresourcedefinitions.gen.yaml"
[[ -f "$all" ]] || fail "downloading $module@$version"
mkdir -p "$out"
# One YAML document per CRD, each starting with `apiVersion:`; keep the VirtualService's.
awk -v RS='\n---\n' -v ORS='\n---\n' '/\n  name: virtualservices\.networking\.istio\.io\n/' \
  "$all" >"$out/$crd.tmp"
grep -q 'kind: VirtualService$' "$out/$crd.tmp" || fail "finding the VirtualService CRD"
mv "$out/$crd.tmp" "$out/$crd"
log "VirtualService CRD of $module $version ready in $out"
echo "$out"
