//! Bounded by construction: everything a stranger controls is driven past its cap against
//! the real binary, while the process's memory (VmRSS, read from /proc) stays flat. The
//! latency of `/healthz` during each burst is printed for the record, never asserted.
//!
//! Each burst runs twice: once to warm the allocator and the buffers up, once measured.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::support::process::{
    command, get_with, parse_response, raw_http, rss_kib, status_kib, Server, BIN,
};

/// What a measured burst may add to the resident set: allocator arenas settle in steps.
const RSS_SLACK_KIB: u64 = 12 * 1024;
const THREADS: usize = 8;

fn start(dir: &std::path::Path, env: &[(&str, &str)]) -> Server {
    let mut cmd = command(dir);
    cmd.env("RUST_LOG", "warn");
    for (k, v) in env {
        cmd.env(k, v);
    }
    Server::start_with_stderr(cmd, Stdio::null()).0
}

/// Sends `n` requests made by `make(i)` from several threads; the statuses (0: the server
/// closed the connection without answering) and the `/healthz` latencies seen meanwhile.
fn burst(port: u16, n: usize, make: &(dyn Fn(usize) -> Vec<u8> + Sync)) -> (Vec<u16>, Vec<f64>) {
    let running = AtomicBool::new(true);
    let mut statuses = vec![0u16; n];
    let mut probes = Vec::new();
    std::thread::scope(|s| {
        let prober = s.spawn(|| {
            let mut times = Vec::new();
            while running.load(Ordering::Relaxed) {
                let t = Instant::now();
                let ok = get_with(port, "GET", "/healthz", "").is_some_and(|r| r.status == 200);
                assert!(ok, "/healthz did not answer during the burst");
                times.push(t.elapsed().as_secs_f64() * 1000.0);
                std::thread::sleep(Duration::from_millis(20));
            }
            times
        });
        let chunks: Vec<_> = statuses.chunks_mut(n.div_ceil(THREADS)).collect();
        let mut workers = Vec::new();
        for (t, chunk) in chunks.into_iter().enumerate() {
            let base = t * n.div_ceil(THREADS);
            workers.push(s.spawn(move || {
                for (j, slot) in chunk.iter_mut().enumerate() {
                    *slot = raw_http(port, &make(base + j)).map_or(0, |r| r.status);
                }
            }));
        }
        for w in workers {
            w.join().unwrap();
        }
        running.store(false, Ordering::Relaxed);
        probes = prober.join().unwrap();
    });
    (statuses, probes)
}

/// Warms up with `n / 2` requests, then measures `n`: memory must stay within the slack.
fn flat(
    server: &Server,
    label: &str,
    n: usize,
    make: impl Fn(usize) -> Vec<u8> + Sync,
) -> Vec<u16> {
    let pid = server.child.id();
    burst(server.port, n / 2, &make);
    let before = rss_kib(pid);
    let (statuses, mut probes) = burst(server.port, n, &|i| make(i + n));
    let after = rss_kib(pid);
    probes.sort_by(f64::total_cmp);
    let p50 = probes.get(probes.len() / 2).copied().unwrap_or(0.0);
    let max = probes.last().copied().unwrap_or(0.0);
    eprintln!(
        "{label}: {n} requests, RSS {before} -> {after} KiB, /healthz during the burst: \
         {} probes, p50 {p50:.1} ms, max {max:.1} ms",
        probes.len()
    );
    assert!(
        after <= before + RSS_SLACK_KIB,
        "{label}: RSS grew from {before} to {after} KiB"
    );
    statuses
}

fn request(method: &str, path: &str, headers: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{headers}\r\n")
        .into_bytes()
}

