#!/usr/bin/env bash
# Usage: tools/install.sh [--rebuild] [tool...]
#
# Installs the named tools (default: every tools/install-<tool>.sh whose header
# does not say "default: no") into .tools/bin, building each once per machine
# into ${XDG_CACHE_HOME:-~/.cache}/flatline/ and linking it from there.
# Idempotent: a warm run prints one "[tools] <tool>: ok (cached)" line per tool.
#
# Options:
#   --rebuild   rebuild even when cached (same as FLATLINE_TOOLS_REBUILD=1)
#   -h, --help  this help
#
# Adding a tool: drop a tools/install-<tool>.sh next to this script (see
# install-grpcurl.sh), with a "# summary: ..." header line; it is picked up here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

available=()
for f in "$here"/install-*.sh; do
  [[ -e "$f" ]] || continue
  t="${f##*/install-}"
  available+=("${t%.sh}")
done

summary() {
  local line
  line="$(grep -m1 '^# summary:' "$here/install-$1.sh" || true)"
  printf '%s' "${line#\# summary: }"
}

is_default() {
  ! grep -q '^# default: no' "$here/install-$1.sh"
}

usage() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
  echo
  echo "Tools:"
  local t
  for t in "${available[@]}"; do
    if is_default "$t"; then
      printf '  %-15s %s\n' "$t" "$(summary "$t")"
    else
      printf '  %-15s %s (not installed by default)\n' "$t" "$(summary "$t")"
    fi
  done
}

tools=()
while (($#)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --rebuild) export FLATLINE_TOOLS_REBUILD=1 ;;
    -*)
      echo "install.sh: unknown option: $1 (try --help)" >&2
      exit 2
      ;;
    *) tools+=("$1") ;;
  esac
  shift
done

if ((${#tools[@]} == 0)); then
  for t in "${available[@]}"; do
    if is_default "$t"; then tools+=("$t"); fi
  done
fi

for t in "${tools[@]}"; do
  if [[ ! -f "$here/install-$t.sh" ]]; then
    echo "install.sh: unknown tool: $t (available: ${available[*]})" >&2
    exit 2
  fi
done

for t in "${tools[@]}"; do
  bash "$here/install-$t.sh"
done
