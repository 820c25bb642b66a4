#!/usr/bin/env bash
# Usage: tools/install-istiod.sh [--help]
#
# Builds istiod 1.30 (Istio's control plane, the `pilot-discovery` command) from
# source (CGO_ENABLED=0, -trimpath, -s -w) once per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/istiod-1.30-9739e10eb9d7-<hash>/bin/pilot-discovery
# and links it to .tools/bin/pilot-discovery. Idempotent; FLATLINE_TOOLS_REBUILD=1
# forces a rebuild. <hash> covers the two patches below and the build steps.
#
# The same istio.io/istio source as tools/install-istioctl.sh (tools/istio-source.sh:
# the newest release-1.30 commit the Go module proxy serves, and the versions
# the proxy does serve in place of the pins it lacks), with two patches of ours, both
# needed to build or run it here (tools/istiod/, each file says why):
#   serviceentry-nil-namespaces.patch  without Kubernetes istiod has no config
#       cluster and panics in NewServer asking it for its namespaces;
#   agentgateway_stub.go  replaces pilot/pkg/config/kube/agentgateway, whose
#       dependency github.com/agentgateway/agentgateway/api the proxy refuses
#       (403); that controller runs only with PILOT_ENABLE_AGENTGATEWAY=true.
# `pilot-discovery version -s` reports 1.30-dev+9739e10eb9d7.
# Run without Kubernetes (stack/src/istiod.ts does this), config from files:
#   ENABLE_CA_SERVER=false pilot-discovery discovery --registries= --configDir=DIR
#     --grpcAddr=127.0.0.1:15010 --secureGRPCAddr= --httpsAddr= ...
# Installed by npm test (its tests run the real istiod) and by `flatline up --mesh istio`.
#
# summary: istiod 1.30 (pilot-discovery: Istio's control plane configured from files, xDS to proxyless gRPC), patched go build of istio.io/istio release-1.30
# cold: ~4 min
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

# shellcheck source-path=SCRIPTDIR source=istio-source.sh
source "$here/istio-source.sh"
patch_file="$here/istiod/serviceentry-nil-namespaces.patch"
stub_file="$here/istiod/agentgateway_stub.go"
stub_pkg="pilot/pkg/config/kube/agentgateway"

# apply_patch DIR FILE: FILE (a -p1 unified diff) applied to DIR exactly
# (no fuzz); fails, naming the file, when Istio's code moved under it.
apply_patch() {
  local dir="$1" file="$2"
  if command -v patch >/dev/null 2>&1; then
    (cd "$dir" && patch -p1 --fuzz=0 --forward --batch --no-backup-if-mismatch -r - <"$file") ||
      tools_die "istiod: ${file##*/} no longer applies to istio.io/istio@$ISTIO_MODULE_VERSION"
  elif command -v git >/dev/null 2>&1; then
    # Outside a repository `git apply` patches files relative to the current folder.
    (cd "$dir" && git apply -p1 --verbose "$file") ||
      tools_die "istiod: ${file##*/} no longer applies to istio.io/istio@$ISTIO_MODULE_VERSION"
  else
    tools_die "istiod: neither patch nor git is installed (apt-get install patch)"
  fi
}

build_istiod() {
  local out="$1" src
  src="$(dirname "$out")/src"
  istio_source_copy istiod "$src"
  apply_patch "$src" "$patch_file"
  [[ -d "$src/$stub_pkg" ]] || tools_die "istiod: $stub_pkg is gone from istio.io/istio@$ISTIO_MODULE_VERSION"
  { rm -f -- "$src/$stub_pkg"/*.go && cp -- "$stub_file" "$src/$stub_pkg/agentgateway_stub.go"; } ||
    tools_die "istiod: cannot replace $stub_pkg with the stub"
  istio_build "$src" "$out/pilot-discovery" pilot/cmd/pilot-discovery
  local rc=$?
  rm -rf -- "$src" # 100+ MB of sources; only the binary is kept
  return "$rc"
}

# The key changes with the patches and the build steps, not with comments here.
hash="$(tools_hash_of "$(tools_hash "$patch_file" "$stub_file")" "$(declare -f build_istiod apply_patch istio_source_copy istio_build)" "$ISTIO_MODULE_VERSION" "${ISTIO_REQUIRES[@]}")"
tools_install istiod "$ISTIO_VERSION" "istiod-$ISTIO_VERSION-$hash" pilot-discovery build_istiod 1.25
