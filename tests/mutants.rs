//! Tests for behaviour the rule suite did not pin down, all through the public `Pool`
//! API on the scripted stack.
//!
//! The first sections each guard one contract that a plausible one-line change to the
//! library broke without any other test failing:
//!
//! - a write the stack refused (nothing left in netpool's buffer) still counts as
//!   pending for the fallback reaper;
//! - `close` hands MORE bytes still in netpool's buffer to the stack before FIN;
//! - `write_and_close(h, b"")` closes only once netpool's buffer is empty;
//! - a write larger than the coalescing buffer keeps its rest for later under MORE,
//!   and never leaves a push's bytes behind.
//!
//! The last sections give the rules of the README's table that rested on a single
//! test a second one from another angle (the plain stack, a slot freed inside `poll`,
//! a reader on another thread).

use std::net::SocketAddr;

use netpool::shared::{Command, PoolShare};
use netpool::{
    nb, CloseReason, Config, ConnError, ConnHandle, ConnState, Duration, ErrorClass, Instant, ListenMode,
    ListenParams, Pool,
};
use netpool_testkit::scripted::*;

const HTTP: u16 = 80;
const TX: usize = 64;
/// Native stack (MORE flag, abort, send queue, peer status): no coalescing buffer.
type Native = Pool<ScriptedStack, 4, 2, 0>;
/// Plain embedded-nal stack: every fallback, a 64-byte coalescing buffer.
type Fallback = Pool<PlainScripted, 4, 2, TX>;

const GRACE: Duration = Duration::from_secs(8);
/// Past the grace plus one reading interval (grace / 8) after a reading at 1 ms.
const PAST_GRACE: u64 = 1 + 8_000 + 1_000 + 1;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn client(n: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + n))
}

fn native(config: Config) -> Native {
    let mut pool = Pool::new(ScriptedStack::default(), config);
    pool.listen(HTTP, ListenParams::new(4)).unwrap();
    pool
}

fn fallback(config: Config) -> Fallback {
    let mut pool = Pool::new(PlainScripted::new(ScriptedStack::default()), config);
    pool.listen(HTTP, ListenParams::new(4)).unwrap();
    pool
}

/// The scripted stack under a fallback pool.
fn sim(pool: &Fallback) -> &ScriptedStack {
    pool.stack().inner()
}

fn sim_mut(pool: &mut Fallback) -> &mut ScriptedStack {
    pool.stack_mut().inner_mut()
}

/// A peer connects to `port` of a fallback pool; the pool accepts it.
fn accept_plain(pool: &mut Fallback, port: u16, n: u16, now: Instant) -> (ConnHandle, PeerId) {
    let peer = sim_mut(pool).peer_connect(port, client(n)).expect("peer connect");
    pool.poll(now);
    let a = pool.accept_next().expect("accepted");
    assert_eq!(a.remote, client(n));
    (a.handle, peer)
}

/// A peer connects to `port` of a native pool; the pool accepts it.
fn accept_native(pool: &mut Native, port: u16, n: u16, now: Instant) -> (ConnHandle, PeerId) {
    let peer = pool
        .stack_mut()
        .peer_connect(port, client(n))
        .expect("peer connect");
    pool.poll(now);
    let a = pool.accept_next().expect("accepted");
    assert_eq!(a.remote, client(n));
    (a.handle, peer)
}

fn buffered(pool: &Fallback, h: ConnHandle, now: Instant) -> u16 {
    pool.report(now).slots[h.slot()].buffered
}

/// The stream `0, 1, 2, …` (mod 251), so order and duplication show.
fn stream(range: std::ops::Range<usize>) -> Vec<u8> {
    range.map(|i| (i % 251) as u8).collect()
}

// ------------------------------------------------------------------------------------
// A refused write is pending for the fallback reaper
// ------------------------------------------------------------------------------------

#[test]
fn plain_refused_push_is_reaped_although_nothing_is_buffered() {
    let mut pool = fallback(Config::new().with_stall_grace(GRACE));
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    // The peer vanished with its window closed: the push is refused outright, and a
    // push's bytes are never kept in netpool's buffer.
    sim_mut(&mut pool).set_send_window(peer, 0);
    assert_eq!(
        pool.write(h, b"HTTP/1.1 200 OK\r\n\r\n", true, t(0)),
        Err(nb::Error::WouldBlock)
    );
    assert_eq!(buffered(&pool, h, t(0)), 0);
    // The application waits for the stack; only the refusal says bytes are pending.
    pool.poll(t(1));
    pool.poll(t(7_999));
    assert_eq!(pool.state(h), Ok(ConnState::Connected), "reaped before the grace");
    pool.poll(t(PAST_GRACE));
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Free),
        "a connection whose writes the stack refuses was never reaped"
    );
    assert_eq!(pool.counters().reaped, 1);
    assert_eq!(
        pool.report(t(PAST_GRACE)).slots[h.slot()].close_reason,
        Some(CloseReason::Stalled)
    );
}

