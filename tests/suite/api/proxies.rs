//! Forward auth through real reverse proxies: Debian's nginx (`auth_request`) and Caddy
//! (`forward_auth`) on loopback, in front of sessiond and a small upstream that echoes the
//! headers it receives. The configurations are the README's recipes.
//!

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use serde_json::{json, Value};

use crate::support::process::free_port;
use crate::support::*;

/// An upstream that answers every request with the headers it received, as JSON.
async fn echo_upstream() -> u16 {
    async fn echo(headers: HeaderMap) -> axum::Json<Value> {
        let mut m = serde_json::Map::new();
        for k in headers.keys() {
            let all: Vec<&str> = headers
                .get_all(k)
                .iter()
                .map(|v| v.to_str().unwrap_or(""))
                .collect();
            m.insert(k.as_str().to_string(), json!(all.join(",")));
        }
        axum::Json(Value::Object(m))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        axum::serve(listener, axum::Router::new().fallback(echo))
            .await
            .unwrap();
    });
    port
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        crate::support::process::terminate(&mut self.0);
    }
}

async fn wait_for(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "proxy did not start on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Renders a recipe from `examples/proxies/`, replacing the placeholder ports.
fn recipe(file: &str, listen: u16, sessiond: u16, upstream: u16, dir: &std::path::Path) -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/proxies/").to_string() + file;
    std::fs::read_to_string(path)
        .unwrap()
        .replace("8080", &listen.to_string())
        .replace("127.0.0.1:3000", &format!("127.0.0.1:{sessiond}"))
        .replace("127.0.0.1:9000", &format!("127.0.0.1:{upstream}"))
        .replace("/var/lib/sessiond-proxy", &dir.display().to_string())
}

