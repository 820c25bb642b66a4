#!/usr/bin/env bash
# shellcheck shell=bash
#
# tools/lib.sh: shared helpers for tools/install-*.sh (sourced, not run).
#
# A tool is built once per machine into a per-user cache keyed by tool and
# version (plus a hash of our own sources where we build from them):
#
#   ${XDG_CACHE_HOME:-$HOME/.cache}/flatline/<tool>-<version>[-<hash>]/bin/<name>
#
# and then linked into <repo>/.tools/bin/<name>. Builds run under a flock so
# two concurrent callers never build the same thing twice, and they happen in a
# temporary directory next to the cache entry that is renamed into place only
# when complete, so a killed build never leaves a half-written binary behind.
#
# A build prints one progress line, "[tools] TOOL VERSION: building (~ETA)…
# done in N s", with ETA from the installer's "# cold: ~N min" header; the
# build's own output goes to a log (kept as BUILD-LOG in the entry, and shown,
# its last lines, when the build fails).
#
# Environment:
#   FLATLINE_TOOLS_REBUILD=1  rebuild even if the cache entry exists
#   FLATLINE_TOOLS_COPY=1     copy binaries into .tools/bin instead of symlinking
#   FLATLINE_TOOLS_CHECK=1    (tools/install.sh) link what is cached, silently; exit 3 if a build is needed
#   XDG_CACHE_HOME            cache root (default: ~/.cache)

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  case "${1:-}" in
    -h | --help)
      sed -n '4,25p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *)
      echo "tools/lib.sh is sourced by tools/install-*.sh; see --help or tools/install.sh --help" >&2
      exit 2
      ;;
  esac
fi

[[ -n "${_FLATLINE_TOOLS_LIB:-}" ]] && return 0
_FLATLINE_TOOLS_LIB=1

FLATLINE_TOOLS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
FLATLINE_REPO_ROOT="$(dirname "$FLATLINE_TOOLS_DIR")"
FLATLINE_TOOLS_BIN="$FLATLINE_REPO_ROOT/.tools/bin"
FLATLINE_CACHE_ROOT="${XDG_CACHE_HOME:-$HOME/.cache}/flatline"

# tools_log MESSAGE...: one progress line on stderr, prefixed with [tools].
tools_log() {
  printf '[tools] %s\n' "$*" >&2
}

# tools_cold_eta FILE: the rough cold build time from FILE's "# cold: ~N min"
# (or "~N s") header, e.g. "~1 min"; "?" when the header is missing.
tools_cold_eta() {
  local line
  line="$(grep -m1 '^# cold: ' "$1" 2>/dev/null || true)"
  line="${line#\# cold: }"
  printf '%s' "${line:-?}"
}

# tools_check_mode: true under FLATLINE_TOOLS_CHECK=1 (tools/install.sh's
# first pass: link what is cached without a word, exit 3 when a build is needed).
tools_check_mode() {
  [[ "${FLATLINE_TOOLS_CHECK:-}" == "1" ]]
}

# tools_cached_log TOOL: the warm line, except in check mode.
tools_cached_log() {
  tools_check_mode || tools_log "$1: ok (cached)"
}

# tools_die MESSAGE...: log and exit 1.
tools_die() {
  tools_log "$*"
  exit 1
}

# tools_require_go TOOL [MIN]: exit 1 with a clear message unless a usable go
# is on PATH. MIN (default 1.22) is the Go version the tool's sources need.
# Go >= 1.21 fetches a newer toolchain by itself when a go.mod asks for one
# (unless GOTOOLCHAIN=local), so only older Go is refused outright.
tools_require_go() {
  local tool="$1" min="${2:-1.22}"
  local msg="Go ${min}+ is required to build ${tool}: install it (https://go.dev/dl or apt-get install golang) and retry"
  if ! command -v go >/dev/null 2>&1; then
    tools_die "$msg"
  fi
  local v
  v="$(go env GOVERSION 2>/dev/null || true)" # e.g. go1.26.8 (empty before Go 1.16)
  v="${v#go}"
  local major="${v%%.*}" rest="${v#*.}"
  local minor="${rest%%[!0-9]*}"
  if [[ -z "$v" || ! "$major" =~ ^[0-9]+$ || -z "$minor" ]]; then
    tools_die "$msg (found: $(go version 2>/dev/null || echo 'unknown go'))"
  fi
  local min_major="${min%%.*}" min_minor="${min#*.}"
  if ((major < min_major || (major == min_major && minor < min_minor))); then
    if ((major == 1 && minor < 21)); then
      tools_die "$msg (found: go$v)"
    fi
    tools_log "$tool: go$v is older than $min; go will fetch a newer toolchain (GOTOOLCHAIN)"
  fi
}

