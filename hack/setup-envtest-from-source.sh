#!/usr/bin/env bash
# Builds the envtest control-plane binaries (kube-apiserver, etcd) from the Go
# module proxy into a cache outside the repository and prints the assets dir.
#
# There is no setup-envtest bucket and no Docker here, so the binaries are
# compiled from source. Idempotent: a finished build is reused (stamp file).
#
#   KUBE_VERSION   k8s.io/kubernetes version       (default v1.37.2)
#   ETCD_VERSION   go.etcd.io/etcd/server version  (default v3.7.3)
#   CAIRN_CACHE    cache root                      (default ~/.cache/cairn)
#
# Usage: export KUBEBUILDER_ASSETS="$(hack/setup-envtest-from-source.sh)"
set -euo pipefail

KUBE_VERSION="${KUBE_VERSION:-v1.37.2}"
ETCD_VERSION="${ETCD_VERSION:-v3.7.3}"
CACHE="${CAIRN_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/cairn}"
ASSETS="$CACHE/envtest/k8s-${KUBE_VERSION}-etcd-${ETCD_VERSION}"
STAMP="$ASSETS/.complete"

log() { echo "setup-envtest: $*" >&2; }

if [[ -f "$STAMP" && -x "$ASSETS/kube-apiserver" && -x "$ASSETS/etcd" ]]; then
  echo "$ASSETS"
  exit 0
fi

mkdir -p "$ASSETS"
export CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" GOTOOLCHAIN="${GOTOOLCHAIN:-local}"
# Staging versions: k8s.io/kubernetes v1.X.Y publishes its staging repos as v0.X.Y.
STAGING_VERSION="v0${KUBE_VERSION#v1}"
start=$(date +%s)

build_etcd() {
  local dir
  dir="$(mktemp -d)"
  (
    cd "$dir"
    go mod init cairn.local/build-etcd >/dev/null 2>&1
    go get "go.etcd.io/etcd/server/v3@${ETCD_VERSION}" >&2
    go build -trimpath -o "$ASSETS/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  )
  mv "$ASSETS/etcd.tmp" "$ASSETS/etcd"
  rm -rf "$dir"
}

build_apiserver() {
  local dir gomod
  dir="$(mktemp -d)"
  (
    cd "$dir"
    gomod="$(go mod download -json "k8s.io/kubernetes@${KUBE_VERSION}" | sed -n 's/.*"GoMod": "\(.*\)".*/\1/p')"
    [[ -f "$gomod" ]] || { log "cannot download k8s.io/kubernetes@${KUBE_VERSION}"; exit 1; }
    {
      echo "module cairn.local/build-kube-apiserver"
      echo
      echo "go $(go env GOVERSION | sed 's/^go//')"
      echo
      echo "require k8s.io/kubernetes ${KUBE_VERSION}"
      echo
      # Every staging module is required as v0.0.0 and replaced by a local
      # path upstream; point each at its published version instead.
      awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" {print "replace " $1 " => " $1 " '"${STAGING_VERSION}"'"}' "$gomod" | sort -u
    } > go.mod
    log "kube-apiserver: $(grep -c '^replace' go.mod) staging replaces"
    go mod tidy >&2 || true
    cat > tools.go <<'GO'
//go:build tools

package tools

import _ "k8s.io/kubernetes/cmd/kube-apiserver"
GO
    go mod tidy >&2
    local pkg=k8s.io/component-base/version
    go build -trimpath -o "$ASSETS/kube-apiserver.tmp" \
      -ldflags "-s -w -X ${pkg}.gitVersion=${KUBE_VERSION} -X ${pkg}.gitMajor=$(echo "$KUBE_VERSION" | cut -d. -f1 | tr -d v) -X ${pkg}.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) -X ${pkg}.gitTreeState=clean" \
      k8s.io/kubernetes/cmd/kube-apiserver >&2
  )
  mv "$ASSETS/kube-apiserver.tmp" "$ASSETS/kube-apiserver"
  rm -rf "$dir"
}

[[ -x "$ASSETS/etcd" ]] || { log "building etcd ${ETCD_VERSION} (cold: a few minutes)"; build_etcd; }
[[ -x "$ASSETS/kube-apiserver" ]] || { log "building kube-apiserver ${KUBE_VERSION} (cold: ~5 minutes on 2 cores)"; build_apiserver; }

"$ASSETS/etcd" --version >/dev/null
"$ASSETS/kube-apiserver" --version >&2
touch "$STAMP"
log "ready in $(( $(date +%s) - start ))s: $ASSETS"
echo "$ASSETS"
