//! Redis Sentinel: two sessiond replicas find the master through three sentinels, and
//! follow a failover when the master is killed under load — errors only between the kill
//! and the recovery, then sessions are served again, and a revocation (sessiond's own,
//! and a key deleted by another application) reaches both replicas' cookie caches.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use crate::replicas::{cookie_of, signed_up};
use crate::support::process::{command, Server};
use crate::support::sentinel::{Sentinel, SentinelSet, MASTER_NAME};
use crate::support::{redis_prefix, PgDb, PASSWORD};

const SECRET: &str = "sentinel-test-secret-Hq7Rk2Wm9Tz4Xc6Vb8Np3Ld5";

fn sessiond(db: &PgDb, set: &SentinelSet, prefix: &str) -> (Server, tempfile::TempDir) {
    sessiond_on(db, &set.urls_json(), prefix)
}

/// sessiond on the sentinels `urls` (a JSON list).
fn sessiond_on(db: &PgDb, urls: &str, prefix: &str) -> (Server, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("DATABASE_URL", &db.url)
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_BASE_URL", "http://sessiond.test")
        .env("SESSIOND_SESSION__COOKIE_CACHE__ENABLED", "true")
        .env("SESSIOND_REDIS__SENTINEL__MASTER_NAME", MASTER_NAME)
        .env("SESSIOND_REDIS__SENTINEL__URLS", urls)
        .env("SESSIOND_REDIS__KEY_PREFIX", prefix)
        .env("SESSIOND_REDIS__KEYSPACE_NOTIFICATIONS", "configure")
        .env("SESSIOND_LOG__LEVEL", "warn");
    let (server, _) = Server::start_with_stderr(cmd, std::process::Stdio::null());
    (server, dir)
}

/// Signs in; the whole cookie (token and cookie cache) and the token cookie alone.
pub(crate) fn sign_in(
    client: &reqwest::blocking::Client,
    s: &Server,
    email: &str,
) -> (String, String) {
    let res = client
        .post(s.url("/sign-in/email"))
        .json(&json!({"email": email, "password": PASSWORD}))
        .send()
        .unwrap();
    let status = res.status();
    let all = cookie_of(&res);
    assert_eq!(status, 200, "{}", res.text().unwrap_or_default());
    let token_only = all
        .split("; ")
        .find(|c| c.contains("session_token="))
        .unwrap()
        .to_string();
    (all, token_only)
}

/// get-session: `Some(true)` a session, `Some(false)` none, `None` an error (503, no
/// answer).
pub(crate) fn probe(client: &reqwest::blocking::Client, s: &Server, cookie: &str) -> Option<bool> {
    probe_url(client, &s.url("/get-session"), cookie).ok()
}

/// As [`probe`], with what went wrong.
pub(crate) fn probe_url(
    client: &reqwest::blocking::Client,
    url: &str,
    cookie: &str,
) -> Result<bool, String> {
    let res = client
        .get(url)
        .header("cookie", cookie)
        .timeout(Duration::from_secs(10))
        .send()
        .map_err(|e| e.to_string())?;
    let status = res.status();
    let text = res.text().map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("{status} {text}"));
    }
    let v: Value = serde_json::from_str(&text).map_err(|e| e.to_string())?;
    Ok(!v.is_null())
}

pub(crate) fn revocation_guaranteed(client: &reqwest::blocking::Client, s: &Server) -> bool {
    client
        .get(s.root("/readyz"))
        .send()
        .and_then(|r| r.json::<Value>())
        .is_ok_and(|v| v["checks"]["revocation"] == "ok")
}

pub(crate) fn wait_until(what: &str, mut f: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < Duration::from_secs(60), "{what}");
        std::thread::sleep(Duration::from_millis(20));
    }
    start.elapsed()
}

/// Two sessiond replicas on a fresh Sentinel set-up, their feeds guaranteed, and a user.
struct Setup {
    rt: tokio::runtime::Runtime,
    set: SentinelSet,
    _db: PgDb,
    prefix: String,
    servers: Vec<(Server, tempfile::TempDir)>,
    client: reqwest::blocking::Client,
    email: String,
}

