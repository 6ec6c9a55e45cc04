//! `JSON.stringify` as JavaScript prints it: key order kept with integer-like keys first,
//! JavaScript's string escaping and number formatting. Better Auth signs and encrypts
//! these bytes, so the cookie caches written here must be the same bytes.

use serde_json::{Map, Number, Value};

/// `JSON.stringify(value)` as JavaScript prints it.
pub fn stringify(value: &Value) -> String {
    let mut out = String::new();
    write_value(value, &mut out);
    out
}

/// Appends `JSON.stringify(value)` to `out`.
pub fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&format_number(n)),
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

/// Objects list their array-index keys first, in ascending numeric order, then the other
/// keys in insertion order (ECMAScript `OrdinaryOwnPropertyKeys`).
pub fn write_object(map: &Map<String, Value>, out: &mut String) {
    let mut indexed: Vec<(u32, &String, &Value)> = map
        .iter()
        .filter_map(|(k, v)| array_index(k).map(|i| (i, k, v)))
        .collect();
    indexed.sort_by_key(|(i, _, _)| *i);
    let rest = map.iter().filter(|(k, _)| array_index(k).is_none());
    out.push('{');
    let mut first = true;
    for (k, v) in indexed.into_iter().map(|(_, k, v)| (k, v)).chain(rest) {
        if !first {
            out.push(',');
        }
        first = false;
        write_string(k, out);
        out.push(':');
        write_value(v, out);
    }
    out.push('}');
}

/// A canonical array index: "0" or digits without a leading zero, at most 2^32 − 2.
fn array_index(key: &str) -> Option<u32> {
    if key.is_empty() || key.len() > 10 || !key.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if key.len() > 1 && key.starts_with('0') {
        return None;
    }
    key.parse::<u32>().ok().filter(|&i| i != u32::MAX)
}

/// JSON.stringify's string quoting: `"` and `\` escaped, U+0000–U+001F as `\b \t \n \f \r`
/// or `\u00xx` (lowercase hex), everything else (non-ASCII, `/`, U+2028) as is. A Rust
/// string holds no lone surrogates, the one case where JavaScript would also escape.
pub fn write_string(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => {
                let b = c as u32 as usize;
                out.push_str("\\u00");
                for nibble in [(b >> 4) & 0xf, b & 0xf] {
                    out.extend(HEX.get(nibble).map(|h| char::from(*h)));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A JSON number as JavaScript prints it (`Number.prototype.toString`): every JSON number
/// is a double in JavaScript.
fn format_number(n: &Number) -> String {
    const SAFE: u64 = 1 << 53;
    if let Some(i) = n.as_i64() {
        if i.unsigned_abs() <= SAFE {
            return i.to_string();
        }
    }
    if let Some(u) = n.as_u64() {
        if u <= SAFE {
            return u.to_string();
        }
    }
    n.as_f64().map_or_else(|| "null".to_owned(), format_f64)
}

/// ECMAScript Number::toString(10) for a finite double; NaN and ±Infinity print `null`
/// as in JSON.stringify.
fn format_f64(x: f64) -> String {
    if !x.is_finite() {
        return "null".to_owned();
    }
    if x == 0.0 {
        return "0".to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits, "d[.ddd]e<exp>", but where two
    // k-digit strings both round-trip it does not always take the one ECMAScript wants
    // (the closest to x, the even one on a tie). The correctly rounded k-digit string
    // (`{:.N$e}` rounds the exact value half to even) is that one whenever it round-trips.
    let ax = x.abs();
    let shortest = format!("{ax:e}");
    let k = shortest
        .split('e')
        .next()
        .map_or(0, |m| m.chars().filter(char::is_ascii_digit).count());
    let rounded = format!("{:.*e}", k.saturating_sub(1), ax);
    let sci = if rounded.parse::<f64>() == Ok(ax) {
        rounded
    } else {
        shortest
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let digits = match digits.trim_end_matches('0') {
        "" => "0",
        d => d,
    };
    let Ok(e) = exp.parse::<i32>() else {
        return "null".to_owned();
    };
    let k = digits.len() as i32;
    let n = e + 1; // value = 0.digits × 10^n
    let mut out = String::new();
    if x < 0.0 {
        out.push('-');
    }
    if k <= n && n <= 21 {
        out.push_str(digits);
        out.extend(std::iter::repeat_n('0', (n - k) as usize));
    } else if 0 < n && n <= 21 {
        let (int, frac) = digits.split_at(n as usize);
        out.push_str(int);
        out.push('.');
        out.push_str(frac);
    } else if -6 < n && n <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', (-n) as usize));
        out.push_str(digits);
    } else {
        let (first, rest) = digits.split_at(1.min(digits.len()));
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        out.push('e');
        out.push(if n > 0 { '+' } else { '-' });
        out.push_str(&(n - 1).unsigned_abs().to_string());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_numbers() {
        // Inputs as text: what JSON.parse reads, and no float-literal lints.
        for (text, js) in [
            ("1e21", "1e+21"),
            ("1e-7", "1e-7"),
            ("1e-6", "0.000001"),
            ("0.000001234", "0.000001234"),
            ("123.456", "123.456"),
            ("1.5e300", "1.5e+300"),
            ("-0.0", "0"),
            ("12345678901234567890.0", "12345678901234567000"),
            ("5e-324", "5e-324"),
            ("0.1", "0.1"),
            ("100.0", "100"),
            ("1e20", "100000000000000000000"),
            ("123e-20", "1.23e-18"),
            ("-2.5", "-2.5"),
            ("9007199254740993.0", "9007199254740992"),
            ("786667646615959.25", "786667646615959.2"),
            ("645260784255316.3", "645260784255316.2"),
        ] {
            let x: f64 = text.parse().unwrap();
            assert_eq!(format_f64(x), js, "{text}");
        }
        let n = |s: &str| serde_json::from_str::<Number>(s).unwrap();
        assert_eq!(format_number(&n("1767225600000")), "1767225600000");
        assert_eq!(format_number(&n("1.0")), "1");
        assert_eq!(format_number(&n("-0")), "0");
        assert_eq!(
            format_number(&n("12345678901234567890")),
            "12345678901234567000"
        );
        assert_eq!(format_number(&n("-9007199254740993")), "-9007199254740992");
    }

    #[test]
    fn js_key_order_and_escaping() {
        let v: Value =
            serde_json::from_str(r#"{"b":1,"10":2,"a":"\u0001\u001f\b\f/é\u2028","2":3,"01":4,"4294967295":5,"4294967294":6}"#)
                .unwrap();
        assert_eq!(
            stringify(&v),
            r#"{"2":3,"10":2,"4294967294":6,"b":1,"a":"\u0001\u001f\b\f/é"#.to_owned()
                + "\u{2028}"
                + r#"","01":4,"4294967295":5}"#
        );
    }
}
