#!/usr/bin/env bash
# Validates every manifest here offline: the built-in kinds with kubernetes-validate
# (strict: an unknown field is an error) against the Kubernetes version below, the custom
# resources with check-jsonschema against the schemas in schemas/. Both come from PyPI
# (`pip install kubernetes-validate check-jsonschema`). With kubectl at hand ($KUBECTL),
# the kustomization is also rendered and its output validated the same way.
set -euo pipefail
cd "$(dirname "$0")"
K8S_VERSION=${K8S_VERSION:-1.33.0}
KUBECTL=${KUBECTL:-kubectl}

for tool in kubernetes-validate check-jsonschema; do
  command -v "$tool" >/dev/null 2>&1 || {
    echo "validate: $tool is missing: pip install kubernetes-validate check-jsonschema" >&2
    exit 1
  }
done
# PyYAML comes with kubernetes-validate (one of its dependencies).
python=python3
"$python" -c 'import yaml' 2>/dev/null || {
  echo "validate: $python cannot import yaml: pip install kubernetes-validate" >&2
  exit 1
}

work=$(mktemp -d)
rendered=$(mktemp)
trap 'rm -rf "$work" "$rendered"' EXIT

# Every file listed in the kustomization exists, and every manifest here but the
# example Secret is listed in it (none is forgotten by `kubectl apply -k`).
"$python" - <<'PY'
import glob, sys, yaml
listed = yaml.safe_load(open("kustomization.yaml"))["resources"]
here = sorted(set(glob.glob("*.yaml")) - {"kustomization.yaml", "secret.example.yaml"})
missing = [f for f in listed if f not in here]
unlisted = [f for f in here if f not in listed]
if missing or unlisted:
    sys.exit(f"validate: kustomization.yaml lists missing files {missing}, leaves out {unlisted}")
PY

# Splits the documents of each file: built-in kinds into one YAML file for
# kubernetes-validate, each custom resource into a JSON file next to its schema's name.
split() {
  "$python" - "$work" "$@" <<'PY'
import json, os, sys, yaml
work, files = sys.argv[1], sys.argv[2:]
custom = {"monitoring.coreos.com", "gateway.networking.k8s.io", "gateway.envoyproxy.io", "kustomize.config.k8s.io"}
builtin = []
for path in files:
    for i, doc in enumerate(yaml.safe_load_all(open(path))):
        if doc is None:
            continue
        group, _, version = doc["apiVersion"].rpartition("/")
        if group in custom:
            schema = f"schemas/{group}/{doc['kind'].lower()}_{version}.json"
            name = os.path.basename(path).replace(".yaml", "")
            with open(f"{work}/{name}.{i}.json", "w") as out:
                json.dump(doc, out)
            with open(f"{work}/custom.list", "a") as out:
                out.write(f"{schema} {work}/{name}.{i}.json {path}\n")
        else:
            builtin.append(doc)
with open(f"{work}/builtin.yaml", "w") as out:
    yaml.safe_dump_all(builtin, out)
PY
}

check() {
  local label=$1
  local out
  if ! out=$(kubernetes-validate --strict -k "$K8S_VERSION" "$work/builtin.yaml" 2>&1); then
    echo "$out" >&2
    echo "validate: $label: built-in resources FAILED" >&2
    exit 1
  fi
  # A kind with no schema is only a warning there: here it is an error.
  if grep -q "Couldn't find schema" <<<"$out"; then
    echo "$out" >&2
    echo "validate: $label: a resource of no known kind" >&2
    exit 1
  fi
  echo "validate: $label: $(grep -c ' passed ' <<<"$out") built-in resources valid"
  local n=0
  if [ -f "$work/custom.list" ]; then
    while read -r schema doc source; do
      [ -f "$schema" ] || { echo "validate: $source: no schema $schema (see schemas/README.md)" >&2; exit 1; }
      check-jsonschema --quiet --schemafile "$schema" "$doc" || {
        echo "validate: $label: $source: custom resource FAILED against $schema" >&2
        exit 1
      }
      n=$((n + 1))
    done <"$work/custom.list"
  fi
  echo "validate: $label: $n custom resources valid"
  rm -f "$work"/*
}

split *.yaml recipes/*.yaml
check "manifests and recipes"

if command -v "$KUBECTL" >/dev/null 2>&1; then
  "$KUBECTL" kustomize . >"$rendered" || { echo "validate: kubectl kustomize FAILED" >&2; exit 1; }
  split "$rendered"
  check "kubectl kustomize output"
else
  echo "validate: kubectl is not installed: the kustomization was checked file by file, not rendered"
fi