#[test]
fn header_bytes_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    // Within the cap (16 KiB of request head by default): served.
    let ok = get_with(
        server.port,
        "GET",
        "/api/auth/get-session",
        &format!("Cookie: a={}\r\n", "x".repeat(12_000)),
    )
    .unwrap();
    assert_eq!(ok.status, 200);
    // Beyond it: 431, and memory stays flat under a stream of them.
    let statuses = flat(&server, "40 KB headers", 600, |i| {
        request(
            "GET",
            "/api/auth/get-session",
            &format!("Cookie: a{i}={}\r\n", "y".repeat(40_000)),
        )
    });
    assert!(
        statuses.iter().all(|s| *s == 431 || *s == 0),
        "oversized heads are refused: {:?}",
        &statuses[..10]
    );
    // Many small header lines are capped too.
    let many: String = (0..500).map(|i| format!("X-H{i}: v\r\n")).collect();
    let res = get_with(server.port, "GET", "/healthz", &many);
    assert!(
        res.is_none_or(|r| r.status == 431),
        "500 header lines refused"
    );
}

#[test]
fn cookie_names_and_chunks_are_capped() {
    for cache in ["false", "true"] {
        let dir = tempfile::tempdir().unwrap();
        let server = start(
            dir.path(),
            &[("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", cache)],
        );
        // About 500 chunk names in one header that fits the cap: a bounded clean-up.
        let chunks: String = (0..500)
            .map(|i| format!("better-auth.session_data.{i}=x; "))
            .collect();
        let res = get_with(
            server.port,
            "GET",
            "/api/auth/get-session",
            &format!("Cookie: {chunks}better-auth.session_token=forged.c2ln\r\n"),
        )
        .unwrap();
        assert_eq!(res.status, 200);
        let lines = res.all("set-cookie");
        assert!(
            lines.len() <= 12,
            "cache {cache}: {} Set-Cookie lines for 500 chunk names",
            lines.len()
        );
        // Repeated names, leading zeros and huge indexes are not chunks to expire.
        let odd: String = (0..300)
            .map(|i| format!("better-auth.session_data.0{i}=x; better-auth.session_data.1=y; better-auth.session_data.{}=z; ", 10_000 + i))
            .collect();
        let res = get_with(
            server.port,
            "GET",
            "/api/auth/get-session",
            &format!("Cookie: {}\r\n", &odd[..odd.len().min(15_000)]),
        )
        .unwrap();
        assert!(
            res.all("set-cookie").len() <= 12,
            "{:?}",
            res.all("set-cookie").len()
        );
        // A stream of them (different each time) leaves memory flat and /healthz answering.
        flat(
            &server,
            &format!("chunk floods, cache {cache}"),
            1_000,
            |i| {
                let names: String = (0..400)
                    .map(|k| format!("better-auth.session_data.{}=v{i}; c{k}x{i}=1; ", k % 97))
                    .collect();
                request(
                    "GET",
                    "/api/auth/get-session",
                    &format!("Cookie: {}\r\n", &names[..names.len().min(15_000)]),
                )
            },
        );
        // Many Cookie header lines are counted together, not each on its own.
        let lines: String = (0..90)
            .map(|i| format!("Cookie: better-auth.session_data.{i}=x\r\n"))
            .collect();
        let res = get_with(server.port, "GET", "/api/auth/get-session", &lines).unwrap();
        assert!(res.all("set-cookie").len() <= 12);
    }
}

#[test]
fn bodies_and_json_depth_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let post = |body: &[u8]| {
        let mut req = format!(
            "POST /api/auth/sign-in/email HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n",
            body.len()
        )
        .into_bytes();
        req.extend_from_slice(body);
        req
    };
    let res = raw_http(server.port, &post(&vec![b' '; 200_000])).unwrap();
    assert_eq!(res.status, 413);
    let deep = format!("{}{}", "[".repeat(30_000), "]".repeat(30_000));
    let res = raw_http(server.port, &post(deep.as_bytes())).unwrap();
    assert_eq!(res.status, 400, "{}", res.text());
    let statuses = flat(&server, "deep and oversized bodies", 600, |i| {
        if i % 2 == 0 {
            post(format!("{}{}", "{\"a\":".repeat(20_000), "1").as_bytes())
        } else {
            post(&vec![b'1'; 70_000 + i])
        }
    });
    assert!(statuses.iter().all(|s| *s == 400 || *s == 413 || *s == 0));
}