# tools_hash FILE...: short content hash of the given files (order matters).
tools_hash() {
  local f
  for f in "$@"; do
    [[ -f "$f" ]] || tools_die "tools_hash: missing file $f"
    printf '%s\n' "${f##*/}"
    cat -- "$f"
  done | sha256sum | cut -c1-12
}

# tools_hash_of TEXT...: short hash of the given strings; for a cache key that
# changes with what builds the tool and not with its comments, e.g.
#   tools_hash_of "$(declare -f build_haproxy tools_debian_unpack)" "$version"
tools_hash_of() {
  printf '%s\n' "$@" | sha256sum | cut -c1-12
}

# tools_link SRC NAME: put SRC at .tools/bin/NAME (symlink, or copy with
# FLATLINE_TOOLS_COPY=1 or where symlinks fail), replaced atomically.
tools_link() {
  local src="$1" name="$2"
  local dst="$FLATLINE_TOOLS_BIN/$name"
  mkdir -p "$FLATLINE_TOOLS_BIN"
  if [[ "${FLATLINE_TOOLS_COPY:-}" != "1" ]]; then
    if [[ -L "$dst" && "$(readlink -- "$dst")" == "$src" ]]; then
      return 0
    fi
    local tmp="$FLATLINE_TOOLS_BIN/.$name.tmp.$$"
    rm -f -- "$tmp"
    if ln -s -- "$src" "$tmp" 2>/dev/null; then
      mv -f -T -- "$tmp" "$dst"
      return 0
    fi
    rm -f -- "$tmp"
  fi
  if [[ -f "$dst" && ! -L "$dst" ]] && cmp -s -- "$src" "$dst"; then
    return 0
  fi
  local tmp="$FLATLINE_TOOLS_BIN/.$name.tmp.$$"
  cp -- "$src" "$tmp"
  chmod +x -- "$tmp"
  mv -f -T -- "$tmp" "$dst"
}

_tools_tmp=""
_tools_cleanup() {
  if [[ -n "$_tools_tmp" ]]; then
    rm -rf -- "$_tools_tmp"
    _tools_tmp=""
  fi
}

