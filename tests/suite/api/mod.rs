//! HTTP-level tests: each scenario runs against a spawned sessiond on SQLite and on
//! PostgreSQL.

mod account;
mod attacks;
mod auth;
mod cookie_cache;
mod cookies;
mod cors;
mod feed;
mod feed_attacks;
mod feed_stream;
mod forward_auth;
mod hardening;
mod lifecycle;
mod openapi;
mod ops;
mod plugins;
mod proxies;
mod redis;
mod revocation;
mod rotation;
mod schema;
mod security;
mod sessions;
mod vectors;
mod wire;
