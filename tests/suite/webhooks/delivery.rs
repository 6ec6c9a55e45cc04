//! The delivery loop against real receivers: signed per the Standard Webhooks
//! specification, each event once per endpoint that wants it, failures retried with
//! backoff keeping the endpoints done, given up after the last attempt, and hostile
//! receivers (redirects, endless bodies, silence, resets, slow heads) counted as failures
//! without following, reading or waiting beyond the timeout.

use std::collections::HashSet;
use std::sync::Arc;

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sessiond::clock::{Clock, ManualClock};
use sessiond::config::{WebhookEndpoint, WebhooksSettings};
use sessiond::store::webhooks::sign::signature;
use sessiond::store::webhooks::Webhooks;

use super::outbox::record;
use super::receiver::{hostile, Hostile, Receiver};
use super::Db;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// The specification's published vector (its libraries' `test_sign_function`).
#[test]
fn the_signature_matches_the_specification_vector() {
    let e = WebhookEndpoint {
        secret: SECRET.into(),
        ..Default::default()
    };
    let key = e.key().unwrap();
    assert_eq!(
        signature(
            &key,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            r#"{"test": 2432232314}"#
        ),
        "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
    );
}

pub fn endpoint(id: &str, url: &str, events: &[&str]) -> WebhookEndpoint {
    WebhookEndpoint {
        id: id.into(),
        url: url.into(),
        secret: SECRET.into(),
        events: events.iter().map(|e| (*e).to_owned()).collect(),
    }
}

fn hooks(
    db: &Db,
    endpoints: Vec<WebhookEndpoint>,
    clock: &ManualClock,
    f: impl FnOnce(&mut WebhooksSettings),
) -> Webhooks {
    let mut s = WebhooksSettings {
        endpoints,
        timeout: 1,
        ..Default::default()
    };
    f(&mut s);
    Webhooks::new(&s, db.outbox(), Arc::new(clock.clone())).unwrap()
}

/// Checks a delivery's signature independently of the service's code.
fn verify(g: &super::receiver::Got) {
    let key = base64::engine::general_purpose::STANDARD
        .decode(SECRET.trim_start_matches("whsec_"))
        .unwrap();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
    mac.update(format!("{}.{}.{}", g.id, g.timestamp, g.body).as_bytes());
    let want = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(g.signature, format!("v1,{want}"));
    assert_eq!(g.content_type, "application/json");
}

/// Runs rounds until nothing is due.
async fn drain(h: &Webhooks) {
    while h.step().await.unwrap() {}
}

