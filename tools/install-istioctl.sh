#!/usr/bin/env bash
# Usage: tools/install-istioctl.sh [--help]
#
# Builds istioctl 1.30 with `go install istio.io/istio/istioctl/cmd/istioctl@<version>`
# (CGO_ENABLED=0, -trimpath, -s -w) once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/istioctl-1.30-9739e10eb9d7/bin/istioctl
# and links it to .tools/bin/istioctl. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# Istio tags its releases "1.30.x" (no "v"), which Go does not take as module
# versions: the Go module proxy serves istio.io/istio only as pseudo-versions.
# v0.0.0-20260826214018-9739e10eb9d7 is the newest commit of the release-1.30
# branch the proxy serves. A plain `go install …@that` fails here: the proxy
# does not serve the pre-release pseudo-versions of istio.io/api, istio.io/client-go
# and envoyproxy/go-control-plane that its go.mod pins. So we copy the module's
# source, require the nearest versions the proxy does serve (istio.io/api and
# client-go v1.30.8, the 1.30 patch release; go-control-plane envoy v1.38.0 and
# contrib from July 2026, both newer than the pins) and `go build -mod=mod`.
# Sums are still checked against the checksum database. `istioctl version
# --remote=false` reports 1.30-dev+9739e10eb9d7.
# Used by test/manifests.test.ts: `istioctl analyze --use-kube=false <files>`.
# Cold build: the "# cold:" header below (a large module graph).
#
# summary: istioctl 1.30 (validates and analyzes the synthesized manifests), go build of istio.io/istio release-1.30
# cold: ~7 min
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

module_version="v0.0.0-20260826214018-9739e10eb9d7"
version="1.30-9739e10eb9d7"
reported="1.30-dev+9739e10eb9d7"
# What the proxy serves in place of the pins it lacks (see above).
requires=(
  istio.io/api@v1.30.8
  istio.io/client-go@v1.30.8
  github.com/envoyproxy/go-control-plane/envoy@v1.38.0
  github.com/envoyproxy/go-control-plane/contrib@v1.36.1-0.20260729145720-a2d8c7492908
)

build_istioctl() {
  local out="$1" dir src
  src="$(dirname "$out")/src"
  dir="$(cd "$(dirname "$out")" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "istio.io/istio@$module_version" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [[ -n "$dir" && -d "$dir" ]] || tools_die "istioctl: go mod download istio.io/istio@$module_version failed"
  cp -r -- "$dir" "$src"
  chmod -R u+w -- "$src" # the module cache is read-only
  local edits=() r
  for r in "${requires[@]}"; do edits+=("-require=$r"); done
  # `if ! build_fn` in tools_install turns errexit off in here: chain with &&.
  (
    cd "$src" &&
      GOWORK=off go mod edit "${edits[@]}" &&
      CGO_ENABLED=0 GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" \
      go build -trimpath \
      -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$reported -X istio.io/istio/pkg/version.buildStatus=Clean" \
      -o "$out/istioctl" ./istioctl/cmd/istioctl
  )
  local rc=$?
  rm -rf -- "$src" # 100+ MB of sources; only the binary is kept
  return "$rc"
}

tools_install istioctl "$version" "istioctl-$version" istioctl build_istioctl 1.25
