#!/usr/bin/env bash
# Usage: tools/install.sh [--rebuild] [--quiet] [tool...]
#        tools/install.sh --plan [tool...]
#
# Installs the named tools (default: every tools/install-<tool>.sh whose header
# does not say "default: no") into .tools/bin, building each once per machine
# into ${XDG_CACHE_HOME:-~/.cache}/flatline/ and linking it from there.
#
# Warm (all cached): links, and prints one line, "[tools] a, b: ok (cached)".
# Cold: first one line naming what it builds, each with the rough time of its
# "# cold:" header, and their sum; then one progress line per tool.
#
# Options:
#   --rebuild   rebuild even when cached (same as FLATLINE_TOOLS_REBUILD=1)
#   --quiet     print nothing when all is cached
#   --plan      build nothing; print "<tool> <seconds>" (tab-separated) for each
#               tool a run would build (what is cached gets linked)
#   --planned   the plan line was printed already (scripts/bootstrap.mjs): skip it
#   -h, --help  this help
#
# Exit: 0 done, 1 a build failed, 2 usage (an unknown tool or option).
#
# Adding a tool: drop a tools/install-<tool>.sh next to this script (see
# install-grpcurl.sh), with "# summary: ..." and "# cold: ~N min" header
# lines; it is picked up here.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

available=()
for f in "$here"/install-*.sh; do
  [[ -e "$f" ]] || continue
  t="${f##*/install-}"
  available+=("${t%.sh}")
done

header() {
  local line
  line="$(grep -m1 "^# $2:" "$here/install-$1.sh" || true)"
  printf '%s' "${line#\# "$2": }"
}

is_default() {
  ! grep -q '^# default: no' "$here/install-$1.sh"
}

# seconds "~N min" | "~N s": the estimate in seconds (60 when unreadable).
seconds() {
  local n unit
  read -r n unit <<<"${1#\~}"
  [[ "$n" =~ ^[0-9]+$ ]] || n=1 unit=min
  case "$unit" in
    s) echo "$n" ;;
    *) echo $((n * 60)) ;;
  esac
}

usage() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
  echo
  echo "Tools (cold: the rough first build on 2 cores):"
  local t
  for t in "${available[@]}"; do
    printf '  %-15s %-8s %s%s\n' "$t" "$(header "$t" cold)" "$(header "$t" summary)" "$(is_default "$t" || echo ' (not installed by default)')"
  done
}

tools=()
quiet=""
plan=""
planned=""
while (($#)); do
  case "$1" in
    -h | --help)
      usage
      exit 0
      ;;
    --rebuild) export FLATLINE_TOOLS_REBUILD=1 ;;
    --quiet) quiet=1 ;;
    --plan) plan=1 ;;
    --planned) planned=1 ;;
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
    echo "install.sh: unknown tool: $t (tools: ${available[*]})" >&2
    exit 2
  fi
done

# First pass: what is cached gets linked, silently; the rest is to build.
cold=()
for t in "${tools[@]}"; do
  rc=0
  FLATLINE_TOOLS_CHECK=1 bash "$here/install-$t.sh" || rc=$?
  case "$rc" in
    0) ;;
    3) cold+=("$t") ;;
    *) exit "$rc" ;;
  esac
done

if [[ -n "$plan" ]]; then
  for t in "${cold[@]}"; do
    printf '%s\t%s\n' "$t" "$(seconds "$(header "$t" cold)")"
  done
  exit 0
fi

if ((${#cold[@]} == 0)); then
  if [[ -z "$quiet" ]]; then
    list="${tools[*]}"
    echo "[tools] ${list// /, }: ok (cached)" >&2
  fi
  exit 0
fi

if [[ -z "$planned" ]]; then
  total=0
  parts=()
  for t in "${cold[@]}"; do
    eta="$(header "$t" cold)"
    parts+=("$t (${eta:-?})")
    total=$((total + $(seconds "$eta")))
  done
  if ((total < 60)); then sum="~$total s"; else sum="~$(((total + 30) / 60)) min"; fi
  list="${parts[*]}"
  what="building what is not cached yet"
  [[ -n "${FLATLINE_TOOLS_REBUILD:-}" && "${FLATLINE_TOOLS_REBUILD}" != "0" ]] && what="rebuilding"
  echo "[tools] $what: ${list//) /), }; $sum in all" >&2
fi

for t in "${cold[@]}"; do
  bash "$here/install-$t.sh"
done
