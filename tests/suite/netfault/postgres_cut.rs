//! Two replicas over PostgreSQL alone (the cookie cache on): one replica cut from the
//! database while the other revokes a session, then the database unplugged from both.

use std::time::{Duration, Instant};

use super::hosts::{Postgres, Replica};
use super::net::Net;
use super::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replica_cut_from_postgres_answers_503_and_recovers() {
    let mut net = Net::new(&["pg", "s1", "s2"]);
    let pg = Postgres::start(&net, "pg").await;
    let env = [
        ("DATABASE_URL", pg.url.as_str()),
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

    // s1 loses the database; s2 keeps it and revokes a session s1 holds in its cookie
    // cache.
    let cut = Instant::now();
    net.cut("s1", "pg");
    assert!(revoke(&c, &s2, &admin, &gone_during).await);
    let revoked = cut.elapsed();
    let mut unavailable = None;
    let mut longest = Duration::ZERO;
    while cut.elapsed() < Duration::from_secs(20) || unavailable.is_none() {
        let late = cut.elapsed() > revoked + REVOCATION_BOUND;
        let asked = Instant::now();
        let cached = get_session(&c, &s1, &gone_during, &gone_during.cached).await;
        assert!(
            !(late && cached == Seen::Valid),
            "s1 still serves a session revoked {:?} ago",
            cut.elapsed() - revoked
        );
        let read = get_session(&c, &s1, &kept, &kept.bare).await;
        longest = longest.max(asked.elapsed());
        assert_ne!(read, Seen::Gone, "s1 lost a session it could not read");
        if read == Seen::Unavailable && unavailable.is_none() {
            unavailable = Some(cut.elapsed());
        }
        assert_eq!(get_session(&c, &s2, &kept, &kept.cached).await, Seen::Valid);
        assert!(
            cut.elapsed() < Duration::from_secs(180),
            "s1 never answered 503"
        );
    }
    let unavailable = unavailable.unwrap_or_default();
    // A write on s1 fails as 503 too.
    sign_in_refused(&c, &s1, &email, "cut from the database").await;

    let healed = Instant::now();
    net.heal("s1", "pg");
    let back = until(&c, &s1, &kept, &kept.bare, Seen::Valid, &[], healed).await;
    let back_cached = until(&c, &s1, &kept, &kept.cached, Seen::Valid, &[], healed).await;
    println!(
        "netfault: s1 cut from PostgreSQL: 503 after {:.1} s (longest get-session pair \
         {:.1} s); serving again after the repair: {back} (store read), {back_cached} \
         (cookie cache)",
        unavailable.as_secs_f64(),
        longest.as_secs_f64()
    );
    // Writes work again on s1: a new session, revoked through s1.
    let fresh = until_signed_in(&c, &s1, &email, healed).await;
    assert!(revoke(&c, &s1, &fresh, &fresh).await);
    settled(
        &c,
        &[&s1, &s2],
        &[&kept, &admin],
        &[&gone_before, &gone_during, &fresh],
    )
    .await;

    // The database unplugged: both replicas answer 503, then recover.
    let both = [&s1, &s2];
    let healed = unplugged_and_back(&c, &net, "pg", "PostgreSQL", &both, &kept).await;
    for r in both {
        until_signed_in(&c, r, &email, healed).await;
    }
    settled(
        &c,
        &both,
        &[&kept, &admin],
        &[&gone_before, &gone_during, &fresh],
    )
    .await;
}