#[test]
fn plain_refused_write_larger_than_the_buffer_is_reaped() {
    let mut pool = fallback(Config::new().with_stall_grace(GRACE));
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 0);
    // Larger than the 64-byte buffer: the path that sends straight to the stack.
    assert_eq!(pool.write(h, &[7u8; 200], true, t(0)), Err(nb::Error::WouldBlock));
    assert_eq!(buffered(&pool, h, t(0)), 0);
    pool.poll(t(1));
    pool.poll(t(PAST_GRACE));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.counters().reaped, 1);
}

#[test]
fn plain_write_taken_in_full_clears_an_earlier_refusal() {
    let mut pool = fallback(Config::new().with_stall_grace(GRACE));
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 0);
    assert_eq!(pool.write(h, b"hello", true, t(0)), Err(nb::Error::WouldBlock));
    pool.poll(t(1));
    // The window opens; the retry is taken in full. Nothing is pending any more, so
    // a connection that then stays quiet for minutes is not a stall.
    sim_mut(&mut pool).set_send_window(peer, 100);
    assert_eq!(pool.write(h, b"hello", true, t(2_000)), Ok(5));
    for s in 3..=120u64 {
        pool.poll(t(s * 1_000));
    }
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "reaped an idle connection"
    );
    assert_eq!(pool.counters().reaped, 0);
    assert_eq!(sim(&pool).peer_received(peer), b"hello");
}

// ------------------------------------------------------------------------------------
// Close hands buffered MORE bytes to the stack before FIN
// ------------------------------------------------------------------------------------

/// The stack calls on `peer`'s socket end with the sends of every byte, then a close.
fn assert_bytes_then_fin(pool: &Fallback, peer: PeerId, expected: &[u8]) {
    let stack = sim(pool);
    assert_eq!(
        stack.peer_received(peer),
        expected,
        "buffered bytes lost on close"
    );
    assert!(stack.peer_saw_fin(peer), "no FIN");
    assert!(!stack.peer_saw_reset(peer));
    let last_send = stack
        .calls()
        .iter()
        .rposition(|c| matches!(c, Call::Send { taken, .. } if *taken > 0));
    let close = stack.calls().iter().rposition(|c| matches!(c, Call::Close(_)));
    assert!(
        last_send < close,
        "FIN before the buffered bytes: {:?}",
        stack.calls()
    );
}

#[test]
fn plain_close_is_immediate_and_sends_coalesced_bytes_before_fin() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"HTTP/1.1 200 OK\r\n", false, t(1)), Ok(17));
    assert_eq!(pool.write(h, b"\r\nbody", false, t(1)), Ok(6));
    assert!(
        sim(&pool).peer_segments(peer).is_empty(),
        "MORE bytes sent at once"
    );
    assert_eq!(buffered(&pool, h, t(1)), 23);

    pool.close(h, t(1)).unwrap();
    // Free on return, even though the peer has acknowledged nothing.
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.free_slots(), 4);
    assert_eq!(sim(&pool).sock_of(peer), None, "socket not handed back");
    assert_eq!(sim(&pool).unacked(peer), 23);
    assert_bytes_then_fin(&pool, peer, b"HTTP/1.1 200 OK\r\n\r\nbody");
    assert_eq!(pool.counters().dropped_on_close, 0);
}

#[test]
fn idle_close_from_poll_sends_coalesced_bytes_before_fin() {
    // The coalescing delay outlasts the idle timeout: the idle close finds bytes
    // still in netpool's buffer.
    let config = Config::new()
        .with_coalesce_delay(Duration::from_secs(10))
        .with_idle_timeout(Some(Duration::from_secs(1)));
    let mut pool = fallback(config);
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"last words", false, t(0)), Ok(10));
    pool.poll(t(500));
    assert!(sim(&pool).peer_received(peer).is_empty());
    pool.poll(t(1_000));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.counters().idle_closed, 1);
    assert_bytes_then_fin(&pool, peer, b"last words");
    assert_eq!(pool.counters().dropped_on_close, 0);
}