# tools_install TOOL VERSION KEY NAME BUILD_FN [GO_MIN]
#
#   TOOL      short name for messages (ferretdb)
#   VERSION   version for messages (v1.24.2)
#   KEY       cache entry name (ferretdb-v1.24.2-0123abcd4567)
#   NAME      binary name under bin/ and .tools/bin/
#   BUILD_FN  function called as `BUILD_FN OUTDIR` in a subshell, its output
#             going to the build log; must leave OUTDIR/NAME
#   GO_MIN    minimal Go version (default 1.22; "none" for a tool that needs no Go)
#
# The rough cold time in the progress line is the calling installer's
# "# cold: ~N min" header. Cached: links, prints "[tools] TOOL: ok (cached)"
# (nothing in check mode) and returns. Not cached in check mode: exit 3.
tools_install() {
  # An installer written for the older signature passes ETA before GO_MIN: the
  # time now comes from its "# cold:" header, so that argument is dropped.
  (($# == 7)) && set -- "${@:1:5}" "$7"
  local tool="$1" version="$2" key="$3" name="$4" build_fn="$5" go_min="${6:-1.22}"
  local entry="$FLATLINE_CACHE_ROOT/$key"
  local bin="$entry/bin/$name"
  local rebuild="${FLATLINE_TOOLS_REBUILD:-}"
  [[ "$rebuild" == "0" ]] && rebuild=""

  if [[ -z "$rebuild" && -x "$bin" ]]; then
    tools_link "$bin" "$name"
    tools_cached_log "$tool"
    return 0
  fi
  tools_check_mode && exit 3

  mkdir -p "$FLATLINE_CACHE_ROOT/.locks" "$FLATLINE_CACHE_ROOT/.logs"
  local lock="$FLATLINE_CACHE_ROOT/.locks/$key.lock"
  local lock_fd
  exec {lock_fd}>"$lock"
  if command -v flock >/dev/null 2>&1; then
    if ! flock -n "$lock_fd"; then
      tools_log "$tool: another process is building $version, waiting for it ($lock)…"
      flock "$lock_fd"
      # It may have just built what we need (unless we were asked to rebuild).
      if [[ -z "$rebuild" && -x "$bin" ]]; then
        exec {lock_fd}>&-
        tools_link "$bin" "$name"
        tools_log "$tool: ok (cached)"
        return 0
      fi
    fi
  else
    tools_log "$tool: flock not found, building without a lock"
  fi
  if [[ -z "$rebuild" && -x "$bin" ]]; then
    exec {lock_fd}>&-
    tools_link "$bin" "$name"
    tools_log "$tool: ok (cached)"
    return 0
  fi

  [[ "$go_min" == "none" ]] || tools_require_go "$tool" "$go_min"

  # Leftovers of killed builds of this key; safe to remove under the lock.
  rm -rf -- "$FLATLINE_CACHE_ROOT/.tmp-$key".* "$FLATLINE_CACHE_ROOT/.old-$key".*

  _tools_tmp="$(mktemp -d "$FLATLINE_CACHE_ROOT/.tmp-$key.XXXXXX")"
  chmod 755 "$_tools_tmp" # mktemp -d makes it 0700
  trap _tools_cleanup EXIT
  # The progress line is open (no newline yet): close it before leaving.
  trap '_tools_cleanup; printf " interrupted\n" >&2; exit 130' INT
  trap '_tools_cleanup; printf " terminated\n" >&2; exit 143' TERM
  mkdir -p "$_tools_tmp/bin"

  local log="$FLATLINE_CACHE_ROOT/.logs/$key.log" eta what="building"
  eta="$(tools_cold_eta "$0")"
  [[ -n "$rebuild" ]] && what="rebuilding (FLATLINE_TOOLS_REBUILD=1)"
  printf '[tools] %s %s: %s (%s)…' "$tool" "$version" "$what" "$eta" >&2
  local start=$SECONDS rc=0
  # A subshell: a tools_die inside BUILD_FN ends only the build, and its
  # message lands in the log shown below.
  ("$build_fn" "$_tools_tmp/bin") >"$log" 2>&1 </dev/null || rc=$?
  if ((rc == 0)) && [[ ! -x "$_tools_tmp/bin/$name" ]]; then
    echo "the build did not produce bin/$name" >>"$log"
    rc=1
  fi
  if ((rc != 0)); then
    printf ' failed after %d s (exit %d); the end of its log, %s:\n' "$((SECONDS - start))" "$rc" "$log" >&2
    tail -n 25 -- "$log" | sed 's/^/    /' >&2
    exit 1
  fi
  {
    echo "tool=$tool"
    echo "version=$version"
    echo "key=$key"
    echo "go=$(go env GOVERSION 2>/dev/null || echo unknown)"
    echo "built=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "seconds=$((SECONDS - start))"
  } >"$_tools_tmp/BUILD-INFO"
  mv -f -- "$log" "$_tools_tmp/BUILD-LOG"

  # Rename into place: readers see either the old complete entry or the new one.
  if [[ -e "$entry" ]]; then
    local old
    old="$(mktemp -d "$FLATLINE_CACHE_ROOT/.old-$key.XXXXXX")"
    mv -T -- "$entry" "$old/entry"
    mv -T -- "$_tools_tmp" "$entry"
    rm -rf -- "$old"
  else
    mv -T -- "$_tools_tmp" "$entry"
  fi
  _tools_tmp=""
  trap - EXIT INT TERM
  exec {lock_fd}>&-

  tools_link "$bin" "$name"
  printf ' done in %d s\n' "$((SECONDS - start))" >&2
}

# tools_usage_from_header FILE: print the leading comment block of FILE (after
# the shebang) without the "# " prefix; used by the installers' --help.
tools_usage_from_header() {
  sed -n '2,/^[^#]/{/^#/!q;s/^# \{0,1\}//;p}' "$1"
}

# tools_args SCRIPT ARG...: the installers' command line: --help prints the
# header of SCRIPT and exits 0; nothing else is accepted (exit 2).
tools_args() {
  local script="$1"
  shift
  case "${1:-}" in
    -h | --help)
      tools_usage_from_header "$script"
      exit 0
      ;;
    "") ;;
    *)
      echo "${script##*/}: unknown argument: $1 (try --help)" >&2
      exit 2
      ;;
  esac
}