#[test]
fn metric_label_sets_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[]);
    let metrics = || {
        get_with(server.port, "GET", "/metrics", "")
            .map(|r| r.text())
            .unwrap()
    };
    get_with(server.port, "GET", "/api/auth/ok", "");
    let before = metrics().len();
    flat(&server, "invented methods and paths", 2_000, |i| {
        request(&format!("M{i}"), &format!("/api/auth/p{i}"), "")
    });
    let text = metrics();
    assert!(
        !text.contains("method=\"M1"),
        "invented methods are not labels"
    );
    assert!(
        !text.contains("/api/auth/p1"),
        "unknown paths are not labels"
    );
    assert!(
        text.len() < before + 64 * 1024,
        "/metrics grew from {before} to {} bytes",
        text.len()
    );
}

#[test]
fn rate_limiter_keys_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("SESSIOND_RATE_LIMIT__ENABLED", "true")]);
    let statuses = flat(&server, "distinct long paths, rate limited", 2_000, |i| {
        request("GET", &format!("/api/auth/x{i}/{}", "y".repeat(2_000)), "")
    });
    // Unknown paths share one bucket per client: most of the stream is refused.
    let limited = statuses.iter().filter(|s| **s == 429).count();
    assert!(limited > 1_500, "{limited} of 2000 limited");
}

#[test]
fn log_lines_are_capped_and_request_ids_sanitised() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let mut cmd = command(dir.path());
    cmd.env("SESSIOND_LOG__FORMAT", "json")
        .env("SESSIOND_LOG__LEVEL", "info");
    let (mut server, _) = Server::start_with_stderr(cmd, std::fs::File::create(&log).unwrap());
    for i in 0..50 {
        let res = get_with(
            server.port,
            "GET",
            &format!("/api/auth/{}{i}", "p".repeat(8_000)),
            &format!(
                "X-Request-Id: forged\" injected=1 {}\r\n",
                "r".repeat(8_000)
            ),
        )
        .unwrap();
        assert_eq!(res.status, 404);
        let id = res.header("x-request-id").unwrap_or("");
        assert!(!id.contains("forged") && id.len() <= 128, "{id:?}");
    }
    // Bytes beyond ASCII in a path (a right-to-left override, a line separator) are
    // logged percent-encoded, never raw.
    let res = raw_http(
        server.port,
        "GET /api/auth/ok\u{202e}evil\u{2028}x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n"
            .as_bytes(),
    );
    assert!(res.is_some_and(|r| r.status == 404 || r.status == 400));
    // A well-formed request id is kept and returned.
    let res = get_with(
        server.port,
        "GET",
        "/healthz",
        "X-Request-Id: abc-123_XYZ.9\r\n",
    )
    .unwrap();
    assert_eq!(res.header("x-request-id"), Some("abc-123_XYZ.9"));
    let pid = server.child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    server.wait_stderr();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.lines().count() > 50, "requests were logged");
    assert!(!text.contains('\u{202e}') && !text.contains('\u{2028}'));
    assert!(
        text.contains("/api/auth/ok%E2%80%AEevil%E2%80%A8x"),
        "the path was logged"
    );
    for line in text.lines() {
        assert!(line.len() <= 2_048, "log line of {} bytes", line.len());
        assert!(
            !line.contains("forged"),
            "a client's request id reached the log"
        );
    }
}

/// Opens a connection and sends the start of a request, never its end.
fn half_sent(port: u16) -> Option<TcpStream> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
        .ok()?;
    Some(s)
}

/// Whether the server closed `s` (EOF or reset) within `limit`.
fn closed_by_server(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            // A 408 or an error answer before closing counts as closing.
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

#[test]
fn connections_are_capped_and_slow_or_idle_ones_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            ("SESSIOND_SERVER__MAX_CONNECTIONS", "64"),
            ("SESSIOND_SERVER__HEADER_READ_TIMEOUT", "2"),
            ("SESSIOND_SERVER__IDLE_TIMEOUT", "3"),
        ],
    );
    let pid = server.child.id();
    let before = rss_kib(pid);
    // Five times the cap of connections that never finish their request head.
    let mut slow: Vec<TcpStream> = (0..320).filter_map(|_| half_sent(server.port)).collect();
    // Other clients are still served meanwhile.
    for _ in 0..20 {
        let res = get_with(server.port, "GET", "/healthz", "").expect("served at the cap");
        assert_eq!(res.status, 200);
    }
    let after = rss_kib(pid);
    eprintln!("320 half-sent connections: RSS {before} -> {after} KiB");
    assert!(after <= before + RSS_SLACK_KIB);
    // Every half-sent request is closed by the server: evicted at the cap, or after the
    // header read timeout.
    for s in &mut slow {
        assert!(
            closed_by_server(s, Duration::from_secs(20)),
            "a slow header was kept open"
        );
    }
    // An idle keep-alive connection is closed after the idle timeout.
    let mut idle = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    let mut buf = [0u8; 1024];
    let n = idle.read(&mut buf).unwrap();
    assert_eq!(parse_response(&buf[..n]).unwrap().status, 200);
    assert!(
        closed_by_server(&mut idle, Duration::from_secs(20)),
        "idle connection kept open"
    );
}

