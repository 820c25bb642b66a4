#!/usr/bin/env bash
# Usage: tools/install-istioctl.sh [--help]
#
# Builds istioctl 1.30 with `go install istio.io/istio/istioctl/cmd/istioctl@<version>`
# (CGO_ENABLED=0, -trimpath, -s -w) once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/istioctl-1.30-9739e10eb9d7/bin/istioctl
# and links it to .tools/bin/istioctl. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# The source, the pinned versions the Go module proxy lacks and what replaces
# them are tools/istio-source.sh's (shared with install-istiod.sh). `istioctl
# version --remote=false` reports 1.30-dev+9739e10eb9d7.
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

# shellcheck source-path=SCRIPTDIR source=istio-source.sh
source "$here/istio-source.sh"

build_istioctl() {
  local out="$1" src
  src="$(dirname "$out")/src"
  istio_source_copy istioctl "$src"
  istio_build "$src" "$out/istioctl" istioctl/cmd/istioctl
  local rc=$?
  rm -rf -- "$src" # 100+ MB of sources; only the binary is kept
  return "$rc"
}

tools_install istioctl "$ISTIO_VERSION" "istioctl-$ISTIO_VERSION" istioctl build_istioctl 1.25
