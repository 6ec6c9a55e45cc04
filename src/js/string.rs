//! `String.prototype.trim` and `parseInt(s, 10)`, for reading Better Auth's environment
//! variables as Node reads them, and `decodeURIComponent`, for values Better Auth decodes
//! only when they decode.

/// Whether `c` is what `trim` removes (ECMAScript WhiteSpace and LineTerminator). Rust's
/// `char::is_whitespace` differs: it keeps U+FEFF and removes U+0085.
fn is_js_space(c: char) -> bool {
    matches!(
        c,
        '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{a0}' | '\u{1680}' | '\u{2000}'
            ..='\u{200a}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202f}'
                | '\u{205f}'
                | '\u{3000}'
                | '\u{feff}'
    )
}

/// `s.trim()`.
pub fn trim(s: &str) -> &str {
    s.trim_matches(is_js_space)
}

/// `parseInt(s, 10)` when it is an integer no larger in magnitude than `u64::MAX`: leading
/// spaces skipped, an optional sign, then the longest run of ASCII digits (the rest is
/// ignored: `"2abc"` is 2, `"1.5"` is 1). `None` where JavaScript gives `NaN` (no digits)
/// or a number too large for `u64`; `Some((negative, magnitude))` otherwise (`"-0"` is
/// `(true, 0)`).
pub fn parse_int(s: &str) -> Option<(bool, u64)> {
    let s = s.trim_start_matches(is_js_space);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, s.get(1..)?),
        Some(b'+') => (false, s.get(1..)?),
        _ => (false, s),
    };
    let end = digits
        .bytes()
        .position(|b| !b.is_ascii_digit())
        .unwrap_or(digits.len());
    let digits = digits.get(..end)?;
    if digits.is_empty() {
        return None;
    }
    digits.parse::<u64>().ok().map(|n| (negative, n))
}

/// `decodeURIComponent(s)`, or `None` where it throws: a `%` not followed by two hex
/// digits, or escapes that do not make UTF-8. (`percent_decode_str` differs: it keeps a
/// malformed escape as text and decodes the rest.)
pub fn decode_uri_component(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while let Some(&c) = b.get(i) {
        if c == b'%' {
            let hex = b.get(i + 1..i + 3)?;
            let hi = char::from(*hex.first()?).to_digit(16)?;
            let lo = char::from(*hex.get(1)?).to_digit(16)?;
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(c);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::{decode_uri_component, parse_int, trim};

    #[test]
    fn decode_uri_component_fails_where_javascript_throws() {
        assert_eq!(decode_uri_component("a%2Eb%3D").as_deref(), Some("a.b="));
        assert_eq!(
            decode_uri_component("%E2%82%AC").as_deref(),
            Some("\u{20ac}")
        );
        assert_eq!(decode_uri_component("%00").as_deref(), Some("\0"));
        assert_eq!(decode_uri_component("plain").as_deref(), Some("plain"));
        for bad in [
            "%",
            "%Z",
            "%ZZ",
            "a%2",
            "%E2%82",
            "%FF",
            "%ED%A0%80",
            "%C0%AF",
        ] {
            assert_eq!(decode_uri_component(bad), None, "{bad}");
        }
    }

    #[test]
    fn trim_removes_what_javascript_removes() {
        assert_eq!(trim("\u{feff}\u{a0} a b\t\r\n\u{3000}"), "a b");
        // U+0085 is not ECMAScript whitespace.
        assert_eq!(trim("\u{85}a\u{85}"), "\u{85}a\u{85}");
    }

    #[test]
    fn parse_int_reads_the_leading_integer() {
        assert_eq!(parse_int("2"), Some((false, 2)));
        assert_eq!(parse_int("  +7 "), Some((false, 7)));
        assert_eq!(parse_int("2abc"), Some((false, 2)));
        assert_eq!(parse_int("1.9"), Some((false, 1)));
        assert_eq!(parse_int("1e3"), Some((false, 1)));
        assert_eq!(parse_int("0x10"), Some((false, 0)));
        assert_eq!(parse_int("-3"), Some((true, 3)));
        assert_eq!(parse_int("-0"), Some((true, 0)));
        for nan in ["", " ", "-", "+", "abc", "--1", ".5", "\u{0663}"] {
            assert_eq!(parse_int(nan), None, "{nan:?}");
        }
        assert_eq!(parse_int("18446744073709551616"), None);
    }
}
