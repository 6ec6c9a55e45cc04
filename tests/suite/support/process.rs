//! Running the `sessiond` binary as a child process, for tests that need real processes.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_sessiond");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The binary in `dir`, with a clean environment (only `PATH`).
pub fn command(dir: &std::path::Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    c
}

/// A running sessiond on a free port; killed when dropped.
pub struct Server {
    pub child: Child,
    pub port: u16,
}

impl Server {
    /// Starts `cmd` on a free port and waits until it answers.
    pub fn start(cmd: Command) -> (Self, reqwest::blocking::Client) {
        Self::start_with_stderr(cmd, Stdio::piped())
    }

    /// As [`Server::start`], with the server's standard error sent to `stderr` (a file, for
    /// servers that log more than a pipe holds before it is read).
    pub fn start_with_stderr(
        mut cmd: Command,
        stderr: impl Into<Stdio>,
    ) -> (Self, reqwest::blocking::Client) {
        let port = free_port();
        let child = cmd
            .env("SESSIOND_PORT", port.to_string())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .unwrap();
        let client = reqwest::blocking::Client::new();
        let deadline = Instant::now() + Duration::from_secs(30);
        while client
            .get(format!("http://127.0.0.1:{port}/api/auth/ok"))
            .send()
            .is_err()
        {
            assert!(Instant::now() < deadline, "server did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
        (Self { child, port }, client)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}/api/auth{path}", self.port)
    }

    pub fn root(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// SIGTERM, then the exit status.
    pub fn stop(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        self.child.wait().unwrap()
    }

    /// Waits for exit and returns what it wrote to stderr.
    pub fn wait_stderr(&mut self) -> String {
        use std::io::Read;
        let _ = self.child.wait();
        let mut out = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = e.read_to_string(&mut out);
        }
        out
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Stops a child as an operator would (SIGTERM), so that a master process such as nginx's
/// takes its workers down with it: killed outright, it leaves them running, each holding the
/// test's ports. SIGKILL if it has not exited within 5 s.
pub fn terminate(child: &mut Child) {
    let pid = i32::try_from(child.id())
        .ok()
        .and_then(rustix::process::Pid::from_raw);
    if let Some(pid) = pid {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// A response read off a raw socket.
#[derive(Debug)]
pub struct RawResponse {
    pub status: u16,
    /// Header lines as (lower-case name, value), in order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawResponse {
    pub fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.all(name).into_iter().next()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Sends `request` as written (nothing added; it should say `Connection: close`) on a new
/// connection and reads the whole answer. `None` when the server closed the connection
/// without answering.
pub fn raw_http(port: u16, request: &[u8]) -> Option<RawResponse> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    // A server may answer (413, 431) and close before reading everything.
    let _ = s.write_all(request);
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    parse_response(&buf)
}

/// Parses one HTTP/1.1 response (status line, headers, the rest as the body).
pub fn parse_response(buf: &[u8]) -> Option<RawResponse> {
    let end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = buf[end + 4..].to_vec();
    // Small chunked bodies (one chunk): keep only the payload.
    if let Some(pos) = body.windows(2).position(|w| w == b"\r\n") {
        let is_chunked = std::str::from_utf8(&body[..pos])
            .ok()
            .is_some_and(|h| !h.is_empty() && h.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_chunked && body.ends_with(b"0\r\n\r\n") {
            body = body[pos + 2..body.len() - 7].to_vec();
        }
    }
    Some(RawResponse {
        status,
        headers,
        body,
    })
}

/// `GET path` with `extra` header lines (each ending in `\r\n`), connection closed after.
pub fn get_with(port: u16, method: &str, path: &str, extra: &str) -> Option<RawResponse> {
    let req =
        format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n{extra}\r\n");
    raw_http(port, req.as_bytes())
}

/// The resident set size of a process, in KiB (from /proc).
pub fn rss_kib(pid: u32) -> u64 {
    status_kib(pid, "VmRSS:")
}

/// A `Vm*` line of a process's status (`"VmHWM:"`: its peak resident set), in KiB.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}
