//! # sessiond
//!
//! A standalone HTTP service that owns user sessions and speaks Better Auth 1.7's session
//! API on the wire: the same routes, JSON, error codes, cookies (names, attributes,
//! HMAC signatures) and PostgreSQL schema, so Better Auth's client, a Better Auth app
//! sharing the database, reverse proxies and `curl` can all use it.
//!
//! # Layout
//!
//! Arrows point one way: `main → app → http → session → store`, and each of them may use
//! `model`, `crypto`, `config`, `clock` and `metrics` below. `docs/architecture.md` has
//! the request flow and where each concern lives.
//!
//! - [`config`]: settings (defaults < TOML file < environment), validated once.
//! - [`app`]: wiring, secret resolution, serving and graceful shutdown.
//! - [`http`]: routes (one file per area), request inputs, origin check, `Set-Cookie`
//!   writing, and [`error`], the mapping of every error to Better Auth's wire form.
//! - [`session`]: the domain — cookies as operations, lifecycle policy, revocation, the
//!   service; no HTTP.
//! - [`store`]: storage traits and their implementations (memory, PostgreSQL, SQLite,
//!   Redis); every SQL statement, Redis command and network loop.
//! - [`model`]: the user and session records, shared by the domain and the stores.
//! - [`crypto`]: ids and tokens, signed cookies, password hashes, secret strength, the
//!   cookie-cache codecs.
//! - [`js`]: the JavaScript behaviour Better Auth's bytes depend on (`JSON.stringify`,
//!   V8 dates, lenient base64, `trim` and `parseInt`).
//! - [`clock`]: the injected time source.
//!
//! # Security model
//!
//! Session tokens are 32 characters of `[a-zA-Z0-9]` from the OS CSPRNG (~190 bits).
//! The cookie carries `token.HMAC-SHA256(secret, token)`; signatures are checked in
//! constant time. Tokens are stored as-is because the schema is shared with Better Auth.
//! Cookie-bearing POSTs must come from a trusted origin. Passwords are scrypt-hashed off
//! the async runtime with bounded concurrency; unknown emails cost a hash too.

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
