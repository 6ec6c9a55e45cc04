//! The standard `OTEL_*` environment variables, read and checked once at start: a value
//! sessiond cannot honour is an error naming the variable, never a silent default.
//! Header values are never repeated in an error (they often carry an API key).

use std::time::Duration;

use super::sample::{Root, Sampler};

/// Longest endpoint URL accepted.
const ENDPOINT_MAX: usize = 2048;
/// Largest batch queue accepted (spans held while the collector is slow or gone).
pub const QUEUE_MAX: usize = 65_536;
/// Largest export time accepted.
const TIMEOUT_MAX: Duration = Duration::from_secs(60);

/// Where and how spans are exported.
#[derive(Debug)]
pub struct Export {
    /// The full OTLP/HTTP traces URL (e.g. `http://collector:4318/v1/traces`).
    pub endpoint: String,
    /// Extra request headers (`OTEL_EXPORTER_OTLP_HEADERS`).
    pub headers: Vec<(String, String)>,
    /// `service.name`.
    pub service_name: String,
    /// Which traces are kept.
    pub sampler: Sampler,
    /// Time one export may take.
    pub timeout: Duration,
    /// Batch queue size, delay and batch size.
    pub queue: usize,
    pub delay: Duration,
    pub batch: usize,
}

/// A setting that cannot be honoured.
#[derive(Debug, thiserror::Error)]
#[error("{var}: {why}")]
pub struct EnvError {
    var: &'static str,
    why: String,
}

fn bad(var: &'static str, why: impl Into<String>) -> EnvError {
    EnvError {
        var,
        why: why.into(),
    }
}

/// Reads the variables through `get` (the process environment in production). `None`:
/// export is off.
pub fn read(get: &dyn Fn(&str) -> Option<String>) -> Result<Option<Export>, EnvError> {
    let get = |k: &str| {
        get(k)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    };
    match get("OTEL_SDK_DISABLED")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None | Some("false") => {}
        Some("true") => return Ok(None),
        Some(_) => return Err(bad("OTEL_SDK_DISABLED", "must be true or false")),
    }
    let signal = get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    let base = get("OTEL_EXPORTER_OTLP_ENDPOINT");
    let on = match get("OTEL_TRACES_EXPORTER")
        .map(|v| v.to_ascii_lowercase())
        .as_deref()
    {
        None => signal.is_some() || base.is_some(),
        Some("none") => false,
        Some("otlp") => true,
        Some(_) => {
            return Err(bad(
                "OTEL_TRACES_EXPORTER",
                "only \"otlp\" (OTLP over HTTP/protobuf) or \"none\" is supported",
            ))
        }
    };
    if !on {
        return Ok(None);
    }
    for var in [
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ] {
        if let Some(p) = get(var) {
            if p != "http/protobuf" {
                return Err(bad(
                    var,
                    "only \"http/protobuf\" is supported (not grpc or http/json)",
                ));
            }
        }
    }
    let endpoint = match (signal, base) {
        (Some(e), _) => checked_endpoint("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", e)?,
        (None, Some(b)) => checked_endpoint(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            format!("{}/v1/traces", b.trim_end_matches('/')),
        )?,
        (None, None) => "http://localhost:4318/v1/traces".to_owned(),
    };
    let mut headers = Vec::new();
    for var in [
        "OTEL_EXPORTER_OTLP_HEADERS",
        "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
    ] {
        if let Some(h) = get(var) {
            headers.extend(parse_headers(var, &h)?);
        }
    }
    let timeout = match get("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
        Some(t) => millis("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", &t, TIMEOUT_MAX)?,
        None => match get("OTEL_EXPORTER_OTLP_TIMEOUT") {
            Some(t) => millis("OTEL_EXPORTER_OTLP_TIMEOUT", &t, TIMEOUT_MAX)?,
            None => Duration::from_secs(10),
        },
    };
    let queue = count(
        "OTEL_BSP_MAX_QUEUE_SIZE",
        get("OTEL_BSP_MAX_QUEUE_SIZE"),
        2048,
    )?;
    let batch = count(
        "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
        get("OTEL_BSP_MAX_EXPORT_BATCH_SIZE"),
        512.min(queue),
    )?;
    if batch > queue {
        return Err(bad(
            "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
            "must not exceed OTEL_BSP_MAX_QUEUE_SIZE",
        ));
    }
    let delay = match get("OTEL_BSP_SCHEDULE_DELAY") {
        Some(d) => millis("OTEL_BSP_SCHEDULE_DELAY", &d, TIMEOUT_MAX)?,
        None => Duration::from_secs(5),
    };
    Ok(Some(Export {
        endpoint,
        headers,
        service_name: get("OTEL_SERVICE_NAME").unwrap_or_else(|| "sessiond".to_owned()),
        sampler: sampler(get("OTEL_TRACES_SAMPLER"), get("OTEL_TRACES_SAMPLER_ARG"))?,
        timeout,
        queue,
        delay,
        batch,
    }))
}

