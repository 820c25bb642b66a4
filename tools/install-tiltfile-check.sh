#!/usr/bin/env bash
# Usage: tools/install-tiltfile-check.sh [--help]
#
# Builds tiltfile-check from tools/tiltfile-check (our small main around
# go.starlark.net, the Starlark interpreter Tilt embeds, pinned in go.mod to
# the version Tilt v0.37.7 uses) with CGO_ENABLED=0 go build -trimpath, once
# per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/tiltfile-check-<hash of tools/tiltfile-check>/bin/tiltfile-check
# and links it to .tools/bin/tiltfile-check. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# Why not Tilt itself: Tilt v0.37.7 from the Go module proxy does not build
# here: its go.sum pins github.com/docker/buildx v0.32.1 at h1:Zlau3oAp…, while
# the proxy serves, and the checksum database confirms, h1:ecen0VNo…; go stops
# with a SECURITY ERROR, and we do not override checksums. tiltfile-check
# runs the Tiltfile with stand-ins for Tilt's builtins that check their
# arguments as Tilt does, and prints the resources it declared as JSON
# (test/tiltfile.test.ts).
#
# Run: .tools/bin/tiltfile-check [--out FILE] Tiltfile [-- --local]
#
# summary: tiltfile-check (Tiltfile loader on go.starlark.net, stands in for Tilt), built from tools/tiltfile-check
# cold: ~5 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

src="$here/tiltfile-check"
hash="$(tools_hash "$src/go.mod" "$src/go.sum" "$src/main.go")"

build_tiltfile_check() {
  local out="$1"
  (
    cd "$src"
    CGO_ENABLED=0 GOWORK=off go build -trimpath -buildvcs=false -mod=readonly -o "$out/tiltfile-check" .
  )
}

tools_install tiltfile-check "$hash" "tiltfile-check-$hash" tiltfile-check build_tiltfile_check
