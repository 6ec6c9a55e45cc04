//! Connections that stay open between requests. An answer given before the request body was
//! read (unknown route, wrong method, body past the limit) ends the connection, and must say
//! so with `Connection: close`, or a proxy that keeps connections open sends its next
//! request, often another client's, into the close (a 502 for that client). Requests whose
//! body was read, and requests without one, keep the connection. (The sockets here block:
//! the tests run on two worker threads, so that the server keeps one.)

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

/// After the answer the server hangs up: the next read sees the end of the stream.
fn closed(s: &mut TcpStream) -> bool {
    let mut rest = Vec::new();
    matches!(s.read_to_end(&mut rest), Ok(0))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_before_the_body_say_connection_close() {
    let app = spawn(Backend::Sqlite).await;
    // The head alone, the body never sent: an unknown route and a wrong method answer at once.
    for (path, status) in [
        ("/api/auth/no-such-route", 404),
        ("/api/auth/get-session", 405),
    ] {
        let mut s = connect(&app);
        s.write_all(post_head(path, 30_000).as_bytes()).unwrap();
        let res = answer(&mut s);
        assert_eq!(res.status, status, "{path}: {res:?}");
        assert_eq!(res.header("connection"), Some("close"), "{path}: {res:?}");
        assert!(closed(&mut s), "{path}: the connection stays open");
    }
    // A body past the limit, sent whole: the rest of it is never read.
    let mut s = connect(&app);
    let body = vec![b'x'; 70_000];
    s.write_all(post_head("/api/auth/sign-in/email", body.len()).as_bytes())
        .unwrap();
    let _ = s.write_all(&body);
    let res = answer(&mut s);
    assert_eq!(res.status, 413, "{res:?}");
    assert_eq!(res.header("connection"), Some("close"), "{res:?}");
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
        s.write_all(b"GET /api/auth/get-session HTTP/1.1\r\nHost: sessiond.test\r\n\r\n")
            .unwrap();
        let res = answer(&mut s);
        assert_eq!((res.status, res.text().as_str()), (200, "null"), "{res:?}");
        assert_eq!(res.header("connection"), None, "{res:?}");
    }
}
