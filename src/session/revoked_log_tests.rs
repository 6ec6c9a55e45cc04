use super::*;
use crate::clock::ManualClock;

fn log() -> (RevokedLog, ManualClock) {
    let clock = ManualClock::at_ms(1_000_000_000);
    (RevokedLog::new(960, Arc::new(clock.clone())), clock)
}

fn sid(i: u32) -> TokenHash {
    let mut h = [0u8; 32];
    h[..4].copy_from_slice(&i.to_le_bytes());
    h
}

#[test]
fn entries_since_a_cursor_oldest_first_deduplicated() {
    let (l, clock) = log();
    let start = clock.now_ms();
    clock.advance_secs(1);
    l.record(sid(1));
    clock.advance_secs(1);
    let second = clock.now_ms();
    l.record(sid(2));
    l.record(sid(1));
    let p = l.page(None, PAGE);
    assert_eq!(
        p.revoked.iter().map(|e| e.sid).collect::<Vec<_>>(),
        [sid(1), sid(2)]
    );
    assert_eq!(p.revoked[1].at, second);
    assert!(!p.more);
    assert_eq!(p.cursor, second - OVERLAP_MS);
    let p = l.page(Some(second), PAGE);
    assert_eq!(p.revoked.len(), 1);
    assert!(p.complete);
    assert_eq!(p.cursor, second, "never below since");
    assert!(
        !l.page(Some(start), PAGE).complete,
        "before the process started"
    );
    assert_eq!(l.page(Some(second + 1), PAGE).revoked, []);
}

#[test]
fn retention_drops_old_entries_and_old_cursors_stay_complete() {
    let (l, clock) = log();
    clock.advance_secs(1);
    let since = clock.now_ms();
    l.record(sid(1));
    clock.advance_secs(959);
    assert_eq!(l.len(), 1);
    clock.advance_secs(2);
    l.record(sid(2));
    assert_eq!(l.len(), 1);
    // The dropped end's JWTs have expired: the answer is still complete.
    let p = l.page(Some(since), PAGE);
    assert_eq!(p.revoked.len(), 1);
    assert!(p.complete);
    // Once dropped, a sid can be recorded again.
    l.record(sid(1));
    assert_eq!(l.len(), 2);
}

#[test]
fn pages_cut_at_the_limit_and_progress_within_one_millisecond() {
    let (l, clock) = log();
    clock.advance_secs(1);
    for i in 0..5 {
        l.record(sid(i));
        clock.set_ms(clock.now_ms() + 1);
    }
    let first = l.page(None, 2);
    assert_eq!(first.revoked.len(), 2);
    assert!(first.more);
    assert_eq!(first.cursor, first.revoked[1].at);
    let next = l.page(Some(first.cursor), 2);
    assert_eq!(
        next.revoked[0].sid,
        sid(1),
        "the cursor's millisecond again"
    );
    // Six ends in one millisecond, pages of two: the page takes the whole millisecond.
    let (l, clock) = log();
    clock.advance_secs(1);
    for i in 0..6 {
        l.record(sid(i));
    }
    l.record(sid(99));
    clock.advance_secs(1);
    l.record(sid(100));
    let p = l.page(None, 2);
    assert_eq!(p.revoked.len(), 7);
    assert!(p.more);
    let rest = l.page(Some(p.cursor), 2);
    assert_eq!(
        rest.revoked.iter().map(|e| e.sid).collect::<Vec<_>>(),
        [sid(100)]
    );
    assert!(!rest.more);
}

#[test]
fn the_cap_drops_the_oldest_and_memory_stays_flat() {
    let (l, clock) = log();
    clock.advance_secs(1);
    let since = clock.now_ms();
    let total = MAX_ENTRIES as u32 * 2 + 7;
    for i in 0..total {
        if i % 1000 == 0 {
            clock.set_ms(clock.now_ms() + 1);
        }
        l.record(sid(i));
    }
    assert_eq!(l.len(), MAX_ENTRIES);
    {
        let inner = l.lock();
        assert_eq!(inner.sids.len(), MAX_ENTRIES);
        assert!(inner.entries.capacity() < MAX_ENTRIES * 2);
    }
    assert!(
        !l.page(Some(since), PAGE).complete,
        "before the dropped ones"
    );
    let p = l.page(None, PAGE);
    assert_eq!(p.revoked.len(), PAGE);
    assert_eq!(p.revoked[0].sid, sid(total - MAX_ENTRIES as u32));
    let newest = l.page(Some(clock.now_ms()), PAGE);
    assert!(newest.complete);
}

#[test]
fn resets_and_feeds_down_make_it_incomplete_and_tell_subscribers() {
    let (l, clock) = log();
    clock.advance_secs(1);
    let since = clock.now_ms();
    assert!(l.page(Some(since), PAGE).complete);
    let mut rx = l.subscribe();
    l.record(sid(1));
    assert!(matches!(rx.try_recv(), Ok(Live::Revoked(e)) if e.sid == sid(1)));
    l.set_guaranteed(false);
    assert_eq!(rx.try_recv().ok(), Some(Live::Reset));
    assert!(!l.page(Some(since), PAGE).complete, "a feed is down");
    clock.advance_secs(1);
    l.set_guaranteed(true);
    assert!(
        !l.page(Some(since), PAGE).complete,
        "ends may have gone unheard"
    );
    clock.advance_secs(1);
    assert!(l.page(Some(clock.now_ms()), PAGE).complete);
    let before = clock.now_ms();
    clock.advance_secs(1);
    l.reset();
    assert!(!l.page(Some(before), PAGE).complete);
    assert!(l.page(Some(clock.now_ms() + 1), PAGE).complete);
}

#[test]
fn a_lagging_subscriber_finds_out() {
    let (l, _clock) = log();
    let mut rx = l.subscribe();
    for i in 0..LIVE_BUFFER as u32 + 1 {
        l.record(sid(i));
    }
    assert!(matches!(
        rx.try_recv(),
        Err(broadcast::error::TryRecvError::Lagged(_))
    ));
}

#[test]
fn the_clock_stepping_back_keeps_the_order() {
    let (l, clock) = log();
    clock.advance_secs(10);
    l.record(sid(1));
    clock.advance_secs(-5);
    l.record(sid(2));
    let p = l.page(None, PAGE);
    assert_eq!(p.revoked[0].at, p.revoked[1].at);
}

#[test]
fn retention_is_the_longest_lifetime_plus_a_margin() {
    assert_eq!(RevokedLog::retention_for(&[900, 300]), 960);
    assert_eq!(RevokedLog::retention_for(&[u64::MAX]), u64::MAX);
}

#[test]
fn regaining_the_guarantee_does_not_end_streams_and_a_reset_does() {
    let (l, _clock) = log();
    l.set_guaranteed(false);
    let mut rx = l.subscribe();
    l.set_guaranteed(true);
    assert!(rx.try_recv().is_err());
    l.reset();
    assert_eq!(rx.try_recv().ok(), Some(Live::Reset));
}
