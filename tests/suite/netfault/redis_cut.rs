//! Two replicas over PostgreSQL and Redis (sessions in Redis, the cookie cache on): one
//! replica cut from Redis while the other revokes a session, then Redis unplugged from
//! both.

use std::time::{Duration, Instant};

use super::hosts::{Postgres, Redis, Replica};
use super::net::Net;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_cut_from_redis_answers_503_and_recovers() {
    let mut net = Net::new(&["pg", "redis", "s1", "s2"]);
    let pg = Postgres::start(&net, "pg").await;
    let redis = Redis::start(&net, "redis").await;
    let env = [
        ("DATABASE_URL", pg.url.as_str()),
        ("REDIS_URL", redis.url.as_str()),
        ("SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS", "configure"),
        ("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true"),
    ];
    let s1 = Replica::start(&net, "s1", &env).await;
    let s2 = Replica::start(&net, "s2", &env).await;
    let c = client();

    let Victims {
        email,
        kept,
        gone_before,
        gone_during,
        admin,
    } = victims(&c, &s1, &s2).await;

    // s1 loses Redis; s2 keeps it and revokes a session s1 holds in its cookie cache.
    let cut = Instant::now();
    net.cut("s1", "redis");
    assert!(revoke(&c, &s2, &admin, &gone_during).await);
    let revoked = cut.elapsed();
    let mut unavailable = None;
    while cut.elapsed() < Duration::from_secs(15) {
        let late = cut.elapsed() > revoked + REVOCATION_BOUND;
        let cached = get_session(&c, &s1, &gone_during, &gone_during.cached).await;
        assert!(
            !(late && cached == Seen::Valid),
            "s1 still serves a session revoked {:?} ago",
            cut.elapsed() - revoked
        );
        let read = get_session(&c, &s1, &kept, &kept.bare).await;
        assert_ne!(read, Seen::Gone, "s1 lost a session it could not read");
        if read == Seen::Unavailable && unavailable.is_none() {
            unavailable = Some(cut.elapsed());
        }
        assert_eq!(get_session(&c, &s2, &kept, &kept.cached).await, Seen::Valid);
    }
    let unavailable = unavailable.expect("s1 never answered 503 while cut from Redis");
    // Writes fail too, as 503.
    sign_in_refused(&c, &s1, &email, "cut from Redis").await;

    let healed = Instant::now();
    net.heal("s1", "redis");
    let back = until(&c, &s1, &kept, &kept.bare, Seen::Valid, &[], healed).await;
    let back_cached = until(&c, &s1, &kept, &kept.cached, Seen::Valid, &[], healed).await;
    println!(
        "netfault: s1 cut from Redis: 503 after {:.1} s; serving again after the repair: \
         {back} (store read), {back_cached} (cookie cache)",
        unavailable.as_secs_f64()
    );
    settled(
        &c,
        &[&s1, &s2],
        &[&kept, &admin],
        &[&gone_before, &gone_during],
    )
    .await;

    // Redis unplugged: both replicas answer 503, then recover.
    let both = [&s1, &s2];
    unplugged_and_back(&c, &net, "redis", "Redis", &both, &kept).await;
    settled(&c, &both, &[&kept, &admin], &[&gone_before, &gone_during]).await;
}
