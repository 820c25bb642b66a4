#!/usr/bin/env bash
# Usage: tools/install-kubeconform.sh [--help]
#
# Builds kubeconform with `go install github.com/yannh/kubeconform/cmd/kubeconform@v0.7.0`
# (CGO_ENABLED=0, -trimpath) and generates, offline, the JSON schemas it
# validates against (its default schema location is unreachable here), once
# per machine into the per-user cache
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/kubeconform-v0.7.0-<hash>/bin/kubeconform
#   ${XDG_CACHE_HOME:-~/.cache}/flatline/kubeconform-v0.7.0-<hash>/schemas/<kind>-<group>-<version>.json
# and links them to .tools/bin/kubeconform and .tools/kubeconform-schemas.
# Idempotent; FLATLINE_TOOLS_REBUILD=1 forces a rebuild.
#
# The schemas (tools/kubeconform-schemas.py, run with python3):
#   - Kubernetes core kinds: from the PyPI package kubernetes-validate (pinned
#     below; it ships the strict standalone schemas of each Kubernetes release),
#     for Kubernetes 1.33;
#   - Istio CRDs (networking.istio.io, security.istio.io, telemetry.istio.io…):
#     converted from the openAPIV3Schema of each served version in Istio's
#     manifests/charts/base/files/crd-all.gen.yaml (istio.io/istio on the Go
#     module proxy, the same release-1.30 commit as istioctl), the way
#     kubeconform's openapi2jsonschema.py does: additionalProperties: false
#     wherever properties are listed (strict), int-or-string expanded.
# <hash> covers the build function, the versions and the generator (not the
# comments), so changing any of them regenerates.
#
# Run: .tools/bin/kubeconform -strict -summary \
#        -schema-location '.tools/kubeconform-schemas/{{.ResourceKind}}-{{.Group}}-{{.ResourceAPIVersion}}.json' FILES…
#
# summary: kubeconform v0.7.0 + offline JSON schemas (Kubernetes 1.33, Istio 1.30 CRDs), go install
# cold: ~15 s
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$here/lib.sh"

tools_args "${BASH_SOURCE[0]}" "$@"

version="v0.7.0"
k8s_validate_version="1.37.0"
k8s_version="1.33"
istio_module_version="v0.0.0-20260826214018-9739e10eb9d7"

build_kubeconform() {
  local out="$1"
  (
    # Outside the repo so no go.mod/go.work of ours is involved.
    cd "$out"
    GOBIN="$out" CGO_ENABLED=0 GOWORK=off GOFLAGS=-buildvcs=false \
      go install -trimpath "github.com/yannh/kubeconform/cmd/kubeconform@$version"
  ) || return 1 # errexit is off here (tools_install calls us under `if !`)
  command -v python3 >/dev/null 2>&1 || tools_die "kubeconform: python3 is needed to generate the schemas"
  local work
  work="$(mktemp -d)"
  # The wheel is only unpacked (pip download, not install): no venv needed.
  if ! python3 -m pip download --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
    -d "$work" "kubernetes-validate==$k8s_validate_version"; then
    rm -rf -- "$work"
    tools_die "kubeconform: pip download kubernetes-validate==$k8s_validate_version failed"
  fi
  local istio_dir
  istio_dir="$(cd "$work" && GOWORK=off GOFLAGS=-mod=mod go mod download -json "istio.io/istio@$istio_module_version" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["Dir"])')" ||
    tools_die "kubeconform: go mod download istio.io/istio@$istio_module_version failed"
  # PyYAML reads Istio's CRD file; most Pythons have it, else fetch it for this run only.
  local pypath="${PYTHONPATH:-}"
  if ! python3 -c 'import yaml' 2>/dev/null; then
    python3 -m pip install --quiet --disable-pip-version-check --target "$work/py" pyyaml ||
      tools_die "kubeconform: PyYAML is missing and pip install pyyaml failed"
    pypath="$work/py${pypath:+:$pypath}"
  fi
  PYTHONPATH="$pypath" python3 "$here/kubeconform-schemas.py" \
    --kubernetes-wheel "$(ls "$work"/kubernetes_validate-*.whl)" --kubernetes-version "$k8s_version" \
    --istio-crds "$istio_dir/manifests/charts/base/files/crd-all.gen.yaml" \
    --out "$(dirname "$out")/schemas" || { rm -rf -- "$work"; return 1; }
  rm -rf -- "$work"
}

# The key follows what builds the entry (the function, the versions, the generator), not the comments.
key="kubeconform-$version-$(tools_hash_of "$(declare -f build_kubeconform)" "$k8s_validate_version $k8s_version $istio_module_version" "$(cat "$here/kubeconform-schemas.py")")"
tools_install kubeconform "$version" "$key" kubeconform build_kubeconform

# The schemas sit next to the binary in the cache entry; link the folder too.
schemas="$FLATLINE_CACHE_ROOT/$key/schemas"
[[ -d "$schemas" ]] || tools_die "kubeconform: $schemas is missing (rebuild with FLATLINE_TOOLS_REBUILD=1)"
mkdir -p "$FLATLINE_REPO_ROOT/.tools"
link="$FLATLINE_REPO_ROOT/.tools/kubeconform-schemas"
if [[ "$(readlink -- "$link" 2>/dev/null || true)" != "$schemas" ]]; then
  ln -sfn -- "$schemas" "$link.tmp.$$"
  mv -f -T -- "$link.tmp.$$" "$link"
fi
