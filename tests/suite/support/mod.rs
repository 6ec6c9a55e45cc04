//! The fixtures and helpers shared by the whole suite, one copy each.

pub mod app;
pub mod process;

pub use app::*;