/// nginx running the recipe in front of sessiond and the upstream; its port.
async fn start_nginx(port: u16, sessiond: u16, upstream: u16) -> (Proc, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let conf = recipe("nginx.conf", port, sessiond, upstream, dir.path());
    let conf = format!(
        "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\naccess_log off;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n{conf}\n}}\n",
        d = dir.path().display()
    );
    let path = dir.path().join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .args([
            "-p",
            &dir.path().display().to_string(),
            "-c",
            &path.display().to_string(),
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let guard = Proc(child);
    wait_for(port).await;
    (guard, dir)
}

/// Identity headers a client may try to pass off as sessiond's, also spelled with
/// underscores: CGI, WSGI and Rack upstreams read `X_Auth_User_Id` as `X-Auth-User-Id`.
const FORGED: [(&str, &str); 13] = [
    ("x-auth-user-id", "forged-user"),
    ("x-auth-email", "forged@example.com"),
    ("x-auth-name", "forged-name"),
    ("x-auth-session-id", "forged-session"),
    ("x-auth-expires-at", "forged-2099-01-01T00:00:00.000Z"),
    ("x_auth_user_id", "forged-user-2"),
    ("X_AUTH_EMAIL", "forged-2@example.com"),
    ("x-auth_name", "forged-name-2"),
    ("x_auth-session-id", "forged-session-2"),
    ("x-auth-user_id", "forged-user-3"),
    ("x-auth-session_id", "forged-session-3"),
    ("x-auth-expires_at", "forged-expiry"),
    ("x_Auth_Expires_At", "forged-expiry-2"),
];

/// Whether `name` is read as one of the identity headers by some upstream.
fn is_identity(name: &str) -> bool {
    let n = name.to_ascii_lowercase().replace('_', "-");
    FORGED[..5].iter().any(|(k, _)| *k == n)
}

async fn through(proxy: u16, path: &str, cookie: Option<&str>) -> (u16, HeaderMap, String) {
    through_with(proxy, path, cookie, &[]).await
}

/// [`through`], with more headers of the client's own.
async fn through_with(
    proxy: u16,
    path: &str,
    cookie: Option<&str>,
    headers: &[(&str, &str)],
) -> (u16, HeaderMap, String) {
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let mut req = client.get(format!("http://127.0.0.1:{proxy}{path}"));
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    for (k, v) in FORGED.iter().chain(headers) {
        req = req.header(*k, *v);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    (status, headers, res.text().await.unwrap())
}

/// The scenario every proxy must pass: signed out → 401, signed in → identity headers
/// upstream, revoked → 401.
async fn scenario(app: &TestApp, proxy: u16, signed_out: u16) {
    let (status, _, body) = through(proxy, "/private", None).await;
    assert_eq!(status, signed_out, "{body}");
    let (jar, res) = app.sign_up(&unique_email()).await;
    let user = res.json()["user"].clone();
    let (status, _, body) = through(proxy, "/private?x=1", Some(&jar.header())).await;
    assert_eq!(status, 200, "{body}");
    let seen: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(seen["x-auth-user-id"], user["id"]);
    assert_eq!(seen["x-auth-email"], user["email"]);
    // The client's own identity headers never reach the application, however spelled.
    for (k, v) in seen.as_object().unwrap() {
        if is_identity(k) {
            assert!(
                !v.as_str().unwrap().contains("forged"),
                "{k} passed through: {seen}"
            );
        }
    }
    assert_eq!(seen["x-auth-name"], "Test User");
    let mut j = jar.clone();
    app.send(
        reqwest::Method::POST,
        "/revoke-sessions",
        None,
        Some(&mut j),
        &[],
    )
    .await;
    let (status, _, _) = through(proxy, "/private", Some(&jar.header())).await;
    assert_eq!(status, signed_out);
}

/// sessiond behind nginx running the recipe, in front of the echoing upstream: the app,
/// nginx's port, sessiond's port, and what keeps nginx running.
async fn nginx_in_front() -> (TestApp, u16, u16, (Proc, tempfile::TempDir)) {
    require_tool("nginx");
    let port = free_port();
    let (app, sd_port) = behind_proxy(port).await;
    let upstream = echo_upstream().await;
    let nginx = start_nginx(port, sd_port, upstream).await;
    (app, port, sd_port, nginx)
}

/// nginx hands the browser only the first `Set-Cookie` line of the auth answer: with the
/// cookie cache on, a refresh also rewrites the cache (after expiring the old one), and
/// the refreshed session cookie must be the line that gets through.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_recipe_passes_a_refreshed_session_with_the_cookie_cache_on() {
    require_tool("nginx");
    let port = free_port();
    let (app, sd_port) = behind_proxy_with(port, |s| s.session.cookie_cache.enabled = true).await;
    let upstream = echo_upstream().await;
    let _nginx = start_nginx(port, sd_port, upstream).await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    assert!(jar.get("better-auth.session_data").is_some());
    app.clock.advance_secs(86_400 + 1);
    let (status, headers, _) = through(port, "/private", Some(&jar.header())).await;
    assert_eq!(status, 200);
    let lines: Vec<_> = headers.get_all("set-cookie").iter().collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    let line = lines[0].to_str().unwrap();
    assert!(
        line.starts_with(&format!("{TOKEN_COOKIE}=")) && line.contains("Max-Age=604800"),
        "{line}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_auth_request() {
    let (app, port, _, _nginx) = nginx_in_front().await;
    scenario(&app, port, 401).await;

    // A refreshed session cookie reaches the browser through the proxy.
    let (jar, _) = app.sign_up(&unique_email()).await;
    app.clock.advance_secs(86_400 + 1);
    let (status, headers, _) = through(port, "/private", Some(&jar.header())).await;
    assert_eq!(status, 200);
    let set_cookie = headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    assert!(
        set_cookie.starts_with(TOKEN_COOKIE) && set_cookie.contains("Max-Age=604800"),
        "{set_cookie:?}"
    );
    // Signed-out browsers are sent to the sign-in page by the 401 handler of the recipe,
    // with the way back encoded by sessiond.
    let (status, headers, _) = through(port, "/login-redirect/private?a=1&rd=x", None).await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        format!("https://app.example/login?rd=http%3A%2F%2F127.0.0.1%3A{port}%2Flogin-redirect%2Fprivate%3Fa%3D1%26rd%3Dx")
    );
    // A Host the client chose is not trusted: no way back, only the sign-in page.
    let (status, headers, _) =
        through_with(port, "/login-redirect/x", None, &[("host", "evil.example")]).await;
    assert_eq!(status, 302);
    assert_eq!(headers["location"], "https://app.example/login");
    // Nor does a way back the client names itself, even on a trusted origin: the way back
    // is the page asked for.
    let chosen = format!("http://127.0.0.1:{port}/login-redirect/chosen");
    let (status, headers, _) = through_with(
        port,
        "/login-redirect/asked",
        None,
        &[
            ("x-original-url", &chosen),
            ("x-forwarded-uri", "/login-redirect/chosen-too"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    assert_eq!(
        headers["location"],
        format!(
            "https://app.example/login?rd=http%3A%2F%2F127.0.0.1%3A{port}%2Flogin-redirect%2Fasked"
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caddy_forward_auth() {
    require_tool("caddy");
    let port = free_port();
    let (app, sd_port) = behind_proxy(port).await;
    let upstream = echo_upstream().await;
    let dir = tempfile::tempdir().unwrap();
    let conf = recipe("Caddyfile", port, sd_port, upstream, dir.path());
    let path = dir.path().join("Caddyfile");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("caddy")
        .args([
            "run",
            "--config",
            &path.display().to_string(),
            "--adapter",
            "caddyfile",
        ])
        .env("HOME", dir.path())
        .env("XDG_DATA_HOME", dir.path())
        .env("XDG_CONFIG_HOME", dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let _guard = Proc(child);
    wait_for(port).await;
    scenario(&app, port, 302).await;
    // The redirect variant passes sessiond's 302 to the browser with the original URL.
    let (status, headers, _) = through(port, "/app/page", None).await;
    assert_eq!(status, 302);
    let location = headers["location"].to_str().unwrap();
    assert!(
        location.starts_with("https://app.example/login?rd=http%3A%2F%2F127.0.0.1%3A"),
        "{location}"
    );
    assert!(location.ends_with("%2Fapp%2Fpage"), "{location}");
    // A way back the client names itself, even on a trusted origin, is not taken.
    let chosen = format!("http://127.0.0.1:{port}/chosen");
    let (status, headers, _) = through_with(
        port,
        "/app/asked",
        None,
        &[
            ("x-original-url", &chosen),
            ("x-forwarded-uri", "/chosen-too"),
        ],
    )
    .await;
    assert_eq!(status, 302);
    let location = headers["location"].to_str().unwrap();
    assert!(location.ends_with("%2Fapp%2Fasked"), "{location}");
}

/// Sign-ins through the nginx recipe from two client addresses (127.0.0.2 and 127.0.0.3,
/// both loopback): each has its own rate-limit bucket, because sessiond believes the
/// proxy's X-Forwarded-For (the proxy is trusted) and nothing else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_recipe_keeps_clients_apart() {
    require_tool("nginx");
    let app = spawn_with(Backend::Sqlite, |s| {
        s.rate_limit.enabled = Some(true);
        s.advanced.ip_address.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let sd_port: u16 = app.addr.rsplit(':').next().unwrap().parse().unwrap();
    let upstream = echo_upstream().await;
    let port = free_port();
    let _nginx = start_nginx(port, sd_port, upstream).await;
    let from = |ip: [u8; 4]| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from(ip))
            .build()
            .unwrap()
    };
    let body = json!({"email": "nobody@example.com", "password": "wrong-password"});
    let url = format!("http://127.0.0.1:{port}/api/auth/sign-in/email");
    let a = from([127, 0, 0, 2]);
    let mut seen = Vec::new();
    for _ in 0..4 {
        // A forged X-Forwarded-For from the client is appended to, never believed.
        let res = a
            .post(&url)
            .header("x-forwarded-for", format!("10.9.9.{}", seen.len()))
            .json(&body)
            .send()
            .await
            .unwrap();
        seen.push(res.status().as_u16());
    }
    assert_eq!(seen, vec![401, 401, 401, 429]);
    let b = from([127, 0, 0, 3]);
    let res = b.post(&url).json(&body).send().await.unwrap();
    assert_eq!(res.status(), 401, "another client is not locked out");
}

/// Connections from nginx to sessiond in state ESTABLISHED, read from the kernel's table
/// (`/proc/net/tcp`: hex local port, state `01`).
fn established_to(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    let local = format!(":{port:04X}");
    table
        .lines()
        .skip(1)
        .filter(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            f.len() > 3 && f[1].ends_with(&local) && f[3] == "01"
        })
        .count()
}

/// The recipe keeps its connections to sessiond open, and a connection that served one
/// client never answers another with the first one's identity: signed-in, signed-out and
/// forging clients interleaved over the same few kept-alive connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_recipe_reuses_connections_without_mixing_clients() {
    let (app, port, sd_port, _nginx) = nginx_in_front().await;
    let mut users = Vec::new();
    for _ in 0..3 {
        let (jar, res) = app.sign_up(&unique_email()).await;
        users.push((jar.header(), res.json()["user"]["id"].clone()));
    }
    // The test's own client keeps its connections to sessiond too: count them first.
    let before = established_to(sd_port);
    let rounds = (0..60).map(|i| {
        let user = users.get(i % 4).cloned();
        async move {
            let cookie = user.as_ref().map(|(c, _)| c.as_str());
            let (status, _, body) = through(port, &format!("/private/{i}"), cookie).await;
            (user.map(|(_, id)| id), status, body)
        }
    });
    for (user, status, body) in futures::future::join_all(rounds).await {
        match user {
            Some(id) => {
                assert_eq!(status, 200, "{body}");
                let seen: Value = serde_json::from_str(&body).unwrap();
                assert_eq!(seen["x-auth-user-id"], id, "{seen}");
            }
            None => assert_eq!(status, 401, "{body}"),
        }
    }
    // Idle now: without keep-alive nginx would have closed every connection to sessiond;
    // it keeps at most the recipe's `keepalive 128`.
    let kept = established_to(sd_port).saturating_sub(before);
    assert!(
        (1..=128).contains(&kept),
        "{kept} connections from nginx kept open"
    );
}

/// A stranger's requests that sessiond answers before reading their body (an unknown route,
/// here with 60 KB that nginx sends after the head) end their connections. nginx must learn
/// that from the answer (`Connection: close`), or it hands the closing connection to the
/// next request from its pool, another user's, who gets a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_recipe_strangers_early_answers_do_not_fail_other_users() {
    let (app, port, _, _nginx) = nginx_in_front().await;
    let (jar, _) = app.sign_up(&unique_email()).await;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = format!("http://127.0.0.1:{port}/api/auth");
    // Strangers send bodies sessiond drains (it answers 404 and keeps the connection), up
    // to its limit, and past it (nginx answers 413 itself: the recipe's body size).
    let strangers: Vec<_> = [30_000, 65_536, 100_000]
        .into_iter()
        .map(|len| {
            let (done, url) = (done.clone(), format!("{base}/no-such-route"));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut answered = 0;
                while !done.load(std::sync::atomic::Ordering::Relaxed) {
                    let res = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(vec![b'x'; len])
                        .send()
                        .await
                        .unwrap();
                    let want = if len > 65_536 { 413 } else { 404 };
                    assert_eq!(res.status().as_u16(), want, "{len}: {res:?}");
                    answered += 1;
                }
                answered
            })
        })
        .collect();
    let users: Vec<_> = (0..2)
        .map(|i| {
            let (cookie, url) = (jar.header(), format!("{base}/update-user"));
            tokio::spawn(async move {
                let client = reqwest::Client::new();
                let mut statuses = std::collections::BTreeMap::new();
                for n in 0..150 {
                    let res = client
                        .post(&url)
                        .header("cookie", &cookie)
                        .header("origin", format!("http://127.0.0.1:{port}"))
                        .json(&json!({ "name": format!("user {i} {n}") }))
                        .send()
                        .await
                        .unwrap();
                    *statuses.entry(res.status().as_u16()).or_insert(0) += 1;
                }
                statuses
            })
        })
        .collect();
    for user in users {
        let statuses = user.await.unwrap();
        assert_eq!(statuses.keys().collect::<Vec<_>>(), [&200], "{statuses:?}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    for stranger in strangers {
        assert!(stranger.await.unwrap() > 0, "the strangers ran alongside");
    }
}

/// Bodies past sessiond's limit, through the recipe: a 413, never a 502. sessiond refuses
/// them before reading them all and closes; without the recipe's `client_max_body_size`
/// nginx was often still sending and reported the closed connection as a 502.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_recipe_refuses_large_bodies_with_413() {
    let (_app, port, _, _nginx) = nginx_in_front().await;
    let client = reqwest::Client::new();
    let mut statuses = std::collections::BTreeMap::new();
    for (i, len) in [70_000, 100_000, 900_000]
        .into_iter()
        .cycle()
        .take(30)
        .enumerate()
    {
        let path = if i % 2 == 0 {
            "sign-up/email"
        } else {
            "no-such-route"
        };
        let res = client
            .post(format!("http://127.0.0.1:{port}/api/auth/{path}"))
            .header("content-type", "application/json")
            .body(vec![b'x'; len])
            .send()
            .await
            .unwrap();
        *statuses.entry(res.status().as_u16()).or_insert(0) += 1;
    }
    assert_eq!(statuses.keys().collect::<Vec<_>>(), [&413], "{statuses:?}");
}

/// sessiond for a proxy on `port`: the proxy's origin is trusted (so the way back is handed
/// to the sign-in page), and its own port.
async fn behind_proxy(port: u16) -> (TestApp, u16) {
    behind_proxy_with(port, |_| {}).await
}

async fn behind_proxy_with(
    port: u16,
    f: impl FnOnce(&mut sessiond::config::Settings) + Send + 'static,
) -> (TestApp, u16) {
    let app = spawn_with(Backend::Sqlite, move |s| {
        s.forward_auth.sign_in_url = "https://app.example/login".into();
        s.trusted_origins = vec![format!("http://127.0.0.1:{port}")];
        f(s);
    })
    .await;
    let sd_port: u16 = app.addr.rsplit(':').next().unwrap().parse().unwrap();
    (app, sd_port)
}