/// Connections whose answer waits for the rest of an ignored body (the drain, up to 1 s)
/// count as receiving a body: evictable at the cap. A stranger who kept more than the cap
/// of them going locked every other client out while they were not.
#[test]
fn connections_draining_an_ignored_body_are_evictable_at_the_cap() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("SESSIOND_SERVER__MAX_CONNECTIONS", "32")]);
    let port = server.port;
    let running = AtomicBool::new(true);
    std::thread::scope(|scope| {
        // Twice the cap of connections, each announcing 64 KiB to an unknown route and
        // sending 10 bytes of it: answered after the drain's wait, then opened again.
        for _ in 0..64 {
            scope.spawn(|| {
                while running.load(Ordering::Relaxed) {
                    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
                        continue;
                    };
                    let head = "POST /api/auth/nope HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                                Content-Length: 65536\r\n\r\n0123456789";
                    if s.write_all(head.as_bytes()).is_ok() {
                        closed_by_server(&mut s, Duration::from_secs(10));
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
            });
        }
        std::thread::sleep(Duration::from_millis(300));
        let mut served = 0;
        for _ in 0..30 {
            if get_with(port, "GET", "/healthz", "").is_some_and(|r| r.status == 200) {
                served += 1;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        running.store(false, Ordering::Relaxed);
        // Without eviction none of them was served. A few may still be closed unanswered: a
        // flood of new connections at the cap evicts the longest-idle one, which is now and
        // then a client's fresh connection before its request arrives.
        assert!(
            served >= 20,
            "other clients were turned away at the cap: {served} of 30 served"
        );
    });
}

/// Asks `/healthz` on an open connection: the answer's status, `None` if it was closed.
fn ask_healthz(s: &mut TcpStream) -> Option<u16> {
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut buf = [0u8; 2048];
    let n = s.read(&mut buf).ok()?;
    Some(parse_response(&buf[..n])?.status)
}

/// `n` connections that have each been answered once and are now idle, as a proxy keeps.
fn kept_alive(port: u16, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            assert_eq!(ask_healthz(&mut s), Some(200));
            s
        })
        .collect()
}

/// At the cap, connections left unanswered for a while (250 ms) are closed before ones that
/// have been answered: a flood of silent connections closes its own, not those a proxy
/// keeps open between the requests it forwards (their next request would have met a
/// closed connection: a 502).
#[test]
fn kept_alive_connections_outlast_a_flood_of_silent_ones() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("SESSIOND_SERVER__MAX_CONNECTIONS", "32")]);
    let mut pooled = kept_alive(server.port, 8);
    // Six times the cap of connections that send nothing, kept open by the client, in
    // waves of 16 (more than the cap allows after the first two).
    let mut silent = Vec::new();
    for _ in 0..12 {
        for _ in 0..16 {
            if let Ok(s) = TcpStream::connect(("127.0.0.1", server.port)) {
                silent.push(s);
            }
        }
        std::thread::sleep(Duration::from_millis(350));
    }
    for (i, s) in pooled.iter_mut().enumerate() {
        assert_eq!(
            ask_healthz(s),
            Some(200),
            "kept-alive connection {i} was closed"
        );
    }
    // The flood's own connections made room for each other.
    let closed = silent
        .iter_mut()
        .map(|s| closed_by_server(s, Duration::from_millis(50)))
        .filter(|closed| *closed)
        .count();
    assert!(
        closed >= 192 - 24,
        "only {closed} of 192 silent connections closed"
    );
}

