#!/usr/bin/env bash
# Usage: tools/install-haproxy.sh [--help]
#
# Installs HAProxy 2.6 from Debian's packages without touching the system:
# `apt-get download` of haproxy and the libraries it links that a slim
# machine lacks (liblua5.3-0, libopentracing-c-wrapper0, libopentracing1),
# unpacked with dpkg-deb once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/haproxy-2.6-<hash>/
# and linked as .tools/bin/haproxy (a wrapper that sets LD_LIBRARY_PATH).
# When apt has no package lists yet and we are root, runs `apt-get update` once.
# Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a reinstall.
#
# summary: HAProxy 2.6 (the local nodes' load balancer), Debian package unpacked into the cache
# cold: ~5 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"
tools_args "${BASH_SOURCE[0]}" "$@"

version="2.6"

build_haproxy() {
  tools_debian_unpack haproxy "$1" haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1
  tools_debian_wrapper haproxy "$1" haproxy usr/sbin/haproxy
  "$1/haproxy" -v | head -1 >&2
}

tools_install haproxy "$version" "haproxy-$version-$(tools_hash_of "$(declare -f build_haproxy tools_debian_unpack tools_debian_wrapper)")" haproxy build_haproxy none
