//! The session domain: cookies ([`cookies`]), the lifecycle policy
//! ([`policy`]) and the service that every route calls ([`service`]). Handlers never touch
//! the store or write cookies themselves; they call [`service::SessionService`], which
//! reads the request's cookies and collects the `Set-Cookie` lines to send back.

pub mod cookies;
pub mod limits;
pub mod policy;
pub mod revocation;
pub mod service;

pub use service::{ClientInfo, Current, ResolveOptions, SessionService};
