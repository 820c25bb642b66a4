#!/usr/bin/env bash
# Usage: tools/install-chaostoolkit.sh [--help]
#
# Installs the real Chaos Toolkit (`chaos`) into <repo>/.venv from
# chaos/requirements.txt with pip, and links .tools/bin/chaos to it.
# Idempotent: a stamp holding the hash of the requirements skips the install
# when nothing changed; pip's own cache makes a reinstall quick.
#
# summary: Chaos Toolkit (chaos run), pip into .venv
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
if [[ -x "$venv/bin/chaos" && -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "[tools] chaostoolkit: ok (cached)" >&2
else
  echo "[tools] chaostoolkit: installing into .venv (pip, ~1 min the first time)…" >&2
  [[ -x "$venv/bin/python" ]] || "$python" -m venv "$venv"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$req"
  echo "$want" >"$stamp"
fi
mkdir -p "$root/.tools/bin"
ln -sf "$venv/bin/chaos" "$root/.tools/bin/chaos"
