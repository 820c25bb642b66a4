#!/usr/bin/env bash
# Usage: tools/install-grpcurl.sh [--help]
#
# Builds grpcurl with `go install github.com/fullstorydev/grpcurl/cmd/grpcurl@v1.9.3`
# (CGO_ENABLED=0, -trimpath, -X main.version so -version reports v1.9.3) once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/grpcurl-v1.9.3/bin/grpcurl
# and links it to .tools/bin/grpcurl. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# summary: grpcurl v1.9.3 (command-line gRPC client), go install
# cold: ~1 min
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

version="v1.9.3"

build_grpcurl() {
  tools_go_install "$1" "github.com/fullstorydev/grpcurl/cmd/grpcurl@$version" "-X main.version=$version"
}

tools_install grpcurl "$version" "grpcurl-$version" grpcurl build_grpcurl
