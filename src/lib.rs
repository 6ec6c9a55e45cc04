//! # sessiond
//!
//! A standalone HTTP service that owns user sessions and speaks Better Auth 1.7's session
//! API on the wire: the same routes, JSON, error codes, cookies (names, attributes,
//! HMAC signatures) and PostgreSQL schema, so Better Auth's client, a Better Auth app
//! sharing the database, reverse proxies and `curl` can all use it.
//!
//! # Layout
//!
//! - [`config`]: settings (defaults < TOML file < environment).
//! - [`app`]: wiring, secret resolution, serving and graceful shutdown.
//! - [`http`]: routes (one file per area), request inputs, origin check.
//! - [`session`]: the domain — records, cookies, lifecycle policy, the service.
//! - [`store`]: storage trait and its SQL implementation (PostgreSQL, SQLite); all SQL.
//! - [`crypto`]: ids and tokens, signed cookies, scrypt password hashes, the cookie-cache
//!   codecs.
//! - [`js`]: the JavaScript behaviour Better Auth's bytes depend on (`JSON.stringify`,
//!   V8 dates, lenient base64).
//! - [`clock`]: the injected time source.
//! - [`error`]: the error type and Better Auth's error body.
//!
//! # Security model
//!
//! Session tokens are 32 characters of `[a-zA-Z0-9]` from the OS CSPRNG (~190 bits).
//! The cookie carries `token.HMAC-SHA256(secret, token)`; signatures are checked in
//! constant time. Tokens are stored as-is because the schema is shared with Better Auth.
//! Cookie-bearing POSTs must come from a trusted origin. Passwords are scrypt-hashed off
//! the async runtime with bounded concurrency; unknown emails cost a hash too.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::todo)]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

pub mod app;
pub mod clock;
pub mod config;
pub mod crypto;
pub mod error;
pub mod http;
pub mod js;
pub mod metrics;
pub mod model;
pub mod session;
pub mod store;
pub mod telemetry;
