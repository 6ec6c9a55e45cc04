//! The HTTP/1.1 server: accepts connections up to a cap and closes the ones that only hold
//! resources.
//!
//! - **Connections**: at most `max_connections` (lowered at start to fit the process's file
//!   descriptor limit). At the cap a new connection closes the longest-idle one — between
//!   requests, or still sending its request head or body — so that idle or half-sent
//!   connections can never lock other clients out (one unanswered for 250 ms goes before
//!   one that has been answered, so that a flood of silent connections closes its own
//!   rather than a proxy's kept-alive ones); failing that, the one whose request has
//!   run longest, if longer than `header_read_timeout`; when every connection is in the
//!   middle of a recent request, the new one is closed instead. A connection carrying an
//!   event stream (the revocation feed) goes last: only when nothing else can, the oldest
//!   stream is closed (its client resumes with `Last-Event-ID`).
//! - **Time**: a request head must be complete `header_read_timeout` after its first byte;
//!   an answer must be taken by the client with no pause longer than `header_read_timeout`
//!   (a client that stops reading would otherwise keep the answer in memory); a connection
//!   idle for `idle_timeout` is closed; one carrying an event stream is not idle (its
//!   pings keep it moving, and a client that stops reading them is closed as above).
//! - **Bytes**: a request head holds at most `max_header_bytes` and 100 header lines
//!   (431 beyond); a connection's buffers never grow past that.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::ConnectInfo;
use axum::Router;
use hyper_util::rt::TokioIo;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify};
use tower::ServiceExt;

/// The server's limits.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Open connections at most.
    pub max_connections: usize,
    /// Time to send a request head once started, or to take an answer that stopped moving.
    pub header_read_timeout: Duration,
    /// Time a connection may stay idle.
    pub idle_timeout: Duration,
    /// Largest request head, in bytes.
    pub max_header_bytes: usize,
}

/// Header lines per request at most.
const MAX_HEADERS: usize = 100;
/// Descriptors kept for everything but client connections: database and Redis
/// connections, listeners, files.
const RESERVED_FDS: u64 = 64;

impl Limits {
    /// `max_connections`, lowered to what the descriptor limit allows after `reserved`
    /// descriptors for the process's own connections; at least one.
    pub fn fit_descriptors(mut self, reserved: u64) -> Self {
        if let Ok((soft, _)) = rlimit::Resource::NOFILE.get() {
            let room = soft.saturating_sub(reserved.max(RESERVED_FDS));
            let room = usize::try_from(room).unwrap_or(usize::MAX).max(1);
            if room < self.max_connections {
                tracing::warn!(
                    configured = self.max_connections,
                    allowed = room,
                    "server.max_connections lowered to fit the file descriptor limit"
                );
                self.max_connections = room;
            }
        }
        self
    }
}

/// What a connection is doing, for timeouts and eviction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Between requests (or writing an answer already handed over).
    Idle = 0,
    /// Receiving a request head.
    Head = 1,
    /// A request is being handled.
    Busy = 2,
    /// A request's body is being received.
    Body = 3,
}

/// One open connection: its phase and since when (ms since the server started, packed
/// into one atomic), and a switch to close it.
struct Conn {
    state: AtomicU64,
    /// 0, or 1 + the ms since when a write has been waiting for the client to read.
    stalled: AtomicU64,
    kill: Notify,
    /// The registry's start, so that marking a phase touches nothing shared.
    epoch: Instant,
    /// Event streams being answered on it.
    streams: AtomicU32,
    /// Some bytes have arrived on it.
    heard: AtomicBool,
    /// A request on it has been answered.
    served: AtomicBool,
}

impl Conn {
    fn set(&self, phase: Phase, now_ms: u64) {
        self.state
            .store((now_ms << 2) | phase as u64, Ordering::Relaxed);
    }

