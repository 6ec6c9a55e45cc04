//! The served OpenAPI document parses, is 3.1, and matches the router both ways.

use sessiond::http::ROUTES;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openapi_lists_every_route_and_only_routes() {
    // Every optional route on.
    let app = spawn_with(Backend::Sqlite, |s| {
        s.plugins.jwt.enabled = true;
        s.plugins.multi_session.enabled = true;
        s.revocation_feed.enabled = true;
        s.revocation_feed.open = true;
        s.plugins.admin.enabled = true;
        s.service_api.enabled = true;
    })
    .await;
    let root = format!("http://{}", app.addr);
    let res = app
        .client
        .get(format!("{root}/openapi.json"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let doc: serde_json::Value = res.json().await.unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let paths = doc["paths"].as_object().unwrap();
    for (method, path) in ROUTES {
        let op = &paths
            .get(*path)
            .unwrap_or_else(|| panic!("{path} missing from the document"))[method.to_lowercase()];
        assert!(op.is_object(), "{method} {path} missing from the document");
        assert!(op["responses"].is_object(), "{method} {path} has responses");
    }
    let mut documented = 0;
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            documented += 1;
            assert!(
                ROUTES
                    .iter()
                    .any(|(m, p)| p == path && m.eq_ignore_ascii_case(method)),
                "{method} {path} is documented but not routed"
            );
            // Every 4xx/5xx response with a body uses the error schema.
            for (code, r) in op["responses"].as_object().unwrap() {
                if code.starts_with('4') && code != "404" || code == "500" {
                    let schema = &r["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        schema, "#/components/schemas/Error",
                        "{method} {path} {code}"
                    );
                }
            }
            // And the router really answers it (anything but 404).
            let m = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let res = app
                .client
                .request(m, format!("{root}{path}"))
                .header("origin", ORIGIN)
                .send()
                .await
                .unwrap();
            assert_ne!(res.status(), 404, "{method} {path} is not routed");
        }
    }
    assert_eq!(documented, ROUTES.len());
    // Schemas referenced exist.
    let text = doc.to_string();
    for name in doc["components"]["schemas"].as_object().unwrap().keys() {
        assert!(
            text.contains(&format!("#/components/schemas/{name}")),
            "{name} unused"
        );
    }
}
