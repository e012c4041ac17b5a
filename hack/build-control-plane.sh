#!/usr/bin/env bash
# Builds the local control plane (etcd, kube-apiserver, kube-controller-manager,
# kube-scheduler, kubectl, kwok) from the Go modules under hack/controlplane and
# caches the binaries per user, keyed by the modules' content, so only the first run
# on a machine pays for the build. Prints the directory holding the binaries.
# Beside them: kwok's Logs CRD (the devcluster runtime's `kubectl logs` goes through it).
# Progress goes to stderr, one line per step; the go tool's own output to
# $RUNBOOK_BUILD_LOG (default: build.log in the cache dir), whose path is printed.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
modules="$here/controlplane"
build_name=build-control-plane
source "$here/go-build.sh"

k8s_version="$(awk '$1 == "k8s.io/kubernetes" {print $2}' "$modules/kubernetes/go.mod")"
# Bump when the build flags below change, so cached binaries are rebuilt.
build_revision=1
key="$( (echo "$build_revision"; cat "$modules"/*/go.mod "$modules"/*/go.sum) | sha256sum | cut -c1-16)"
bin="$cache_root/bin/$key"
wanted=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kwok)
logs_crd=kwok-logs-crd.yaml

complete=1
for b in "${wanted[@]}"; do [[ -x "$bin/$b" ]] || complete=0; done
[[ -f "$bin/$logs_crd" ]] || complete=0
if [[ $complete == 1 ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$bin"
stamp_pkgs=(k8s.io/component-base/version k8s.io/client-go/pkg/version)
minor="${k8s_version#v1.}"; minor="${minor%%.*}"
ldflags="-s -w"
for p in "${stamp_pkgs[@]}"; do
  ldflags+=" -X $p.gitVersion=$k8s_version -X $p.gitMajor=1 -X $p.gitMinor=$minor"
  ldflags+=" -X $p.gitTreeState=clean -X $p.buildDate=1970-01-01T00:00:00Z"
done

log "building the control plane $k8s_version into $bin (first time on a machine: ~7 minutes on 2 cores)"
log "the go tool's output goes to $build_log"
build() {  # module-dir output package [ldflags]
  local dir="$1" out="$2" pkg="$3" flags="${4:-"-s -w"}"
  if [[ -x "$bin/$out" ]]; then return; fi
  log "building $out ($(elapsed) elapsed)"
  if ! (cd "$modules/$dir" && go build -trimpath -tags selinux,notest -ldflags "$flags" \
        -o "$bin/$out.tmp" "$pkg") >>"$build_log" 2>&1; then
    fail "building $out"
  fi
  mv "$bin/$out.tmp" "$bin/$out"
}
build etcd etcd go.etcd.io/etcd/server/v3
build kwok kwok sigs.k8s.io/kwok/cmd/kwok
for c in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
  build kubernetes "$c" "k8s.io/kubernetes/cmd/$c" "$ldflags"
done
kwok_dir="$(cd "$modules/kwok" && go list -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
cp "$kwok_dir/kustomize/crd/bases/kwok.x-k8s.io_logs.yaml" "$bin/$logs_crd"
for stale in "$cache_root"/bin/*; do  # binaries of earlier module versions
  [[ "$stale" == "$bin" ]] || rm -rf "$stale"
done
log "control plane $k8s_version ready in $bin ($(elapsed))"
echo "$bin"