/// A burst of new connections at the cap, each with its request sent at once, is answered:
/// the idle connections make room, not the new ones whose requests have not been read yet.
#[test]
fn a_burst_of_new_connections_at_the_cap_is_answered() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("SESSIOND_SERVER__MAX_CONNECTIONS", "32")]);
    let _idle = kept_alive(server.port, 30);
    let mut burst: Vec<TcpStream> = (0..10)
        .map(|_| {
            let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                .unwrap();
            s
        })
        .collect();
    let answered = burst
        .iter_mut()
        .map(|s| {
            let mut buf = [0u8; 2048];
            let n = s.read(&mut buf).unwrap_or(0);
            parse_response(&buf[..n]).is_some_and(|r| r.status == 200)
        })
        .filter(|ok| *ok)
        .count();
    assert_eq!(answered, 10, "new connections closed unanswered at the cap");
}

#[test]
fn connection_cap_follows_the_file_descriptor_limit() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new("sh");
    cmd.current_dir(dir.path())
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "error")
        .args(["-c", "ulimit -n 200 && exec \"$0\"", BIN]);
    let (server, _) = Server::start_with_stderr(cmd, Stdio::null());
    // More half-sent requests than the process has descriptors.
    let _slow: Vec<TcpStream> = (0..260).filter_map(|_| half_sent(server.port)).collect();
    for _ in 0..10 {
        let res = get_with(server.port, "GET", "/healthz", "").expect("served at the fd limit");
        assert_eq!(res.status, 200);
    }
    // And it still reaches its database.
    let res = get_with(server.port, "GET", "/readyz", "").unwrap();
    assert_eq!(res.status, 200, "{}", res.text());
}

#[test]
fn trickled_bodies_cannot_hold_every_connection() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            ("SESSIOND_SERVER__MAX_CONNECTIONS", "32"),
            ("SESSIOND_SERVER__HEADER_READ_TIMEOUT", "30"),
        ],
    );
    // Every connection busy with a request whose body never comes.
    let mut slow = Vec::new();
    for _ in 0..40 {
        let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
        s.write_all(
            b"POST /api/auth/sign-in/email HTTP/1.1\r\nHost: 127.0.0.1\r\n\
              Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{",
        )
        .unwrap();
        slow.push(s);
    }
    // Let the server read every head and wait for the bodies.
    std::thread::sleep(Duration::from_millis(500));
    // A connection waiting for its body makes room for new clients at once, as one
    // still sending its head: an attacker reopening them keeps no one out.
    for _ in 0..10 {
        let res = get_with(server.port, "GET", "/healthz", "").expect("served at the cap");
        assert_eq!(res.status, 200);
    }
    // A declared length over the body limit is refused at once, before any body.
    let res = get_with(
        server.port,
        "POST",
        "/api/auth/sign-in/email",
        "Content-Type: application/json\r\nContent-Length: 99999999\r\n",
    )
    .unwrap();
    assert_eq!(res.status, 413);
}

