#!/usr/bin/env bash
# Usage: tools/install-toxiproxy.sh [--help]
#
# Builds Toxiproxy's server and command-line client with `go install
# github.com/Shopify/toxiproxy/v2/cmd/server@v2.5.0` and `…/cmd/cli@v2.5.0`
# (CGO_ENABLED=0, -trimpath, -X …/v2.Version so -version and GET /version say
# 2.5.0, as the release builds do) once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/toxiproxy-v2.5.0/bin/{toxiproxy-server,toxiproxy-cli}
# and links them to .tools/bin/. go install names the binaries after their
# folders (server, cli): they are renamed. v2.5.0 is the newest release the Go
# module proxy serves (`go list -m -versions github.com/Shopify/toxiproxy/v2`:
# v2.3.0 v2.5.0). Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
# Cold, with empty XDG_CACHE_HOME (hence GOCACHE) and GOMODCACHE: 37 s at load
# average 4-5 on 2 cores (242 s at load 20-43); about 47 s of CPU in all.
#
# summary: Toxiproxy v2.5.0 (TCP-level faults: latency, reset_peer, timeout, slicer, ...), go install
# cold: ~40 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

version="v2.5.0"
module="github.com/Shopify/toxiproxy/v2"

build_toxiproxy() {
  local ldflags="-X $module.Version=${version#v}"
  tools_go_install "$1" "$module/cmd/server@$version" "$ldflags"
  tools_go_install "$1" "$module/cmd/cli@$version" "$ldflags"
  mv -- "$1/server" "$1/toxiproxy-server"
  mv -- "$1/cli" "$1/toxiproxy-cli"
  "$1/toxiproxy-server" -version >&2
}

tools_install toxiproxy "$version" "toxiproxy-$version" toxiproxy-server build_toxiproxy
# The client comes with it (for people poking at a running stack; the code speaks the HTTP API).
tools_link "$FLATLINE_CACHE_ROOT/toxiproxy-$version/bin/toxiproxy-cli" toxiproxy-cli
