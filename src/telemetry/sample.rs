//! Head sampling, decided once per request before any span exists. The configured sampler
//! (`OTEL_TRACES_SAMPLER`) is applied at the request boundary and the verdict is kept in a
//! task-local for the request's future; the export layer's filter reads it, so an unsampled
//! request creates no span for the exporter at all (left to the SDK, every span would be
//! built, attributes and all, before the sampler dropped it). Spans outside any request
//! (background loops) are not exported.

use std::cell::Cell;
use std::future::Future;
use std::sync::OnceLock;

use opentelemetry::trace::SpanContext;
use tokio::task::futures::TaskLocalFuture;
use tracing::subscriber::Interest;
use tracing::Metadata;
use tracing_subscriber::layer::{Context, Filter};

tokio::task_local! {
    /// Whether the request being served is traced.
    static SAMPLED: bool;
}

/// The sampler in force, set once when export starts.
static SAMPLER: OnceLock<Sampler> = OnceLock::new();

/// `OTEL_TRACES_SAMPLER` and its ratio, as applied to a request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sampler {
    /// What a request without a usable parent (or any request, when not parent-based)
    /// gets.
    pub root: Root,
    /// Whether a caller's `traceparent` decides by its sampled flag.
    pub parent_based: bool,
}

/// A sampler's own verdict.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Root {
    On,
    Off,
    /// Kept when 63 bits of the trace id (or of a random draw, for a new trace) fall below
    /// this bound: ratio × 2^63, as OpenTelemetry's `TraceIdRatioBased` reads a trace id.
    Ratio(u64),
}

impl Root {
    /// The verdict of a ratio from 0 to 1.
    pub fn ratio(r: f64) -> Self {
        if r >= 1.0 {
            Root::On
        } else if r > 0.0 {
            // Saturating float-to-int cast; r < 1 keeps it below 2^63.
            Root::Ratio((r * (1u64 << 63) as f64) as u64)
        } else {
            Root::Off
        }
    }

    fn keeps(self, draw: impl FnOnce() -> u64) -> bool {
        match self {
            Root::On => true,
            Root::Off => false,
            Root::Ratio(bound) => draw() >> 1 < bound,
        }
    }
}

impl Sampler {
    /// Whether a request with this remote parent (if any) is traced.
    pub fn decide(&self, parent: Option<&SpanContext>) -> bool {
        match parent {
            Some(p) if self.parent_based => p.is_sampled(),
            // The trace id's low 8 bytes, as the SDK's ratio sampler reads them, so that
            // every service with the same ratio keeps the same traces.
            Some(p) => self.root.keeps(|| {
                let id = p.trace_id().to_bytes();
                let mut low = [0u8; 8];
                low.copy_from_slice(id.get(8..).unwrap_or(&[0; 8]));
                u64::from_be_bytes(low)
            }),
            None => self.root.keeps(draw),
        }
    }
}

thread_local! {
    /// xorshift64* state, seeded from the OS generator once per thread: the draw is made on
    /// every request, and a sampling draw needs no cryptographic generator.
    static DRAW: Cell<u64> = Cell::new(rand::random::<u64>() | 1);
}

/// A uniform 64-bit draw.
fn draw() -> u64 {
    DRAW.with(|state| {
        let mut x = state.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        state.set(x);
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    })
}

/// Makes `s` the sampler of every later request (the first call wins).
pub fn install(s: Sampler) {
    let _ = SAMPLER.set(s);
}

/// Whether a request with this remote parent is traced; `false` when export is off.
pub fn decide(parent: Option<&SpanContext>) -> bool {
    SAMPLER.get().is_some_and(|s| s.decide(parent))
}

/// Whether the request being served is traced (`false` outside a request).
pub fn sampled() -> bool {
    SAMPLED.try_with(|s| *s).unwrap_or(false)
}

/// Runs `start` (which creates the request's first span) and then the future it returns
/// with the request's verdict in force.
pub fn in_request<F: Future>(sampled: bool, start: impl FnOnce() -> F) -> TaskLocalFuture<bool, F> {
    let fut = SAMPLED.sync_scope(sampled, start);
    SAMPLED.scope(sampled, fut)
}

/// The export layer's filter: the wrapped filter, in a traced request only.
pub struct OnlySampled<F>(pub F);

impl<S, F: Filter<S>> Filter<S> for OnlySampled<F> {
    fn enabled(&self, meta: &Metadata<'_>, cx: &Context<'_, S>) -> bool {
        sampled() && self.0.enabled(meta, cx)
    }

    fn callsite_enabled(&self, meta: &'static Metadata<'static>) -> Interest {
        // Never `always`: the verdict changes from one request to the next.
        if self.0.callsite_enabled(meta).is_never() {
            Interest::never()
        } else {
            Interest::sometimes()
        }
    }

    fn max_level_hint(&self) -> Option<tracing::level_filters::LevelFilter> {
        self.0.max_level_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{Root, Sampler};
    use opentelemetry::trace::{SpanContext, SpanId, TraceFlags, TraceId, TraceState};

    fn parent(trace: u128, sampled: bool) -> SpanContext {
        let flags = if sampled {
            TraceFlags::SAMPLED
        } else {
            TraceFlags::default()
        };
        SpanContext::new(
            TraceId::from(trace),
            SpanId::from(1u64),
            flags,
            true,
            TraceState::default(),
        )
    }

    #[test]
    fn a_parent_decides_when_parent_based() {
        let s = Sampler {
            root: Root::Off,
            parent_based: true,
        };
        assert!(s.decide(Some(&parent(7, true))));
        assert!(!s.decide(Some(&parent(7, false))));
        assert!(!s.decide(None));
        let s = Sampler {
            root: Root::On,
            parent_based: false,
        };
        assert!(s.decide(Some(&parent(7, false))));
    }

    #[test]
    fn a_ratio_reads_the_trace_id_or_draws() {
        assert_eq!(Root::ratio(0.0), Root::Off);
        assert_eq!(Root::ratio(1.0), Root::On);
        let half = Sampler {
            root: Root::ratio(0.5),
            parent_based: false,
        };
        // Low 64 bits shifted right once, against 2^62.
        assert!(half.decide(Some(&parent(1 << 62, true))));
        assert!(!half.decide(Some(&parent(u128::from(u64::MAX), true))));
        let kept = (0..10_000).filter(|_| half.decide(None)).count();
        assert!((4_000..6_000).contains(&kept), "{kept}");
    }
}