#[test]
fn a_body_trickled_byte_by_byte_costs_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(dir.path(), &[("SESSIOND_SERVER__HEADER_READ_TIMEOUT", "4")]);
    let pid = server.child.id();
    let open = |n: usize| -> Vec<TcpStream> {
        (0..n)
            .map(|_| {
                let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
                s.write_all(
                    b"POST /api/auth/update-user HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                      Content-Type: application/json\r\nContent-Length: 60000\r\n\r\n{",
                )
                .unwrap();
                s
            })
            .collect()
    };
    let trickle = |socks: &mut Vec<TcpStream>, rounds: usize| {
        for _ in 0..rounds {
            for s in socks.iter_mut() {
                let _ = s.write_all(b" ");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    let mut warm = open(300);
    trickle(&mut warm, 5);
    let before = rss_kib(pid);
    let mut socks = open(300);
    trickle(&mut socks, 30);
    let after = rss_kib(pid);
    eprintln!("300 bodies trickled 30 bytes each: RSS {before} -> {after} KiB");
    assert!(
        after <= before + RSS_SLACK_KIB,
        "RSS grew from {before} to {after} KiB"
    );
    // The body must arrive within the time a head may take: then 408.
    std::thread::sleep(Duration::from_secs(2));
    let mut buf = Vec::new();
    let s = &mut socks[0];
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let _ = s.read_to_end(&mut buf);
    assert!(
        String::from_utf8_lossy(&buf).starts_with("HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&buf)
    );
}

#[test]
fn answers_a_client_stops_taking_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[
            ("SESSIOND_SERVER__HEADER_READ_TIMEOUT", "2"),
            ("SESSIOND_SERVER__IDLE_TIMEOUT", "600"),
        ],
    );
    let size = get_with(server.port, "GET", "/openapi.json", "")
        .unwrap()
        .body
        .len();
    // Far more answer than the socket buffers hold, asked for and never read.
    let n = 400;
    let mut s = TcpStream::connect(("127.0.0.1", server.port)).unwrap();
    let asks = "GET /openapi.json HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(n);
    s.write_all(asks.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    // The server gave up on it: what was buffered arrives, then the end.
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 65536];
    let ended = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(k) => got += k,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                break false
            }
            Err(_) => break true,
        }
    };
    eprintln!(
        "{got} of {} answer bytes delivered before the close",
        n * size
    );
    assert!(
        ended,
        "a connection whose client stopped reading was kept open"
    );
    assert!(
        got < n * size / 2,
        "the answers were delivered: the client never stalled"
    );
}

/// Each password hash holds a 32 MiB buffer (its own mapping, on huge pages where the kernel
/// allows): a stream of sign-ins, many more than there are hashing threads, peaks at one
/// buffer per thread and gives every buffer back, mapping and all.
#[test]
fn password_hashes_hold_their_buffer_only_while_hashing() {
    let dir = tempfile::tempdir().unwrap();
    let server = start(
        dir.path(),
        &[("SESSIOND_EMAIL_AND_PASSWORD__HASH_CONCURRENCY", "2")],
    );
    let pid = server.child.id();
    // Writable anonymous mappings of 16 MiB or more: only a hash's buffer is that large (the
    // allocator's arenas reserve 64 MiB but write to a few pages of it).
    let buffers = || {
        std::fs::read_to_string(format!("/proc/{pid}/maps"))
            .unwrap()
            .lines()
            .filter(|l| {
                let mut f = l.split_whitespace();
                let (range, perms) = (f.next().unwrap(), f.next().unwrap());
                let inode = f.nth(2).unwrap();
                let (lo, hi) = range.split_once('-').unwrap();
                let size =
                    u64::from_str_radix(hi, 16).unwrap() - u64::from_str_radix(lo, 16).unwrap();
                perms == "rw-p" && inode == "0" && size >= 16 << 20
            })
            .count()
    };
    // Unknown emails: each is answered 401 after the same scrypt as a known one.
    let sign_in = |i: usize| {
        let body =
            format!("{{\"email\":\"nobody{i}@example.com\",\"password\":\"pw-{i}-long-enough\"}}");
        format!(
            "POST /api/auth/sign-in/email HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .into_bytes()
    };
    burst(server.port, 8, &sign_in);
    let rss_before = rss_kib(pid);
    assert_eq!(buffers(), 0, "a buffer outlived its hash");
    let (statuses, _) = burst(server.port, 40, &|i| sign_in(i + 100));
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    let (rss_after, peak) = (rss_kib(pid), status_kib(pid, "VmHWM:"));
    eprintln!("40 sign-ins, 8 at a time: RSS {rss_before} -> {rss_after} KiB, peak {peak} KiB");
    assert!(
        rss_after <= rss_before + RSS_SLACK_KIB,
        "RSS grew from {rss_before} to {rss_after} KiB"
    );
    assert!(
        peak <= rss_before + 2 * 32 * 1024 + RSS_SLACK_KIB,
        "peak {peak} KiB: more than two 32 MiB buffers over {rss_before} KiB"
    );
    assert_eq!(buffers(), 0, "a buffer outlived its hash");
}
