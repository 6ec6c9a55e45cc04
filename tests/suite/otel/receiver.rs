//! An OTLP/HTTP trace receiver on loopback: `POST /v1/traces` with a protobuf
//! `ExportTraceServiceRequest`, decoded with the `opentelemetry-proto` crate and kept.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue};
use prost::Message;

/// A received span, ids as lowercase hex.
#[derive(Debug, Clone)]
pub struct Got {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent: String,
    pub attrs: Vec<(String, String)>,
    /// Event names and their attributes, flattened.
    pub events: Vec<(String, Vec<(String, String)>)>,
}

impl Got {
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

pub struct Receiver {
    pub port: u16,
    spans: Arc<Mutex<Vec<Got>>>,
    posts: Arc<AtomicUsize>,
    _thread: std::thread::JoinHandle<()>,
}

fn text(v: &Option<AnyValue>) -> String {
    match v.as_ref().and_then(|v| v.value.as_ref()) {
        Some(any_value::Value::StringValue(s)) => s.clone(),
        Some(any_value::Value::IntValue(i)) => i.to_string(),
        Some(any_value::Value::BoolValue(b)) => b.to_string(),
        Some(any_value::Value::DoubleValue(d)) => d.to_string(),
        Some(other) => format!("{other:?}"),
        None => String::new(),
    }
}

fn pairs(kvs: &[KeyValue]) -> Vec<(String, String)> {
    kvs.iter()
        .map(|kv| (kv.key.clone(), text(&kv.value)))
        .collect()
}

impl Receiver {
    /// Listens on a free loopback port.
    pub fn start() -> Self {
        Self::on("127.0.0.1:0")
    }

    /// Listens on `addr`.
    pub fn on(addr: &str) -> Self {
        let listener = std::net::TcpListener::bind(addr).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let spans = Arc::new(Mutex::new(Vec::new()));
        let posts = Arc::new(AtomicUsize::new(0));
        let (s, p) = (spans.clone(), posts.clone());
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).unwrap();
                let app = axum::Router::new().route(
                    "/v1/traces",
                    axum::routing::post(move |body: axum::body::Bytes| {
                        let (s, p) = (s.clone(), p.clone());
                        async move {
                            p.fetch_add(1, Ordering::SeqCst);
                            let req = ExportTraceServiceRequest::decode(body).unwrap();
                            let mut got = s.lock().unwrap();
                            for rs in req.resource_spans {
                                let service = rs
                                    .resource
                                    .as_ref()
                                    .and_then(|r| {
                                        r.attributes.iter().find(|kv| kv.key == "service.name")
                                    })
                                    .map(|kv| text(&kv.value))
                                    .unwrap_or_default();
                                for ss in rs.scope_spans {
                                    for sp in ss.spans {
                                        got.push(Got {
                                            service: service.clone(),
                                            name: sp.name.clone(),
                                            trace_id: hex::encode(&sp.trace_id),
                                            span_id: hex::encode(&sp.span_id),
                                            parent: hex::encode(&sp.parent_span_id),
                                            attrs: pairs(&sp.attributes),
                                            events: sp
                                                .events
                                                .iter()
                                                .map(|e| (e.name.clone(), pairs(&e.attributes)))
                                                .collect(),
                                        });
                                    }
                                }
                            }
                            axum::http::StatusCode::OK
                        }
                    }),
                );
                axum::serve(listener, app).await.unwrap();
            });
        });
        Self {
            port,
            spans,
            posts,
            _thread: thread,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Export requests received so far.
    pub fn posts(&self) -> usize {
        self.posts.load(Ordering::SeqCst)
    }

    pub fn spans(&self) -> Vec<Got> {
        self.spans.lock().unwrap().clone()
    }

    /// Polls until `done` holds for the spans received (30 s at most).
    pub fn wait_for(&self, what: &str, done: impl Fn(&[Got]) -> bool) -> Vec<Got> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans = self.spans();
            if done(&spans) {
                return spans;
            }
            assert!(Instant::now() < deadline, "no {what} in:\n{spans:#?}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// The request span of the request with this `X-Request-Id`.
pub fn request<'a>(spans: &'a [Got], request_id: &str) -> Option<&'a Got> {
    spans.iter().find(|s| {
        s.attr("request_id") == Some(request_id) && s.attr("http.request.method").is_some()
    })
}

/// The spans below `root` (any depth) named `name`.
pub fn below<'a>(spans: &'a [Got], root: &Got, name: &str) -> Vec<&'a Got> {
    spans
        .iter()
        .filter(|s| s.name == name && descends(spans, s, root))
        .collect()
}

/// Whether `s` is below `root`, following parent ids within one trace.
pub fn descends(spans: &[Got], s: &Got, root: &Got) -> bool {
    let mut cur = s;
    for _ in 0..64 {
        if cur.trace_id != root.trace_id {
            return false;
        }
        if cur.parent == root.span_id {
            return true;
        }
        match spans
            .iter()
            .find(|p| p.span_id == cur.parent && p.trace_id == cur.trace_id)
        {
            Some(p) => cur = p,
            None => return false,
        }
    }
    false
}
