//! Cryptographic building blocks, each byte-compatible with Better Auth 1.7:
//! random ids and tokens ([`token`]), HMAC-signed cookie values ([`signed`]), scrypt
//! password hashes ([`password`]) and the cookie-cache codecs ([`cache`]). Nothing here
//! knows about HTTP or storage.

pub mod cache;
pub mod password;
pub mod signed;
pub mod strength;
pub mod token;
