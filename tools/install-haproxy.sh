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
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

case "${1:-}" in
  -h | --help)
    tools_usage_from_header "${BASH_SOURCE[0]}"
    exit 0
    ;;
  "") ;;
  *)
    echo "install-haproxy.sh: unknown argument: $1 (try --help)" >&2
    exit 2
    ;;
esac

version="2.6"
packages=(haproxy liblua5.3-0 libopentracing-c-wrapper0 libopentracing1)

download() {
  # apt-get download runs its fetcher as _apt, which cannot write a folder owned by
  # another user: fetch into a world-writable scratch folder.
  apt-get download "${packages[@]}" 2>&1 | grep -v 'unsandboxed' >&2
}

build_haproxy() {
  local out="$1"
  local entry debs
  entry="$(dirname "$out")"
  command -v apt-get >/dev/null 2>&1 || tools_die "haproxy: apt-get not found: install HAProxy 2.6 from your distribution and link it as .tools/bin/haproxy"
  debs="$(mktemp -d)"
  chmod 777 "$debs"
  if ! (cd "$debs" && download); then
    if [[ "$(id -u)" == "0" ]]; then
      tools_log "haproxy: apt-get download failed; refreshing apt's package lists (apt-get update) once…"
      apt-get update -qq >&2
      (cd "$debs" && download) || tools_die "haproxy: apt-get download ${packages[*]} failed"
    else
      tools_die "haproxy: apt-get download failed; run 'sudo apt-get update' (or install haproxy) and retry"
    fi
  fi
  local deb
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$entry/root"
  done
  rm -rf -- "$debs"
  # The wrapper finds the unpacked tree next to itself, so the cache entry can be renamed.
  cat >"$out/haproxy" <<'WRAPPER'
#!/usr/bin/env bash
root="$(cd "$(dirname "$(readlink -f "${BASH_SOURCE[0]}")")/../root" && pwd)"
export LD_LIBRARY_PATH="$root/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
exec "$root/usr/sbin/haproxy" "$@"
WRAPPER
  chmod +x "$out/haproxy"
  "$out/haproxy" -v | head -1 >&2
}

tools_install haproxy "$version" "haproxy-$version-$(tools_hash "${BASH_SOURCE[0]}")" haproxy build_haproxy "20 s"
