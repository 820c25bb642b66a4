#!/usr/bin/env bash
# Usage: tools/install-ghz.sh [--help]
#
# Builds ghz with `go install github.com/bojand/ghz/cmd/ghz@v0.121.0`
# (CGO_ENABLED=0, -trimpath, -X main.version so --version reports v0.121.0) once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/ghz-v0.121.0/bin/ghz
# and links it to .tools/bin/ghz. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
# Only `flatline bench` (suite "query") needs it, which installs it on demand.
#
# summary: ghz v0.121.0 (gRPC load generator for the query benchmark), go install
# cold: ~90 s
# default: no
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

version="v0.121.0"

build_ghz() {
  tools_go_install "$1" "github.com/bojand/ghz/cmd/ghz@$version" "-X main.version=$version"
}

tools_install ghz "$version" "ghz-$version" ghz build_ghz
