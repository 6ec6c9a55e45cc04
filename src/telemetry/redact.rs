//! The last step before export: every span's attributes are cut down to a fixed list of
//! keys known to carry no secret (a token, cookie, password or key can reach no span, even
//! through an error message), ids are kept only when `telemetry.record_ids` is on, and
//! spans get the names Better Auth's instrumentation gives them.

use std::borrow::Cow;
use std::time::Duration;

use opentelemetry::{Context, KeyValue, Value};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanProcessor};
use opentelemetry_sdk::Resource;

/// Attribute keys that may leave the process (span and event attributes alike).
const EXPORTED: &[&str] = &[
    "better_auth.operation_id",
    "db.collection.name",
    "db.operation.name",
    "db.system.name",
    "http.request.method",
    "http.response.status_code",
    "http.route",
    "latency",
    "level",
    "limit",
    "request_id",
    "scrypt.queue_wait_ms",
    "status",
];

/// Wraps the batch processor.
#[derive(Debug)]
pub struct Redact<P> {
    pub inner: P,
    pub record_ids: bool,
}

impl<P: SpanProcessor> SpanProcessor for Redact<P> {
    fn on_start(&self, span: &mut Span, cx: &Context) {
        self.inner.on_start(span, cx);
    }

    fn on_end(&self, mut span: SpanData) {
        let target = take(&mut span.attributes, "target");
        if let Some(target) = target.as_ref().map(|t| t.as_str()) {
            if let Some((name, extra)) = store_span(&target, &span.name) {
                span.name = name;
                span.attributes.extend(extra);
            }
        }
        self.keep(&mut span.attributes);
        for e in span.events.events.iter_mut() {
            self.keep(&mut e.attributes);
        }
        let route = span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == "http.route");
        if let Some(route) = route {
            span.name = format!("{} {}", span.name, route.value.as_str()).into();
        }
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

impl<P> Redact<P> {
    fn keep(&self, attrs: &mut Vec<KeyValue>) {
        attrs.retain_mut(|kv| {
            let key = kv.key.as_str();
            if EXPORTED.contains(&key) {
                return true;
            }
            let id = match key {
                "user_id" | "user.id" => "user.id",
                "session_id" | "session.id" => "session.id",
                _ => return false,
            };
            if self.record_ids {
                kv.key = id.into();
            }
            self.record_ids
        });
    }
}

fn take(attrs: &mut Vec<KeyValue>, key: &str) -> Option<Value> {
    let i = attrs.iter().position(|kv| kv.key.as_str() == key)?;
    Some(attrs.swap_remove(i).value)
}

/// A store call's span as Better Auth names its adapter calls (`db findOne session`), or
/// `redis` for the Redis store; the store functions' own names are kept stable for the
/// logs. `None`: not a store span.
fn store_span(target: &str, name: &str) -> Option<(Cow<'static, str>, Vec<KeyValue>)> {
    let store = target.strip_prefix("sessiond::store::")?;
    let (op, model) = adapter_call(name)?;
    let mut attrs = vec![
        KeyValue::new("db.operation.name", op),
        KeyValue::new("db.collection.name", model),
    ];
    let name = if store.starts_with("redis") {
        attrs.push(KeyValue::new("db.system.name", "redis"));
        Cow::Borrowed("redis")
    } else {
        Cow::Owned(format!("db {op} {model}"))
    };
    Some((name, attrs))
}

/// Each store function as (Better Auth adapter operation, model).
fn adapter_call(name: &str) -> Option<(&'static str, &'static str)> {
    Some(match name {
        "create_session" | "create_session_capped" | "end_and_create_session_capped" => {
            ("create", "session")
        }
        "find_session" | "session_by_id" => ("findOne", "session"),
        "list_sessions" => ("findMany", "session"),
        "touch_session" | "update_session_fields" => ("update", "session"),
        "delete_session" | "delete_user_session" => ("delete", "session"),
        "delete_user_sessions"
        | "delete_other_sessions"
        | "end_sessions"
        | "replace_user_sessions"
        | "end_and_replace_user_sessions" => ("deleteMany", "session"),
        "create_user" => ("create", "user"),
        "user_by_id" | "find_user" | "user_by_email" => ("findOne", "user"),
        "update_user" => ("update", "user"),
        "credential_password" => ("findOne", "account"),
        "set_password" => ("update", "account"),
        "ping" | "health" => ("ping", "store"),
        _ => return None,
    })
}