fn setup() -> Setup {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let set = rt.block_on(SentinelSet::start());
    let db = rt.block_on(PgDb::create());
    let prefix = redis_prefix();
    let servers: Vec<_> = (0..2).map(|_| sessiond(&db, &set, &prefix)).collect();
    let client = reqwest::blocking::Client::new();
    for (s, _) in &servers {
        wait_until("revocation feed not guaranteed at start", || {
            revocation_guaranteed(&client, s)
        });
    }
    let email = signed_up(&client, &servers[0].0);
    Setup {
        rt,
        set,
        _db: db,
        prefix,
        servers,
        client,
        email,
    }
}

impl Setup {
    /// Waits until the replica holds every write made so far (replication is
    /// asynchronous: a write not yet copied is lost in a failover, which is not tested here).
    fn replicated(&self) {
        self.rt.block_on(async {
            let config = redis::AsyncConnectionConfig::new().set_response_timeout(None);
            let mut c = redis::Client::open(self.set.master.url())
                .unwrap()
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .unwrap();
            let copied: i64 = redis::cmd("WAIT")
                .arg(1)
                .arg(10_000)
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(copied, 1);
        });
    }

    /// Waits until the sentinels name a master other than the one on `old_port`.
    fn failed_over(&self, old_port: u16) {
        wait_until("no failover", || {
            self.rt
                .block_on(self.set.master_port())
                .is_some_and(|p| p != old_port)
        });
    }

    /// After the failover to the replica: both sessiond replicas listen on it, keyspace
    /// notifications are on there (configure mode set them again: CONFIG SET is not
    /// replicated), a sign-out through one replica is refused from the other's cookie
    /// cache, and a key deleted by another application is refused by both.
    fn revocations_reach_both(&self, victim: &str, other_app_victim: &str) {
        let (rt, client, servers) = (&self.rt, &self.client, &self.servers);
        // Each replica's subscriber has moved to the new master (a demoted master still
        // answers, so until then the old subscription holds)...
        wait_until("the subscribers did not move to the new master", || {
            rt.block_on(async {
                let Some(mut c) = self.set.replica.conn().await else {
                    return false;
                };
                let list: String = redis::cmd("CLIENT")
                    .arg("LIST")
                    .arg("TYPE")
                    .arg("pubsub")
                    .query_async(&mut c)
                    .await
                    .unwrap_or_default();
                // The sentinels' own hello subscriptions do not count.
                list.lines()
                    .filter(|l| !l.contains("name=sentinel"))
                    .count()
                    >= servers.len()
            })
        });
        // ... and is guaranteed only once the keyspace events are on there.
        for (s, _) in servers {
            wait_until("revocation feed not guaranteed after the failover", || {
                revocation_guaranteed(client, s)
            });
        }
        let flags: Vec<String> = rt.block_on(async {
            let mut c = self.set.replica.conn().await.unwrap();
            redis::cmd("CONFIG")
                .arg("GET")
                .arg("notify-keyspace-events")
                .query_async(&mut c)
                .await
                .unwrap()
        });
        assert!(
            flags[1].contains('E') && flags[1].contains('g'),
            "{flags:?}"
        );
        for (s, _) in servers {
            assert_eq!(probe(client, s, victim), Some(true));
            assert_eq!(probe(client, s, other_app_victim), Some(true));
        }
        let out = client
            .post(servers[0].0.url("/sign-out"))
            .header("origin", "http://sessiond.test")
            .header("cookie", victim)
            .json(&json!({}))
            .send()
            .unwrap();
        assert_eq!(out.status(), 200);
        let signed_out = wait_until("sign-out did not reach replica 1", || {
            probe(client, &servers[1].0, victim) == Some(false)
        });
        let token = other_app_victim
            .split("; ")
            .find_map(|c| c.split_once("session_token=").map(|(_, v)| v.to_string()))
            .unwrap();
        let token = percent_decode(token.split('.').next().unwrap());
        rt.block_on(async {
            let mut c = self.set.replica.conn().await.unwrap();
            let n: i64 = redis::cmd("DEL")
                .arg(format!("{}{token}", self.prefix))
                .query_async(&mut c)
                .await
                .unwrap();
            assert_eq!(n, 1);
        });
        let deleted = Instant::now();
        for (s, _) in servers {
            wait_until("a deleted key did not reach a replica", || {
                probe(client, s, other_app_victim) == Some(false)
            });
        }
        eprintln!(
            "after the failover: sign-out refused on the other replica after {} ms, a key \
             deleted by another application on both after {} ms",
            signed_out.as_millis(),
            deleted.elapsed().as_millis()
        );
        assert!(signed_out < Duration::from_secs(5) && deleted.elapsed() < Duration::from_secs(5));
    }
}

