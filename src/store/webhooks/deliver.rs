//! One delivery: a signed POST to one endpoint, judged by its status alone. A 2xx is
//! success; any other status, a redirect (never followed: a receiver cannot send the
//! event, or the client, elsewhere), a refused or reset connection or `webhooks.timeout`
//! passing is a failure. The response body is never read, so a receiver answering
//! gigabytes costs nothing.

use std::time::{Duration, Instant};

use secrecy::{ExposeSecret, SecretSlice};

use super::sign::signature;

/// A configured receiver, ready to send to.
pub struct Target {
    /// Its configured id (or index): metrics label and `delivered` entry.
    pub id: String,
    url: reqwest::Url,
    key: SecretSlice<u8>,
    events: Vec<String>,
}

impl Target {
    /// A receiver of `events` (empty or `"*"`: all) at `url`, signing with `key`.
    pub fn new(id: String, url: &str, key: Vec<u8>, events: Vec<String>) -> Result<Self, String> {
        let url = reqwest::Url::parse(url).map_err(|e| format!("webhook endpoint {id}: {e}"))?;
        Ok(Self {
            id,
            url,
            key: key.into(),
            events,
        })
    }

    /// Whether it receives events of type `kind`.
    pub fn wants(&self, kind: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == "*" || e == kind)
    }
}

/// How one delivery ended (a fixed word: a metrics label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// A 2xx.
    Success,
    /// Any other status but a redirect.
    Status,
    /// A 3xx: not followed.
    Redirect,
    /// No answer within the timeout.
    Timeout,
    /// The connection could not be made.
    Connect,
    /// The connection failed otherwise (reset, malformed answer).
    Failed,
}

impl Outcome {
    /// The metrics label.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Status => "status",
            Outcome::Redirect => "redirect",
            Outcome::Timeout => "timeout",
            Outcome::Connect => "connect",
            Outcome::Failed => "failed",
        }
    }
}

/// The HTTP client deliveries share: no redirects, every attempt bounded by `timeout`.
pub fn client(timeout: Duration, concurrency: usize) -> Result<reqwest::Client, String> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(timeout)
        .connect_timeout(timeout)
        .pool_max_idle_per_host(concurrency)
        .user_agent(concat!("sessiond-webhooks/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| format!("webhooks: cannot build the HTTP client: {e}"))
}

/// POSTs `body` as event `id` to `target`, signed at `timestamp` (unix seconds).
pub async fn send(
    client: &reqwest::Client,
    target: &Target,
    id: &str,
    timestamp: i64,
    body: String,
) -> Outcome {
    let started = Instant::now();
    let sig = signature(target.key.expose_secret(), id, timestamp, &body);
    let sent = client
        .post(target.url.clone())
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", timestamp.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .send()
        .await;
    let outcome = match sent {
        // The body is dropped unread (the connection with it).
        Ok(r) if r.status().is_success() => Outcome::Success,
        Ok(r) if r.status().is_redirection() => Outcome::Redirect,
        Ok(_) => Outcome::Status,
        Err(e) if e.is_timeout() => Outcome::Timeout,
        Err(e) if e.is_connect() => Outcome::Connect,
        Err(_) => Outcome::Failed,
    };
    crate::metrics::webhook_delivery(&target.id, outcome.as_str(), started.elapsed());
    outcome
}
