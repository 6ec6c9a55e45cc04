//! Connections that stay open between requests. An answer given before the request body was
//! read (unknown route, wrong method, body past the limit) must either read the rest of the
//! body first (small bodies: the connection stays open) or say `Connection: close` and end
//! the connection; otherwise a proxy that keeps connections open sends its next request,
//! often another client's, into the close (a 502 for that client). Requests whose body was
//! read, and requests without one, keep the connection. (The sockets here block: the tests
//! run on two worker threads, so that the server keeps one.)

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use crate::support::process::{parse_response, RawResponse};
use crate::support::*;

fn connect(app: &TestApp) -> TcpStream {
    let port: u16 = app.addr.rsplit(':').next().unwrap().parse().unwrap();
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s
}

/// Reads one answer off a connection that may stay open: the head, then as many body bytes
/// as `content-length` says.
fn answer(s: &mut TcpStream) -> RawResponse {
    let mut buf = Vec::new();
    let mut byte = [0u8; 1];
    while !buf.ends_with(b"\r\n\r\n") {
        assert_eq!(s.read(&mut byte).unwrap(), 1, "closed mid-head: {buf:?}");
        buf.push(byte[0]);
    }
    let head = parse_response(&buf).unwrap();
    let len: usize = head
        .header("content-length")
        .map_or(0, |n| n.parse().unwrap());
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).unwrap();
    buf.extend_from_slice(&body);
    parse_response(&buf).unwrap()
}

fn post_head(path: &str, len: usize) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: sessiond.test\r\nContent-Type: application/json\r\n\
         Origin: {ORIGIN}\r\nContent-Length: {len}\r\n\r\n"
    )
}

/// After the answer the server hangs up: the next read sees the end of the stream, or a
/// reset where the server closed with body bytes it never read.
fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    match s.read_to_end(&mut rest) {
        Ok(n) => n == 0,
        Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
    }
}

const GET_SESSION: &str = "GET /api/auth/get-session HTTP/1.1\r\nHost: sessiond.test\r\n\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_bodies_left_unread_are_drained_and_the_connection_kept() {
    let app = spawn(Backend::Sqlite).await;
    let mut s = connect(&app);
    // Each request and a get-session after it in one write, as a pipelining client or a
    // proxy reusing the connection would send them: both are answered, on one connection.
    for (path, status, len) in [
        ("/api/auth/no-such-route", 404, 5),
        ("/api/auth/no-such-route", 404, 30_000),
        ("/api/auth/get-session", 405, 5),
        ("/api/auth/get-session", 405, 65_536),
    ] {
        let mut bytes = post_head(path, len).into_bytes();
        bytes.extend(std::iter::repeat_n(b'x', len));
        bytes.extend_from_slice(GET_SESSION.as_bytes());
        s.write_all(&bytes).unwrap();
        let res = answer(&mut s);
        assert_eq!(res.status, status, "{path} {len}: {res:?}");
        assert_eq!(res.header("connection"), None, "{path} {len}: {res:?}");
        let res = answer(&mut s);
        assert_eq!((res.status, res.text().as_str()), (200, "null"), "{res:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_not_drained_say_connection_close() {
    let app = spawn(Backend::Sqlite).await;
    let send = |head: String, len: usize| {
        let mut s = connect(&app);
        s.write_all(head.as_bytes()).unwrap();
        // The server may stop reading: the body goes from a thread of its own.
        let mut w = s.try_clone().unwrap();
        std::thread::spawn(move || w.write_all(&vec![b'x'; len]));
        s
    };
    let expect =
        |path: &str| post_head(path, 2).replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
    let http10 = |path: &str, len: usize| {
        post_head(path, len)
            .replace("HTTP/1.1", "HTTP/1.0")
            .replace("\r\n\r\n", "\r\nConnection: keep-alive\r\n\r\n")
    };
    for (what, mut s, status) in [
        // Past what is drained (a stranger's large body): never read.
        (
            "large",
            send(post_head("/api/auth/no-such-route", 100_000), 100_000),
            404,
        ),
        // Past the body limit as well.
        (
            "past the limit",
            send(post_head("/api/auth/sign-in/email", 70_000), 70_000),
            413,
        ),
        // Announced, never sent: waited for a moment, not for ever.
        (
            "never sent",
            send(post_head("/api/auth/no-such-route", 30_000), 0),
            404,
        ),
        // The client waits for a 100 before it sends: reading would ask for the body.
        ("expect", send(expect("/api/auth/no-such-route"), 0), 404),
        // HTTP/1.0 with keep-alive: `close` alone, not `close, keep-alive`.
        (
            "http/1.0",
            send(http10("/api/auth/no-such-route", 70_000), 70_000),
            404,
        ),
    ] {
        let res = answer(&mut s);
        assert_eq!(res.status, status, "{what}: {res:?}");
        assert_eq!(res.header("connection"), Some("close"), "{what}: {res:?}");
        assert!(closed(&mut s), "{what}: the connection stays open");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_bodies_and_no_bodies_keep_the_connection() {
    let app = spawn(Backend::Sqlite).await;
    let mut s = connect(&app);
    let body = r#"{"email":"nobody@example.com","password":"wrong-password"}"#;
    for _ in 0..3 {
        // A body read to its end (the answer is a 401), then a request without one.
        s.write_all(post_head("/api/auth/sign-in/email", body.len()).as_bytes())
            .unwrap();
        s.write_all(body.as_bytes()).unwrap();
        let res = answer(&mut s);
        assert_eq!(res.status, 401, "{res:?}");
        assert_eq!(res.header("connection"), None, "{res:?}");
        s.write_all(GET_SESSION.as_bytes()).unwrap();
        let res = answer(&mut s);
        assert_eq!((res.status, res.text().as_str()), (200, "null"), "{res:?}");
        assert_eq!(res.header("connection"), None, "{res:?}");
    }
}
