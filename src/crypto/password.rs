//! Better Auth's password hash: scrypt (N=16384, r=16, p=1, 64-byte key) over the
//! NFKC-normalised password, with the 32-character *hex text* of 16 random bytes as the
//! salt, stored as `<saltHex>:<keyHex>`.
//!
//! Hashing is CPU- and memory-heavy (32 MiB, tens of milliseconds), so callers run it
//! through [`Hasher`], which moves it off the async runtime and bounds how many run at once.

use std::sync::Arc;

use rand::rngs::OsRng;
use rand::RngCore;
use subtle::ConstantTimeEq;
use unicode_normalization::UnicodeNormalization;

/// log2(N) for N = 16384.
const LOG_N: u8 = 14;
const R: u32 = 16;
const P: u32 = 1;
const KEY_LEN: usize = 64;

/// Why a hash could not be made or checked.
#[derive(Debug, thiserror::Error)]
pub enum PasswordError {
    /// The stored string is not `<salt>:<key>`.
    #[error("invalid password hash")]
    Malformed,
    /// scrypt itself failed (parameters rejected) or the worker was lost.
    #[error("password hashing failed")]
    Internal,
    /// Too many hashes waiting.
    #[error("too many password hashes waiting")]
    Busy,
}

fn derive(password: &str, salt: &str) -> Result<[u8; KEY_LEN], PasswordError> {
    let normalized: String = password.nfkc().collect();
    let params = scrypt::Params::new(LOG_N, R, P).map_err(|_| PasswordError::Internal)?;
    // The key length is the output's length.
    let mut key = [0u8; KEY_LEN];
    scrypt::scrypt(normalized.as_bytes(), salt.as_bytes(), &params, &mut key)
        .map_err(|_| PasswordError::Internal)?;
    Ok(key)
}

/// Hashes a password into Better Auth's `<saltHex>:<keyHex>` form (blocking).
pub fn hash_blocking(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    OsRng.fill_bytes(&mut salt);
    hash_with_salt(password, &hex::encode(salt))
}

/// Hashes with a given hex salt text (blocking); used for vectors.
pub fn hash_with_salt(password: &str, salt_hex: &str) -> Result<String, PasswordError> {
    let key = derive(password, salt_hex)?;
    Ok(format!("{salt_hex}:{}", hex::encode(key)))
}

/// Checks a password against a stored hash (blocking). Like Better Auth, the stored key
/// must be lowercase hex; an uppercase key never verifies.
pub fn verify_blocking(password: &str, stored: &str) -> Result<bool, PasswordError> {
    let mut parts = stored.split(':');
    let (salt, key) = match (parts.next(), parts.next()) {
        (Some(s), Some(k)) if !s.is_empty() && !k.is_empty() => (s, k),
        _ => return Err(PasswordError::Malformed),
    };
    let derived = hex::encode(derive(password, salt)?);
    Ok(derived.as_bytes().ct_eq(key.as_bytes()).into())
}

/// The hashing threads' nice value: against a busy async worker (nice 0) a hashing thread
/// gets about a quarter of a core. Not 19: at the lowest priority, other processes on a busy
/// machine starve the hashes outright (queued sign-ins then time out).
pub const HASH_NICE: i32 = 5;

/// Lowers the calling thread's CPU priority, so that a core busy hashing is mostly handed to
/// the async workers whenever they have requests. Linux applies a nice value set for a
/// thread id to that thread alone.
fn lower_priority() {
    #[cfg(target_os = "linux")]
    {
        let tid = rustix::thread::gettid();
        if let Err(e) = rustix::process::setpriority_process(Some(tid), HASH_NICE) {
            tracing::warn!(error = %e, "password hashing runs at normal priority");
        }
    }
}

/// A unit of hashing work for the hashing threads.
type Job = Box<dyn FnOnce() + Send>;

/// Hashes that may wait per hashing thread; beyond, a sign-in is refused at once (503). At
/// tens of milliseconds a hash, the last of them waits a few seconds. Far below the
/// connection cap: a connection whose sign-in waits for a hash cannot be closed to admit
/// another, so a longer queue let a flood of sign-ins hold every connection.
pub const QUEUE_PER_THREAD: usize = 64;

/// Counts a hash as queued or running until dropped: also when its request is dropped
/// while it waits.
struct InQueue<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InQueue<'a> {
    fn enter(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        crate::metrics::hash_queue(n.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1);
        Self(n)
    }
}

impl Drop for InQueue<'_> {
    fn drop(&mut self) {
        let before = self.0.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
        crate::metrics::hash_queue(before.saturating_sub(1));
    }
}

/// Runs password hashing on its own threads — as many as hashes may run at once — so that
/// sign-ins never occupy the async workers that serve `get-session`. The threads run at a
/// lower CPU priority ([`HASH_NICE`] on Linux): they may take every core the requests leave
/// idle, and the scheduler gives most of a core back to the async workers when they have
/// work. Dedicated threads also bound memory: each scrypt needs a 32 MiB buffer, so `limit`
/// threads hold at most `limit` × 32 MiB.
#[derive(Clone)]
pub struct Hasher {
    jobs: std::sync::mpsc::SyncSender<Job>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

impl Hasher {
    /// A hasher with `limit` threads (at least one).
    pub fn new(limit: usize) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel::<Job>(QUEUE_PER_THREAD * limit.max(1));
        let rx = Arc::new(std::sync::Mutex::new(rx));
        for i in 0..limit.max(1) {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("sessiond-hash-{i}"))
                .spawn(move || {
                    lower_priority();
                    loop {
                        let job = match rx.lock() {
                            Ok(r) => r.recv(),
                            Err(p) => p.into_inner().recv(),
                        };
                        match job {
                            Ok(job) => job(),
                            Err(_) => return,
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!(error = %e, "cannot start a password hashing thread");
            }
        }
        Self {
            jobs: tx,
            queued: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, PasswordError> + Send + 'static,
    ) -> Result<T, PasswordError> {
        use tracing::Instrument as _;
        let _queued = InQueue::enter(&self.queued);
        let (tx, rx) = tokio::sync::oneshot::channel();
        // The span covers queue and hash; the time spent queued behind other hashes (the
        // pool is bounded) is its own attribute.
        let span = tracing::debug_span!("scrypt", "scrypt.queue_wait_ms" = tracing::field::Empty);
        let queued_at = std::time::Instant::now();
        let job_span = span.clone();
        let job: Job = Box::new(move || {
            let waited = u64::try_from(queued_at.elapsed().as_millis()).unwrap_or(u64::MAX);
            job_span.record("scrypt.queue_wait_ms", waited);
            // The request was dropped while queued (client gone, request timed out): a hash
            // nobody waits for would only delay the sign-ins behind it.
            if tx.is_closed() {
                crate::metrics::hash_abandoned();
                return;
            }
            crate::metrics::hash_run();
            let _ = tx.send(f());
        });
        match self.jobs.try_send(job) {
            Ok(()) => rx
                .instrument(span)
                .await
                .unwrap_or(Err(PasswordError::Internal)),
            // The queue is full: refuse rather than keep the connection waiting.
            Err(_) => Err(PasswordError::Busy),
        }
    }

    /// Hashes a new password.
    pub async fn hash(&self, password: String) -> Result<String, PasswordError> {
        self.run(move || hash_blocking(&password)).await
    }

    /// Verifies a password; a malformed stored hash is an error, as in Better Auth.
    pub async fn verify(&self, password: String, stored: String) -> Result<bool, PasswordError> {
        self.run(move || verify_blocking(&password, &stored)).await
    }
}
