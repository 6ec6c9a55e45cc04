//! Signed webhooks (`webhooks.*`): where lifecycle events are delivered, signed per the
//! Standard Webhooks specification, and how hard delivery tries.

use base64::Engine;
use serde::{Deserialize, Serialize};

use super::Secret;

/// The event types an endpoint may ask for (`"*"` or an empty list: all of them).
pub const EVENT_TYPES: [&str; 7] = [
    "session.created",
    "session.revoked",
    "session.refreshed",
    "user.signed_in",
    "user.sign_in_failed",
    "user.password_changed",
    "user.created",
];

/// Most endpoints configured (each event is sent to every one; metrics label them).
pub const MAX_ENDPOINTS: usize = 16;

/// Shortest signing secret, decoded: 192 bits.
pub const MIN_SECRET_BYTES: usize = 24;

/// The prefix of a signing secret, as the specification writes them.
const SECRET_PREFIX: &str = "whsec_";

/// One receiver.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhookEndpoint {
    /// Names the endpoint in metrics, logs and the row's `delivered` list; empty: its
    /// index in the list.
    pub id: String,
    /// `http://` or `https://` URL the events are POSTed to.
    pub url: String,
    /// `whsec_` and the base64 of at least 24 random bytes.
    pub secret: Secret,
    /// The event types it receives; empty or `"*"`: all.
    pub events: Vec<String>,
}

impl WebhookEndpoint {
    /// The signing key: the secret's bytes after its prefix, base64-decoded.
    pub fn key(&self) -> Result<Vec<u8>, String> {
        let raw = self.secret.expose_secret();
        let b64 = raw.strip_prefix(SECRET_PREFIX).ok_or_else(|| {
            format!("secret must start with {SECRET_PREFIX:?} followed by base64")
        })?;
        // Padded or not, as the specification's libraries accept.
        let lenient = base64::engine::GeneralPurpose::new(
            &base64::alphabet::STANDARD,
            base64::engine::GeneralPurposeConfig::new()
                .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
        );
        let key = lenient
            .decode(b64)
            .map_err(|_| format!("secret must be {SECRET_PREFIX:?} followed by base64"))?;
        if key.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "secret must decode to at least {MIN_SECRET_BYTES} bytes, not {} \
                 (e.g. \"whsec_$(openssl rand -base64 32)\")",
                key.len()
            ));
        }
        Ok(key)
    }
}

/// `webhooks.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksSettings {
    /// The receivers; empty: no webhooks.
    pub endpoints: Vec<WebhookEndpoint>,
    /// Events waiting at most; beyond it the oldest are given up (and counted).
    pub max_pending: u64,
    /// Delivery rounds per event before it is given up.
    pub max_attempts: u32,
    /// Seconds one delivery may take, connecting included.
    pub timeout: u64,
    /// Seconds between looks for due events (PostgreSQL also wakes on NOTIFY).
    pub poll_interval: u64,
    /// Deliveries in flight at once, per replica.
    pub concurrency: usize,
}

impl Default for WebhooksSettings {
    fn default() -> Self {
        Self {
            endpoints: Vec::new(),
            max_pending: 100_000,
            max_attempts: 10,
            timeout: 10,
            poll_interval: 1,
            concurrency: 16,
        }
    }
}

impl WebhooksSettings {
    /// Whether any endpoint is configured.
    pub fn enabled(&self) -> bool {
        !self.endpoints.is_empty()
    }

    /// Endpoint `i`'s id: its own, or its index.
    pub fn endpoint_id(&self, i: usize) -> String {
        match self.endpoints.get(i) {
            Some(e) if !e.id.is_empty() => e.id.clone(),
            _ => i.to_string(),
        }
    }

    /// Refuses endpoints and limits that cannot work, naming the option.
    pub(super) fn check(&self) -> Result<(), String> {
        if !self.enabled() {
            return Ok(());
        }
        if self.endpoints.len() > MAX_ENDPOINTS {
            return Err(format!("webhooks.endpoints: at most {MAX_ENDPOINTS}"));
        }
        let bounded = [
            ("max_pending", self.max_pending, 1, 100_000_000),
            ("max_attempts", u64::from(self.max_attempts), 1, 100),
            ("timeout", self.timeout, 1, 300),
            ("poll_interval", self.poll_interval, 1, 3600),
            ("concurrency", self.concurrency as u64, 1, 256),
        ];
        for (name, v, lo, hi) in bounded {
            if !(lo..=hi).contains(&v) {
                return Err(format!("webhooks.{name} must be {lo} to {hi}, not {v}"));
            }
        }
        let mut ids = std::collections::HashSet::new();
        for (i, e) in self.endpoints.iter().enumerate() {
            let id = self.endpoint_id(i);
            let at = format!("webhooks.endpoints[{i}]");
            if id.len() > 64
                || !id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
            {
                return Err(format!(
                    "{at}.id must be 1 to 64 letters, digits, '-', '_', '.' or ':', not {id:?}"
                ));
            }
            if !ids.insert(id.clone()) {
                return Err(format!("{at}.id {id:?} appears twice"));
            }
            check_url(&e.url).map_err(|m| format!("{at}.url {m}"))?;
            e.key().map_err(|m| format!("{at}.{m}"))?;
            for ev in &e.events {
                if ev != "*" && !EVENT_TYPES.contains(&ev.as_str()) {
                    return Err(format!(
                        "{at}.events: unknown event type {ev:?}; known: \"*\", {}",
                        EVENT_TYPES.map(|t| format!("{t:?}")).join(", ")
                    ));
                }
            }
        }
        Ok(())
    }
}

/// An absolute `http://` or `https://` URL with a host and no fragment.
fn check_url(raw: &str) -> Result<(), String> {
    let u = url::Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(u.scheme(), "http" | "https") {
        return Err(format!("must be http:// or https://, not {:?}", u.scheme()));
    }
    if u.host_str().is_none_or(str::is_empty) || u.fragment().is_some() {
        return Err("must name a host and hold no #fragment".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn endpoint(url: &str, secret: &str) -> WebhookEndpoint {
        WebhookEndpoint {
            url: url.into(),
            secret: secret.into(),
            ..Default::default()
        }
    }

    const GOOD: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

    #[test]
    fn endpoints_are_checked() {
        let mut s = WebhooksSettings {
            endpoints: vec![endpoint("https://hooks.example/in", GOOD)],
            ..Default::default()
        };
        assert_eq!(s.check(), Ok(()));
        s.endpoints[0].url = "ftp://x/".into();
        assert!(s.check().unwrap_err().contains("http"));
        s.endpoints[0].url = "https://hooks.example/in".into();
        s.endpoints[0].secret = "whsec_c2hvcnQ=".into();
        assert!(s.check().unwrap_err().contains("24 bytes"));
        s.endpoints[0].secret = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".into();
        assert!(s.check().unwrap_err().contains("whsec_"));
        s.endpoints[0].secret = GOOD.into();
        s.endpoints[0].events = vec!["session.deleted".into()];
        assert!(s.check().unwrap_err().contains("unknown event type"));
        s.endpoints[0].events = vec!["*".into(), "session.revoked".into()];
        s.endpoints.push(endpoint("http://10.0.0.1:8080/", GOOD));
        s.endpoints[1].id = "0".into();
        assert!(s.check().unwrap_err().contains("twice"));
        s.endpoints[1].id = "audit".into();
        assert_eq!(s.check(), Ok(()));
        assert_eq!(s.endpoint_id(0), "0");
        assert!(!format!("{s:?}").contains("MfKQ9r8"));
    }
}