#[test]
fn into_stack_sends_coalesced_bytes_before_fin() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"bye", false, t(0)), Ok(3));
    let stack = pool.into_stack(t(1));
    let stack = stack.inner();
    assert_eq!(stack.peer_received(peer), b"bye");
    assert!(stack.peer_saw_fin(peer));
    assert_eq!(stack.open_sockets(), 0);
}

#[test]
fn close_while_the_stack_refuses_counts_the_buffered_bytes_dropped() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 4);
    assert_eq!(pool.write(h, b"0123456789", false, t(0)), Ok(10));
    pool.close(h, t(1)).unwrap();
    // Still immediate: what the stack took went out, the rest is counted, FIN follows.
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(sim(&pool).peer_received(peer), b"0123");
    assert!(sim(&pool).peer_saw_fin(peer));
    assert_eq!(pool.counters().dropped_on_close, 6);
}

// ------------------------------------------------------------------------------------
// write_and_close(h, b"") waits for netpool's buffer
// ------------------------------------------------------------------------------------

#[test]
fn write_and_close_with_no_data_closes_only_once_the_buffer_is_empty() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 0);
    assert_eq!(pool.write(h, b"abc", false, t(0)), Ok(3));
    // Finish the message: nothing new, but three bytes still wait in netpool.
    assert_eq!(pool.write_and_close(h, b"", t(1)), Ok(0));
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "closed with bytes still buffered"
    );
    assert!(!sim(&pool).peer_saw_fin(peer));
    assert_eq!(pool.flush(h, t(1)), Err(nb::Error::WouldBlock));
    // The window opens: the same call now hands them over, then closes.
    sim_mut(&mut pool).set_send_window(peer, 100);
    assert_eq!(pool.write_and_close(h, b"", t(2)), Ok(0));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_bytes_then_fin(&pool, peer, b"abc");
    assert_eq!(pool.counters().dropped_on_close, 0);
}

#[test]
fn write_and_close_with_no_data_after_partial_flush_keeps_the_rest() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 0);
    assert_eq!(pool.write(h, b"0123456789", false, t(0)), Ok(10));
    sim_mut(&mut pool).set_send_window(peer, 4);
    assert_eq!(pool.write_and_close(h, b"", t(1)), Ok(0));
    assert_eq!(pool.state(h), Ok(ConnState::Connected));
    assert_eq!(buffered(&pool, h, t(1)), 6);
    sim_mut(&mut pool).set_send_window(peer, 100);
    assert_eq!(pool.write_and_close(h, b"", t(2)), Ok(0));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_bytes_then_fin(&pool, peer, b"0123456789");
}

// ------------------------------------------------------------------------------------
// MORE and push for writes larger than the coalescing buffer
// ------------------------------------------------------------------------------------

#[test]
fn plain_more_write_larger_than_the_buffer_keeps_its_rest_for_later() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 100);
    let data = stream(0..200);
    // 100 go to the stack, a full buffer's worth (64) waits in netpool.
    assert_eq!(pool.write(h, &data, false, t(0)), Ok(100 + TX));
    assert_eq!(sim(&pool).peer_received(peer), &data[..100]);
    assert_eq!(buffered(&pool, h, t(0)) as usize, TX);
    // The peer drains; the buffered rest goes out by the coalescing delay.
    sim_mut(&mut pool).peer_ack_all(peer);
    pool.poll(t(1));
    pool.poll(t(0) + Config::new().coalesce_delay);
    assert_eq!(sim(&pool).peer_received(peer), &data[..164]);
    assert_eq!(pool.write(h, &data[164..], true, t(300)), Ok(36));
    assert_eq!(sim(&pool).peer_received(peer), data);
}

#[test]
fn plain_push_write_larger_than_the_buffer_leaves_nothing_behind() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).set_send_window(peer, 100);
    let data = stream(0..200);
    // A push counts only what reached the stack, and keeps nothing in netpool.
    assert_eq!(pool.write(h, &data, true, t(0)), Ok(100));
    assert_eq!(buffered(&pool, h, t(0)), 0);
    assert_eq!(sim(&pool).peer_received(peer), &data[..100]);
    sim_mut(&mut pool).peer_ack_all(peer);
    assert_eq!(pool.write_and_close(h, &data[100..], t(1)), Ok(100));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_bytes_then_fin(&pool, peer, &data);
}

