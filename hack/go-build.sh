# Sourced by the build scripts (set build_name first): Go's build and module caches and the
# built binaries live in one per-user cache outside the checkout, so CI and later runs on the
# same machine reuse them; progress lines go to stderr, the go tool's output to the build log.
cache_root="${RUNBOOK_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/runbook-operator}"
export GOCACHE="${GOCACHE:-$cache_root/go-build}"
export GOMODCACHE="${GOMODCACHE:-$cache_root/go-mod}"
export GOFLAGS="-mod=readonly -buildvcs=false"
export CGO_ENABLED=0
build_log="${RUNBOOK_BUILD_LOG:-$cache_root/build.log}"
build_started=$SECONDS

log() { echo "[$build_name] $(date +%H:%M:%S) $*" >&2; }
elapsed() { echo "$((SECONDS - build_started))s"; }
fail() {  # what failed
  log "$1 failed; the end of $build_log:"
  tail -n 30 "$build_log" >&2
  exit 1
}
