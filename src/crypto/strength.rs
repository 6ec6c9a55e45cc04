//! Whether a signing secret could be guessed: rules a random secret passes and the
//! secrets people type (runs, repeats, placeholders) do not.

/// Minimum secret length accepted in production.
pub const MIN_SECRET_LEN: usize = 32;

/// Words of placeholder secrets copied from examples ("change-me", "your-secret-key").
const PLACEHOLDERS: [&str; 17] = [
    "changeme",
    "change-me",
    "change_me",
    "changethis",
    "change-this",
    "replaceme",
    "replace-me",
    "yoursecret",
    "your-secret",
    "secretkey",
    "secret-key",
    "supersecret",
    "super-secret",
    "placeholder",
    "password",
    "insecure",
    "better-auth-secret",
];

/// Keyboard rows: neighbours on one count as a run, as consecutive characters do.
const ROWS: [&str; 4] = ["1234567890", "qwertyuiop", "asdfghjkl", "zxcvbnm"];

/// Whether `b` follows `a` in a run: the same or a neighbouring character, ignoring case
/// (`|a − b| ≤ 1`), or neighbours on a keyboard row, in either direction.
fn follows(a: char, b: char) -> bool {
    let (a, b) = (a.to_ascii_lowercase(), b.to_ascii_lowercase());
    u32::from(a).abs_diff(u32::from(b)) <= 1
        || ROWS.iter().any(|row| {
            row.find(a)
                .zip(row.find(b))
                .is_some_and(|(i, j)| i.abs_diff(j) == 1)
        })
}

/// Why a secret is too weak to sign sessions with, if it is, judged on the secret
/// without surrounding spaces: shorter than [`MIN_SECRET_LEN`] characters; fewer than 8
/// distinct characters; a pattern repeated (period ≤ length / 2); a run for more than
/// half its length (characters that [`follow`](follows) each other: `0123…`, `zyxw…`,
/// `qwer…`, `aAbB…`); fewer distinct 3-character pieces than half its pieces
/// (`password1password2…`); a placeholder word; Better Auth's documented example.
pub fn weak_secret(secret: &str) -> Option<&'static str> {
    let chars: Vec<char> = secret.trim().chars().collect();
    let len = chars.len();
    let mut distinct = chars.clone();
    distinct.sort_unstable();
    distinct.dedup();
    let periodic =
        len <= 1024 && (1..=len / 2).any(|p| chars.iter().skip(p).eq(chars.iter().take(len - p)));
    let runs = chars
        .windows(2)
        .filter(|w| matches!(w, [a, b] if follows(*a, *b)))
        .count();
    let mut pieces: Vec<&[char]> = chars.windows(3).collect();
    let piece_count = pieces.len();
    pieces.sort_unstable();
    pieces.dedup();
    let lower = secret.to_ascii_lowercase();
    if len < MIN_SECRET_LEN {
        Some("too short")
    } else if distinct.len() < 8 {
        Some("too few distinct characters")
    } else if periodic {
        Some("it repeats a pattern")
    } else if runs * 2 > len {
        Some("it is mostly a run of neighbouring characters")
    } else if pieces.len() * 2 < piece_count {
        Some("it repeats itself")
    } else if let Some(word) = PLACEHOLDERS.iter().find(|w| lower.contains(*w)) {
        if *word == "better-auth-secret" {
            Some("it is Better Auth's example")
        } else {
            Some("it contains a placeholder word")
        }
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::weak_secret;

    #[test]
    fn typed_secrets_are_weak_and_random_ones_are_not() {
        let padded = format!("abc12345{}", " ".repeat(34));
        for weak in [
            "short",
            "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            "abcdefghabcdefghabcdefghabcdefgh",
            "0123456789abcdefghijklmnopqrstuvwxyz",
            "zyxwvutsrqponmlkjihgfedcba9876543210",
            "qwertyuiopasdfghjklzxcvbnmqwertyuiop",
            "aAbBcCdDeEfFgGhHiIjJkKlLmMnNoOpP",
            "password1password2password3password4",
            "changeme-changeme-please-change-me",
            "your-super-secret-key-change-this-in-production",
            "better-auth-secret-123456789012345678901234567890",
            "compat-shared-secret-0123456789-abcdefghijklmnop",
            padded.as_str(),
        ] {
            assert!(weak_secret(weak).is_some(), "{weak:?}");
        }
        for strong in [
            "bench-secret-Qm7xV2pL9sK4wR8tY3nB6hJ1cF5gD0zA",
            "3f9a1c7e5b2d8f4a6c0e9b7d5f3a1c8e",
            "kX2v9QmP4sT7wZ1bN6yR3hJ8cL5gF0dA",
            "an-operator-secret-that-is-long-enough-1234",
        ] {
            assert_eq!(weak_secret(strong), None, "{strong:?}");
        }
    }
}
