#!/usr/bin/env bash
# Usage: tools/install-ferretdb.sh [--help]
#
# Builds FerretDB (MongoDB wire protocol on SQLite) from our wrapper in
# tools/ferretdb (a tiny main around github.com/FerretDB/FerretDB/ferretdb,
# version pinned in tools/ferretdb/go.mod) with CGO_ENABLED=0 go build -trimpath,
# once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/ferretdb-<version>-<hash of tools/ferretdb>/bin/ferretdb
# and links it to .tools/bin/ferretdb. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# Run: .tools/bin/ferretdb --listen-addr 127.0.0.1:27017 --state-dir DIR [--log-level info]
# It prints "ferretdb ready <host:port>" on stdout once it accepts connections.
#
# summary: FerretDB v1.24 (MongoDB wire protocol on SQLite), built from tools/ferretdb
# cold: ~75 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

src="$here/ferretdb"
version="$(awk '$1 == "github.com/FerretDB/FerretDB" { print $2; exit } $1 == "require" && $2 == "github.com/FerretDB/FerretDB" { print $3; exit }' "$src/go.mod")"
[[ -n "$version" ]] || tools_die "ferretdb: cannot read the FerretDB version from $src/go.mod"
hash="$(tools_hash "$src/go.mod" "$src/go.sum" "$src/main.go")"

build_ferretdb() {
  local out="$1"
  (
    cd "$src"
    CGO_ENABLED=0 GOWORK=off go build -trimpath -buildvcs=false -mod=readonly -o "$out/ferretdb" .
  )
}

tools_install ferretdb "$version" "ferretdb-$version-$hash" ferretdb build_ferretdb 1.24
