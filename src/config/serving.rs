//! The serving options: forward auth, the rate limiter, HTTP server limits, metrics, the
//! operations listener and logs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The forward-auth endpoint (nginx `auth_request`, Traefik ForwardAuth, Caddy
/// `forward_auth`, Envoy `ext_authz`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwardAuthSettings {
    /// Serve the endpoint.
    pub enabled: bool,
    /// Its path (outside `base_path`).
    pub path: String,
    /// Answer signed-out requests with a 302 to `sign_in_url` instead of 401 (also per
    /// request with `?redirect=1`).
    pub redirect: bool,
    /// Where redirects go; the original URL is added as the `redirect_param` query parameter.
    pub sign_in_url: String,
    /// Name of the query parameter carrying the original URL.
    pub redirect_param: String,
    /// Response header carrying the user id.
    pub header_user_id: String,
    /// Response header carrying the email.
    pub header_email: String,
    /// Response header carrying the display name (percent-encoded when not ASCII).
    pub header_name: String,
    /// Response header carrying the session id.
    pub header_session_id: String,
    /// Response header carrying the session expiry (ISO 8601).
    pub header_expires_at: String,
    /// A JWT for the upstream on 200 answers.
    pub jwt: super::ForwardAuthJwtSettings,
}

impl Default for ForwardAuthSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            path: "/forward-auth".into(),
            redirect: false,
            sign_in_url: String::new(),
            redirect_param: "rd".into(),
            header_user_id: "X-Auth-User-Id".into(),
            header_email: "X-Auth-Email".into(),
            header_name: "X-Auth-Name".into(),
            header_session_id: "X-Auth-Session-Id".into(),
            header_expires_at: "X-Auth-Expires-At".into(),
            jwt: super::ForwardAuthJwtSettings::default(),
        }
    }
}

/// Better Auth's `rateLimit.*`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitSettings {
    /// Limit requests per client address and path. Unset: on in production only (as
    /// Better Auth does).
    pub enabled: Option<bool>,
    /// Default window (s).
    pub window: u64,
    /// Default requests per window.
    pub max: u64,
    /// `memory` (per process, sliding) or `secondary-storage` (Redis, shared by replicas,
    /// fixed window). Empty: `secondary-storage` when Redis is configured, else `memory`.
    pub storage: RateLimitStorage,
    /// Per-path rules (exact path under the base path, or a `*` glob), overriding the
    /// defaults and the built-in sign-in rule.
    pub custom_rules: BTreeMap<String, RateLimitRule>,
    /// What a limited request gets while the shared counter (Redis) cannot be reached.
    pub on_store_failure: OnStoreFailure,
}

/// Where the rate limiter counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
pub enum RateLimitStorage {
    /// Empty: Redis when Redis is configured (`redis.url`, `sentinel` or `cluster`), else memory.
    #[default]
    #[serde(rename = "")]
    Auto,
    /// In this process (the window slides with each allowed request).
    #[serde(rename = "memory")]
    Memory,
    /// In Redis, shared by every replica (fixed window).
    #[serde(rename = "secondary-storage")]
    SecondaryStorage,
}

one_of!(RateLimitStorage, exact, "memory or secondary-storage", {
    "" => Auto,
    "memory" => Memory,
    "secondary-storage" => SecondaryStorage,
});

/// The rate limiter's answer when its shared counter is unreachable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OnStoreFailure {
    /// Refuse (503) the routes that check credentials (sign-in, sign-up,
    /// change-password: 3 per 10 s rules and stricter), let the rest through.
    #[default]
    ClosedForCredentials,
    /// Refuse every limited request.
    Closed,
    /// Let every request through (logged).
    Open,
}

impl Default for RateLimitSettings {
    fn default() -> Self {
        Self {
            enabled: None,
            window: 10,
            max: 100,
            storage: RateLimitStorage::Auto,
            custom_rules: BTreeMap::new(),
            on_store_failure: OnStoreFailure::ClosedForCredentials,
        }
    }
}

/// One rate-limit rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimitRule {
    /// Window (s).
    #[serde(default = "ten")]
    pub window: u64,
    /// Requests per window.
    #[serde(default = "hundred")]
    pub max: u64,
    /// `false` exempts the path from limiting.
    #[serde(default = "super::yes")]
    pub enabled: bool,
}

fn ten() -> u64 {
    10
}

fn hundred() -> u64 {
    100
}

