#!/usr/bin/env bash
# Builds the project's two images from the Dockerfile without a Docker engine, and exports
# each one's root filesystem and config for the devcluster runtime, which runs pods of them
# (operator/runbook_operator/devcluster/runtime/images.py). Prints the directory holding them:
#   images.json              {"operator": {"reference", "size"}, "runner": {...}}
#   operator/rootfs, operator/config.json   (the OCI image config: Entrypoint, Cmd, Env, User)
#   runner/rootfs, runner/config.json
#   runtime-setpriv          the runtime's static helper that becomes an image's user
#                            (hack/runtime-setpriv; not part of any image)
# Each image's size (as buildah reports it) is logged and written to images.json.
#
# How: no registry can be reached, so the Dockerfile's two base images are bootstrapped from
# Debian's packages with mmdebstrap and passed as build arguments:
#   DEBIAN_IMAGE          Debian minbase, standing in for debian:bookworm-slim
#   PYTHON_RUNTIME_IMAGE  python3, libstdc++ and their libraries only, extracted (no shell, no
#                         package manager), with the nonroot user and the CA bundle: standing
#                         in for gcr.io/distroless/python3-debian12
# then buildah (Debian package) builds both targets with its layer cache (a change of the
# sources rebuilds only the wheel and the layers after it). Cached in the per-user cache dir:
# the bases by the Debian sources, packages and hook they came from, the export by a digest of
# everything the build reads (this script, Dockerfile, .dockerignore, pyproject.toml, README.md,
# hack/image-venv.py, hack/runtime-setpriv, the package's sources); an unchanged tree prints
# the cached export at once. Measured on 2 busy cores: cold (fresh cache dir) ≈ 4-5.5 min;
# after a source change ≈ 2 min (the wheel, both venvs' last layers and the exports).
# Runs as root (the package manager, and buildah's storage). The host's CA bundle and a pip
# config naming it are the build's secrets: the package registries are trusted through it.
# Progress goes to stderr; buildah's and mmdebstrap's output to $RUNBOOK_BUILD_LOG.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
build_name=build-image
source "$here/go-build.sh"

images_dir="$cache_root/images"
storage="$cache_root/buildah"
# Past this much layer storage the cache starts over (a cold build takes about 4-5 minutes).
storage_limit_mb="${RUNBOOK_BUILDAH_STORAGE_LIMIT_MB:-8000}"
suite=bookworm

inputs() {  # every file the build reads, as the Dockerfile and .dockerignore select them
  cd "$repo"
  printf '%s\n' Dockerfile .dockerignore pyproject.toml README.md hack/image-venv.py \
    hack/build-image.sh hack/runtime-setpriv/go.mod hack/runtime-setpriv/main.go
  find operator -type f ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' | sort
}
digest="$(cd "$repo" && inputs | xargs sha256sum | sha256sum | cut -c1-16)"
out="$images_dir/$digest"
if [[ -f "$out/images.json" ]]; then
  echo "$out"
  exit 0
fi