async fn each_event_reaches_each_endpoint_that_wants_it_once(db: Db) {
    let clock = ManualClock::starting_now();
    let (all, all_url) = Receiver::start(200).await;
    let (revoked, revoked_url) = Receiver::start(204).await;
    let h = hooks(
        &db,
        vec![
            endpoint("all", &all_url, &[]),
            endpoint("", &revoked_url, &["session.revoked"]),
        ],
        &clock,
        |_| {},
    );
    record(&db, 20, clock.now()).await;
    db.outbox()
        .record(
            &[super::outbox::event("session.revoked", "u1", 99)],
            clock.now(),
        )
        .await
        .unwrap();
    drain(&h).await;
    let got = all.got();
    assert_eq!(got.len(), 21);
    assert_eq!(got.iter().map(|g| &g.id).collect::<HashSet<_>>().len(), 21);
    for g in &got {
        verify(g);
        let body: Value = serde_json::from_str(&g.body).unwrap();
        assert!(body["type"] == "session.created" || body["type"] == "session.revoked");
        assert!(body["timestamp"].as_str().unwrap().ends_with('Z'));
        assert!(
            body["data"].get("request").is_none(),
            "nulls are left out: {body}"
        );
        assert_eq!(g.timestamp, clock.now().timestamp().to_string());
    }
    let r = revoked.got();
    assert_eq!(r.len(), 1);
    assert!(r[0].body.contains(r#""type":"session.revoked""#));
    assert_eq!(db.outbox().pending().await.unwrap(), 0);
    assert!(h.step().await.is_ok());
    assert_eq!(all.got().len(), 21, "nothing delivered twice");
}

async fn a_failed_endpoint_is_retried_alone_after_the_backoff(db: Db) {
    let clock = ManualClock::starting_now();
    let (good, good_url) = Receiver::start(200).await;
    let (bad, bad_url) = Receiver::start(503).await;
    let h = hooks(
        &db,
        vec![
            endpoint("good", &good_url, &[]),
            endpoint("bad", &bad_url, &[]),
        ],
        &clock,
        |_| {},
    );
    record(&db, 1, clock.now()).await;
    drain(&h).await;
    assert_eq!((good.got().len(), bad.got().len()), (1, 1));
    assert_eq!(db.outbox().pending().await.unwrap(), 1);
    // Not due before the first backoff (5 s, at most 20% less).
    clock.advance_secs(3);
    drain(&h).await;
    assert_eq!(bad.got().len(), 1);
    bad.answer(200);
    clock.advance_secs(4);
    drain(&h).await;
    assert_eq!(
        good.got().len(),
        1,
        "the endpoint done is not sent it again"
    );
    let b = bad.got();
    assert_eq!(b.len(), 2);
    assert_eq!(b[0].id, b[1].id, "a redelivery carries the same webhook-id");
    assert_ne!(
        b[0].timestamp, b[1].timestamp,
        "each attempt is signed at its time"
    );
    verify(&b[1]);
    assert_eq!(db.outbox().pending().await.unwrap(), 0);
}

async fn an_event_is_given_up_after_max_attempts(db: Db) {
    let clock = ManualClock::starting_now();
    let (bad, bad_url) = Receiver::start(500).await;
    let h = hooks(&db, vec![endpoint("bad", &bad_url, &[])], &clock, |s| {
        s.max_attempts = 2
    });
    record(&db, 1, clock.now()).await;
    drain(&h).await;
    clock.advance_secs(10);
    drain(&h).await;
    assert_eq!(bad.got().len(), 2);
    assert_eq!(db.outbox().pending().await.unwrap(), 0);
    clock.advance_secs(100_000);
    drain(&h).await;
    assert_eq!(bad.got().len(), 2);
}

/// Every hostile receiver is a failure, found within the timeout; the event stays due
/// for a retry, and a redirect is never followed.
async fn hostile_receivers_fail_without_harm(db: Db) {
    let clock = ManualClock::starting_now();
    let kinds = [
        Hostile::RedirectInternal,
        Hostile::HugeBody,
        Hostile::Silent,
        Hostile::CloseMidResponse,
        Hostile::SlowHeaders,
    ];
    let mut endpoints = Vec::new();
    let mut seen = Vec::new();
    for (i, k) in kinds.iter().enumerate() {
        let (url, s) = hostile(*k).await;
        endpoints.push(endpoint(&format!("h{i}"), &url, &[]));
        seen.push(s);
    }
    let (good, good_url) = Receiver::start(200).await;
    endpoints.push(endpoint("good", &good_url, &[]));
    let h = hooks(&db, endpoints, &clock, |_| {});
    record(&db, 2, clock.now()).await;
    drain(&h).await;
    assert_eq!(good.got().len(), 2);
    for s in &seen {
        assert!(*s.lock().unwrap() >= 1);
    }
    // A 200 with an endless body is a success (the body is never read): only the other
    // four failed, so both events wait for a retry.
    assert_eq!(db.outbox().pending().await.unwrap(), 2);
    let c = db
        .outbox()
        .claim(10, h.lease(), clock.now() + chrono::Duration::seconds(10))
        .await
        .unwrap();
    assert_eq!(c.len(), 2);
    let mut done = c[0].delivered.clone();
    done.sort();
    assert_eq!(done, vec!["good".to_string(), "h1".to_string()]);
}

/// Ten thousand queued events reach the receiver once each.
async fn ten_thousand_events_are_delivered_once(db: Db) {
    let clock = ManualClock::starting_now();
    let (r, url) = Receiver::start(200).await;
    let h = hooks(&db, vec![endpoint("r", &url, &[])], &clock, |s| {
        s.concurrency = 64
    });
    for _ in 0..10 {
        record(&db, 1000, clock.now()).await;
    }
    drain(&h).await;
    let got = r.got();
    assert_eq!(got.len(), 10_000);
    assert_eq!(
        got.iter().map(|g| &g.id).collect::<HashSet<_>>().len(),
        10_000
    );
    assert_eq!(db.outbox().pending().await.unwrap(), 0);
}

crate::webhooks::on_both!(
    each_event_reaches_each_endpoint_that_wants_it_once(1),
    a_failed_endpoint_is_retried_alone_after_the_backoff(1),
    an_event_is_given_up_after_max_attempts(1),
    hostile_receivers_fail_without_harm(1),
    ten_thousand_events_are_delivered_once(1),
);