/// HTTP server limits.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSettings {
    /// Seconds a request may take before it is answered 503.
    pub request_timeout: u64,
    /// Largest accepted request body, in bytes.
    pub body_limit: usize,
    /// Seconds in-flight requests get to finish after SIGTERM.
    pub shutdown_grace: u64,
    /// Largest request head (request line and headers, cookies included), in bytes; 431
    /// beyond. Node's default, which Better Auth apps already live with.
    pub max_header_bytes: usize,
    /// Seconds a client has to send a whole request head once it has started one.
    pub header_read_timeout: u64,
    /// Seconds an idle keep-alive connection is kept open (and a stalled response write).
    pub idle_timeout: u64,
    /// Open connections at most; beyond, the longest-idle ones are closed to admit new
    /// ones. Lowered to fit the process's file descriptor limit.
    pub max_connections: usize,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            request_timeout: 30,
            body_limit: 65_536,
            shutdown_grace: 30,
            max_header_bytes: 16_384,
            header_read_timeout: 10,
            idle_timeout: 75,
            max_connections: 1_024,
        }
    }
}

/// Prometheus metrics.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct MetricsSettings {
    /// Record and serve `/metrics`.
    pub enabled: bool,
}

impl Default for MetricsSettings {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Where the operations endpoints are served: `/metrics`, `/openapi.json` and `/readyz`
/// with each check's detail. `/healthz` and a bare `/readyz` status are always on the main
/// listener, for probes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct OpsSettings {
    /// `host:port` of a private listener serving them (and `/healthz`); empty: none.
    #[serde(deserialize_with = "empty_is_none", serialize_with = "none_is_empty")]
    pub listen: Option<ListenAddr>,
    /// Serve them on the main listener too. Unset: yes in development, no in production.
    pub on_main_listener: Option<bool>,
}

/// A listen address, `host:port`: an IP address or a name resolved when binding, and a
/// port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct ListenAddr(String);

impl ListenAddr {
    /// The address as written, for binding.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.rsplit_once(':') {
            // A host name, an IPv4 address or a bracketed IPv6 address; never a URL.
            Some((host, port))
                if !host.is_empty()
                    && host
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"-.[]:".contains(&b))
                    && port.parse::<u16>().is_ok() =>
            {
                Ok(Self(s.to_owned()))
            }
            _ => Err(format!("must be host:port (127.0.0.1:9464), not {s:?}")),
        }
    }
}

impl<'de> Deserialize<'de> for ListenAddr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// An optional value written as empty text when absent.
pub(super) fn empty_is_none<'de, D, T>(d: D) -> Result<Option<T>, D::Error>
where
    D: serde::Deserializer<'de>,
    T: std::str::FromStr<Err = String>,
{
    match Option::<String>::deserialize(d)? {
        Some(s) if !s.is_empty() => s.parse().map(Some).map_err(serde::de::Error::custom),
        _ => Ok(None),
    }
}

/// The other half of [`empty_is_none`].
pub(super) fn none_is_empty<S: serde::Serializer>(
    v: &Option<ListenAddr>,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.serialize_str(v.as_ref().map_or("", ListenAddr::as_str))
}

/// Logging settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `tracing` filter, e.g. `info` or `sessiond=debug`.
    pub level: String,
    /// `json`, `pretty`, or empty: JSON in production, pretty otherwise.
    pub format: LogFormat,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Empty: JSON in production, pretty otherwise.
    #[default]
    #[serde(rename = "")]
    Auto,
    /// JSON lines.
    Json,
    /// Human-readable text (also spelled `text`).
    Pretty,
}

one_of!(LogFormat, exact, "json, pretty or text", {
    "" => Auto,
    "json" => Json,
    "pretty" => Pretty,
    "text" => Pretty,
});

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            level: "info".into(),
            format: LogFormat::Auto,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ListenAddr;

    #[test]
    fn a_listen_address_is_host_and_port_never_a_url() {
        for ok in [
            "127.0.0.1:9464",
            "localhost:9464",
            "[::1]:9464",
            "0.0.0.0:0",
        ] {
            assert!(ok.parse::<ListenAddr>().is_ok(), "{ok}");
        }
        for bad in [
            "http://127.0.0.1:9464",
            "127.0.0.1",
            ":9464",
            "127.0.0.1:99999",
            "a b:1",
            "u@h:1",
        ] {
            assert!(bad.parse::<ListenAddr>().is_err(), "{bad}");
        }
    }
}
