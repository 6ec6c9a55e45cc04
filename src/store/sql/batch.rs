//! `get-session`'s reads on PostgreSQL, combined under load (see [`Pending`]).

use std::collections::HashMap;

use tokio::sync::oneshot;

use crate::model::{Session, User};

/// The most tokens one combined read asks for.
pub(super) const MAX_BATCH: usize = 16;

/// What a waiting read is handed: its row (or none), or why it has none.
pub(super) type Answer = Result<Option<(Session, User)>, Unanswered>;

/// Why a combined read answered no one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Unanswered {
    /// The database did not answer in time: neither would it for a read alone.
    TimedOut,
    /// It failed otherwise: each reader reads alone, with its own retry and error.
    ReadAlone,
}

/// A read waiting for its answer.
pub(super) struct Waiter {
    token: String,
    answer: oneshot::Sender<Answer>,
}

/// Session reads waiting to be combined. Every read first queues its token; the read that
/// then gets a connection takes the whole queue (at most [`MAX_BATCH`]) and asks for all of
/// it in one statement (`token = any($1)`), and hands each waiter its row. When the
/// connections are free a read takes only its own token: no waiting is added. When they
/// are all busy, the reads that arrive meanwhile go in one statement rather than one
/// statement each, which is where the database's time per read went (a statement's fixed
/// cost is most of a one-row read). Each waiter gets the row whose token equals its own,
/// or none: the statement is the single read's with `= any` for `=`.
#[derive(Default)]
pub(super) struct Pending {
    waiters: std::sync::Mutex<Vec<Waiter>>,
}

impl Pending {
    fn waiters(&self) -> std::sync::MutexGuard<'_, Vec<Waiter>> {
        match self.waiters.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    /// Queues a read of `token`; its answer comes on the receiver.
    pub(super) fn push(&self, token: &str) -> oneshot::Receiver<Answer> {
        let (tx, rx) = oneshot::channel();
        self.waiters().push(Waiter {
            token: token.to_owned(),
            answer: tx,
        });
        rx
    }

    /// Takes up to [`MAX_BATCH`] queued reads whose reader still waits (one whose request
    /// was dropped is left out), oldest first.
    pub(super) fn take(&self) -> Vec<Waiter> {
        let mut waiters = self.waiters();
        let n = waiters.len().min(MAX_BATCH);
        let mut taken: Vec<Waiter> = waiters.drain(..n).collect();
        drop(waiters);
        taken.retain(|w| !w.answer.is_closed());
        taken
    }
}

/// The distinct tokens of `batch`, to bind as the statement's array.
pub(super) fn tokens(batch: &[Waiter]) -> Vec<String> {
    let mut tokens: Vec<String> = batch.iter().map(|w| w.token.clone()).collect();
    tokens.sort_unstable();
    tokens.dedup();
    tokens
}

/// Hands each waiter the row of its token (none when there is no such row).
pub(super) fn answer(batch: Vec<Waiter>, rows: Vec<(Session, User)>) {
    let found: HashMap<&str, &(Session, User)> =
        rows.iter().map(|r| (r.0.token.as_str(), r)).collect();
    for w in batch {
        let row = found.get(w.token.as_str()).map(|r| (*r).clone());
        let _ = w.answer.send(Ok(row));
    }
}

/// Tells each waiter why it has no answer.
pub(super) fn fail(batch: Vec<Waiter>, why: Unanswered) {
    for w in batch {
        let _ = w.answer.send(Err(why));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn take_leaves_out_dropped_readers_and_stops_at_the_cap() {
        let pending = Pending::default();
        let gone = pending.push("a");
        drop(gone);
        let kept: Vec<_> = (0..MAX_BATCH + 5)
            .map(|i| pending.push(&i.to_string()))
            .collect();
        let first = pending.take();
        assert_eq!(first.len(), MAX_BATCH - 1, "the dropped reader is left out");
        assert_eq!(first[0].token, "0");
        assert_eq!(pending.take().len(), 6);
        assert!(pending.take().is_empty());
        drop(kept);
    }

    #[test]
    fn tokens_are_distinct() {
        let pending = Pending::default();
        let _rx: Vec<_> = ["b", "a", "b"].iter().map(|t| pending.push(t)).collect();
        assert_eq!(tokens(&pending.take()), ["a", "b"]);
    }
}
