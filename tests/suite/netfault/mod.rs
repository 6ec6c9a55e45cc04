//! Network faults between hosts: sessiond replicas, PostgreSQL and Redis each in a network
//! namespace of its own, on a bridge the test drives ([`net`]). Links are cut (frames
//! dropped in the bridge: silence, no reset), unplugged, made lossy and slow while the
//! test talks to every replica over the bridge. What must hold: a replica that cannot
//! reach its store answers 503, never a wrong answer (no 401 for a valid session, no
//! revoked session served beyond the revocation bound); it recovers by itself once the
//! link is back; no session is lost or resurrected. Each test prints how long each replica
//! took to answer 503 after a cut and to serve again after the repair.
//!
//! The tests need root (network namespaces), `ip`, `nft`, `tc`, `setpriv`, PostgreSQL 15's
//! programs and redis-server: without them they fail.

mod hosts;
mod net;
mod postgres_cut;
mod redis_cut;
mod slow_links;

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use self::hosts::Replica;
use crate::support::PASSWORD;

/// How long any one request may take before the test calls it hung: above
/// `server.request_timeout` (30 s), far below "minutes".
const HUNG: Duration = Duration::from_secs(45);

/// What the revocation bound allows a replica: a revocation it could not hear (its
/// feed is cut) is honoured once its watchdog finds the feed silent, within about a
/// second (README, "Immediate revocation"); the test allows five on a loaded machine.
const REVOCATION_BOUND: Duration = Duration::from_secs(5);

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(HUNG)
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// A signed-in session: its token, its session cookie alone (every get-session reads
/// the store) and the cookies as set at sign-in (the cookie cache too, when on).
#[derive(Debug, Clone)]
pub struct Signed {
    pub token: String,
    pub bare: String,
    pub cached: String,
}

