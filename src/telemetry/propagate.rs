//! W3C Trace Context (`traceparent`, `tracestate`) from an incoming request, so that a
//! proxy's trace (nginx, Caddy, Envoy) continues through sessiond. Strict and bounded: a
//! header that is not exactly right is ignored and the request starts a new trace.

use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

/// Longest `traceparent` read: version 00 is 55 characters; later versions may append.
const TRACEPARENT_MAX: usize = 128;
/// Longest `tracestate` kept (what W3C asks vendors to propagate at least).
const TRACESTATE_MAX: usize = 512;

/// The remote parent named by `traceparent` (and its `tracestate`), if valid.
pub fn remote_parent(traceparent: &[u8], tracestate: Option<&[u8]>) -> Option<SpanContext> {
    if traceparent.len() < 55 || traceparent.len() > TRACEPARENT_MAX {
        return None;
    }
    let text = std::str::from_utf8(traceparent).ok()?;
    let mut parts = text.split('-');
    let version = parts.next()?;
    let trace = parts.next()?;
    let parent = parts.next()?;
    let flags = parts.next()?;
    let rest = parts.next();
    let lower_hex = |s: &str, n: usize| {
        s.len() == n
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    };
    if !lower_hex(version, 2)
        || version == "ff"
        || !lower_hex(trace, 32)
        || !lower_hex(parent, 16)
        || !lower_hex(flags, 2)
    {
        return None;
    }
    // Version 00 has exactly four parts; a later one may carry more after a dash.
    if version == "00" && rest.is_some() {
        return None;
    }
    let trace_id = TraceId::from_hex(trace).ok()?;
    let span_id = SpanId::from_hex(parent).ok()?;
    if trace_id == TraceId::INVALID || span_id == SpanId::INVALID {
        return None;
    }
    let flags = u8::from_str_radix(flags, 16).ok()? & TraceFlags::SAMPLED.to_u8();
    let state = tracestate
        .filter(|s| s.len() <= TRACESTATE_MAX)
        .and_then(|s| std::str::from_utf8(s).ok())
        .and_then(|s| s.parse::<TraceState>().ok())
        .unwrap_or_default();
    Some(SpanContext::new(
        trace_id,
        span_id,
        TraceFlags::new(flags),
        true,
        state,
    ))
}

#[cfg(test)]
mod tests {
    use super::remote_parent;

    const OK: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

    #[test]
    fn a_valid_traceparent_is_the_parent() {
        let sc = remote_parent(OK.as_bytes(), Some(b"congo=t61rcWkgMzE")).unwrap();
        assert_eq!(
            sc.trace_id().to_string(),
            "0af7651916cd43dd8448eb211c80319c"
        );
        assert_eq!(sc.span_id().to_string(), "b7ad6b7169203331");
        assert!(sc.is_sampled() && sc.is_remote());
        assert_eq!(sc.trace_state().header(), "congo=t61rcWkgMzE");
        // A later version may carry more; its known fields are read.
        assert!(remote_parent(format!("01{}-extra", &OK[2..]).as_bytes(), None).is_some());
        // A tracestate that is too long or malformed is dropped, the parent kept.
        let long = "a=".to_owned() + &"b".repeat(600);
        let sc = remote_parent(OK.as_bytes(), Some(long.as_bytes())).unwrap();
        assert_eq!(sc.trace_state().header(), "");
    }

    #[test]
    fn anything_else_is_ignored() {
        for bad in [
            String::new(),
            "00".into(),
            format!("{OK}-"),
            format!("{OK}-00"),
            OK.to_uppercase(),
            OK.replace("00-", "ff-"),
            OK.replace("0af7651916cd43dd8448eb211c80319c", &"0".repeat(32)),
            OK.replace("b7ad6b7169203331", &"0".repeat(16)),
            OK.replace("0af7", "zzzz"),
            OK.replace('-', "_"),
            format!("01{}-{}", &OK[2..], "x".repeat(200)),
            "00-0af7651916cd43dd8448eb211c80319c-b7ad6b716920333-011".into(),
            "\u{e9}".repeat(30),
        ] {
            assert!(remote_parent(bad.as_bytes(), None).is_none(), "{bad}");
        }
    }
}
