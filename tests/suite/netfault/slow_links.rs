//! A replica on a bad link under load: 20 % of its frames to PostgreSQL and Redis lost
//! and its link throttled, then cut while requests are in flight, then repaired. Every
//! answer is right or 503; a session revoked with a 200 is gone everywhere for good; the
//! replica serves and writes again by itself after the repair.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::hosts::{Postgres, Redis, Replica};
use super::net::Net;
use super::*;

/// Answers counted by the load.
#[derive(Default)]
struct Tally {
    ok: AtomicU64,
    unavailable: AtomicU64,
    longest_ms: AtomicU64,
}

impl Tally {
    fn count(&self, ok: bool, took: Duration) {
        let c = if ok { &self.ok } else { &self.unavailable };
        c.fetch_add(1, Ordering::Relaxed);
        self.longest_ms
            .fetch_max(took.as_millis() as u64, Ordering::Relaxed);
    }

    fn take(&self) -> String {
        format!(
            "{} answered, {} × 503, longest request {:.1} s",
            self.ok.swap(0, Ordering::Relaxed),
            self.unavailable.swap(0, Ordering::Relaxed),
            self.longest_ms.swap(0, Ordering::Relaxed) as f64 / 1000.0
        )
    }
}

/// One client of `r` until `stop`: signs in, reads its session (store and cookie cache),
/// revokes it, and checks that a revoked session stays gone. Returns the sessions it
/// revoked with a 200, to be checked everywhere at the end.
async fn load(
    r: Arc<Replica>,
    email: String,
    stop: Arc<AtomicBool>,
    tally: Arc<Tally>,
) -> Vec<Signed> {
    let c = client();
    let mut revoked = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = Instant::now();
        let res = post_sign_in(&c, &r, &email)
            .await
            .unwrap_or_else(|e| panic!("sign-in hung {:?}: {e}", t.elapsed()));
        let status = res.status();
        tally.count(status == StatusCode::OK, t.elapsed());
        if status == StatusCode::SERVICE_UNAVAILABLE {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        }
        assert_eq!(status, StatusCode::OK, "sign-in");
        // Its own session, read and revoked by itself (the cookies of this sign-in).
        let s = signed(res).await;
        for cookie in [&s.bare, &s.cached] {
            let t = Instant::now();
            let seen = get_session(&c, &r, &s, cookie).await;
            assert_ne!(seen, Seen::Gone, "a live session refused");
            tally.count(seen == Seen::Valid, t.elapsed());
        }
        let t = Instant::now();
        let done = revoke(&c, &r, &s, &s).await;
        tally.count(done, t.elapsed());
        if done {
            let seen = get_session(&c, &r, &s, &s.bare).await;
            assert_ne!(
                seen,
                Seen::Valid,
                "a session revoked with a 200 is still served"
            );
            revoked.push(s);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    revoked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lossy_slow_and_cut_links_under_load() {
    let mut net = Net::new(&["pg", "redis", "s1", "s2"]);
    let pg = Postgres::start(&net, "pg").await;
    let redis = Redis::start(&net, "redis").await;
    let env = [
        ("DATABASE_URL", pg.url.as_str()),
        ("REDIS_URL", redis.url.as_str()),
        ("SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS", "configure"),
        ("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true"),
        ("SESSIOND_SESSION__STORE_SESSION_IN_DATABASE", "true"),
    ];
    let s1 = Arc::new(Replica::start(&net, "s1", &env).await);
    let s2 = Replica::start(&net, "s2", &env).await;
    let c = client();
    let email = sign_up(&c, &s1).await;
    let kept = sign_in(&c, &s2, &email).await;

    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(Tally::default());
    // Two clients, each pausing between rounds: every round hashes a password (scrypt),
    // and the suite shares the machine with hundreds of other tests.
    let clients: Vec<_> = (0..2)
        .map(|_| tokio::spawn(load(s1.clone(), email.clone(), stop.clone(), tally.clone())))
        .collect();
    let phase = |name: &str| println!("netfault: s1 under load, {name}: {}", tally.take());

    tokio::time::sleep(Duration::from_secs(3)).await;
    phase("healthy links");
    for store in ["pg", "redis"] {
        net.lose("s1", store, 20);
    }
    net.throttle("s1", Some(512));
    tokio::time::sleep(Duration::from_secs(15)).await;
    phase("20 % loss and 512 kbit/s");
    let cut = Instant::now();
    for store in ["pg", "redis"] {
        net.cut("s1", store);
    }
    // A PostgreSQL write sent just before the cut waits for the link and TCP's next
    // retransmission (12.6 s after the first send, then 25.4 s): a short cut keeps it
    // well inside the test's patience (HUNG).
    tokio::time::sleep(Duration::from_secs(10)).await;
    phase("cut from PostgreSQL and Redis");
    let healed = Instant::now();
    for store in ["pg", "redis"] {
        net.heal("s1", store);
    }
    net.throttle("s1", None);
    until(&c, &s1, &kept, &kept.bare, Seen::Valid, &[], healed).await;
    until_signed_in(&c, &s1, &email, healed).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    stop.store(true, Ordering::Relaxed);
    let mut revoked = Vec::new();
    for h in clients {
        revoked.extend(h.await.unwrap());
    }
    phase("repaired");
    println!(
        "netfault: s1 cut for {:.1} s; {} sessions revoked under load",
        (healed - cut).as_secs_f64(),
        revoked.len()
    );
    let revoked: Vec<&Signed> = revoked.iter().collect();
    settled(&c, &[&s1, &s2], &[&kept], &revoked).await;
}