    /// Marks `phase` as beginning now.
    fn enter(&self, phase: Phase) {
        self.set(phase, self.now_ms());
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX >> 2)
    }

    /// Notes whether a write could go out (`Ready`) or waits for the client (`Pending`).
    fn wrote<T>(&self, res: &Poll<T>) {
        let stalled = self.stalled.load(Ordering::Relaxed);
        match res {
            Poll::Pending if stalled == 0 => {
                self.stalled.store(self.now_ms() + 1, Ordering::Relaxed)
            }
            Poll::Ready(_) if stalled != 0 => self.stalled.store(0, Ordering::Relaxed),
            _ => {}
        }
    }

    /// Since when (ms) a write has been waiting, if one is.
    fn stalled_since(&self) -> Option<u64> {
        self.stalled.load(Ordering::Relaxed).checked_sub(1)
    }

    fn get(&self) -> (Phase, u64) {
        let v = self.state.load(Ordering::Relaxed);
        let phase = match v & 3 {
            1 => Phase::Head,
            2 => Phase::Busy,
            3 => Phase::Body,
            _ => Phase::Idle,
        };
        (phase, v >> 2)
    }
}

/// A request's handle on its connection, in its extensions: the body reader marks the
/// time spent waiting for the body, which makes the connection evictable at the cap.
#[derive(Clone)]
pub struct ConnHandle(Arc<Conn>);

impl ConnHandle {
    /// The request's body is being waited for.
    pub fn receiving_body(&self) {
        self.0.enter(Phase::Body);
    }

    /// The body is in: the request is being handled.
    pub fn body_received(&self) {
        self.0.enter(Phase::Busy);
    }

    /// The answer is an event stream: until the guard drops, the connection is not idle
    /// and is evicted only as a last resort.
    pub fn streaming(&self) -> Streaming {
        self.0.streams.fetch_add(1, Ordering::Relaxed);
        Streaming(self.0.clone())
    }
}

/// An event stream in progress on a connection.
pub struct Streaming(Arc<Conn>);

