//! Spans as a subscriber sees them.

use std::fmt::Write;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::Subscriber;
use tracing_subscriber::layer::{Context, Layer};

/// Whether the calling test ran in a process of its own, so the caller should stop here.
/// Whether a span is created is decided once per call site for every subscriber alive at
/// that moment, process-wide: beside the rest of the suite (stores called on other threads,
/// other tests' subscribers), a test that records spans would miss some. So the test runs
/// again alone — this binary, this one test, one thread — and its outcome is asserted here.
pub fn ran_alone(test: &str) -> bool {
    const ALONE: &str = "SESSIOND_TEST_ALONE";
    if std::env::var(ALONE).as_deref() == Ok(test) {
        return false;
    }
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([test, "--exact", "--test-threads=1"])
        .env(ALONE, test)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("1 passed"),
        "{test} alone:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    true
}

/// Records each new span as `name field=value …`.
pub struct Recorder(pub Arc<Mutex<Vec<String>>>);

struct Fields(String);

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, " {}={value:?}", field.name());
    }
}

impl<S: Subscriber> Layer<S> for Recorder {
    fn on_new_span(&self, attrs: &Attributes<'_>, _id: &Id, _ctx: Context<'_, S>) {
        let mut fields = Fields(attrs.metadata().name().to_owned());
        attrs.record(&mut fields);
        self.0.lock().unwrap().push(fields.0);
    }
}
