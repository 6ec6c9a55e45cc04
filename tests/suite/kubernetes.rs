//! The Kubernetes manifests (`deploy/kubernetes/`), checked without a cluster: every
//! manifest and recipe validates offline against Kubernetes' schemas and the vendored CRD
//! schemas (`validate.sh`), the validator refuses broken ones, and the manifests agree
//! with each other and with the binary (ports, probe paths, drain time, user, the
//! forward-auth route and headers: `kubernetes_recipes`). `kubernetes_run` runs the binary
//! as they configure it.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::support::require_tool;

pub(crate) const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/kubernetes");

/// The YAML documents of `file` (under `deploy/kubernetes`), as JSON: read by PyYAML,
/// which the validator (`kubernetes-validate`) brings.
pub(crate) fn documents(file: &str) -> Vec<Value> {
    require_tool("kubernetes-validate");
    let out = Command::new("python3")
        .args([
            "-c",
            "import json, sys, yaml; json.dump([d for d in yaml.safe_load_all(open(sys.argv[1])) if d], sys.stdout)",
            &format!("{DIR}/{file}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "python3 with PyYAML (pip install kubernetes-validate): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The one document of `file`.
pub(crate) fn document(file: &str) -> Value {
    let mut docs = documents(file);
    assert_eq!(docs.len(), 1, "{file}");
    docs.remove(0)
}

/// A map of strings (labels, a ConfigMap's data, a selector).
pub(crate) fn strings(v: &Value) -> BTreeMap<String, String> {
    v.as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect()
}

fn run_validate(dir: &Path) -> std::process::Output {
    require_tool("kubernetes-validate");
    require_tool("check-jsonschema");
    Command::new("bash")
        .arg(dir.join("validate.sh"))
        .output()
        .unwrap()
}

#[test]
fn manifests_and_recipes_validate_offline() {
    let out = run_validate(Path::new(DIR));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Ingresses, the example Secret and the base's built-in kinds; the ServiceMonitor,
    // the Gateway API and Envoy Gateway resources and the kustomization itself.
    assert!(
        text.contains("manifests and recipes: 11 built-in resources valid"),
        "{text}"
    );
    assert!(
        text.contains("manifests and recipes: 7 custom resources valid"),
        "{text}"
    );
}

/// Each mutation, applied to a copy of the directory, must make `validate.sh` fail.
#[test]
fn validation_refuses_broken_manifests() {
    let cases: &[(&str, &str, &str)] = &[
        // A misspelt field in a built-in kind (strict: unknown fields are errors).
        ("deployment.yaml", "readinessProbe:", "readinesProbe:"),
        // A wrong type.
        ("pdb.yaml", "maxUnavailable: 1", "maxUnavailable: [1]"),
        // Misspelt fields in each kind of custom resource.
        ("servicemonitor.yaml", "    - port: ops", "    - prt: ops"),
        (
            "recipes/gateway-envoy.yaml",
            "      path: /forward-auth",
            "      pth: /forward-auth",
        ),
        ("recipes/gateway-envoy.yaml", "  hostnames:", "  hostname:"),
        (
            "recipes/gateway-envoy.yaml",
            "    - group: \"\"",
            "    - grp: \"\"",
        ),
        ("kustomization.yaml", "images:", "imagez:"),
        // A kind nobody has a schema for, built-in or custom.
        (
            "hpa.yaml",
            "kind: HorizontalPodAutoscaler",
            "kind: Autoscaler",
        ),
        (
            "recipes/gateway-envoy.yaml",
            "kind: SecurityPolicy",
            "kind: SecurityPolicies",
        ),
        // A manifest the kustomization forgets.
        ("kustomization.yaml", "  - pdb.yaml\n", ""),
    ];
    for (file, from, to) in cases {
        let copy = tempfile::tempdir().unwrap();
        let status = Command::new("cp")
            .args(["-r", &format!("{DIR}/."), copy.path().to_str().unwrap()])
            .status()
            .unwrap();
        assert!(status.success());
        let path = copy.path().join(file);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains(from), "{file} has no {from:?}");
        std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
        let out = run_validate(copy.path());
        assert!(
            !out.status.success(),
            "{file}: {from:?} -> {to:?} passed validation:\n{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }
}

/// The container of the Deployment or Job `doc`, and its pod spec.
pub(crate) fn pod(doc: &Value) -> (&Value, &Value) {
    let spec = &doc["spec"]["template"]["spec"];
    let containers = spec["containers"].as_array().unwrap();
    assert_eq!(containers.len(), 1);
    (spec, &containers[0])
}

fn container_port(container: &Value, name: &str) -> u64 {
    container["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("no container port {name}"))["containerPort"]
        .as_u64()
        .unwrap()
}

/// Locked down as the image expects and the restricted Pod Security Standard demands.
fn assert_locked_down(what: &str, spec: &Value, container: &Value) {
    let dockerfile =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/Dockerfile")).unwrap();
    let user = spec["securityContext"]["runAsUser"].as_u64().unwrap();
    assert!(dockerfile.contains(&format!("USER {user}")), "{what}: user");
    assert!(
        dockerfile.contains(&format!("--uid {user}")),
        "{what}: user"
    );
    assert_eq!(spec["securityContext"]["runAsNonRoot"], true, "{what}");
    assert_eq!(
        spec["securityContext"]["seccompProfile"]["type"], "RuntimeDefault",
        "{what}"
    );
    assert_eq!(spec["automountServiceAccountToken"], false, "{what}");
    // Service links would set SESSIOND_PORT=tcp://… for the Service `sessiond`.
    assert_eq!(spec["enableServiceLinks"], false, "{what}");
    let sc = &container["securityContext"];
    assert_eq!(sc["readOnlyRootFilesystem"], true, "{what}");
    assert_eq!(sc["allowPrivilegeEscalation"], false, "{what}");
    assert_eq!(
        sc["capabilities"]["drop"],
        serde_json::json!(["ALL"]),
        "{what}"
    );
    assert!(sc["capabilities"].get("add").is_none(), "{what}");
    // The only writable paths are emptyDirs, the data directory among them.
    let mounts: Vec<&str> = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["mountPath"].as_str().unwrap())
        .collect();
    assert!(mounts.contains(&"/var/lib/sessiond"), "{what}: {mounts:?}");
    for v in spec["volumes"].as_array().unwrap() {
        assert!(v.get("emptyDir").is_some(), "{what}: {v}");
    }
    for r in ["requests", "limits"] {
        for k in ["cpu", "memory"] {
            assert!(container["resources"][r][k].is_string(), "{what}: {r}.{k}");
        }
    }
    let env_from: Vec<&str> = container["envFrom"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| {
            e.get("configMapRef")
                .or_else(|| e.get("secretRef"))
                .map(|r| r["name"].as_str().unwrap())
        })
        .collect();
    assert_eq!(env_from, ["sessiond", "sessiond"], "{what}");
}

/// The settings the binary reads from the ConfigMap and the example Secret (its secret
/// replaced by a real one), over the image's `config/default.toml`.
pub(crate) fn manifest_env() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = strings(&document("configmap.yaml")["data"])
        .into_iter()
        .collect();
    vars.extend(strings(&document("secret.example.yaml")["stringData"]));
    vars
}

#[test]
fn manifests_agree_with_each_other_and_with_the_binary() {
    let toml = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml"))
        .unwrap();
    let mut vars = manifest_env();
    for (k, v) in vars.iter_mut() {
        if k == "BETTER_AUTH_SECRET" {
            *v = "k8s-check-7Hq2xWv9LmZ4pR8sT1yB6nC3dF5gJ0kE".into();
        }
    }
    let settings = sessiond::config::Settings::from_sources(&toml, &vars).unwrap();
    assert_eq!(
        settings.environment,
        sessiond::config::Environment::Production
    );
    assert!(!settings.database.migrate_on_start, "the Job migrates");
    // In production the main listener does not serve /metrics: the ops listener does.
    assert!(!settings.ops_on_main_listener());
    let ops_port: u64 = settings
        .ops
        .listen
        .as_ref()
        .expect("an operations listener")
        .as_str()
        .rsplit_once(':')
        .unwrap()
        .1
        .parse()
        .unwrap();

    let deployment = document("deployment.yaml");
    let (spec, c) = pod(&deployment);
    assert_locked_down("deployment", spec, c);
    assert_eq!(container_port(c, "http"), u64::from(settings.port));
    assert_eq!(container_port(c, "ops"), ops_port);
    for (probe, path) in [
        ("startupProbe", "/healthz"),
        ("livenessProbe", "/healthz"),
        ("readinessProbe", "/readyz"),
    ] {
        assert_eq!(c[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(c[probe]["httpGet"]["port"], "http", "{probe}");
    }
    // The preStop pause and the whole drain fit in the grace period, or the kubelet
    // kills requests the drain would have finished.
    let pause: u64 = c["lifecycle"]["preStop"]["exec"]["command"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(
        c["lifecycle"]["preStop"]["exec"]["command"][0],
        "/bin/sleep"
    );
    let grace = spec["terminationGracePeriodSeconds"].as_u64().unwrap();
    assert!(
        pause + settings.server.shutdown_grace < grace,
        "{pause} + {} >= {grace}",
        settings.server.shutdown_grace
    );
    let pod_labels = strings(&deployment["spec"]["template"]["metadata"]["labels"]);
    assert_eq!(
        strings(&deployment["spec"]["selector"]["matchLabels"]),
        pod_labels
    );

    let job = document("migrate-job.yaml");
    let (job_spec, job_c) = pod(&job);
    assert_locked_down("migration job", job_spec, job_c);
    assert_eq!(job_c["args"], serde_json::json!(["migrate"]));
    assert_eq!(job_c["image"], c["image"], "one image, one release");
    let job_labels = strings(&job["spec"]["template"]["metadata"]["labels"]);

    // The Service, the PDB and the ServiceMonitor select the replicas and never the
    // migration Job's pod.
    let selects = |sel: &BTreeMap<String, String>, labels: &BTreeMap<String, String>| {
        sel.iter().all(|(k, v)| labels.get(k) == Some(v))
    };
    let service = document("service.yaml");
    let pdb = document("pdb.yaml");
    let monitor = document("servicemonitor.yaml");
    for (what, sel) in [
        ("service", strings(&service["spec"]["selector"])),
        ("pdb", strings(&pdb["spec"]["selector"]["matchLabels"])),
    ] {
        assert!(selects(&sel, &pod_labels), "{what}");
        assert!(!selects(&sel, &job_labels), "{what} selects the Job");
    }
    let service_labels = strings(&service["metadata"]["labels"]);
    assert!(selects(
        &strings(&monitor["spec"]["selector"]["matchLabels"]),
        &service_labels
    ));
    let service_port = |name: &str| {
        service["spec"]["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap_or_else(|| panic!("no service port {name}"))
            .clone()
    };
    assert_eq!(service_port("http")["targetPort"], "http");
    assert_eq!(service_port("ops")["targetPort"], "ops");
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], "ops");
    assert_eq!(monitor["spec"]["endpoints"][0]["path"], "/metrics");

    // The HPA keeps at least one more replica than the PDB lets go, so a drain never
    // leaves fewer than two serving.
    let hpa = document("hpa.yaml");
    assert_eq!(
        hpa["spec"]["scaleTargetRef"]["name"],
        deployment["metadata"]["name"]
    );
    assert!(
        deployment["spec"].get("replicas").is_none(),
        "the HPA owns it"
    );
    let min = hpa["spec"]["minReplicas"].as_u64().unwrap();
    let unavailable = pdb["spec"]["maxUnavailable"].as_u64().unwrap();
    assert!(
        min >= unavailable + 2,
        "{min} replicas, {unavailable} may go"
    );

    // The NetworkPolicy opens only the container's named ports.
    let policy = document("networkpolicy.yaml");
    assert!(selects(
        &strings(&policy["spec"]["podSelector"]["matchLabels"]),
        &job_labels
    ));
    let mut opened: Vec<&str> = policy["spec"]["ingress"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r["ports"].as_array().unwrap())
        .map(|p| p["port"].as_str().unwrap())
        .collect();
    opened.sort_unstable();
    assert_eq!(opened, ["http", "ops"]);
}
