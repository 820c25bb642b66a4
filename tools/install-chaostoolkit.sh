#!/usr/bin/env bash
# Usage: tools/install-chaostoolkit.sh [--help]
#
# Installs the real Chaos Toolkit (`chaos`) into <repo>/.venv from
# chaos/requirements.txt with pip, and links .tools/bin/chaos to it.
# Idempotent: a stamp holding the hash of the requirements skips the install
# when nothing changed; pip's own cache (${XDG_CACHE_HOME:-~/.cache}/pip)
# makes a reinstall quick. The venv stays in the repository, not in the
# per-user cache: the chaos command and the report's tests run .venv/bin/python,
# and a venv cannot be moved once made.
# One progress line; pip's output goes to .venv/.flatline-pip.log, whose last
# lines are shown when the install fails. FLATLINE_TOOLS_CHECK=1 (tools/install.sh):
# link when installed, silently, else exit 3.
#
# summary: Chaos Toolkit (chaos run), pip into .venv
# cold: ~30 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/.." && pwd)"

case "${1:-}" in
  -h | --help)
    sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}"
    exit 0
    ;;
  "") ;;
  *)
    echo "install-chaostoolkit.sh: unknown argument: $1 (try --help)" >&2
    exit 2
    ;;
esac

python="${PYTHON:-python3}"
if ! command -v "$python" >/dev/null 2>&1; then
  echo "[tools] chaostoolkit: Python 3.11 is required to install Chaos Toolkit: install python3 (and python3-venv) and retry" >&2
  exit 1
fi

venv="$root/.venv"
req="$root/chaos/requirements.txt"
want="$(sha256sum "$req" | cut -c1-16)"
stamp="$venv/.flatline-requirements"
link() {
  mkdir -p "$root/.tools/bin"
  [[ "$(readlink -- "$root/.tools/bin/chaos" 2>/dev/null || true)" == "$venv/bin/chaos" ]] ||
    ln -sfn -- "$venv/bin/chaos" "$root/.tools/bin/chaos"
}
if [[ -x "$venv/bin/chaos" && -f "$stamp" && "$(cat "$stamp")" == "$want" && "${FLATLINE_TOOLS_REBUILD:-0}" == "0" ]]; then
  link
  [[ "${FLATLINE_TOOLS_CHECK:-}" == "1" ]] || echo "[tools] chaostoolkit: ok (cached)" >&2
  exit 0
fi
[[ "${FLATLINE_TOOLS_CHECK:-}" == "1" ]] && exit 3

eta="$(grep -m1 '^# cold: ' "${BASH_SOURCE[0]}")"
printf '[tools] chaostoolkit: installing into .venv (pip, %s)…' "${eta#\# cold: }" >&2
start=$SECONDS
log="$(mktemp)"
trap 'rm -f -- "$log"; printf " interrupted\n" >&2; exit 130' INT
rc=0
{
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
} >"$log" 2>&1 || rc=$?
if ((rc == 0)); then
  "$venv/bin/python" -m pip install --disable-pip-version-check --progress-bar off -r "$req" >>"$log" 2>&1 || rc=$?
fi
if ((rc != 0)); then
  printf ' failed after %d s (exit %d); the end of its log, %s:\n' "$((SECONDS - start))" "$rc" "$log" >&2
  tail -n 25 -- "$log" | sed 's/^/    /' >&2
  exit 1
fi
trap - INT
mv -f -- "$log" "$venv/.flatline-pip.log"
echo "$want" >"$stamp"
link
printf ' done in %d s\n' "$((SECONDS - start))" >&2
