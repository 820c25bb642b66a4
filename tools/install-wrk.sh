#!/usr/bin/env bash
# Usage: tools/install-wrk.sh [--help]
#
# Installs wrk 4.1 (an HTTP load generator) from Debian's packages without
# touching the system: `apt-get download` of wrk and the LuaJIT library it
# links, which a slim machine lacks (libluajit2-5.1-2, libluajit2-5.1-common),
# unpacked with dpkg-deb once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/wrk-4.1-<hash>/
# and linked as .tools/bin/wrk (a wrapper that sets LD_LIBRARY_PATH); `ldd`
# checks that the binary then finds every library (libssl3 comes with the system).
# When apt has no package lists yet and we are root, runs `apt-get update` once.
# Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a reinstall.
# Only `flatline bench` (the http-floor suite) uses it.
#
# summary: wrk 4.1 (the HTTP floor benchmark), Debian package unpacked into the cache
# cold: ~5 s
# default: no
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tools_args "${BASH_SOURCE[0]}" "$@"

version="4.1"

build_wrk() {
  tools_debian_unpack wrk "$1" wrk libluajit2-5.1-2 libluajit2-5.1-common
  tools_debian_wrapper wrk "$1" wrk usr/bin/wrk
  "$1/wrk" --version 2>&1 | head -1 >&2 || true
}

tools_install wrk "$version" "wrk-$version-$(tools_hash_of "$(declare -f build_wrk tools_debian_unpack tools_debian_wrapper)")" wrk build_wrk none