#[test]
fn plain_more_write_larger_than_the_buffer_with_room_is_sent_whole() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    let data = stream(0..300);
    assert_eq!(pool.write(h, &data, false, t(0)), Ok(300));
    assert_eq!(buffered(&pool, h, t(0)), 0);
    assert_eq!(sim(&pool).peer_segments(peer).len(), 1);
    assert_eq!(sim(&pool).peer_received(peer), data);
}

// ------------------------------------------------------------------------------------
// Second angles: error dispositions on a plain stack
// ------------------------------------------------------------------------------------

#[test]
fn plain_stack_closed_is_peer_gone_and_every_other_error_aborts() {
    let mut pool = fallback(Config::new());
    let (h, peer) = accept_plain(&mut pool, HTTP, 1, t(0));
    sim_mut(&mut pool).fail_next_send(peer, ErrorClass::Closed);
    assert_eq!(
        pool.write(h, b"x", true, t(1)),
        Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Closed)))
    );
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    assert_eq!((pool.counters().peer_closed, pool.counters().aborted), (1, 0));
    // The reader learns it at once (not a would-block), and nothing more is sent.
    sim_mut(&mut pool).clear_calls();
    assert_eq!(
        pool.read(h, &mut [0u8; 4], t(1)),
        Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Closed)))
    );
    assert_eq!(
        pool.write(h, b"x", true, t(1)),
        Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Closed)))
    );
    assert_eq!(sim(&pool).count(|c| matches!(c, Call::Send { .. })), 0);
    pool.close(h, t(2)).unwrap();

    // Through `Plain`, a reset is only "other": fatal, the slot aborts and the socket
    // goes back to the stack (by a close: a plain stack has no abort).
    let (h, peer) = accept_plain(&mut pool, HTTP, 2, t(3));
    sim_mut(&mut pool).fail_next_receive(peer, ErrorClass::Reset);
    assert_eq!(
        pool.read(h, &mut [0u8; 4], t(4)),
        Err(nb::Error::Other(ConnError::Aborted(ErrorClass::Fatal)))
    );
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    assert_eq!(sim(&pool).sock_of(peer), None, "socket kept after an abort");
    assert_eq!(pool.counters().aborted, 1);
    assert_eq!(
        pool.write(h, b"x", true, t(4)),
        Err(nb::Error::Other(ConnError::Aborted(ErrorClass::Fatal)))
    );
    pool.close(h, t(5)).unwrap();
    assert_eq!(pool.free_slots(), 4);
    assert_eq!(sim(&pool).open_sockets(), 1, "only the listener is left");
}

// ------------------------------------------------------------------------------------
// Second angles: cleanup on a plain stack
// ------------------------------------------------------------------------------------

#[test]
fn plain_cleanup_is_idempotent_and_stale_handles_touch_nothing() {
    let mut pool = fallback(Config::new());
    let (h, _) = accept_plain(&mut pool, HTTP, 1, t(0));
    pool.abort(h, t(1)).unwrap();
    pool.abort(h, t(1)).unwrap();
    pool.close(h, t(1)).unwrap();
    assert_eq!(pool.counters().aborted, 1, "an ended connection aborted twice");
    assert_eq!(
        pool.read(h, &mut [0u8; 4], t(1)),
        Err(nb::Error::Other(ConnError::Closed(CloseReason::Aborted)))
    );
    let (h2, peer2) = accept_plain(&mut pool, HTTP, 2, t(2));
    assert_eq!(h2.slot(), h.slot());
    sim_mut(&mut pool).clear_calls();
    assert_eq!(pool.abort(h, t(3)), Err(ConnError::Stale));
    assert_eq!(pool.flush(h, t(3)), Err(nb::Error::Other(ConnError::Stale)));
    assert_eq!(
        pool.write_and_close(h, b"x", t(3)),
        Err(nb::Error::Other(ConnError::Stale))
    );
    assert!(sim(&pool).calls().is_empty(), "a stale handle reached the stack");
    assert_eq!(pool.state(h2), Ok(ConnState::Connected));
    assert!(!sim(&pool).peer_saw_fin(peer2) && !sim(&pool).peer_saw_reset(peer2));
}

// ------------------------------------------------------------------------------------
// Second angles: listeners
// ------------------------------------------------------------------------------------