fn checked_endpoint(var: &'static str, e: String) -> Result<String, EnvError> {
    if e.len() > ENDPOINT_MAX {
        return Err(bad(var, "too long"));
    }
    let url = url::Url::parse(&e).map_err(|err| bad(var, format!("not a URL ({err})")))?;
    match url.scheme() {
        "http" => {}
        "https" => {
            return Err(bad(
                var,
                "https is not supported by this build: export to a local collector over http",
            ))
        }
        _ => return Err(bad(var, "must be an http:// URL")),
    }
    if url.host_str().is_none() || !url.username().is_empty() || url.password().is_some() {
        return Err(bad(
            var,
            "must name a host and no credentials (use OTEL_EXPORTER_OTLP_HEADERS)",
        ));
    }
    Ok(e)
}

/// `key=value` pairs separated by commas, values percent-encoded (W3C baggage format).
fn parse_headers(var: &'static str, text: &str) -> Result<Vec<(String, String)>, EnvError> {
    let mut out = Vec::new();
    for (i, pair) in text.split(',').enumerate() {
        let pair = pair.trim();
        if pair.is_empty() {
            continue;
        }
        let Some((k, v)) = pair.split_once('=') else {
            return Err(bad(var, format!("entry {} is not key=value", i + 1)));
        };
        let k = k.trim();
        let v = percent_encoding::percent_decode_str(v.trim())
            .decode_utf8()
            .map_err(|_| bad(var, format!("the value of {k:?} is not UTF-8 once decoded")))?;
        if axum::http::HeaderName::from_bytes(k.as_bytes()).is_err() {
            return Err(bad(
                var,
                format!("entry {} has an invalid header name", i + 1),
            ));
        }
        if axum::http::HeaderValue::from_str(&v).is_err() {
            return Err(bad(
                var,
                format!("the value of {k:?} is not a valid header value"),
            ));
        }
        out.push((k.to_owned(), v.into_owned()));
    }
    Ok(out)
}

fn millis(var: &'static str, text: &str, max: Duration) -> Result<Duration, EnvError> {
    let ms: u64 = text
        .parse()
        .map_err(|_| bad(var, "must be a whole number of milliseconds"))?;
    let d = Duration::from_millis(ms);
    if d > max {
        return Err(bad(var, format!("must be at most {} ms", max.as_millis())));
    }
    Ok(d)
}

fn count(var: &'static str, text: Option<String>, default: usize) -> Result<usize, EnvError> {
    let Some(text) = text else {
        return Ok(default);
    };
    match text.parse::<usize>() {
        Ok(n) if (1..=QUEUE_MAX).contains(&n) => Ok(n),
        _ => Err(bad(var, format!("must be a number from 1 to {QUEUE_MAX}"))),
    }
}

