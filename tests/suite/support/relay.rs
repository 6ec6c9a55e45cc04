//! A TCP relay in front of PostgreSQL or Redis, to cut or stall the link under a running
//! sessiond.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

/// A TCP relay (to PostgreSQL or Redis): 0 = pass, 1 = refuse (down), 2 = hold every
/// connection and forward nothing (a stall: a partition, a stuck middlebox), 3 = stall only
/// the connections that subscribed (sent `LISTEN` or `SUBSCRIBE`: the revocation feeds),
/// while the others pass.
pub struct Relay {
    pub port: u16,
    mode: Arc<AtomicU8>,
}

impl Relay {
    pub async fn start(target: u16) -> Self {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let mode = Arc::new(AtomicU8::new(0));
        let m = mode.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut inbound, _)) = listener.accept().await else {
                    return;
                };
                let m = m.clone();
                tokio::spawn(async move {
                    match m.load(Ordering::SeqCst) {
                        1 => return,
                        2 => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                        _ => {}
                    }
                    let Ok(mut outbound) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (mut ri, mut wi) = inbound.split();
                    let (mut ro, mut wo) = outbound.split();
                    let subscriber = std::sync::atomic::AtomicBool::new(false);
                    let passing = || match m.load(Ordering::SeqCst) {
                        0 => true,
                        3 => !subscriber.load(Ordering::SeqCst),
                        _ => false,
                    };
                    let up = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = ri.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            let text = String::from_utf8_lossy(&buf[..n]).to_ascii_uppercase();
                            if text.contains("SUBSCRIBE") || text.contains("LISTEN") {
                                subscriber.store(true, Ordering::SeqCst);
                            }
                            while !passing() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if wo.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let down = async {
                        let mut buf = vec![0u8; 16384];
                        loop {
                            let n = ro.read(&mut buf).await.unwrap_or(0);
                            if n == 0 {
                                return;
                            }
                            while !passing() {
                                tokio::time::sleep(Duration::from_millis(20)).await;
                            }
                            if wi.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    let cut = async {
                        while m.load(Ordering::SeqCst) != 1 {
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                    };
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                        _ = cut => {}
                    }
                });
            }
        });
        Self { port, mode }
    }

    pub fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
}
