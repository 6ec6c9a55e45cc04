//! Logging and tracing setup. Logs: JSON lines in production, readable text in
//! development; they carry method, path (without query) and status only. Traces:
//! OpenTelemetry over OTLP/HTTP when the standard `OTEL_*` variables ask for it
//! ([`env`]); off, no exporter layer exists at all. Nothing in a log line or a span
//! carries a token, cookie value, secret or password ([`redact`]).

pub mod env;
mod json;
pub mod propagate;
mod redact;
pub mod sample;

use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{BatchConfigBuilder, BatchSpanProcessor, SdkTracerProvider};
use tracing::subscriber::Interest;
use tracing_subscriber::filter::{EnvFilter, Targets};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::Layer;

use crate::config::Settings;

/// Whether spans are exported: the HTTP layer reads it to skip trace work when off.
/// Per request, [`sample::sampled`] says whether that request is traced.
static EXPORTING: AtomicBool = AtomicBool::new(false);

/// Whether spans are exported.
pub fn exporting() -> bool {
    EXPORTING.load(Ordering::Relaxed)
}

/// Why telemetry could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// An `OTEL_*` variable that cannot be honoured.
    #[error("OpenTelemetry: {0}")]
    Env(#[from] env::EnvError),
    /// The exporter could not be built.
    #[error("OpenTelemetry: cannot build the OTLP exporter: {0}")]
    Exporter(String),
}

/// Flushes and stops the exporter when dropped or shut down.
pub struct Telemetry(Option<SdkTracerProvider>);

impl Telemetry {
    /// Sends what is queued (bounded by the export timeout) and stops the exporter.
    pub fn shutdown(mut self) {
        if let Some(p) = self.0.take() {
            if let Err(e) = p.shutdown() {
                tracing::warn!(error = %e, "the span exporter did not shut down cleanly");
            }
        }
    }
}

/// Installs the global subscriber (once; later calls are ignored): the log layer, and the
/// span exporter when the `OTEL_*` variables turn it on.
pub fn init(s: &Settings) -> Result<Telemetry, TelemetryError> {
    init_with(s, &|k| std::env::var(k).ok())
}

fn init_with(
    s: &Settings,
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Telemetry, TelemetryError> {
    let filter = env_filter(s);
    let export = env::read(get)?;
    let provider = export
        .as_ref()
        .map(|e| provider(e, s.telemetry.record_ids))
        .transpose()?;
    let Some(p) = provider.as_ref() else {
        // No export: one global filter, as always (no per-layer filtering to pay for).
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr);
        let _ = if s.json_logs() {
            builder.json().try_init()
        } else {
            builder.try_init()
        };
        return Ok(Telemetry(None));
    };
    let gate = Reevaluate(env_filter(s));
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr);
    let logs = if s.json_logs() {
        fmt.json()
            .event_format(json::WithTraceIds(tracing_subscriber::fmt::format().json()))
            .with_filter(filter)
            .boxed()
    } else {
        fmt.with_filter(filter).boxed()
    };
    let otel = tracing_opentelemetry::layer()
        .with_tracer(p.tracer("sessiond"))
        .with_location(false)
        .with_threads(false)
        .with_tracked_inactivity(false)
        .with_error_fields_to_exceptions(false)
        .with_error_events_to_exceptions(false)
        .with_error_records_to_exceptions(false)
        // sessiond's own spans, debug ones included (store calls); no dependency's; and
        // only in a request that was sampled.
        .with_filter(sample::OnlySampled(
            Targets::new().with_target("sessiond", tracing::Level::DEBUG),
        ));
    if tracing_subscriber::registry()
        .with(logs)
        .with(otel)
        .with(gate)
        .try_init()
        .is_ok()
    {
        EXPORTING.store(true, Ordering::Relaxed);
        if let Some(e) = &export {
            sample::install(e.sampler);
            tracing::info!(endpoint = %e.endpoint, "exporting traces over OTLP/HTTP");
        }
    }
    Ok(Telemetry(provider))
}

/// The log filter: `RUST_LOG`, else `log.level`, else `info`.
fn env_filter(s: &Settings) -> EnvFilter {
    EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&s.log.level))
        .unwrap_or_else(|_| EnvFilter::new("info"))
}

/// Makes every wanted callsite `sometimes`, so that the per-layer filters (logs and
/// export) decide on each span and event. A callsite cached as `always` skips that
/// decision, and the layers would then read a decision left over from another callsite
/// (a dependency that asks `enabled` for ad hoc metadata, as sqlx's query logger does):
/// spans went missing from the export and from log lines. Callsites that neither the log
/// filter nor the export wants stay `never`. Outside a sampled request it also refuses,
/// before any per-layer filter is asked, what the log filter does not want: the registry
/// makes a span unless every one of its 64 possible per-layer filters refused it, so the
/// two filters' refusals alone would still make every span.
struct Reevaluate(EnvFilter);

impl<S> Layer<S> for Reevaluate
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn register_callsite(&self, meta: &'static tracing::Metadata<'static>) -> Interest {
        let exported = meta.is_span()
            && meta.target().starts_with("sessiond")
            && *meta.level() <= tracing::Level::DEBUG;
        let logged = !Layer::<S>::register_callsite(&self.0, meta).is_never();
        if exported || logged {
            Interest::sometimes()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, meta: &tracing::Metadata<'_>, cx: Context<'_, S>) -> bool {
        sample::sampled() || Layer::<S>::enabled(&self.0, meta, cx)
    }
}

/// The tracer provider: a bounded batch queue on its own thread, so that a slow or dead
/// collector costs requests nothing (a full queue drops spans).
fn provider(e: &env::Export, record_ids: bool) -> Result<SdkTracerProvider, TelemetryError> {
    use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
        .with_endpoint(e.endpoint.clone())
        .with_timeout(e.timeout)
        .with_headers(e.headers.iter().cloned().collect())
        .build()
        .map_err(|err| TelemetryError::Exporter(err.to_string()))?;
    let batch = BatchConfigBuilder::default()
        .with_max_queue_size(e.queue)
        .with_max_export_batch_size(e.batch)
        .with_scheduled_delay(e.delay)
        .build();
    let processor = BatchSpanProcessor::builder(exporter)
        .with_batch_config(batch)
        .build();
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(e.service_name.clone())
        .build();
    Ok(SdkTracerProvider::builder()
        .with_span_processor(redact::Redact {
            inner: processor,
            record_ids,
        })
        // The sampler already ran, once per request (`sample`): what reaches the SDK is kept.
        .with_sampler(opentelemetry_sdk::trace::Sampler::AlwaysOn)
        .with_resource(resource)
        .build())
}

/// A cookie-cache verdict, as an instant child span of the request (`cache hit` or
/// `cache miss`).
pub fn cache_verdict(hit: bool) {
    if hit {
        let _ = tracing::debug_span!("cache hit").entered();
    } else {
        let _ = tracing::debug_span!("cache miss").entered();
    }
}