#[test]
fn a_killed_master_is_followed_and_revocations_still_reach_every_replica() {
    let mut t = setup();
    let (_, hammered) = sign_in(&t.client, &t.servers[0].0, &t.email);
    let (victim, _) = sign_in(&t.client, &t.servers[0].0, &t.email);
    let (other_app_victim, _) = sign_in(&t.client, &t.servers[1].0, &t.email);
    t.replicated();

    // A bounded hammer on get-session (token cookie only: every request reads Redis).
    let stop = Arc::new(AtomicBool::new(false));
    let url = t.servers[0].0.url("/get-session");
    let hammer = {
        let stop = stop.clone();
        let cookie = hammered.clone();
        std::thread::spawn(move || {
            let client = reqwest::blocking::Client::new();
            let mut log = Vec::new();
            for _ in 0..20_000 {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                // Logged when answered: a request sent just before the kill may fail.
                let r = probe_url(&client, &url, &cookie);
                log.push((Instant::now(), r));
                std::thread::sleep(Duration::from_millis(5));
            }
            log
        })
    };
    std::thread::sleep(Duration::from_millis(500));
    let old_port = t.set.master.port;
    let killed = Instant::now();
    t.set.master.down();
    t.failed_over(old_port);
    let failed_over = killed.elapsed();
    for (s, _) in &t.servers {
        wait_until("get-session not served after the failover", || {
            probe(&t.client, s, &hammered) == Some(true)
        });
    }
    let recovered = killed.elapsed();
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    let log = hammer.join().unwrap();

    // Never a wrong answer; errors only between the kill and the last of them, with
    // successes after it.
    assert!(log.iter().all(|(_, r)| *r != Ok(false)), "a session lost");
    let before: Vec<&String> = log
        .iter()
        .filter(|(t, _)| *t < killed)
        .filter_map(|(_, r)| r.as_ref().err())
        .collect();
    assert!(before.is_empty(), "errors before the kill: {before:?}");
    let errors: Vec<Instant> = log
        .iter()
        .filter(|(_, r)| r.is_err())
        .map(|(t, _)| *t)
        .collect();
    let after_kill = |t: &Instant| t.duration_since(killed).as_millis();
    let window = errors
        .first()
        .map(after_kill)
        .zip(errors.last().map(after_kill));
    let last_error = errors.last().copied().unwrap_or(killed);
    let ok_after = log
        .iter()
        .filter(|(t, r)| *t > last_error && *r == Ok(true))
        .count();
    assert!(ok_after > 0, "no success after the failover window");
    eprintln!(
        "sentinel failover: {} requests, {} errors, error window {window:?} ms after the kill, \
         sentinels failed over after {} ms, both replicas served after {} ms",
        log.len(),
        errors.len(),
        failed_over.as_millis(),
        recovered.as_millis()
    );
    t.revocations_reach_both(&victim, &other_app_victim);
}

