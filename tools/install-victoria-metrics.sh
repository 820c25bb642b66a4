#!/usr/bin/env bash
# Usage: tools/install-victoria-metrics.sh [--help]
#
# Installs VictoriaMetrics 1.79 (single-node: scraping with -promscrape.config,
# its TSDB and a PromQL-compatible query API in one binary) from Debian's
# package without touching the system: `apt-get download victoria-metrics`,
# unpacked with dpkg-deb once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/victoria-metrics-1.79-<hash>/
# and linked as .tools/bin/victoria-metrics (a wrapper that sets
# LD_LIBRARY_PATH to the unpacked tree). The package's other dependencies
# (adduser, init helpers) are not needed to scrape and answer queries; `ldd`
# checks that the binary finds every library it links (libzstd, libc).
# When apt has no package lists yet and we are root, runs `apt-get update` once.
# Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a reinstall.
# Only `flatline bench` (the scale suite's second peer) uses it.
#
# summary: VictoriaMetrics 1.79 (the scale benchmark's second peer), Debian package unpacked into the cache
# cold: ~5 s
# default: no
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tools_args "${BASH_SOURCE[0]}" "$@"

version="1.79"

build_victoria_metrics() {
  tools_debian_unpack victoria-metrics "$1" victoria-metrics
  tools_debian_wrapper victoria-metrics "$1" victoria-metrics usr/bin/victoria-metrics
  "$1/victoria-metrics" --version 2>&1 | head -1 >&2
}
# The key follows what builds the entry, not the comments.
key="victoria-metrics-$version-$(tools_hash_of "$(declare -f build_victoria_metrics tools_debian_unpack tools_debian_wrapper)")"

tools_install victoria-metrics "$version" "$key" victoria-metrics build_victoria_metrics none
