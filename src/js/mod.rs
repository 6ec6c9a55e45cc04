//! The JavaScript semantics that Better Auth's bytes depend on, so that what this service
//! writes and verifies matches what Node writes and verifies for the same inputs:
//! `JSON.stringify` ([`json`]), V8's `Date` parsing and `toISOString` ([`date`]),
//! `@better-auth/utils`' lenient base64 ([`base64`]), the text node-postgres makes of a
//! value ([`pg`]), and `trim` and `parseInt` for Better Auth's environment variables
//! ([`string`]). Pure functions of their inputs; they know nothing of sessions or cookies.

pub mod base64;
pub mod date;
pub mod json;
pub mod pg;
pub mod string;
