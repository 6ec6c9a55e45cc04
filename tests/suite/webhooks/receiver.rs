//! Webhook receivers for the tests: a well-behaved one that records what it gets and
//! answers a chosen status, and hostile ones speaking raw TCP.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

/// One delivery as received.
#[derive(Debug, Clone)]
pub struct Got {
    pub id: String,
    pub timestamp: String,
    pub signature: String,
    pub content_type: String,
    pub body: String,
}

#[derive(Clone, Default)]
pub struct Receiver {
    pub got: Arc<Mutex<Vec<Got>>>,
    pub status: Arc<Mutex<u16>>,
}

impl Receiver {
    /// Starts a receiver answering `status`; its URL.
    pub async fn start(status: u16) -> (Self, String) {
        let r = Receiver {
            status: Arc::new(Mutex::new(status)),
            ..Default::default()
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(take))
            .with_state(r.clone());
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", l.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(l, app).await });
        (r, url)
    }

    pub fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    pub fn answer(&self, status: u16) {
        *self.status.lock().unwrap() = status;
    }
}

async fn take(State(r): State<Receiver>, h: HeaderMap, body: Bytes) -> StatusCode {
    let header = |n: &str| {
        h.get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    r.got.lock().unwrap().push(Got {
        id: header("webhook-id"),
        timestamp: header("webhook-timestamp"),
        signature: header("webhook-signature"),
        content_type: header("content-type"),
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::from_u16(*r.status.lock().unwrap()).unwrap()
}

/// How a hostile receiver behaves once it has read the request head.
#[derive(Debug, Clone, Copy)]
pub enum Hostile {
    /// `307` to an internal address.
    RedirectInternal,
    /// `200` then an endless body (a gigabyte and more).
    HugeBody,
    /// Reads the request and never answers.
    Silent,
    /// Starts an answer and closes mid-way.
    CloseMidResponse,
    /// Sends its status line one byte a second.
    SlowHeaders,
}

/// Starts a hostile receiver; its URL and a counter of connections it took.
pub async fn hostile(kind: Hostile) -> (String, Arc<Mutex<usize>>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(0usize));
    let counter = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut s, _)) = l.accept().await else {
                return;
            };
            *counter.lock().unwrap() += 1;
            tokio::spawn(async move {
                let mut buf = vec![0u8; 65536];
                let _ = s.read(&mut buf).await;
                match kind {
                    Hostile::RedirectInternal => {
                        let _ = s
                            .write_all(b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://169.254.169.254/latest/meta-data/\r\ncontent-length: 0\r\n\r\n")
                            .await;
                    }
                    Hostile::HugeBody => {
                        let _ = s
                            .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 1073741824\r\n\r\n")
                            .await;
                        let chunk = vec![b'x'; 65536];
                        while s.write_all(&chunk).await.is_ok() {}
                    }
                    Hostile::Silent => {
                        tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
                    }
                    Hostile::CloseMidResponse => {
                        let _ = s.write_all(b"HTTP/1.1 200 O").await;
                    }
                    Hostile::SlowHeaders => {
                        for b in b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n" {
                            if s.write_all(&[*b]).await.is_err() {
                                return;
                            }
                            tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                        }
                    }
                }
            });
        }
    });
    (url, seen)
}
