//! The proxy recipes (`deploy/kubernetes/recipes/`) call sessiond where it listens:
//! ingress-nginx's `auth-url` and Envoy Gateway's `extAuth` name the Service, its port and
//! the forward-auth path, copy the identity headers sessiond sends, and never cache or
//! fail open.

use crate::kubernetes::{document, documents, strings};

#[test]
fn proxy_recipes_use_the_forward_auth_route_and_headers() {
    let defaults = sessiond::config::Settings::default().forward_auth;
    let headers = [
        defaults.header_user_id.as_str(),
        defaults.header_email.as_str(),
        defaults.header_name.as_str(),
        defaults.header_session_id.as_str(),
        defaults.header_expires_at.as_str(),
    ];
    let service = document("service.yaml");
    let name = service["metadata"]["name"].as_str().unwrap();
    let namespace = document("namespace.yaml")["metadata"]["name"].clone();
    let port = service["spec"]["ports"][0]["port"].as_u64().unwrap();
    assert_eq!(service["spec"]["ports"][0]["name"], "http");

    let ingresses = documents("recipes/ingress-nginx.yaml");
    let notes = strings(&ingresses[0]["metadata"]["annotations"]);
    assert_eq!(
        notes["nginx.ingress.kubernetes.io/auth-url"],
        format!(
            "http://{name}.{}.svc.cluster.local:{port}{}",
            namespace.as_str().unwrap(),
            defaults.path
        )
    );
    assert_eq!(
        notes["nginx.ingress.kubernetes.io/auth-response-headers"],
        headers.join(",")
    );
    assert!(
        !notes.keys().any(|k| k.contains("auth-cache")),
        "a cached answer outlives a revocation"
    );
    assert_eq!(
        ingresses[1]["spec"]["rules"][0]["http"]["paths"][0]["path"],
        sessiond::config::Settings::default().base_path
    );

    let gateway = documents("recipes/gateway-envoy.yaml");
    let policy = gateway
        .iter()
        .find(|d| d["kind"] == "SecurityPolicy")
        .unwrap();
    let ext = &policy["spec"]["extAuth"];
    assert_eq!(ext["failOpen"], false);
    assert_eq!(ext["http"]["path"], defaults.path.as_str());
    assert_eq!(ext["http"]["backendRefs"][0]["name"], name);
    assert_eq!(ext["http"]["backendRefs"][0]["namespace"], namespace);
    assert_eq!(ext["http"]["backendRefs"][0]["port"], port);
    assert_eq!(ext["http"]["headersToBackend"], serde_json::json!(headers));
    // The session travels in the cookie or the Authorization header.
    assert_eq!(
        ext["headersToExtAuth"],
        serde_json::json!(["cookie", "authorization"])
    );
    let grant = gateway
        .iter()
        .find(|d| d["kind"] == "ReferenceGrant")
        .unwrap();
    assert_eq!(grant["metadata"]["namespace"], namespace);
    assert_eq!(grant["spec"]["from"][0]["kind"], "SecurityPolicy");
    assert_eq!(
        grant["spec"]["from"][0]["namespace"],
        policy["metadata"]["namespace"]
    );
}