/// A new user signed up on `r`; its email.
async fn sign_up(c: &reqwest::Client, r: &Replica) -> String {
    let email = format!(
        "nf{}@example.com",
        sessiond::crypto::token::generate_id().to_lowercase()
    );
    let res = c
        .post(r.url("/sign-up/email"))
        .header("origin", "http://sessiond.test")
        .json(&json!({"name": "Netfault", "email": email, "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "sign-up on {}", r.name);
    email
}

/// POST /sign-in/email on `r` with the test password.
async fn post_sign_in(
    c: &reqwest::Client,
    r: &Replica,
    email: &str,
) -> reqwest::Result<reqwest::Response> {
    c.post(r.url("/sign-in/email"))
        .header("origin", "http://sessiond.test")
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .await
}

async fn sign_in(c: &reqwest::Client, r: &Replica, email: &str) -> Signed {
    let res = post_sign_in(c, r, email).await.unwrap();
    assert_eq!(res.status(), 200, "sign-in on {}", r.name);
    signed(res).await
}

/// The session a 200 sign-in answer set.
async fn signed(res: reqwest::Response) -> Signed {
    let pairs: Vec<String> = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .collect();
    let token = res.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let bare = pairs
        .iter()
        .find(|p| p.starts_with("better-auth.session_token="))
        .unwrap()
        .clone();
    Signed {
        token,
        bare,
        cached: pairs.join("; "),
    }
}

/// Signs in on `r` until it works (503 while its store is out of reach; anything else
/// fails the test); prints how long after `since` writes worked again.
async fn until_signed_in(c: &reqwest::Client, r: &Replica, email: &str, since: Instant) -> Signed {
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let res = c
            .post(r.url("/sign-in/email"))
            .header("origin", "http://sessiond.test")
            .json(&json!({"email": email, "password": PASSWORD}))
            .send()
            .await
            .unwrap();
        match res.status() {
            StatusCode::OK => break,
            StatusCode::SERVICE_UNAVAILABLE => {}
            s => panic!("sign-in on {}: {s} {}", r.name, res.text().await.unwrap()),
        }
        assert!(
            Instant::now() < deadline,
            "sign-in on {} never worked again\n{}",
            r.name,
            r.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    println!(
        "netfault: {} signs in again after {:.1} s",
        r.name,
        since.elapsed().as_secs_f64()
    );
    sign_in(c, r, email).await
}

/// Revokes `victim` through `r` with `by`'s session; true when `r` did it (200), false
/// when it answered 503 (its store unreachable). Anything else fails the test.
async fn revoke(c: &reqwest::Client, r: &Replica, by: &Signed, victim: &Signed) -> bool {
    let res = c
        .post(r.url("/revoke-session"))
        .header("origin", "http://sessiond.test")
        .header("cookie", &by.bare)
        .json(&json!({"token": victim.token}))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    match status {
        StatusCode::OK => {
            assert_eq!(text, r#"{"status":true}"#, "revoke on {}", r.name);
            true
        }
        StatusCode::SERVICE_UNAVAILABLE => false,
        s => panic!("revoke on {}: {s} {text}", r.name),
    }
}

/// What get-session answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// 200 with the session asked about.
    Valid,
    /// 200 `null`: no such session.
    Gone,
    /// 503: the store cannot be reached.
    Unavailable,
}

/// get-session on `r` with `cookie` for `s`; any answer but the three of [`Seen`] (a 401,
/// a 500, another session, a request that hangs past [`HUNG`]) fails the test.
async fn get_session(c: &reqwest::Client, r: &Replica, s: &Signed, cookie: &str) -> Seen {
    let started = Instant::now();
    let res = c
        .get(r.url("/get-session"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap_or_else(|e| {
            panic!(
                "get-session on {} failed after {:?}: {e}\n{}",
                r.name,
                started.elapsed(),
                r.log()
            )
        });
    let status = res.status();
    let text = res.text().await.unwrap();
    match status {
        StatusCode::SERVICE_UNAVAILABLE => Seen::Unavailable,
        StatusCode::OK if text == "null" => Seen::Gone,
        StatusCode::OK => {
            let v: Value = serde_json::from_str(&text).unwrap();
            assert_eq!(v["session"]["token"], s.token.as_str(), "another session");
            Seen::Valid
        }
        s => panic!("get-session on {}: {s} {text}", r.name),
    }
}

/// How a wait went: the time from its start until the answer wanted, and the longest any
/// one request took on the way.
#[derive(Debug, Clone, Copy)]
pub struct Waited {
    pub after: Duration,
    pub longest: Duration,
}

impl std::fmt::Display for Waited {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} s (longest request {:.1} s)",
            self.after.as_secs_f64(),
            self.longest.as_secs_f64()
        )
    }
}

/// Asks `r` about `s` until it answers `want`. Along the way every answer must be `want`,
/// [`Seen::Unavailable`] or one of `also`.
async fn until(
    c: &reqwest::Client,
    r: &Replica,
    s: &Signed,
    cookie: &str,
    want: Seen,
    also: &[Seen],
    since: Instant,
) -> Waited {
    let deadline = Instant::now() + Duration::from_secs(180);
    let mut longest = Duration::ZERO;
    loop {
        let asked = Instant::now();
        let seen = get_session(c, r, s, cookie).await;
        longest = longest.max(asked.elapsed());
        if seen == want {
            return Waited {
                after: since.elapsed(),
                longest,
            };
        }
        assert!(
            seen == Seen::Unavailable || also.contains(&seen),
            "{} answered {seen:?} while waiting for {want:?}",
            r.name
        );
        assert!(
            Instant::now() < deadline,
            "{} never answered {want:?}\n{}",
            r.name,
            r.log()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// [`until`] on every replica at once; prints how long each took, as `what`.
async fn each_until(
    c: &reqwest::Client,
    replicas: &[&Replica],
    s: &Signed,
    want: Seen,
    also: &[Seen],
    since: Instant,
    what: &str,
) {
    let waits = replicas
        .iter()
        .map(|r| until(c, r, s, &s.bare, want, also, since));
    for (r, w) in replicas.iter().zip(futures::future::join_all(waits).await) {
        println!("netfault: {what}: {} after {w}", r.name);
    }
}

/// A sign-in on `r` is refused with 503 (`why`: what `r` is cut from).
async fn sign_in_refused(c: &reqwest::Client, r: &Replica, email: &str, why: &str) {
    let res = post_sign_in(c, r, email).await.unwrap();
    assert_eq!(res.status(), 503, "sign-in on {} {why}", r.name);
}

/// Unplugs `host` from every replica: each answers `kept`'s get-session with 503; ten
/// seconds later `host` is plugged back and each serves it again. When it was plugged
/// back (`name` says what `host` is, in the printed waits).
async fn unplugged_and_back(
    c: &reqwest::Client,
    net: &net::Net,
    host: &str,
    name: &str,
    replicas: &[&Replica],
    kept: &Signed,
) -> Instant {
    let cut = Instant::now();
    net.plug(host, false);
    let what = format!("{name} unplugged, 503");
    each_until(
        c,
        replicas,
        kept,
        Seen::Unavailable,
        &[Seen::Valid],
        cut,
        &what,
    )
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let healed = Instant::now();
    net.plug(host, true);
    let what = format!("{name} plugged back, serving");
    each_until(c, replicas, kept, Seen::Valid, &[], healed, &what).await;
    healed
}

/// The sessions of one user that a cut is tried on, the cluster settled around them.
struct Victims {
    email: String,
    /// Never revoked: must stay valid wherever it can be read.
    kept: Signed,
    /// Revoked while the network was whole.
    gone_before: Signed,
    /// To be revoked during the cut.
    gone_during: Signed,
    /// The session that revokes the others.
    admin: Signed,
}

/// Signs a new user up on `s1`, makes the [`Victims`] (on both replicas), revokes
/// `gone_before` through `s2` and waits until both replicas agree on all of them.
async fn victims(c: &reqwest::Client, s1: &Replica, s2: &Replica) -> Victims {
    let email = sign_up(c, s1).await;
    let v = Victims {
        kept: sign_in(c, s1, &email).await,
        gone_before: sign_in(c, s2, &email).await,
        gone_during: sign_in(c, s1, &email).await,
        admin: sign_in(c, s2, &email).await,
        email,
    };
    assert!(revoke(c, s2, &v.admin, &v.gone_before).await);
    settled(
        c,
        &[s1, s2],
        &[&v.kept, &v.gone_during, &v.admin],
        &[&v.gone_before],
    )
    .await;
    v
}

/// Checks that every replica serves `alive` and refuses every one of `revoked` (within
/// [`REVOCATION_BOUND`]).
async fn settled(
    c: &reqwest::Client,
    replicas: &[&Replica],
    alive: &[&Signed],
    revoked: &[&Signed],
) {
    for r in replicas {
        for s in alive {
            assert_eq!(
                get_session(c, r, s, &s.bare).await,
                Seen::Valid,
                "{} lost a session",
                r.name
            );
            assert_eq!(
                get_session(c, r, s, &s.cached).await,
                Seen::Valid,
                "{} lost a session",
                r.name
            );
        }
        // A revocation made just before reaches the other replica within the bound
        // (PostgreSQL's NOTIFY or Redis's pub/sub): each refusal is awaited that long.
        for s in revoked {
            for (cookie, what) in [(&s.bare, "session"), (&s.cached, "cached session")] {
                let asked = Instant::now();
                loop {
                    let seen = get_session(c, r, s, cookie).await;
                    if seen == Seen::Gone {
                        break;
                    }
                    assert!(
                        asked.elapsed() < REVOCATION_BOUND,
                        "{} resurrected a {what} ({seen:?})",
                        r.name
                    );
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
    }
}