#[test]
fn plain_one_shot_listener_serves_one_connection_and_frees_its_port() {
    let mut pool = fallback(Config::new());
    pool.listen(
        1024,
        ListenParams::new(3)
            .with_protocol(2)
            .with_mode(ListenMode::OneShot),
    )
    .unwrap();
    let first = sim_mut(&mut pool).peer_connect(1024, client(1)).unwrap();
    let second = sim_mut(&mut pool).peer_connect(1024, client(2)).unwrap();
    pool.poll(t(0));
    let a = pool.accept_next().expect("first accepted");
    assert_eq!((a.port, a.protocol, a.remote), (1024, 2, client(1)));
    assert_eq!(pool.accept_next(), None);
    assert_eq!(pool.listener(1024), None);
    assert_eq!(
        pool.report(t(0)).listeners.iter().flatten().count(),
        1,
        "only HTTP"
    );
    assert_eq!(sim(&pool).sock_of(second), None);
    assert!(!sim(&pool).holds_pcb(second), "the backlog outlived its listener");
    // Nothing waits on the port any more; the accepted connection works on.
    assert!(sim_mut(&mut pool).peer_connect(1024, client(3)).is_err());
    sim_mut(&mut pool).peer_send(first, b"STOR");
    assert_eq!(pool.read(a.handle, &mut [0u8; 8], t(1)), Ok(4));
    assert_eq!(pool.write(a.handle, b"226", true, t(1)), Ok(3));
    assert_eq!(sim(&pool).peer_received(first), b"226");
    // A new listener on the same port: the running connection counts against its
    // cap, so with a cap of 1 the next transfer is turned away, with 2 it is served.
    pool.listen(1024, ListenParams::new(1).with_mode(ListenMode::OneShot))
        .unwrap();
    let turned_away = sim_mut(&mut pool).peer_connect(1024, client(4)).unwrap();
    pool.poll(t(2));
    assert_eq!(pool.accept_next(), None);
    // Released at once (a plain stack has no RST: by FIN).
    assert!(sim(&pool).peer_saw_fin(turned_away));
    assert!(!sim(&pool).holds_pcb(turned_away));
    assert_eq!(pool.counters().rejected_port_cap, 1);
    pool.listen(1024, ListenParams::new(2).with_mode(ListenMode::OneShot))
        .unwrap();
    sim_mut(&mut pool).peer_connect(1024, client(5)).unwrap();
    pool.poll(t(3));
    assert_eq!(pool.accept_next().map(|a| a.remote), Some(client(5)));
    assert_eq!(pool.listener(1024), None);
    sim(&pool).assert_consistent();
}

#[test]
fn stop_listening_and_a_lowered_cap_leave_running_connections_alone() {
    let mut pool = native(Config::new());
    let (h1, p1) = accept_native(&mut pool, HTTP, 1, t(0));
    let (h2, p2) = accept_native(&mut pool, HTTP, 2, t(0));
    // Lower the cap below what is open: nothing is closed, new ones are refused.
    pool.listen(HTTP, ListenParams::new(1)).unwrap();
    let p3 = pool.stack_mut().peer_connect(HTTP, client(3)).unwrap();
    pool.poll(t(1));
    assert_eq!(pool.accept_next(), None);
    assert!(pool.stack().peer_saw_reset(p3));
    assert_eq!(pool.counters().rejected_port_cap, 1);
    assert_eq!(pool.state(h1), Ok(ConnState::Connected));
    assert_eq!(pool.state(h2), Ok(ConnState::Connected));
    // Stop listening: still nothing closed.
    assert!(pool.stop_listening(HTTP));
    assert!(!pool.stop_listening(HTTP));
    pool.poll(t(2));
    for (h, p) in [(h1, p1), (h2, p2)] {
        assert_eq!(pool.write(h, b"on", true, t(2)), Ok(2));
        assert_eq!(pool.stack().peer_received(p), b"on");
        assert!(!pool.stack().peer_saw_fin(p) && !pool.stack().peer_saw_reset(p));
    }
    assert_eq!(pool.stack().open_sockets(), 2, "listener socket not released");
}

// ------------------------------------------------------------------------------------
// Second angle: freeing a slot is not a new-connection event
// ------------------------------------------------------------------------------------