/// A failover that leaves the old master running, as a replica (a manual failover, a
/// partition healed): writes move to the new master (a write refused as READONLY is sent
/// again there), reads follow within a second, and the feeds resubscribe on the new
/// master.
#[test]
fn a_demoted_master_is_left_for_the_new_one() {
    let t = setup();
    let (victim, _) = sign_in(&t.client, &t.servers[0].0, &t.email);
    let (other_app_victim, _) = sign_in(&t.client, &t.servers[1].0, &t.email);
    t.replicated();
    let old_port = t.set.master.port;
    t.rt.block_on(async {
        let mut c = redis::Client::open(format!("redis://127.0.0.1:{}", t.set.sentinel_port()))
            .unwrap()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let _: () = redis::cmd("SENTINEL")
            .arg("FAILOVER")
            .arg(MASTER_NAME)
            .query_async(&mut c)
            .await
            .unwrap();
    });
    t.failed_over(old_port);
    // The old master is a replica now, still answering.
    wait_until("the old master was not demoted", || {
        t.rt.block_on(async {
            let Some(mut c) = t.set.master.conn().await else {
                return false;
            };
            // Demotion closes its clients: asked again on a new connection.
            let role: Option<Vec<redis::Value>> = redis::cmd("ROLE").query_async(&mut c).await.ok();
            matches!(role.as_deref().and_then(<[_]>::first), Some(redis::Value::BulkString(b)) if b == b"slave")
        })
    });
    // A new session through each replica: written to the new master. The demotion closes
    // the old master's connections, so a request in flight then may be refused (503).
    for (s, _) in &t.servers {
        let mut cookie = None;
        wait_until("sign-in not served after the failover", || {
            let res = t
                .client
                .post(s.url("/sign-in/email"))
                .json(&json!({"email": t.email, "password": PASSWORD}))
                .send()
                .unwrap();
            let ok = res.status() == 200;
            cookie = ok.then(|| cookie_of(&res));
            ok
        });
        let cookie = cookie.unwrap();
        for (s, _) in &t.servers {
            wait_until("a new session not served", || {
                probe(&t.client, s, &cookie) == Some(true)
            });
        }
    }
    t.revocations_reach_both(&victim, &other_app_victim);
}

pub(crate) fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8()
        .unwrap()
        .into_owned()
}

/// Starts sessiond on `urls` and `master_name`; its exit status and standard error.
fn start_fails(urls: &str, master_name: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    let out = cmd
        .env("BETTER_AUTH_SECRET", SECRET)
        .env("SESSIOND_BASE_URL", "http://sessiond.test")
        .env(
            "SESSIOND_PORT",
            crate::support::process::free_port().to_string(),
        )
        .env("SESSIOND_REDIS__SENTINEL__MASTER_NAME", master_name)
        .env("SESSIOND_REDIS__SENTINEL__URLS", urls)
        .output()
        .unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A master name no sentinel monitors, or no sentinel answering: sessiond does not start,
/// and says why.
#[test]
fn an_unknown_master_or_no_sentinel_stops_the_start() {
    let lone = Sentinel::start(None);
    let (status, err) = start_fails(&format!(r#"["127.0.0.1:{}"]"#, lone.port), "nope");
    assert!(!status.success());
    assert!(
        err.contains("monitors no master named \\\"nope\\\"") || err.contains(r#"named "nope""#),
        "{err}"
    );
    let dead = crate::support::process::free_port();
    let (status, err) = start_fails(&format!(r#"["127.0.0.1:{dead}"]"#), "nope");
    assert!(!status.success());
    assert!(err.contains("no sentinel answered"), "{err}");
    assert!(err.contains(&format!("127.0.0.1:{dead}")), "{err}");
}

/// Sentinels that accept connections and never answer, listed before the real ones: the
/// sentinels are asked at once, so the master is found as soon as a real one answers
/// (asked one after another, 20 of them at 2 s each would hold the start for 40 s, past
/// the 30 s the test waits for it).
#[test]
fn stalled_sentinels_listed_first_do_not_hold_the_master_back() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let set = rt.block_on(SentinelSet::start());
    let db = rt.block_on(PgDb::create());
    // Never accepted: the kernel completes each connection, and nothing answers.
    let stalled: Vec<std::net::TcpListener> = (0..20)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    let mut urls: Vec<String> = stalled
        .iter()
        .map(|l| l.local_addr().unwrap().to_string())
        .collect();
    let real: Vec<String> = serde_json::from_str(&set.urls_json()).unwrap();
    urls.extend(real);
    let (s, _dir) = sessiond_on(&db, &serde_json::to_string(&urls).unwrap(), &redis_prefix());
    let client = reqwest::blocking::Client::new();
    let email = signed_up(&client, &s);
    let (cookie, _) = sign_in(&client, &s, &email);
    assert_eq!(probe(&client, &s, &cookie), Some(true));
}
