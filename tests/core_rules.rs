//! Rules of the core that no test failed without (issue 23, item 4), through the
//! public API on the scripted stack, as `tests/rules.rs` does. Each test names the
//! hand-made bug it kills.

use std::net::SocketAddr;

use netpool::{Config, ConnHandle, ConnState, ConnectError, Duration, Instant, ListenParams, Pool};
use netpool_testkit::scripted::*;

const HTTP: u16 = 80;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn client(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + n))
}

/// A peer connects to `port`; the pool accepts it at `now`.
fn accept<S: netpool::stack::Stack, const N: usize, const TX: usize>(
    pool: &mut Pool<S, N, 2, TX>,
    stack: impl Fn(&mut S) -> &mut ScriptedStack,
    n: u16,
    now: Instant,
) -> (ConnHandle, PeerId) {
    let peer = stack(pool.stack_mut())
        .peer_connect(HTTP, client(n))
        .expect("peer connect");
    pool.poll(now);
    let a = pool.accept_next().expect("accepted");
    (a.handle, peer)
}

fn native(s: &mut ScriptedStack) -> &mut ScriptedStack {
    s
}

fn plain(s: &mut PlainScripted) -> &mut ScriptedStack {
    s.inner_mut()
}

/// Rule 4a: `exhausted` counts every time the pool has no slot: an incoming
/// connection that admission turns away because every slot is in use (the port's cap
/// is not reached), and a connect that finds no slot.
/// Kills: `count_rejection` not counting `exhausted` for `PoolFull` (the connect path
/// alone is pinned elsewhere).
#[test]
fn exhausted_is_counted_when_admission_finds_the_pool_full_and_when_a_connect_finds_no_slot() {
    // Two slots, a port cap of 4: the pool fills before the port does.
    let mut pool: Pool<ScriptedStack, 2, 2, 0> = Pool::new(ScriptedStack::default(), Config::new());
    pool.listen(HTTP, ListenParams::new(4)).unwrap();
    accept(&mut pool, native, 1, t(0));
    accept(&mut pool, native, 2, t(0));
    assert_eq!(pool.free_slots(), 0);
    assert_eq!(pool.counters().exhausted, 0);
    pool.stack_mut()
        .peer_connect(HTTP, client(3))
        .expect("peer connect");
    let summary = pool.poll(t(1));
    assert_eq!(summary.rejected, 1);
    let c = pool.counters();
    assert_eq!((c.rejected_pool_full, c.rejected_port_cap), (1, 0));
    assert_eq!(c.exhausted, 1, "admission found the pool full");
    assert_eq!(
        pool.connect(client(9), 0, Duration::from_secs(1), t(2)),
        Err(ConnectError::PoolFull)
    );
    assert_eq!(pool.counters().exhausted, 2, "and so did the connect");
}

/// Rule 4b: the abandoned timer of a half-closed connection that still sends counts
/// from the later of its state change (the peer's FIN) and its last activity, and
/// `poll_at` says exactly that time. Two connections, one each way round:
/// - `a`: the peer's FIN at 1 s, a write at 10 s: due at 40 s (from the activity);
/// - `b`: a write at 2 s, the peer's FIN noticed at 20 s: due at 50 s (from the state
///   change; noticing a FIN is not activity).
///
/// Kills, in `Core::deadline` (`Timer::Abandoned`), which both the poll path and
/// `Pool::poll_at` use: counting from the state change alone (`a` due at 31 s), from
/// the last activity alone (`b` due at 32 s), or from the earlier of the two.
#[test]
fn the_abandoned_timer_counts_from_the_later_of_the_state_change_and_the_last_activity() {
    let after = Duration::from_secs(30);
    let mut pool: Pool<ScriptedStack, 4, 2, 0> = Pool::new(
        ScriptedStack::default(),
        Config::new().with_abandoned_after(Some(after)),
    );
    pool.listen(HTTP, ListenParams::new(4)).unwrap();
    let (a, pa) = accept(&mut pool, native, 1, t(0));
    let (b, pb) = accept(&mut pool, native, 2, t(0));
    let mut buf = [0u8; 16];

    // 1 s: a's peer sends FIN; the read sees it.
    pool.stack_mut().peer_fin(pa);
    let _ = pool.read(a, &mut buf, t(1_000));
    assert_eq!(pool.state(a), Ok(ConnState::OtherEndClosed));
    // 2 s: b writes (activity), acknowledged at once (no stall timer runs).
    assert_eq!(pool.write(b, b"partial", true, t(2_000)), Ok(7));
    pool.stack_mut().peer_ack_all(pb);
    pool.poll(t(2_000));
    // 10 s: a, half-closed, still sends.
    assert_eq!(pool.write(a, b"more", true, t(10_000)), Ok(4));
    pool.stack_mut().peer_ack_all(pa);
    pool.poll(t(10_000));
    // 20 s: b's peer sends FIN, noticed by the read.
    pool.stack_mut().peer_fin(pb);
    let _ = pool.read(b, &mut buf, t(20_000));
    assert_eq!(pool.state(b), Ok(ConnState::OtherEndClosed));
    pool.poll(t(20_000));

    assert_eq!(pool.poll_at(), Some(t(40_000)), "a: 30 s after its write at 10 s");
    pool.poll(t(39_999));
    assert_eq!(
        pool.state(a),
        Ok(ConnState::OtherEndClosed),
        "not a millisecond early"
    );
    pool.poll(t(40_000));
    assert_eq!(pool.state(a), Ok(ConnState::Free));
    assert_eq!(pool.state(b), Ok(ConnState::OtherEndClosed));
    assert_eq!(pool.poll_at(), Some(t(50_000)), "b: 30 s after its FIN at 20 s");
    pool.poll(t(49_999));
    assert_eq!(
        pool.state(b),
        Ok(ConnState::OtherEndClosed),
        "not a millisecond early"
    );
    pool.poll(t(50_000));
    assert_eq!(pool.state(b), Ok(ConnState::Free));
    assert_eq!(pool.counters().abandoned, 2);
}

/// Rule 4c: a push that the stack takes only in part reports as taken only its own
/// bytes that reached the stack, not the older bytes netpool's coalescing buffer held
/// and handed over first. The rest of the push is written again and the peer gets
/// every byte once, in order.
/// Kills: `write` reporting the flush's whole count (`sent`) instead of
/// `sent - older` (the caller would skip bytes that never went out).
#[test]
fn a_pushed_partial_writes_taken_excludes_the_older_bytes_the_coalescer_held() {
    let mut pool: Pool<PlainScripted, 4, 2, 64> =
        Pool::new(PlainScripted::new(ScriptedStack::default()), Config::new());
    pool.listen(HTTP, ListenParams::new(4)).unwrap();
    let (h, peer) = accept(&mut pool, plain, 1, t(0));
    assert_eq!(pool.write(h, b"abc", false, t(1)), Ok(3), "MORE: held by netpool");
    assert!(pool.stack().inner().peer_received(peer).is_empty());
    // The stack takes 5 bytes: the 3 older ones, then 2 of this push.
    pool.stack_mut().inner_mut().set_send_window(peer, 5);
    assert_eq!(pool.write(h, b"0123456789", true, t(2)), Ok(2));
    assert_eq!(pool.stack().inner().peer_received(peer), b"abc01");
    pool.stack_mut().inner_mut().peer_ack_all(peer);
    pool.stack_mut().inner_mut().set_send_window(peer, usize::MAX);
    assert_eq!(pool.write(h, b"23456789", true, t(3)), Ok(8));
    assert_eq!(pool.stack().inner().peer_received(peer), b"abc0123456789");
}
