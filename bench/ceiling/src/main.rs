//! The benchmark ceiling: axum on tokio's default multi-threaded runtime (as sessiond
//! runs), one route answering a fixed JSON body, nothing else (no middleware, no state).
//!
//!     bench-ceiling [PORT]      listens on 127.0.0.1:PORT (default 3999), any path

use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;

async fn fixed() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], r#"{"ok":true}"#)
}

#[tokio::main]
async fn main() {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(3999);
    let app = Router::new().fallback(get(fixed));
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .expect("bind");
    axum::serve(listener, app).await.expect("serve");
}