# tools_debian_unpack TOOL OUT PACKAGE...: downloads Debian packages with
# apt-get download (no system change, no root needed unless apt has no package
# lists yet: then, as root, apt-get update once) and unpacks them with dpkg-deb
# into OUT/../root, the cache entry being built.
tools_debian_unpack() {
  local tool="$1" out="$2"
  shift 2
  local entry debs
  entry="$(dirname "$out")"
  command -v apt-get >/dev/null 2>&1 || tools_die "$tool: apt-get not found: install $tool from your distribution and link it into .tools/bin"
  # apt-get download runs its fetcher as _apt, which cannot write a folder owned
  # by another user: fetch into a world-writable scratch folder.
  debs="$(mktemp -d)"
  chmod 777 "$debs"
  _tools_download() { (cd "$debs" && apt-get download "$@" 2>&1 | grep -v 'unsandboxed' >&2); }
  if ! _tools_download "$@"; then
    if [[ "$(id -u)" == "0" ]]; then
      tools_log "$tool: apt-get download failed; refreshing apt's package lists (apt-get update) once…"
      apt-get update -qq >&2
      _tools_download "$@" || tools_die "$tool: apt-get download $* failed"
    else
      tools_die "$tool: apt-get download failed; run 'sudo apt-get update' (or install $tool) and retry"
    fi
  fi
  local deb
  for deb in "$debs"/*.deb; do
    dpkg-deb -x "$deb" "$entry/root"
  done
  rm -rf -- "$debs"
}

# tools_debian_wrapper TOOL OUT NAME PATH: writes OUT/NAME, a launcher of
# root/PATH (PATH such as usr/sbin/haproxy) that puts the unpacked libraries
# first on LD_LIBRARY_PATH; fails when the binary still misses a library. The
# launcher finds the tree next to itself, so the cache entry can be renamed.
tools_debian_wrapper() {
  local tool="$1" out="$2" name="$3" path="$4"
  local root libdir missing
  root="$(dirname "$out")/root"
  libdir="usr/lib/$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || echo x86_64-linux-gnu)"
  missing="$(LD_LIBRARY_PATH="$root/$libdir" ldd "$root/$path" 2>&1 | grep 'not found' || true)"
  [[ -z "$missing" ]] || tools_die "$tool: $path misses libraries: $missing"
  cat >"$out/$name" <<WRAPPER
#!/usr/bin/env bash
root="\$(cd "\$(dirname "\$(readlink -f "\${BASH_SOURCE[0]}")")/../root" && pwd)"
export LD_LIBRARY_PATH="\$root/$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
exec "\$root/$path" "\$@"
WRAPPER
  chmod +x "$out/$name"
}

# tools_go_install OUT MODULE@VERSION [LDFLAGS]: `go install` of a command into
# OUT, outside the repository (no go.mod or go.work of ours involved), static
# (CGO_ENABLED=0) and reproducible (-trimpath).
tools_go_install() {
  local out="$1" target="$2" ldflags="${3:-}"
  (
    cd "$out" || exit 1
    GOBIN="$out" CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false \
      go install -trimpath -ldflags "$ldflags" "$target"
  )
}
