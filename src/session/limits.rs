//! Bounds on what a client may have stored. Better Auth has none; these keep rows, cookie
//! caches and device lists small whatever a client sends, and are checked before
//! anything is written.

/// Sessions `list-sessions` returns at most: the newest, as Better Auth's database
/// adapters return at most 100 rows (`defaultFindManyLimit`).
pub const MAX_LISTED_SESSIONS: usize = 100;

/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Longest email, in characters (RFC 5321's path limit).
pub const MAX_EMAIL_CHARS: usize = 254;
/// Longest image URL, in characters (room for a small `data:` avatar).
pub const MAX_IMAGE_CHARS: usize = 16_384;
/// Longest string value of an additional session field, in characters.
pub const MAX_FIELD_CHARS: usize = 1_024;
/// Longest user agent stored, in bytes; longer ones are cut (a browser cannot shorten
/// its own).
pub const MAX_USER_AGENT_BYTES: usize = 512;

/// Why a text cannot be stored, as a zod-style message; `None` when it can. PostgreSQL
/// cannot store NUL in text, so no backend accepts it.
pub fn text_problem(v: &str, max_chars: usize) -> Option<String> {
    if v.contains('\0') {
        return Some("Invalid input: must not contain NUL characters".into());
    }
    (v.chars().count() > max_chars)
        .then(|| format!("Too big: expected string to have <={max_chars} characters"))
}

/// `v` cut to at most `max` bytes, on a character boundary.
pub fn cut(v: &str, max: usize) -> &str {
    if v.len() <= max {
        return v;
    }
    let mut end = max;
    while !v.is_char_boundary(end) {
        end -= 1;
    }
    &v[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        assert_eq!(text_problem("Ada", 3), None);
        assert!(text_problem("Adam", 3).is_some());
        assert!(text_problem("a\0", 10).is_some());
        assert_eq!(text_problem("ëëë", 3), None);
        assert_eq!(cut("ëë", 3), "ë");
        assert_eq!(cut("abc", 10), "abc");
    }
}