impl Drop for Streaming {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

/// How long a connection may go unanswered before, at the cap, it is closed ahead of
/// connections that have been answered (ms). A client's first request is read within
/// milliseconds of its connection being taken in.
const UNANSWERED_GRACE_MS: u64 = 250;

/// The open connections.
struct Registry {
    conns: Mutex<HashMap<u64, Arc<Conn>>>,
    next_id: AtomicU64,
    epoch: Instant,
    cap: usize,
    /// Woken whenever a connection ends (shutdown waits for none left).
    ended: Notify,
}

impl Registry {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX >> 2)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Conn>>> {
        match self.conns.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Registers a new connection, first closing one at the cap: the longest idle (or
    /// still sending its head or body) of those unanswered for [`UNANSWERED_GRACE_MS`],
    /// else of all, else the one whose request has run longest if that is longer than
    /// `slow_ms`; `None` when every open connection is busy with a recent request.
    fn admit(&self, slow_ms: u64) -> Option<(u64, Arc<Conn>)> {
        let now = self.now_ms();
        let mut conns = self.lock();
        if conns.len() >= self.cap {
            // Among connections not busy, one never answered in [`UNANSWERED_GRACE_MS`]
            // goes first: a flood of connections that send nothing (or trickle a head)
            // then closes its own, not the ones a proxy keeps open between the requests it
            // forwards. Younger ones are not suspects: in a burst of new connections, each
            // has its request waiting to be read.
            let oldest = |busy: bool| {
                conns
                    .iter()
                    .filter(|(_, c)| c.streams.load(Ordering::Relaxed) == 0)
                    .map(|(id, c)| (*id, c.get(), c.served.load(Ordering::Relaxed)))
                    .filter(|(_, (phase, since), _)| {
                        (*phase == Phase::Busy) == busy
                            && (!busy || now.saturating_sub(*since) > slow_ms)
                    })
                    .min_by_key(|(_, (_, since), served)| {
                        let suspect = !served && now.saturating_sub(*since) >= UNANSWERED_GRACE_MS;
                        (!suspect, *since)
                    })
                    .map(|(id, _, _)| id)
            };
            let oldest_stream = || {
                conns
                    .iter()
                    .filter(|(_, c)| c.streams.load(Ordering::Relaxed) > 0)
                    .min_by_key(|(_, c)| c.get().1)
                    .map(|(id, _)| *id)
            };
            let victim = oldest(false)
                .or_else(|| oldest(true))
                .or_else(oldest_stream)?;
            if let Some(c) = conns.remove(&victim) {
                c.kill.notify_one();
                crate::metrics::connection_evicted();
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let conn = Arc::new(Conn {
            state: AtomicU64::new(0),
            stalled: AtomicU64::new(0),
            kill: Notify::new(),
            epoch: self.epoch,
            streams: AtomicU32::new(0),
            heard: AtomicBool::new(false),
            served: AtomicBool::new(false),
        });
        conn.set(Phase::Idle, now);
        conns.insert(id, conn.clone());
        crate::metrics::open_connections(conns.len());
        Some((id, conn))
    }

    fn remove(&self, id: u64) {
        let mut conns = self.lock();
        conns.remove(&id);
        crate::metrics::open_connections(conns.len());
        drop(conns);
        self.ended.notify_waiters();
    }

    fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
}

/// The socket, noting when a request head starts arriving on an idle connection.
struct Watched {
    stream: TcpStream,
    conn: Arc<Conn>,
}

impl AsyncRead for Watched {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let res = Pin::new(&mut self.stream).poll_read(cx, buf);
        if buf.filled().len() > before && self.conn.get().0 == Phase::Idle {
            self.conn.enter(Phase::Head);
            self.conn.heard.store(true, Ordering::Relaxed);
        }
        res
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.stream).poll_write(cx, buf);
        self.conn.wrote(&res);
        res
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let res = Pin::new(&mut self.stream).poll_write_vectored(cx, bufs);
        self.conn.wrote(&res);
        res
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// Serves `router` on `listener` until `stop` turns true, then lets open connections
/// finish their request (the caller bounds how long).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) -> io::Result<()> {
    let registry = Arc::new(Registry {
        conns: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(0),
        epoch: Instant::now(),
        cap: limits.max_connections.max(1),
        ended: Notify::new(),
    });
    let mut last_error_log: Option<Instant> = None;
    let conn_stop = stop.clone();
    let spawn = |stream: TcpStream, peer: SocketAddr| {
        let slow_ms = u64::try_from(limits.header_read_timeout.as_millis()).unwrap_or(u64::MAX);
        let Some((id, conn)) = registry.admit(slow_ms) else {
            crate::metrics::connection_refused();
            return;
        };
        tokio::spawn(connection(
            stream,
            peer,
            router.clone(),
            limits,
            (id, conn),
            registry.clone(),
            conn_stop.clone(),
        ));
    };
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.wait_for(|s| *s) => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of descriptors or memory: say so now and then, wait a little, go on.
                if last_error_log.is_none_or(|t| t.elapsed() > Duration::from_secs(10)) {
                    tracing::warn!(error = %e, "cannot accept connections");
                    last_error_log = Some(Instant::now());
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        spawn(stream, peer);
    }
    // Clients that connected before the stop wait in the kernel's backlog: closing the
    // listener would reset them, so they are taken in and served like the others (no more
    // than the connection cap: a flood of connects must not keep shutdown accepting).
    let listener = listener.into_std()?;
    for _ in 0..registry.cap {
        let Ok((stream, peer)) = listener.accept() else {
            break;
        };
        match stream
            .set_nonblocking(true)
            .and_then(|()| TcpStream::from_std(stream))
        {
            Ok(stream) => spawn(stream, peer),
            Err(_) => continue,
        }
    }
    drop(listener);
    while !registry.is_empty() {
        let ended = registry.ended.notified();
        if registry.is_empty() {
            break;
        }
        ended.await;
    }
    Ok(())
}

/// How long shutdown waits for the first bytes of a connection accepted but not yet heard
/// from: a client that connected just before SIGTERM has usually sent its request already.
const FIRST_REQUEST_GRACE_MS: u64 = 250;

/// Whether shutdown (asked at `asked` ms) may tell hyper to close the connection now:
/// not while a request head is arriving (hyper would drop it unread; the header timeout
/// bounds the wait), nor within the grace for a connection that has sent nothing yet.
/// A request being handled is finished by hyper itself after it is told.
fn may_close(conn: &Conn, asked: u64, now: u64) -> bool {
    match conn.get().0 {
        Phase::Head => false,
        Phase::Idle if !conn.heard.load(Ordering::Relaxed) => {
            now.saturating_sub(asked) >= FIRST_REQUEST_GRACE_MS
        }
        _ => true,
    }
}

/// Serves one connection until it ends, times out, is evicted, or shutdown closes it.
async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    (id, conn): (u64, Arc<Conn>),
    registry: Arc<Registry>,
    mut stop: watch::Receiver<bool>,
) {
    let (busy, idle) = (conn.clone(), conn.clone());
    // Whether the request being served still has body bytes unread (see `unread`).
    let unread = Arc::new(super::unread::Unread::default());
    let unread_after = unread.clone();
    let service = router
        .map_request(move |mut req: axum::http::Request<hyper::body::Incoming>| {
            busy.enter(Phase::Busy);
            let ext = req.extensions_mut();
            ext.insert(ConnectInfo(peer));
            ext.insert(ConnHandle(busy.clone()));
            super::unread::track(req, &unread)
        })
        .map_future(move |fut| {
            let idle = idle.clone();
            let unread = unread_after.clone();
            async move {
                let mut res = fut.await;
                if let Ok(res) = res.as_mut() {
                    if unread.pending() {
                        // Waiting for the rest of a body, as a body reader does: evictable
                        // at the connection cap.
                        idle.enter(Phase::Body);
                    }
                    super::unread::finish(res, &unread).await;
                }
                idle.served.store(true, Ordering::Relaxed);
                idle.enter(Phase::Idle);
                res
            }
        });
    let io = TokioIo::new(Watched {
        stream,
        conn: conn.clone(),
    });
    // No timer for hyper: its header timeout would arm a timer for every request; the
    // watchdog below enforces the same limits once a tick.
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .max_buf_size(limits.max_header_bytes.max(8192))
        .max_headers(MAX_HEADERS);
    let served = builder.serve_connection(io, TowerToHyperService::new(service));
    // The connection (and its socket) ends with this block.
    {
        tokio::pin!(served);
        let tick = (limits.header_read_timeout.min(limits.idle_timeout) / 4)
            .clamp(Duration::from_millis(100), Duration::from_secs(1));
        let mut ticks = tokio::time::interval(tick);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // Since when (ms) shutdown has been asked, and whether hyper has been told.
        let mut stopping: Option<u64> = None;
        let mut closing = false;
        loop {
            tokio::select! {
                _ = served.as_mut() => break,
                () = conn.kill.notified() => break,
                _ = stop.wait_for(|s| *s), if stopping.is_none() => {
                    let now = registry.now_ms();
                    stopping = Some(now);
                    if may_close(&conn, now, now) {
                        closing = true;
                        served.as_mut().graceful_shutdown();
                    }
                }
                _ = ticks.tick() => {
                    let (phase, since) = conn.get();
                    let now = registry.now_ms();
                    if let Some(asked) = stopping.filter(|_| !closing) {
                        if may_close(&conn, asked, now) {
                            closing = true;
                            served.as_mut().graceful_shutdown();
                        }
                    }
                    if conn.stalled_since().is_some_and(|t| {
                        Duration::from_millis(now.saturating_sub(t)) > limits.header_read_timeout
                    }) {
                        crate::metrics::write_timeout();
                        break;
                    }
                    let age = Duration::from_millis(now.saturating_sub(since));
                    let expired = match phase {
                        Phase::Head => age > limits.header_read_timeout,
                        Phase::Idle => {
                            age > limits.idle_timeout
                                && conn.streams.load(Ordering::Relaxed) == 0
                        }
                        // The body reader answers 408 itself.
                        Phase::Busy | Phase::Body => false,
                    };
                    if expired {
                        if phase == Phase::Head {
                            crate::metrics::header_timeout();
                        }
                        break;
                    }
                }
            }
        }
    }
    // Eviction may have removed it already; removing again is harmless.
    registry.remove(id);
}