#[test]
fn slots_freed_by_close_or_inside_poll_do_not_accept_by_themselves() {
    let config = Config::new().with_idle_timeout(Some(Duration::from_secs(5)));
    let mut pool = fallback(config);
    let mut handles = Vec::new();
    for i in 0..4 {
        handles.push(accept_plain(&mut pool, HTTP, i, t(0)).0);
    }
    // A fifth peer waits in the backlog while the pool is full.
    let waiting = sim_mut(&mut pool).peer_connect(HTTP, client(5)).unwrap();
    sim_mut(&mut pool).clear_calls();
    pool.close(handles[0], t(1)).unwrap();
    assert_eq!(sim(&pool).count(|c| matches!(c, Call::Accept(_))), 0);
    assert_eq!(sim(&pool).backlog_len(HTTP), 1, "the close accepted");
    assert_eq!(pool.accept_next(), None);
    // The next poll takes it into the freed slot.
    pool.poll(t(2));
    let a = pool.accept_next().expect("waiting peer served");
    assert_eq!((a.remote, a.handle.slot()), (client(5), handles[0].slot()));
    assert!(!sim(&pool).peer_saw_reset(waiting));
    // The idle timeout frees every slot inside one poll: that poll still asks the
    // listener once, and nothing new appears.
    sim_mut(&mut pool).clear_calls();
    pool.poll(t(10_000));
    assert_eq!(pool.free_slots(), 4);
    assert_eq!(sim(&pool).count(|c| matches!(c, Call::Accept(_))), 1);
    assert_eq!(pool.accept_next(), None);
    assert_eq!(pool.counters().accepted, 5);
}

// ------------------------------------------------------------------------------------
// Second angle: diagnostics never block
// ------------------------------------------------------------------------------------

#[test]
fn plain_diagnostics_do_no_io_and_show_buffered_bytes() {
    let mut pool = fallback(Config::new());
    let (h, _) = accept_plain(&mut pool, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"queued", false, t(1)), Ok(6));
    sim_mut(&mut pool).clear_calls();
    let report = pool.report(t(2));
    let slot = pool.slot_report(h.slot(), t(2)).expect("slot");
    let text = format!("{report}");
    let _ = (pool.counters(), pool.state(h), pool.free_slots(), pool.poll_at());
    let _ = (
        pool.handles().count(),
        pool.handle_at(h.slot()),
        pool.listener(HTTP),
    );
    assert!(
        sim(&pool).calls().is_empty(),
        "diagnostics called the stack: {:?}",
        sim(&pool).calls()
    );
    assert_eq!(slot, report.slots[h.slot()]);
    assert_eq!((slot.buffered, slot.bytes_out), (6, 6));
    assert!(text.contains("buffered 6"), "{text}");
    // The coalescing deadline is a timer the application must wake for by then.
    let wake = pool.poll_at().expect("buffered bytes need a timer");
    assert!(wake <= t(1) + Config::new().coalesce_delay, "{wake:?}");
}

// ------------------------------------------------------------------------------------
// Second angle: other tasks read whole snapshots, never torn ones
// ------------------------------------------------------------------------------------

#[test]
fn another_task_reads_consistent_snapshots_while_the_pool_runs() {
    static SHARE: PoolShare<4, 2, 4> = PoolShare::new();
    let mut pool = native(Config::new());
    let reader = std::thread::spawn(|| {
        let mut seen = 0u32;
        for _ in 0..200_000 {
            if let Some(report) = SHARE.report() {
                let in_use = report.slots.iter().filter(|s| s.state.is_in_use()).count();
                assert_eq!(report.counters.in_use as usize, in_use, "torn report");
                assert_eq!(report.free_slots(), 4 - in_use, "torn report");
                seen += 1;
            }
            if SHARE.counters().accepted >= 200 {
                break;
            }
            std::thread::yield_now();
        }
        seen
    });
    // 200 connections, each closed through a posted command; the queue never makes
    // the poster wait (a full queue hands the command back).
    let mut handed_back = 0;
    for i in 0..200u16 {
        let now = t(u64::from(i) * 10);
        pool.stack_mut().peer_connect(HTTP, client(i % 1000)).unwrap();
        pool.poll_shared(now, &SHARE);
        let a = pool.accept_next().expect("accepted");
        if let Err(back) = SHARE.post(Command::Close(a.handle)) {
            assert_eq!(back, Command::Close(a.handle));
            handed_back += 1;
            pool.close(a.handle, now).unwrap();
        }
        pool.poll_shared(now, &SHARE);
        assert_eq!(pool.state(a.handle), Ok(ConnState::Free));
    }
    assert_eq!(
        handed_back, 0,
        "a queue of four overflowed with one command at a time"
    );
    assert!(
        reader.join().expect("reader panicked") > 0,
        "the reader never saw a report"
    );
    assert_eq!(SHARE.counters().accepted, 200);
    assert_eq!(SHARE.report().expect("published").free_slots(), 4);
}
