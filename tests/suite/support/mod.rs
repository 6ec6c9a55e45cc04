//! The fixtures and helpers shared by the whole suite, one copy each.

pub mod app;
pub mod cluster;
mod pg;
pub mod process;
mod redis;
mod relay;
pub mod replica;
pub mod sentinel;
mod services;
pub mod vectors;

pub use self::app::*;
pub use self::pg::{admin_url, PgDb};
pub use self::redis::{
    redis_conn, redis_prefix, redis_url, shared_redis_conn, use_shared_redis, PrivateRedis,
};
pub use self::relay::Relay;
pub use self::services::{require_tool, unavailable};
