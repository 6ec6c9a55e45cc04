//! Cryptographic building blocks, each byte-compatible with Better Auth 1.7:
//! random ids and tokens ([`token`]), HMAC-signed cookie values ([`signed`]), scrypt
//! password hashes ([`password`]), the cookie-cache codecs ([`cache`]) and the secret
//! versions they use ([`secrets`]). Nothing here knows about HTTP or storage.

pub mod cache;
pub mod jwk;
pub mod password;
pub mod scratch;
pub mod secrets;
pub mod signed;
pub mod strength;
pub mod symmetric;
pub mod token;
