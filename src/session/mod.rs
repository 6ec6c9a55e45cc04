//! The session domain: cookies as the domain sees them ([`cookies`]), the bearer plugin's
//! rule ([`bearer`]), the lifecycle policy ([`policy`]), revocation ([`revocation`]) and
//! the service that every route calls ([`service`]). It speaks no HTTP: handlers hand it
//! what the request presented and get back a result or a [`SessionError`] and the cookie
//! operations to carry out.

pub mod api_keys;
pub mod bearer;
pub mod cookies;
pub mod error;
pub mod limits;
pub mod policy;
pub mod revocation;
pub mod revoked_log;
pub mod service;
pub mod tokens;

pub use error::SessionError;
pub use service::{ClientInfo, Current, ResolveOptions, SessionService};
