#!/usr/bin/env bash
# shellcheck shell=bash
#
# tools/istio-source.sh: the istio.io/istio source both Istio installers build
# from (sourced by install-istioctl.sh and install-istiod.sh, not run).
#
# Istio tags its releases "1.30.x" (no "v"), which Go does not take as module
# versions: the Go module proxy serves istio.io/istio only as pseudo-versions.
# ISTIO_MODULE_VERSION is the newest commit of the release-1.30 branch the
# proxy serves. A plain `go install …@that` fails here: the proxy does not
# serve the pre-release pseudo-versions of istio.io/api, istio.io/client-go and
# envoyproxy/go-control-plane that its go.mod pins. So the module's source is
# copied, ISTIO_REQUIRES (the nearest versions the proxy does serve: istio.io/api
# and client-go v1.30.8, the 1.30 patch release; go-control-plane envoy v1.38.0
# and contrib from July 2026, both newer than the pins) replace the pins, and
# the command is built with -mod=mod. Sums are still checked against the
# checksum database. Builds report ISTIO_REPORTED as their version.

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  echo "tools/istio-source.sh is sourced by tools/install-istioctl.sh and tools/install-istiod.sh" >&2
  exit 2
fi

ISTIO_MODULE_VERSION="v0.0.0-20260826214018-9739e10eb9d7"
ISTIO_VERSION="1.30-9739e10eb9d7"
ISTIO_REPORTED="1.30-dev+9739e10eb9d7"
ISTIO_REQUIRES=(
  istio.io/api@v1.30.8
  istio.io/client-go@v1.30.8
  github.com/envoyproxy/go-control-plane/envoy@v1.38.0
  github.com/envoyproxy/go-control-plane/contrib@v1.36.1-0.20260729145720-a2d8c7492908
)

# istio_source_copy TOOL SRC: a writable copy of istio.io/istio@ISTIO_MODULE_VERSION
# at SRC (downloaded through the module proxy into Go's module cache, which is
# read-only, then copied). Dies naming TOOL when it cannot.
istio_source_copy() {
  local tool="$1" src="$2" dir
  dir="$(cd "$(dirname "$src")" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "istio.io/istio@$ISTIO_MODULE_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "$dir" && -d "$dir" ]] || tools_die "$tool: go mod download istio.io/istio@$ISTIO_MODULE_VERSION failed"
  { cp -r -- "$dir" "$src" && chmod -R u+w -- "$src"; } || tools_die "$tool: cannot copy $dir"
}

# istio_build SRC OUT PACKAGE: builds ./PACKAGE of the copy at SRC into the
# binary OUT (static, -trimpath, stripped, reporting ISTIO_REPORTED), with
# ISTIO_REQUIRES in place of the pins. Returns go's status: tools_install calls
# build functions under `if !`, which turns errexit off, so the caller checks it.
istio_build() {
  local src="$1" out="$2" package="$3" edits=() r
  for r in "${ISTIO_REQUIRES[@]}"; do edits+=("-require=$r"); done
  (
    cd "$src" &&
      GOWORK=off go mod edit "${edits[@]}" &&
      CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" \
      go build -trimpath \
      -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_REPORTED -X istio.io/istio/pkg/version.buildStatus=Clean" \
      -o "$out" "./$package"
  )
}
