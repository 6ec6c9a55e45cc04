//! The integration suite, one test binary: HTTP scenarios against sessiond in-process
//! (`api`), the binary run as an operator runs it (`cli`, `bounds`, `replicas`), codecs
//! against Better Auth's vectors, configuration and packaging checks. Every fixture they
//! share (PostgreSQL databases, Redis, spawned processes, the vectors) lives once, in
//! `support`.
//!
//! One binary links the crate once instead of once per file, and makes every test share
//! the same fixtures; tests that need a process of their own spawn the sessiond binary.

// Tests may unwrap and index: a failure there is the test failing.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod support;

mod api;
mod bounds;
mod cache_codecs;
mod cli;
mod cluster;
mod codecs;
mod config;
mod kubernetes;
mod kubernetes_recipes;
mod kubernetes_run;
mod layering;
mod netfault;
mod otel;
mod packaging;
mod read_replica;
mod replicas;
mod replicas_feed;
mod replicas_limits;
mod robustness;
mod sentinel;
mod store;
mod webhooks;
