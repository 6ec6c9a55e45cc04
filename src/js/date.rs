//! JavaScript dates as Better Auth handles them: its JSON reviver, which turns every
//! ISO-looking string into a `Date` the way V8 parses it, and `Date.prototype.toISOString`,
//! which prints them again. The compact cookie cache's MAC covers the printed form, and
//! every date this service answers is in that form.

use chrono::{DateTime, Datelike, NaiveDateTime, SecondsFormat, Timelike, Utc};
use serde::{Serialize, Serializer};
use serde_json::Value;

/// Formats a time as JavaScript's `Date.prototype.toISOString()` does.
pub fn iso(t: &DateTime<Utc>) -> String {
    Iso(t).to_string()
}

/// A time in `toISOString()` form that writes itself without allocating: responses carry
/// three per session, and `list-sessions` may answer thousands of sessions.
///
/// Years outside 0 to 9999 keep chrono's form (`+10000`, `-0001`), not V8's (`+010000`,
/// `-000001`, see [`to_iso_string`]); the times this service mints never reach them.
#[derive(Clone, Copy)]
pub struct Iso<'a>(pub &'a DateTime<Utc>);

impl Iso<'_> {
    /// `YYYY-MM-DDTHH:mm:ss.sssZ` for years 0 to 9999 (all others: `None`).
    fn ascii(&self) -> Option<[u8; 24]> {
        let t = self.0.naive_utc();
        let year = u32::try_from(t.year()).ok().filter(|y| *y <= 9999)?;
        Some(ascii(&t, year))
    }
}

/// `YYYY-MM-DDTHH:mm:ss.sssZ` of `t`, with `year`'s last four digits as the year.
fn ascii(t: &NaiveDateTime, year: u32) -> [u8; 24] {
    // A leap second (nanosecond >= 1e9) shows as second 60, as chrono writes it.
    let (sec, nano) = match t.nanosecond() {
        n if n >= 1_000_000_000 => (t.second() + 1, n - 1_000_000_000),
        n => (t.second(), n),
    };
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let mut put = |at: usize, width: usize, mut v: u32| {
        for d in b.iter_mut().skip(at).take(width).rev() {
            *d = b'0' + (v % 10) as u8;
            v /= 10;
        }
    };
    put(0, 4, year);
    put(5, 2, t.month());
    put(8, 2, t.day());
    put(11, 2, t.hour());
    put(14, 2, t.minute());
    put(17, 2, sec);
    put(20, 3, nano / 1_000_000);
    b
}

impl std::fmt::Display for Iso<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.ascii() {
            Some(b) => f.write_str(std::str::from_utf8(&b).map_err(|_| std::fmt::Error)?),
            // Signed and widened years: chrono's own formatting.
            None => f.write_str(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true)),
        }
    }
}

impl Serialize for Iso<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self.ascii() {
            Some(b) => s.serialize_str(std::str::from_utf8(&b).map_err(serde::ser::Error::custom)?),
            None => s.collect_str(self),
        }
    }
}

/// `Date.prototype.toISOString()` of `t` ms since the epoch, as V8 prints it: years outside
/// 0 to 9999 with a sign and six digits (`+010000-01-01T00:00:00.000Z`). `None` beyond
/// chrono's range of about ±262,000 years, which no revived date reaches.
pub fn to_iso_string(t: i64) -> Option<String> {
    let t = DateTime::from_timestamp_millis(t)?.naive_utc();
    let year = t.year();
    let b = ascii(&t, year.unsigned_abs() % 10_000);
    let text = std::str::from_utf8(&b).ok()?;
    if (0..=9999).contains(&year) {
        return Some(text.to_owned());
    }
    let sign = if year < 0 { '-' } else { '+' };
    Some(format!(
        "{sign}{:06}{}",
        year.unsigned_abs(),
        text.get(4..)?
    ))
}

