//! `@better-auth/utils` base64 decoding, which is more lenient than RFC 4648: a compact
//! cookie cache Better Auth accepts must be accepted here too.

/// `@better-auth/utils` base64/base64url decoding: the alphabet is URL-safe when the text
/// contains `-` or `_` and standard otherwise, decoding stops at the first `=`, leftover
/// bits are ignored, and any other character is an error.
pub fn decode_lenient(data: &str) -> Option<Vec<u8>> {
    let url_safe = data.contains('-') || data.contains('_');
    let mut out = Vec::with_capacity(data.len() / 4 * 3 + 3);
    let mut buffer: u32 = 0;
    let mut bits: u32 = 0;
    for c in data.chars() {
        let v = match c {
            '=' => break,
            'A'..='Z' => c as u32 - 'A' as u32,
            'a'..='z' => c as u32 - 'a' as u32 + 26,
            '0'..='9' => c as u32 - '0' as u32 + 52,
            '-' if url_safe => 62,
            '_' if url_safe => 63,
            '+' if !url_safe => 62,
            '/' if !url_safe => 63,
            _ => return None,
        };
        buffer = ((buffer << 6) | v) & 0x3fff;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lenient_base64() {
        assert_eq!(decode_lenient("aGk").unwrap(), b"hi");
        assert_eq!(decode_lenient("aGl=garbage!").unwrap(), b"hi");
        assert_eq!(decode_lenient("aGm").unwrap(), b"hi");
        assert_eq!(decode_lenient("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_lenient("+/8").unwrap(), [0xfb, 0xff]);
        assert!(decode_lenient("+_8").is_none());
        assert!(decode_lenient("a b").is_none());
    }
}