for tool in buildah mmdebstrap; do
  command -v "$tool" >/dev/null || { log "$tool is missing: run hack/prepare.sh"; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { log "building images needs root (buildah's storage)"; exit 1; }

# The Debian sources apt uses here, when this host runs the images' release; else
# mmdebstrap's own default mirrors for it.
sources=()
if grep -qs "^VERSION_CODENAME=$suite$" /etc/os-release; then
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; do
    [[ -s "$f" ]] && grep -qsE '^[[:space:]]*(deb|Types:)' "$f" && sources+=("$f")
  done
fi
slim=(--aptopt='APT::Install-Recommends "false"' --dpkgopt='path-exclude=/usr/share/doc/*'
      --dpkgopt='path-include=/usr/share/doc/*/copyright' --dpkgopt='path-exclude=/usr/share/man/*'
      --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-exclude=/usr/share/info/*'
      --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr)
# The distroless base's packages: Python, the CA bundle, and the C++ runtime its python3
# image carries too (numpy's and scikit-learn's extensions link libstdc++).
runtime_packages=python3,ca-certificates,libstdc++6
# What the distroless base adds to its packages: a passwd and group with root, nobody and
# nonroot (65532), a world-writable /tmp, and the CA bundle update-ca-certificates would make.
runtime_hook='set -e
printf "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n" >"$1/etc/passwd"
printf "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n" >"$1/etc/group"
mkdir -p "$1/tmp" "$1/home/nonroot" "$1/etc/ssl/certs" && chmod 1777 "$1/tmp"
chown 65532:65532 "$1/home/nonroot"
cat "$1"/usr/share/ca-certificates/mozilla/*.crt >"$1/etc/ssl/certs/ca-certificates.crt"'
# The bases are cached by what makes them: the Debian sources, the packages and the hook.
bases_key="$(cat /dev/null "${sources[@]}" <(echo "$runtime_packages $runtime_hook") \
  | sha256sum | cut -c1-12)"
bases="$cache_root/image-bases/$suite-$bases_key"

bootstrap() {  # name, mmdebstrap arguments...: a base tarball, cached
  local name="$1"
  shift
  [[ -f "$bases/$name.tar" ]] && return 0
  log "bootstrapping the $name base from Debian $suite packages (mmdebstrap)"
  mkdir -p "$bases"
  mmdebstrap "${slim[@]}" "$@" "$suite" "$bases/.$name.tar" "${sources[@]}" >>"$build_log" 2>&1 \
    || fail "mmdebstrap ($name)"
  mv "$bases/.$name.tar" "$bases/$name.tar"
}

log "building the images from the Dockerfile (sources digest $digest; the tools' output goes"
log "to $build_log)"
bootstrap debian --variant=minbase
bootstrap python-runtime --variant=extract --include="$runtime_packages" \
  --customize-hook="$runtime_hook"
for stale in "$cache_root"/image-bases/*; do  # bases from other sources
  [[ "$stale" == "$bases" ]] || rm -rf "$stale"
done

if [[ -d "$storage" ]] && (( $(du -sm "$storage" | cut -f1) > storage_limit_mb )); then
  log "buildah's storage is over ${storage_limit_mb} MB: starting its cache over"
  rm -rf "$storage"
fi
bah=(buildah --root "$storage/root" --runroot "$storage/run"
     --storage-driver "${RUNBOOK_BUILDAH_DRIVER:-overlay}")

base_image() {  # name: the tarball as an image (localhost/runbook-base-NAME:KEY)
  local ref="localhost/runbook-base-$1:$suite-$bases_key" ctr
  if ! "${bah[@]}" inspect --type image "$ref" >/dev/null 2>&1; then
    ctr="$("${bah[@]}" from scratch)"
    "${bah[@]}" add "$ctr" "$bases/$1.tar" / >>"$build_log" 2>&1 || fail "importing $1"
    "${bah[@]}" commit --rm "$ctr" "$ref" >>"$build_log" 2>&1 || fail "committing $1"
  fi
  echo "$ref"
}
debian_image="$(base_image debian)"
runtime_image="$(base_image python-runtime)"

secrets=()  # the Dockerfile's optional build secrets: pip trusts the registries as this host does
if [[ -f /etc/ssl/certs/ca-certificates.crt ]]; then
  mkdir -p "$storage"
  printf '[global]\ncert = /run/secrets/ca.crt\n' >"$storage/pip.conf"
  secrets=(--secret "id=pip.conf,src=$storage/pip.conf"
           --secret id=ca.crt,src=/etc/ssl/certs/ca-certificates.crt)
fi
revision="$(git -C "$repo" rev-parse --short HEAD 2>/dev/null || echo unknown)"
version="$(sed -n 's/^version = "\(.*\)"$/\1/p' "$repo/pyproject.toml")"

mkdir -p "$images_dir"
staging="$(mktemp -d "$images_dir/.build.XXXXXX")"
trap 'rm -rf "$staging"' EXIT
declare -A repositories=([runner]=runbook-runner [operator]=runbook-operator)
summary="{"
for target in runner operator; do
  ref="${repositories[$target]}:$version-$digest"
  log "$target: buildah bud --target $target ($(elapsed) elapsed)"
  "${bah[@]}" bud --layers --isolation chroot --network host "${secrets[@]}" \
    --build-arg "DEBIAN_IMAGE=$debian_image" --build-arg "PYTHON_RUNTIME_IMAGE=$runtime_image" \
    --build-arg "VERSION=$version" --build-arg "REVISION=$revision" \
    --target "$target" -t "localhost/$ref" "$repo" >>"$build_log" 2>&1 \
    || fail "building the $target image"
  size="$("${bah[@]}" images --format '{{.Size}}' "localhost/$ref" | head -n 1)"
  ctr="$("${bah[@]}" from "localhost/$ref")"
  mkdir -p "$staging/$target/rootfs"
  (cd "$("${bah[@]}" mount "$ctr")" && tar -cf - .) | tar -C "$staging/$target/rootfs" -xf - \
    || fail "exporting the $target image"
  "${bah[@]}" umount "$ctr" >/dev/null
  "${bah[@]}" rm "$ctr" >/dev/null
  "${bah[@]}" inspect --type image "localhost/$ref" | python3 -c \
    'import json, sys; json.dump(json.load(sys.stdin)["OCIv1"]["config"], sys.stdout)' \
    >"$staging/$target/config.json"
  log "$target image $ref: $size ($(elapsed) elapsed)"
  summary+="\"$target\": {\"reference\": \"$ref\", \"size\": \"$size\"}, "
  for old in $("${bah[@]}" images --format '{{.Name}}:{{.Tag}}' \
      | grep "^localhost/${repositories[$target]}:" | grep -v ":$version-$digest$"); do
    "${bah[@]}" rmi "$old" >/dev/null 2>&1 || true
  done
done
echo "${summary%, }}" >"$staging/images.json"
log "runtime-setpriv: the devcluster runtime's helper (Go, static)"
(cd "$here/runtime-setpriv" && GOTOOLCHAIN=local go build -trimpath -ldflags='-s -w' \
  -o "$staging/runtime-setpriv" .) >>"$build_log" 2>&1 || fail "building runtime-setpriv"
chmod 0755 "$staging"
mv "$staging" "$out"
trap - EXIT
# Exports of earlier sources, but the newest few: another checkout's test run may be running
# pods from one.
ls -1dt "$images_dir"/*/ | tail -n +4 | xargs -r rm -rf
log "images ready in $out ($(elapsed))"
echo "$out"
