#!/usr/bin/env bash
# Usage: tools/install-tilt.sh [--help]
#
# Builds Tilt v0.37.7 from its Go module source (CGO_ENABLED=1, -trimpath, -s -w,
# -X main.version so `tilt version` reports v0.37.7) once per machine into the
# per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/tilt-v0.37.7/bin/tilt
# and links it to .tools/bin/tilt. Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# Why not `go install github.com/tilt-dev/tilt/cmd/tilt@v0.37.7`: Tilt's go.mod
# has replace directives, which go install refuses. So we copy the module's
# source (`go mod download -json` → Dir) and `go build -mod=mod ./cmd/tilt` in it,
# with two fixes:
#   - Tilt's go.sum pins github.com/docker/buildx v0.32.1 at h1:Zlau3oAp…, but
#     the proxy serves, and the checksum database (sum.golang.org) records,
#     h1:ecen0VNo…; the checksum database is the authority, so that one stale
#     line (and only it, matched exactly) is deleted and go re-verifies the
#     module against sum.golang.org, which writes the line back with the
#     recorded hash. Verification stays on for everything (GONOSUMDB,
#     GONOSUMCHECK, GOINSECURE, GOPRIVATE are cleared; GOSUMDB=off is refused).
#   - the web UI's built assets (pkg/assets/build, made by yarn) are not in the
#     module: a placeholder index.html is added so the embedded-assets server
#     compiles; run Tilt with --web-mode=prod (the UI page is then a stub; the
#     terminal, `tilt ci` and the API work).
# It needs cgo (a C compiler): Tilt embeds tree-sitter's Python parser.
# Used by test/tiltfile.test.ts (`tilt ci -- --local`, `tilt alpha tiltfile-result`).
# Cold build: the "# cold:" header below (a large module graph, plus C); the
# binary is about 120 MB.
#
# Run: TILT_DISABLE_ANALYTICS=1 .tools/bin/tilt up --web-mode=prod -- --local
#
# summary: Tilt v0.37.7 (`tilt up` / `tilt ci` on the root Tiltfile), go build of its module source
# cold: ~7 min
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

version="v0.37.7"
# go.sum lines of Tilt v0.37.7 that disagree with the checksum database, exactly.
stale_sums=(
  "github.com/docker/buildx v0.32.1 h1:Zlau3oApu/xjwgRsOc4YLcnmpHUsCXOH1GR6KlOhTME="
)

# The environment go runs in: module mode, our own flags, every checksum checked.
go_env() {
  env GOWORK=off GOFLAGS="-mod=mod -buildvcs=false" \
    GONOSUMDB= GONOSUMCHECK= GOINSECURE= GOPRIVATE= "$@"
}

build_tilt() {
  local out="$1" dir src info infofile date line mod ver now
  if ! command -v cc >/dev/null 2>&1 && ! command -v gcc >/dev/null 2>&1; then
    tools_log "tilt: a C compiler is required (cgo builds tree-sitter): apt-get install gcc, and retry"
    return 1
  fi
  if [[ "$(go_env go env GOSUMDB)" == "off" ]]; then
    tools_log "tilt: GOSUMDB=off: the build relies on the checksum database, refusing"
    return 1
  fi
  src="$(dirname "$out")/src"
  info="$(cd "$(dirname "$out")" && go_env go mod download -json "github.com/tilt-dev/tilt@$version")" || {
    tools_log "tilt: go mod download github.com/tilt-dev/tilt@$version failed"
    return 1
  }
  dir="$(sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p' <<<"$info")"
  [[ -n "$dir" && -d "$dir" ]] || {
    tools_log "tilt: go mod download gave no source folder for $version"
    return 1
  }
  # The tag's date, for `tilt version` ("v0.37.7, built <date>").
  infofile="$(sed -n 's/^[[:space:]]*"Info": "\(.*\)",$/\1/p' <<<"$info")"
  date="$(sed -n 's/.*"Time":"\([0-9-]*\)T.*/\1/p' "$infofile" 2>/dev/null || true)"
  cp -r -- "$dir" "$src"
  chmod -R u+w -- "$src" # the module cache is read-only
  rm -rf -- "$src/node_modules" # web tooling, not needed to compile

  for line in "${stale_sums[@]}"; do
    if ! grep -qxF -- "$line" "$src/go.sum"; then
      tools_log "tilt: expected stale go.sum line not found (has $version changed?): $line"
      rm -rf -- "$src"
      return 1
    fi
    grep -vxF -- "$line" "$src/go.sum" >"$src/go.sum.new"
    mv -f -- "$src/go.sum.new" "$src/go.sum"
  done
  printf '<!doctype html>\n<meta charset="utf-8">\n<title>Tilt</title>\n<p>Tilt %s built by flatline without its web UI: use the terminal, <code>tilt get</code> or <code>tilt logs</code>.</p>\n' \
    "$version" >"$src/pkg/assets/build/index.html"

  # `if ! build_fn` in tools_install turns errexit off in here: chain with &&.
  (
    cd "$src" &&
      go_env CGO_ENABLED=1 go build -trimpath \
        -ldflags "-s -w -X main.version=${version#v} -X main.date=${date:-unknown}" \
        -o "$out/tilt" ./cmd/tilt
  )
  local rc=$?
  if ((rc == 0)); then
    # go put the deleted lines back from the checksum database: show what it recorded.
    for line in "${stale_sums[@]}"; do
      mod="${line%% *}"
      ver="${line#* }"
      ver="${ver%% *}"
      now="$(grep -F -- "$mod $ver h1:" "$src/go.sum" || true)"
      if [[ -z "$now" || "$now" == "$line" ]]; then
        tools_log "tilt: $mod $ver has no verified go.sum line after the build"
        rc=1
      else
        tools_log "tilt: $mod $ver verified against the checksum database: ${now##* }"
      fi
    done
  fi
  if ((rc == 0)); then
    "$out/tilt" version >/dev/null || rc=$?
  fi
  rm -rf -- "$src" # the copied sources; only the binary is kept
  return "$rc"
}

tools_install tilt "$version" "tilt-$version" tilt build_tilt 1.26