/// Parses a date as Better Auth's reviver does (`YYYY-MM-DDTHH:mm:ss[.fff]Z`).
pub fn parse_iso(v: &Value) -> Option<DateTime<Utc>> {
    let s = v.as_str()?;
    if !s.ends_with('Z') || s.len() < 20 {
        return None;
    }
    DateTime::parse_from_rfc3339(s)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

/// Whether Better Auth's JSON reviver would turn this string into a `Date`
/// (`^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$`); such a value in a text field
/// fails its schema, so the cache holding it is refused.
pub fn is_iso_like(s: &str) -> bool {
    let b = s.as_bytes();
    let digits =
        |r: std::ops::Range<usize>| b.get(r).is_some_and(|x| x.iter().all(u8::is_ascii_digit));
    if b.len() < 20 || b.last() != Some(&b'Z') {
        return false;
    }
    let head = digits(0..4)
        && b.get(4) == Some(&b'-')
        && digits(5..7)
        && b.get(7) == Some(&b'-')
        && digits(8..10)
        && b.get(10) == Some(&b'T')
        && digits(11..13)
        && b.get(13) == Some(&b':')
        && digits(14..16)
        && b.get(16) == Some(&b':')
        && digits(17..19);
    let tail = b.get(19..b.len() - 1).unwrap_or_default();
    head && match tail.split_first() {
        None => true,
        Some((b'.', digits)) => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        Some(_) => false,
    }
}

/// Replaces, anywhere in `value`, each string that Better Auth's JSON reviver turns into a
/// `Date` by that Date's `toISOString()`, i.e. what `JSON.stringify` prints for it.
pub fn revive_dates(value: &mut Value) {
    match value {
        Value::String(s) => {
            if let Some(iso) = revive_iso_date(s) {
                *s = iso;
            }
        }
        Value::Array(items) => items.iter_mut().for_each(revive_dates),
        Value::Object(map) => map.values_mut().for_each(revive_dates),
        _ => {}
    }
}

/// If `s` matches `^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?Z$` and V8's `new Date(s)`
/// is valid, that Date's `toISOString()`; otherwise `None` (the string stays a string).
///
/// V8 takes months 01–12 and days 01–31 (an overflowing day rolls into the next month:
/// `02-31` is March 2 or 3), hours 00–23 plus `24:00:00` with an all-zero fraction (the
/// next midnight), minutes and seconds 00–59; see [`v8_milliseconds`] for the fraction.
pub fn revive_iso_date(s: &str) -> Option<String> {
    if !is_iso_like(s) {
        return None;
    }
    let b = s.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = b.get(from..from + len)?;
        part.iter().try_fold(0i64, |acc, &d| {
            d.is_ascii_digit().then(|| acc * 10 + i64::from(d - b'0'))
        })
    };
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    // The fraction's digits, between the `.` and the `Z` (none without a fraction).
    let frac = b.get(20..b.len() - 1).unwrap_or_default();
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    if hour == 24 {
        if minute != 0 || second != 0 || frac.iter().any(|&d| d != b'0') {
            return None;
        }
    } else if hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    let ms = v8_milliseconds(frac);
    let days = days_from_civil(year, month, 1) + day - 1;
    let t = days * 86_400_000 + hour * 3_600_000 + minute * 60_000 + second * 1000 + ms;
    to_iso_string(t)
}

