#!/usr/bin/env python3
"""Generates kubeconform's JSON schemas offline (run by tools/install-kubeconform.sh).

kubeconform's default schema location is on the internet, unreachable here, so
the schemas are made from what the package registries serve:

* Kubernetes kinds: the strict "local" schemas shipped in the kubernetes-validate
  wheel reference a shared _definitions.json by an absolute path kubeconform
  cannot resolve; each kind is written standalone with only the definitions it
  reaches copied into its own "$defs" (compact, and recursion needs no special
  case). Written as <kind>[-<group>]-<version>.json, kubeconform's
  {{.ResourceKind}}{{.KindSuffix}} naming.
* CRDs (Istio's crd-all.gen.yaml): each served version's openAPIV3Schema, made
  strict the way kubeconform's openapi2jsonschema.py does (additionalProperties:
  false wherever properties are listed, unless x-kubernetes-preserve-unknown-fields),
  x-kubernetes-int-or-string expanded, and apiVersion/kind/metadata added (a CRD
  schema leaves them out; metadata gets Kubernetes' ObjectMeta). Written as
  <group>/<kind>_<version>.json, the CRDs-catalog naming
  ({{.Group}}/{{.ResourceKind}}_{{.ResourceAPIVersion}}).
"""
import argparse
import copy
import json
import os
import re
import sys
import zipfile

try:
    import yaml
except ImportError:  # pragma: no cover - the installer puts PyYAML on PYTHONPATH then
    sys.exit("kubeconform-schemas.py: PyYAML is required (python3 -m pip install pyyaml)")

DEFS_REF = re.compile(r"^.*#/\$defs/(.+)$")
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"


def rewrite_refs(node, seen):
    """Points every $ref at the local "$defs" and collects the names it needs."""
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str):
            m = DEFS_REF.match(ref)
            if not m:
                raise ValueError(f"unexpected $ref {ref!r}")
            node["$ref"] = f"#/$defs/{m.group(1)}"
            seen.add(m.group(1))
        for v in node.values():
            rewrite_refs(v, seen)
    elif isinstance(node, list):
        for v in node:
            rewrite_refs(v, seen)


def standalone(schema, definitions):
    """schema with the transitive closure of its definitions embedded."""
    out = copy.deepcopy(schema)
    out.pop("$id", None)
    needed = set()
    rewrite_refs(out, needed)
    defs = {}
    queue = sorted(needed)
    while queue:
        name = queue.pop()
        if name in defs:
            continue
        if name not in definitions:
            raise ValueError(f"missing definition {name}")
        d = copy.deepcopy(definitions[name])
        more = set()
        rewrite_refs(d, more)
        defs[name] = d
        queue.extend(sorted(more - defs.keys()))
    if defs:
        out["$defs"] = dict(sorted(defs.items()))
    out["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return out


def kubernetes(wheel, version, outdir):
    prefix = f"kubernetes_validate/kubernetes-json-schema/v{version}.0-local-strict/"
    with zipfile.ZipFile(wheel) as z:
        names = [n for n in z.namelist() if n.startswith(prefix) and n.endswith(".json")]
        if not names:
            sys.exit(f"kubeconform-schemas.py: no schemas for Kubernetes {version} in {wheel}")
        definitions = json.loads(z.read(prefix + "_definitions.json"))["$defs"]
        count = 0
        for n in sorted(names):
            base = n[len(prefix):]
            if base == "_definitions.json":
                continue
            schema = json.loads(z.read(n))
            # Only top-level kinds (those with a group/version/kind) are validated.
            if "x-kubernetes-group-version-kind" not in schema:
                continue
            with open(os.path.join(outdir, base), "w") as f:
                json.dump(standalone(schema, definitions), f, separators=(",", ":"))
            count += 1
    return count, definitions


def strict(node):
    """openapi2jsonschema's strict mode and int-or-string handling, in place."""
    if isinstance(node, dict):
        if node.get("x-kubernetes-int-or-string"):
            keep = {k: v for k, v in node.items() if k in ("description",)}
            node.clear()
            node.update(keep)
            node["oneOf"] = [{"type": "string"}, {"type": "integer"}]
            return
        for v in node.values():
            strict(v)
        if "properties" in node and "additionalProperties" not in node and not node.get("x-kubernetes-preserve-unknown-fields"):
            node["additionalProperties"] = False
    elif isinstance(node, list):
        for v in node:
            strict(v)


def crds(path, definitions, outdir):
    count = 0
    with open(path) as f:
        docs = [d for d in yaml.safe_load_all(f) if d]
    meta = standalone({"$ref": f"#/$defs/{OBJECT_META}"}, definitions)
    for doc in docs:
        if doc.get("kind") != "CustomResourceDefinition":
            continue
        spec = doc["spec"]
        group, kind = spec["group"], spec["names"]["kind"]
        os.makedirs(os.path.join(outdir, group), exist_ok=True)
        for v in spec["versions"]:
            schema = copy.deepcopy(((v.get("schema") or {}).get("openAPIV3Schema")) or {"type": "object"})
            strict(schema)
            props = schema.setdefault("properties", {})
            props["apiVersion"] = {"type": "string", "enum": [f"{group}/{v['name']}"]}
            props["kind"] = {"type": "string", "enum": [kind]}
            props["metadata"] = {"$ref": f"#/$defs/{OBJECT_META}"}
            schema.setdefault("required", [])
            for r in ("apiVersion", "kind", "metadata"):
                if r not in schema["required"]:
                    schema["required"].append(r)
            schema.setdefault("additionalProperties", False)
            schema["$defs"] = meta["$defs"]
            schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
            with open(os.path.join(outdir, group, f"{kind.lower()}_{v['name']}.json"), "w") as f:
                json.dump(schema, f, separators=(",", ":"))
            count += 1
    return count


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--kubernetes-wheel", required=True, help="kubernetes_validate-*.whl")
    p.add_argument("--kubernetes-version", required=True, help="e.g. 1.33")
    p.add_argument("--istio-crds", required=True, help="Istio's crd-all.gen.yaml")
    p.add_argument("--out", required=True, help="output folder (created)")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    n, definitions = kubernetes(a.kubernetes_wheel, a.kubernetes_version, a.out)
    m = crds(a.istio_crds, definitions, a.out)
    print(f"[tools] kubeconform: wrote {n} Kubernetes {a.kubernetes_version} and {m} Istio CRD schemas to {a.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