fn sampler(name: Option<String>, arg: Option<String>) -> Result<Sampler, EnvError> {
    let ratio = || -> Result<f64, EnvError> {
        match arg.as_deref() {
            None => Ok(1.0),
            Some(a) => match a.parse::<f64>() {
                Ok(r) if (0.0..=1.0).contains(&r) => Ok(r),
                _ => Err(bad(
                    "OTEL_TRACES_SAMPLER_ARG",
                    "must be a ratio from 0 to 1",
                )),
            },
        }
    };
    let (root, parent_based) = match name.map(|n| n.to_ascii_lowercase()).as_deref() {
        None | Some("parentbased_always_on") => (Root::On, true),
        Some("always_on") => (Root::On, false),
        Some("always_off") => (Root::Off, false),
        Some("traceidratio") => (Root::ratio(ratio()?), false),
        Some("parentbased_always_off") => (Root::Off, true),
        Some("parentbased_traceidratio") => (Root::ratio(ratio()?), true),
        Some(_) => {
            return Err(bad(
                "OTEL_TRACES_SAMPLER",
                "must be always_on, always_off, traceidratio, parentbased_always_on, \
                     parentbased_always_off or parentbased_traceidratio",
            ))
        }
    };
    Ok(Sampler { root, parent_based })
}

#[cfg(test)]
mod tests {
    use super::read;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let pairs: Vec<(String, String)> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |k| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone())
    }

    #[test]
    fn export_is_off_unless_asked_for() {
        assert!(read(&env(&[])).unwrap().is_none());
        assert!(read(&env(&[
            ("OTEL_TRACES_EXPORTER", "none"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318")
        ]))
        .unwrap()
        .is_none());
        assert!(read(&env(&[
            ("OTEL_SDK_DISABLED", "true"),
            ("OTEL_TRACES_EXPORTER", "otlp")
        ]))
        .unwrap()
        .is_none());
        let e = read(&env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/")]))
            .unwrap()
            .unwrap();
        assert_eq!(e.endpoint, "http://c:4318/v1/traces");
        assert_eq!(e.service_name, "sessiond");
        let e = read(&env(&[("OTEL_TRACES_EXPORTER", "otlp")]))
            .unwrap()
            .unwrap();
        assert_eq!(e.endpoint, "http://localhost:4318/v1/traces");
        let e = read(&env(&[
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://c:9/x"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://d:1"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(e.endpoint, "http://c:9/x");
    }

    #[test]
    fn what_cannot_be_honoured_is_an_error_that_keeps_header_values_secret() {
        let on = ("OTEL_TRACES_EXPORTER", "otlp");
        for bad in [
            vec![("OTEL_TRACES_EXPORTER", "jaeger")],
            vec![on, ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")],
            vec![on, ("OTEL_TRACES_SAMPLER", "sometimes")],
            vec![
                on,
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ],
            vec![
                on,
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "NaN"),
            ],
            vec![on, ("OTEL_EXPORTER_OTLP_ENDPOINT", "ftp://c")],
            vec![on, ("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c")],
            vec![on, ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://u:p@c")],
            vec![on, ("OTEL_BSP_MAX_QUEUE_SIZE", "0")],
            vec![on, ("OTEL_BSP_MAX_QUEUE_SIZE", "99999999")],
            vec![
                on,
                ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
                ("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"),
            ],
            vec![on, ("OTEL_BSP_SCHEDULE_DELAY", "-1")],
            vec![on, ("OTEL_SDK_DISABLED", "maybe")],
            vec![on, ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=s3\u{1}cr3t")],
            vec![on, ("OTEL_EXPORTER_OTLP_HEADERS", "bad name=s3cr3t")],
            vec![on, ("OTEL_EXPORTER_OTLP_HEADERS", "novalue")],
            vec![on, ("OTEL_EXPORTER_OTLP_HEADERS", "k=%0As3cr3t")],
        ] {
            let err = read(&env(&bad)).unwrap_err().to_string();
            assert!(!err.contains("s3cr3t"), "{err}");
        }
        let e = read(&env(&[
            on,
            ("OTEL_EXPORTER_OTLP_HEADERS", "api-key=a%20b, x-team = t"),
            ("OTEL_TRACES_SAMPLER", "parentbased_traceidratio"),
            ("OTEL_TRACES_SAMPLER_ARG", "0.01"),
        ]))
        .unwrap()
        .unwrap();
        assert_eq!(
            e.headers,
            vec![
                ("api-key".into(), "a b".into()),
                ("x-team".into(), "t".into())
            ]
        );
        assert_eq!(
            e.sampler,
            super::Sampler {
                root: super::Root::ratio(0.01),
                parent_based: true
            }
        );
    }
}
