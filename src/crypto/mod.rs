//! Cryptographic building blocks, each byte-compatible with Better Auth 1.7:
//! random ids and tokens ([`token`]), HMAC-signed cookie values ([`signed`]) and
//! scrypt password hashes ([`password`]). Nothing here knows about HTTP or storage.

pub mod password;
pub mod signed;
pub mod strength;
pub mod token;
