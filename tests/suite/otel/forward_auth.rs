//! Forward auth behind real nginx: nginx starts the trace (`$request_id` is 32 hex
//! characters, a valid trace id) and sends it in `traceparent` with the auth subrequest;
//! sessiond's forward-auth span continues it.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::receiver::{Got, Receiver};
use super::{assert_no_secrets, sign_up, traced};
use crate::support::process::{free_port, Server};
use crate::support::require_tool;

const NGINX_SPAN: &str = "00f067aa0ba902b7";

struct Nginx(std::process::Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        crate::support::process::terminate(&mut self.0);
    }
}

fn start_nginx(port: u16, sessiond: u16, dir: &std::path::Path) -> Nginx {
    let d = dir.display();
    let conf = format!(
        "daemon off;\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nevents {{}}\nhttp {{\naccess_log off;\n\
         client_body_temp_path {d}/body; proxy_temp_path {d}/proxy; fastcgi_temp_path {d}/fcgi;\n\
         uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;\n\
         server {{\n listen 127.0.0.1:{port};\n\
          location = /_sessiond {{\n internal;\n proxy_pass http://127.0.0.1:{sessiond}/forward-auth;\n\
           proxy_pass_request_body off;\n proxy_set_header Content-Length \"\";\n\
           proxy_set_header X-Original-URI $request_uri;\n\
           proxy_set_header traceparent \"00-$request_id-{NGINX_SPAN}-01\";\n }}\n\
          location / {{\n auth_request /_sessiond;\n add_header X-Trace-Id $request_id always;\n\
           rewrite ^ /api/auth/ok break;\n proxy_pass http://127.0.0.1:{sessiond};\n }}\n\
         }}\n}}\n"
    );
    let path = dir.join("nginx.conf");
    std::fs::write(&path, conf).unwrap();
    let child = Command::new("nginx")
        .args(["-p", &d.to_string(), "-c", &path.display().to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let guard = Nginx(child);
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nginx did not start");
        std::thread::sleep(Duration::from_millis(25));
    }
    guard
}

fn forward_auth_span<'a>(spans: &'a [Got], trace: &str) -> Option<&'a Got> {
    spans
        .iter()
        .find(|s| s.trace_id == trace && s.attr("http.route") == Some("/forward-auth"))
}

#[test]
fn nginx_forward_auth_continues_nginx_trace() {
    require_tool("nginx");
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let cmd = traced(dir.path(), &rx);
    let (server, client) = Server::start(cmd);
    let nginx_dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _nginx = start_nginx(port, server.port, nginx_dir.path());

    let password = "a-forward-auth-password-never-in-a-span";
    let (_, jar, token) = sign_up(&client, &server, "fa-up", password);
    let cookie = jar
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("; ");

    let through = |cookie: Option<&str>| {
        let mut req = client.get(format!("http://127.0.0.1:{port}/private?q=1"));
        if let Some(c) = cookie {
            req = req.header("cookie", c);
        }
        let res = req.send().unwrap();
        let trace = res.headers()["x-trace-id"].to_str().unwrap().to_string();
        (res.status().as_u16(), trace)
    };
    let (signed_in, trace_in) = through(Some(&cookie));
    assert_eq!(signed_in, 200);
    let (signed_out, trace_out) = through(None);
    assert_eq!(signed_out, 401);
    assert_eq!(trace_in.len(), 32);

    let spans = rx.wait_for("forward-auth spans", |s| {
        forward_auth_span(s, &trace_in).is_some() && forward_auth_span(s, &trace_out).is_some()
    });
    for (trace, status) in [(&trace_in, "200"), (&trace_out, "401")] {
        let fa = forward_auth_span(&spans, trace).unwrap();
        assert_eq!(fa.parent, NGINX_SPAN, "{fa:#?}");
        assert_eq!(fa.name, "GET /forward-auth");
        assert_eq!(fa.attr("http.response.status_code"), Some(status));
    }
    let mut secrets: Vec<String> = jar.iter().map(|(_, v)| v.clone()).collect();
    secrets.extend([token, password.to_string()]);
    assert_no_secrets(&spans, &secrets);
}
