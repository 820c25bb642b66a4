#!/usr/bin/env bash
# Usage: tools/install-prometheus.sh [--help]
#
# Installs Prometheus 2.42 (and promtool) from Debian's package without
# touching the system: `apt-get download prometheus`, unpacked with dpkg-deb
# once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/prometheus-2.42-<hash>/
# and linked as .tools/bin/prometheus and .tools/bin/promtool (wrappers that set
# LD_LIBRARY_PATH to the unpacked tree, should a library ever be needed). The
# package's other dependencies (the web UI's JavaScript, adduser, systemd
# helpers) are not needed to scrape and answer the HTTP API, so they are not
# fetched; `ldd` checks that the binary finds every library it links.
# When apt has no package lists yet and we are root, runs `apt-get update` once.
# Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a reinstall.
# Only `flatline bench` (the polling suite) uses it.
#
# summary: Prometheus 2.42 (the polling benchmark's peer), Debian package unpacked into the cache
# cold: ~5 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tools_args "${BASH_SOURCE[0]}" "$@"

version="2.42"

build_prometheus() {
  tools_debian_unpack prometheus "$1" prometheus
  tools_debian_wrapper prometheus "$1" prometheus usr/bin/prometheus
  tools_debian_wrapper prometheus "$1" promtool usr/bin/promtool
  "$1/prometheus" --version 2>&1 | head -1 >&2
}
# The key follows what builds the entry, not the comments.
key="prometheus-$version-$(tools_hash_of "$(declare -f build_prometheus tools_debian_unpack tools_debian_wrapper)")"

tools_install prometheus "$version" "$key" prometheus build_prometheus none
# promtool comes with it (the tests check exposition text with it where it is installed).
tools_link "$FLATLINE_CACHE_ROOT/$key/bin/promtool" promtool
