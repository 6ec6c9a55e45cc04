//! Session tokens and row ids: 32 characters of `[a-zA-Z0-9]` drawn from the OS CSPRNG
//! with rejection sampling, exactly as Better Auth's `generateId(32)`.
//!
//! 62 symbols × 32 characters ≈ 190.5 bits of entropy.

use rand::rngs::OsRng;
use rand::RngCore;

/// Better Auth's id alphabet, in its order (the order matters for the vectors).
pub const ALPHABET: &[u8; 62] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Length of session tokens and default ids.
pub const ID_LENGTH: usize = 32;

/// Bytes at or above this are skipped so that `byte % 62` has no bias (248 = 4 × 62).
const REJECT_FROM: u8 = 248;

/// Generates a fresh 32-character id or token from the OS CSPRNG.
pub fn generate_id() -> String {
    generate_with(ID_LENGTH, |buf| OsRng.fill_bytes(buf))
}

/// Generates `len` characters, drawing random bytes from `fill` in buffers of `2 × len`,
/// refilled when exhausted; Better Auth's exact algorithm, so injected bytes reproduce
/// its output.
pub fn generate_with(len: usize, mut fill: impl FnMut(&mut [u8])) -> String {
    let mut out = String::with_capacity(len);
    let mut buf = vec![0u8; len * 2];
    while out.len() < len {
        fill(&mut buf);
        for &b in &buf {
            if b < REJECT_FROM {
                if let Some(&c) = ALPHABET.get(usize::from(b % 62)) {
                    out.push(char::from(c));
                }
                if out.len() == len {
                    break;
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_ids_use_the_alphabet_and_length() {
        let a = generate_id();
        let b = generate_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| ALPHABET.contains(&c)));
        assert_ne!(a, b);
    }
}