/// V8's `ReadMilliseconds` of the fraction digits: the numeral's value is read from its
/// first nine digits after any leading zeros, its length counts every digit (capped at
/// nine), and the value is scaled to three digits by that length. So up to nine digits
/// the first three are kept; past nine, the first three *significant* ones, shifted by
/// how many leading zeros there were (`.0294681200` gives 294, as V8 does).
fn v8_milliseconds(frac: &[u8]) -> i64 {
    let significant = frac.iter().skip_while(|&&d| d == b'0');
    let n = significant
        .take(9)
        .fold(0i64, |acc, &d| acc * 10 + i64::from(d - b'0'));
    match frac.len() {
        0 => 0,
        1 => n * 100,
        2 => n * 10,
        3 => n,
        len => n / 10i64.pow(len.min(9) as u32 - 3),
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use rand::Rng;

    #[test]
    fn v8_date_revival() {
        for (s, out) in [
            ("2020-13-01T00:00:00Z", None),
            ("2020-00-01T00:00:00Z", None),
            ("2020-02-31T00:00:00Z", Some("2020-03-02T00:00:00.000Z")),
            ("2020-02-00T00:00:00Z", None),
            ("2020-02-32T00:00:00Z", None),
            ("2020-01-01T24:00:00Z", Some("2020-01-02T00:00:00.000Z")),
            ("2020-01-01T24:00:00.000Z", Some("2020-01-02T00:00:00.000Z")),
            ("2020-01-01T24:00:00.0001Z", None),
            ("2020-01-01T24:00:00.0000000000001Z", None),
            (
                "2020-01-01T24:00:00.0000000000000Z",
                Some("2020-01-02T00:00:00.000Z"),
            ),
            ("2020-01-01T25:00:00Z", None),
            ("2020-01-01T23:60:00Z", None),
            ("2020-01-01T23:59:60Z", None),
            (
                "2020-01-01T00:00:00.9999Z",
                Some("2020-01-01T00:00:00.999Z"),
            ),
            ("2020-01-01T00:00:00.5Z", Some("2020-01-01T00:00:00.500Z")),
            ("9999-12-31T24:00:00Z", Some("+010000-01-01T00:00:00.000Z")),
            ("0000-01-01T00:00:00Z", Some("0000-01-01T00:00:00.000Z")),
            ("2021-02-29T00:00:00Z", Some("2021-03-01T00:00:00.000Z")),
            ("1969-12-31T23:59:59.999Z", Some("1969-12-31T23:59:59.999Z")),
            ("2020-04-31T12:00:00Z", Some("2020-05-01T12:00:00.000Z")),
            ("2020-01-01T00:00:00.Z", None),
            ("2020-01-01T00:00:00z", None),
            ("2020-01-01 00:00:00Z", None),
            ("2020-01-01T00:00:00.000Z\n", None),
            ("x2020-01-01T00:00:00.000Z", None),
            ("2025-12-20T17:45:30.123Z", Some("2025-12-20T17:45:30.123Z")),
            (
                "2000-04-31T23:59:59.029468120022Z",
                Some("2000-05-01T23:59:59.294Z"),
            ),
            (
                "2020-01-01T00:00:00.0000000123Z",
                Some("2020-01-01T00:00:00.000Z"),
            ),
            (
                "2020-01-01T00:00:00.0001234567Z",
                Some("2020-01-01T00:00:00.001Z"),
            ),
        ] {
            assert_eq!(revive_iso_date(s).as_deref(), out, "{s}");
        }
    }

    #[test]
    fn iso_writes_what_chrono_writes() {
        let mut rng = rand::thread_rng();
        let mut times: Vec<DateTime<Utc>> = [
            0i64,
            -1,
            1,
            -62_167_219_200_000, // 0000-01-01
            -62_167_219_200_001, // -0001-12-31
            253_402_300_799_999, // 9999-12-31T23:59:59.999
            253_402_300_800_000, // +10000-01-01
        ]
        .iter()
        .filter_map(|ms| Utc.timestamp_millis_opt(*ms).single())
        .collect();
        for _ in 0..10_000 {
            let ms = rng.gen_range(-70_000_000_000_000i64..300_000_000_000_000);
            let nanos = rng.gen_range(0..1_000_000);
            if let Some(t) = Utc.timestamp_millis_opt(ms).single() {
                times.push(t + chrono::Duration::nanoseconds(nanos));
            }
        }
        // a leap second
        let leap = chrono::NaiveDate::from_ymd_opt(2016, 12, 31)
            .and_then(|d| d.and_hms_milli_opt(23, 59, 59, 1_500))
            .map(|n| n.and_utc());
        times.extend(leap);
        for t in &times {
            let want = t.to_rfc3339_opts(SecondsFormat::Millis, true);
            assert_eq!(iso(t), want);
            assert_eq!(
                serde_json::to_string(&Iso(t)).ok(),
                serde_json::to_string(&want).ok()
            );
        }
        assert_eq!(
            iso(&Utc.timestamp_millis_opt(1_700_000_000_123).unwrap()),
            "2023-11-14T22:13:20.123Z"
        );
    }

    #[test]
    fn v8_writes_wide_years_with_six_digits() {
        for (ms, want) in [
            (0, "1970-01-01T00:00:00.000Z"),
            (-1, "1969-12-31T23:59:59.999Z"),
            (-62_167_219_200_000, "0000-01-01T00:00:00.000Z"),
            (-62_167_219_200_001, "-000001-12-31T23:59:59.999Z"),
            (253_402_300_799_999, "9999-12-31T23:59:59.999Z"),
            (253_402_300_800_000, "+010000-01-01T00:00:00.000Z"),
        ] {
            assert_eq!(to_iso_string(ms).as_deref(), Some(want), "{ms}");
        }
        assert_eq!(to_iso_string(i64::MAX), None);
    }

    #[test]
    fn reviver_shape() {
        assert!(is_iso_like("2026-01-01T00:00:00Z"));
        assert!(is_iso_like("2026-01-01T00:00:00.123456Z"));
        assert!(!is_iso_like("2026-01-01T00:00:00.Z"));
        assert!(!is_iso_like("2026-01-01 00:00:00Z"));
        assert!(!is_iso_like("Zoë"));
    }
}
