//! One test (or a few) per rule of the README's rules table, on the scripted stack. Each fails if
//! its rule is broken.

use std::net::SocketAddr;

use netpool::shared::{Command, PoolShare};
use netpool::stack::SendFlag;
use netpool::{
    nb, CloseReason, Config, ConnError, ConnHandle, ConnState, ConnectError, Duration, ErrorClass, Instant,
    LinkState, ListenMode, ListenParams, Pool,
};
use netpool_testkit::scripted::*;

const HTTP: u16 = 80;
/// Native stack (MORE flag, abort, send queue, peer status): no coalescing buffer.
type Native = Pool<ScriptedStack, 4, 2, 0>;
/// Plain embedded-nal stack: every fallback, 64-byte coalescing buffer.
type Fallback = Pool<PlainScripted, 4, 2, 64>;

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

/// A peer connects to `port`; the pool accepts it.
fn connect_peer<S: netpool::stack::Stack, const TX: usize>(
    pool: &mut Pool<S, 4, 2, TX>,
    stack: impl Fn(&mut S) -> &mut ScriptedStack,
    port: u16,
    n: u16,
    now: Instant,
) -> (ConnHandle, PeerId) {
    let peer = stack(pool.stack_mut())
        .peer_connect(port, client(n))
        .expect("peer connect");
    pool.poll(now);
    let a = pool.accept_next().expect("accepted");
    assert_eq!(a.remote, client(n));
    (a.handle, peer)
}

fn n(s: &mut ScriptedStack) -> &mut ScriptedStack {
    s
}

fn p(s: &mut PlainScripted) -> &mut ScriptedStack {
    s.inner_mut()
}

// ------------------------------------------------------------------------------------
// Close immediately (000: lingering closes exhausted lwIP's PCBs)
// ------------------------------------------------------------------------------------

#[test]
fn rule_close_is_immediate_even_with_unacknowledged_data() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"HTTP/1.1 200 OK\r\n\r\n{}", true, t(1)), Ok(21));
    assert_eq!(pool.stack().unacked(peer), 21, "the peer has not acknowledged");

    pool.close(h, t(1)).unwrap();
    // Free on return: no waiting for the ACK, the stack got its close at once.
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.free_slots(), 4);
    let sock = pool.stack().sock_of(peer);
    assert_eq!(sock, None, "socket handed back to the stack");
    assert!(pool.stack().count(|c| matches!(c, Call::Close(_))) >= 1);
    // The slot serves the next connection right away.
    let (h2, _) = connect_peer(&mut pool, n, HTTP, 2, t(2));
    assert_eq!(h2.slot(), h.slot());
    assert_ne!(h2, h);
}

// ------------------------------------------------------------------------------------
// MORE vs push (000 §3.1: the flag was inverted)
// ------------------------------------------------------------------------------------

#[test]
fn rule_more_flag_is_set_exactly_when_not_pushing() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"HTTP/1.1 200 OK\r\n", false, t(1)), Ok(17));
    assert_eq!(pool.write(h, b"Content-Length: 2\r\n\r\n", false, t(1)), Ok(21));
    assert_eq!(pool.write(h, b"{}", true, t(1)), Ok(2));
    let flags: Vec<_> = pool
        .stack()
        .peer_segments(peer)
        .into_iter()
        .map(|(_, f)| f)
        .collect();
    assert_eq!(
        flags,
        [Some(SendFlag::More), Some(SendFlag::More), Some(SendFlag::Push)]
    );
}

#[test]
fn rule_more_coalesces_on_plain_stacks_and_push_sends() {
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"HTTP/1.1 200 OK\r\n", false, t(1)), Ok(17));
    assert_eq!(pool.write(h, b"Content-Length: 2\r\n\r\n", false, t(1)), Ok(21));
    assert!(
        pool.stack().inner().peer_segments(peer).is_empty(),
        "MORE bytes were sent at once"
    );
    assert_eq!(pool.write(h, b"{}", true, t(1)), Ok(2));
    let segs = pool.stack().inner().peer_segments(peer);
    assert_eq!(
        segs.len(),
        1,
        "push must send the coalesced bytes in one go: {segs:?}"
    );
    assert_eq!(segs[0].0, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}");
}

#[test]
fn rule_coalesced_bytes_go_out_when_the_buffer_fills_or_the_delay_expires() {
    let mut pool = fallback(Config::new().with_coalesce_delay(Duration::from_millis(200)));
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    // 100 bytes under MORE through a 64-byte buffer: the full buffer is flushed.
    assert_eq!(pool.write(h, &[7u8; 100], false, t(1)), Ok(100));
    assert_eq!(pool.stack().inner().peer_received(peer).len(), 100);
    // A small MORE write waits for the delay, then goes out from poll.
    assert_eq!(pool.write(h, b"tail", false, t(10)), Ok(4));
    pool.poll(t(209));
    assert_eq!(pool.stack().inner().peer_received(peer).len(), 100);
    pool.poll(t(210));
    assert_eq!(pool.stack().inner().peer_received(peer).len(), 104);
}

#[test]
fn rule_the_coalescing_delay_counts_from_the_oldest_buffered_byte() {
    // Plain stack: a second MORE write does not push the first one's deadline back.
    let mut pool = fallback(Config::new().with_coalesce_delay(Duration::from_millis(200)));
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"head", false, t(10)), Ok(4));
    assert_eq!(pool.write(h, b"tail", false, t(100)), Ok(4));
    pool.poll(t(209));
    assert!(pool.stack().inner().peer_received(peer).is_empty());
    pool.poll(t(210));
    assert_eq!(pool.stack().inner().peer_received(peer), b"headtail");
}

#[test]
fn rule_native_more_bytes_are_pushed_when_the_delay_from_the_first_expires() {
    let mut pool = native(Config::new().with_coalesce_delay(Duration::from_millis(200)));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"head", false, t(10)), Ok(4));
    assert_eq!(pool.write(h, b"tail", false, t(100)), Ok(4));
    pool.poll(t(209));
    assert_eq!(pool.stack().stack_pushes(peer), 0, "not before the delay");
    pool.poll(t(210));
    assert_eq!(
        pool.stack().stack_pushes(peer),
        1,
        "the delay counts from the first"
    );
    pool.poll(t(1_000));
    assert_eq!(pool.stack().stack_pushes(peer), 1, "nothing held back any more");
}

#[test]
fn rule_a_push_the_stack_took_whole_leaves_nothing_to_push_later() {
    let mut pool = native(Config::new().with_coalesce_delay(Duration::from_millis(200)));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"head", false, t(10)), Ok(4));
    assert_eq!(pool.write(h, b"tail", true, t(20)), Ok(4));
    pool.stack_mut().clear_calls();
    pool.poll(t(210));
    assert_eq!(pool.stack().count(|c| matches!(c, Call::Push(_))), 0);
    assert_eq!(pool.stack().peer_received(peer), b"headtail");
}

#[test]
fn rule_a_refused_flush_is_retried_after_the_coalescing_delay_not_at_every_poll() {
    let mut pool = fallback(Config::new().with_coalesce_delay(Duration::from_millis(200)));
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    pool.stack_mut().inner_mut().set_send_window(peer, 0);
    assert_eq!(pool.write(h, b"head", false, t(10)), Ok(4));
    pool.stack_mut().inner_mut().clear_calls();
    let sends = |pool: &Fallback| pool.stack().inner().count(|c| matches!(c, Call::Send { .. }));
    pool.poll(t(210));
    assert_eq!(sends(&pool), 1, "due: one attempt, refused");
    pool.poll(t(211));
    pool.poll(t(409));
    assert_eq!(sends(&pool), 1, "not asked again before the delay");
    pool.poll(t(410));
    assert_eq!(sends(&pool), 2);
    pool.stack_mut().inner_mut().set_send_window(peer, usize::MAX);
    pool.poll(t(610));
    assert_eq!(pool.stack().inner().peer_received(peer), b"head");
}

#[test]
fn rule_a_more_write_the_stack_refused_arms_no_push() {
    let mut pool = native(Config::new().with_coalesce_delay(Duration::from_millis(200)));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().set_send_window(peer, 0);
    assert_eq!(pool.write(h, b"head", false, t(10)), Err(nb::Error::WouldBlock));
    pool.poll(t(210));
    assert_eq!(
        pool.stack().count(|c| matches!(c, Call::Push(_))),
        0,
        "nothing taken, nothing held back to push"
    );
}

#[test]
fn rule_every_byte_reported_taken_reaches_the_peer_when_the_buffer_is_nearly_full() {
    // Plain stack, 64-byte buffer, the stack refusing: a second write of 40 does not
    // fit behind the first 40 and must not be reported taken beyond what is kept.
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    pool.stack_mut().inner_mut().set_send_window(peer, 0);
    assert_eq!(pool.write(h, &[1u8; 40], false, t(1)), Ok(40));
    let second = pool.write(h, &[2u8; 40], false, t(2)).unwrap_or(0);
    pool.stack_mut().inner_mut().set_send_window(peer, usize::MAX);
    assert_eq!(pool.flush(h, t(3)), Ok(()));
    let got = pool.stack().inner().peer_received(peer);
    assert_eq!(got.len(), 40 + second, "reported {second} more taken");
    assert!(got[..40].iter().all(|&b| b == 1) && got[40..].iter().all(|&b| b == 2));
}

#[test]
fn rule_a_push_the_stack_would_not_do_now_is_not_an_error() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"head", false, t(10)), Ok(4));
    pool.stack_mut().fail_next_push(peer, ErrorClass::WouldBlock);
    assert_eq!(pool.flush(h, t(20)), Ok(()));
    assert_eq!(pool.state(h), Ok(ConnState::Connected));
}

#[test]
fn rule_a_push_that_fails_the_connection_ends_it() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"head", false, t(10)), Ok(4));
    pool.stack_mut().fail_next_push(peer, ErrorClass::Fatal);
    assert!(matches!(pool.flush(h, t(20)), Err(nb::Error::Other(_))));
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
}

#[test]
fn rule_a_new_configuration_takes_effect_at_the_next_call() {
    let mut pool = native(Config::new());
    let (h, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.poll(t(10_000));
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "no idle timeout by default"
    );
    let config = Config::new().with_idle_timeout(Some(Duration::from_secs(5)));
    pool.set_config(config);
    assert_eq!(*pool.config(), config);
    pool.poll(t(10_001));
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Free),
        "idle for more than 5 s: closed"
    );
}

#[test]
fn rule_poll_reports_how_many_it_accepted_and_turned_away() {
    let mut pool = native(Config::new());
    pool.listen(HTTP, ListenParams::new(2)).unwrap();
    for i in 1..=3 {
        pool.stack_mut()
            .peer_connect(HTTP, client(i))
            .expect("peer connect");
    }
    let summary = pool.poll(t(1));
    assert_eq!((summary.accepted, summary.rejected), (2, 1), "a cap of 2");
    let summary = pool.poll(t(2));
    assert_eq!((summary.accepted, summary.rejected), (0, 0));
}

#[test]
fn rule_queries_name_only_slots_that_exist_and_are_in_use() {
    let mut pool = native(Config::new());
    let (h1, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    let (h2, _) = connect_peer(&mut pool, n, HTTP, 2, t(0));
    assert_eq!(pool.handles().collect::<Vec<_>>(), [h1, h2]);
    assert_eq!(pool.handle_at(h1.slot()), Some(h1));
    assert_eq!(pool.handle_at(2), None, "a free slot");
    assert_eq!(pool.handle_at(4), None, "no such slot (4 slots), and no panic");
    assert_eq!(pool.handle_at(usize::MAX), None);
    assert!(pool.slot_report(3, t(1)).is_some());
    assert_eq!(pool.slot_report(4, t(1)), None, "no such slot");
    pool.close(h1, t(1)).unwrap();
    assert_eq!(pool.handles().collect::<Vec<_>>(), [h2]);
    assert_eq!(pool.handle_at(h1.slot()), None);
}

#[test]
fn rule_an_abort_hands_nothing_more_to_the_stack_and_counts_what_it_dropped() {
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"tail", false, t(1)), Ok(4), "buffered in netpool");
    pool.stack_mut().inner_mut().clear_calls();
    pool.abort(h, t(2)).unwrap();
    let stack = pool.stack().inner();
    assert_eq!(
        stack.count(|c| matches!(c, Call::Send { .. })),
        0,
        "RST, not the tail"
    );
    assert!(stack.peer_received(peer).is_empty());
    assert_eq!(pool.counters().dropped_on_close, 4);
}

#[test]
fn rule_the_pool_reports_the_link_it_last_read_and_describes_itself() {
    let mut pool = native(Config::new());
    assert_eq!(pool.link(), LinkState::Unknown, "not read yet");
    pool.stack_mut().set_link(LinkState::Down);
    pool.poll(t(1));
    assert_eq!(pool.link(), LinkState::Down);
    assert_eq!(pool.report(t(1)).link, LinkState::Down);
    let debug = format!("{pool:?}");
    assert!(
        debug.starts_with("Pool {") && debug.contains("free: 4"),
        "{debug}"
    );
}

// ------------------------------------------------------------------------------------
// Exact partial writes, no spin (000 §3.2, §3.3)
// ------------------------------------------------------------------------------------

#[test]
fn rule_partial_write_reports_exactly_the_bytes_taken() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().set_send_window(peer, 10);
    let data: Vec<u8> = (0..100).collect();
    assert_eq!(pool.write(h, &data, true, t(1)), Ok(10));
    assert_eq!(pool.stack().peer_received(peer), &data[..10]);
    pool.stack_mut().peer_ack_all(peer);
    assert_eq!(pool.write(h, &data[10..], true, t(2)), Ok(10));
    assert_eq!(pool.stack().peer_received(peer), &data[..20]);
}

#[test]
fn rule_write_never_spins_on_would_block() {
    // Native: one stack call, WouldBlock, return.
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().set_send_window(peer, 0);
    pool.stack_mut().clear_calls();
    assert_eq!(
        pool.write(h, &[1u8; 1000], true, t(1)),
        Err(nb::Error::WouldBlock)
    );
    assert_eq!(pool.stack().count(|c| matches!(c, Call::Send { .. })), 1);

    // Fallback with a full coalescing buffer: at most a flush and a send, then return.
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    pool.stack_mut().inner_mut().set_send_window(peer, 0);
    assert_eq!(pool.write(h, &[1u8; 64], false, t(1)), Ok(64));
    pool.stack_mut().inner_mut().clear_calls();
    assert_eq!(
        pool.write(h, &[1u8; 1000], true, t(1)),
        Err(nb::Error::WouldBlock)
    );
    assert!(pool.stack().inner().count(|c| matches!(c, Call::Send { .. })) <= 2);
}

// ------------------------------------------------------------------------------------
// Error dispositions (000 §3.4)
// ------------------------------------------------------------------------------------

#[test]
fn rule_would_block_and_timeout_are_not_errors() {
    for class in [ErrorClass::WouldBlock, ErrorClass::Timeout] {
        let mut pool = native(Config::new());
        let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
        pool.stack_mut().fail_next_send(peer, class);
        assert_eq!(
            pool.write(h, b"x", true, t(1)),
            Err(nb::Error::WouldBlock),
            "{class}"
        );
        pool.stack_mut().fail_next_receive(peer, class);
        assert_eq!(
            pool.read(h, &mut [0u8; 4], t(1)),
            Err(nb::Error::WouldBlock),
            "{class}"
        );
        assert_eq!(pool.state(h), Ok(ConnState::Connected), "{class}");
    }
}

#[test]
fn rule_peer_gone_errors_make_the_slot_other_end_closed() {
    for class in [
        ErrorClass::Reset,
        ErrorClass::Closed,
        ErrorClass::ConnectionLost,
        ErrorClass::Aborted,
    ] {
        let mut pool = native(Config::new());
        let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
        pool.stack_mut().fail_next_send(peer, class);
        assert_eq!(
            pool.write(h, b"x", true, t(1)),
            Err(nb::Error::Other(ConnError::PeerGone(class)))
        );
        assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed), "{class}");
        assert_eq!(pool.counters().peer_closed, 1);
        assert_eq!(pool.counters().aborted, 0, "{class} must not abort");
        // Not a zombie: the application's close frees it.
        pool.close(h, t(2)).unwrap();
        assert_eq!(pool.free_slots(), 4);
    }
}

#[test]
fn rule_every_other_error_aborts_and_releases_the_socket() {
    for class in [
        ErrorClass::Refused,
        ErrorClass::NoRoute,
        ErrorClass::OutOfResources,
        ErrorClass::InvalidInput,
        ErrorClass::Fatal,
    ] {
        let mut pool = native(Config::new());
        let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
        pool.stack_mut().fail_next_receive(peer, class);
        assert_eq!(
            pool.read(h, &mut [0u8; 4], t(1)),
            Err(nb::Error::Other(ConnError::Aborted(class)))
        );
        assert_eq!(pool.state(h), Ok(ConnState::Aborted));
        assert!(
            pool.stack().peer_saw_reset(peer),
            "{class}: stack socket not aborted"
        );
        assert_eq!(pool.counters().aborted, 1);
        pool.close(h, t(2)).unwrap();
        assert_eq!(pool.free_slots(), 4);
    }
}

#[test]
fn rule_data_received_before_fin_stays_readable() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_send(peer, b"POST body");
    pool.stack_mut().peer_fin(peer);
    pool.poll(t(1));
    let mut buf = [0u8; 4];
    assert_eq!(pool.read(h, &mut buf, t(1)), Ok(4));
    assert_eq!(&buf, b"POST");
    let mut rest = [0u8; 16];
    assert_eq!(pool.read(h, &mut rest, t(1)), Ok(5));
    assert_eq!(&rest[..5], b" body");
    assert_eq!(
        pool.read(h, &mut rest, t(1)),
        Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Closed)))
    );
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    // Half-close: the response can still be written.
    assert_eq!(pool.write(h, b"ok", true, t(1)), Ok(2));
}

// ------------------------------------------------------------------------------------
// A failed connect reports failure (000 §3.5)
// ------------------------------------------------------------------------------------

#[test]
fn rule_a_connect_the_stack_refuses_at_once_is_an_error_that_holds_nothing() {
    let mut pool = native(Config::new());
    pool.stack_mut()
        .script_connect(ConnectScript::FailAfter(0, ErrorClass::Refused));
    assert_eq!(
        pool.connect(client(9), 1, Duration::from_secs(5), t(0)),
        Err(ConnectError::Stack(ErrorClass::Refused))
    );
    assert_eq!(pool.free_slots(), 4);
    let c = pool.counters();
    assert_eq!((c.connects, c.connect_failed), (1, 1));
    assert_eq!(pool.stack().open_sockets(), 1, "only the listener's socket");
}

#[test]
fn rule_a_retry_class_error_on_the_first_connect_call_means_under_way() {
    let mut pool = native(Config::new());
    pool.stack_mut()
        .script_connect(ConnectScript::FailAfter(0, ErrorClass::Timeout));
    let h = pool.connect(client(9), 1, Duration::from_secs(5), t(0)).unwrap();
    assert_eq!(pool.state(h), Ok(ConnState::Connecting));
}

#[test]
fn rule_failed_connect_reports_failure() {
    let mut pool = native(Config::new());
    pool.stack_mut()
        .script_connect(ConnectScript::FailAfter(2, ErrorClass::Refused));
    let h = pool.connect(client(9), 1, Duration::from_secs(5), t(0)).unwrap();
    assert_eq!(pool.state(h), Ok(ConnState::Connecting));
    for ms in 1..=3 {
        pool.poll(t(ms));
        assert_ne!(pool.state(h), Ok(ConnState::Connected));
    }
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    assert_eq!(
        pool.write(h, b"x", true, t(4)),
        Err(nb::Error::Other(ConnError::Aborted(ErrorClass::Refused)))
    );
    let report = pool.report(t(4));
    assert_eq!(
        report.slots[h.slot()].close_reason,
        Some(CloseReason::ConnectFailed(ErrorClass::Refused))
    );
    assert_eq!(pool.counters().connect_failed, 1);
    pool.close(h, t(4)).unwrap();

    // Refused by the stack at once: an error, and nothing allocated.
    pool.stack_mut().fail_next_socket(ErrorClass::OutOfResources);
    assert_eq!(
        pool.connect(client(9), 1, Duration::from_secs(5), t(5)),
        Err(ConnectError::Stack(ErrorClass::OutOfResources))
    );
    assert_eq!(pool.free_slots(), 4);
}

// ------------------------------------------------------------------------------------
// Bounded locks, short critical sections (000 §3.6, 001)
// ------------------------------------------------------------------------------------

#[test]
fn rule_other_tasks_share_the_pool_through_short_critical_sections() {
    static SHARE: PoolShare<4, 2, 2> = PoolShare::new();
    let mut pool = native(Config::new());
    let (h, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(SHARE.report(), None);

    // A full queue hands the command back at once instead of waiting.
    assert_eq!(SHARE.post(Command::Close(h)), Ok(()));
    assert_eq!(
        SHARE.post(Command::Listen {
            port: 21,
            params: ListenParams::new(1)
        }),
        Ok(())
    );
    assert_eq!(SHARE.post(Command::Abort(h)), Err(Command::Abort(h)));

    pool.poll_shared(t(1), &SHARE);
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert!(pool.listener(21).is_some());
    // Published: counters lock-free, the report by copy.
    assert_eq!(SHARE.counters(), pool.counters());
    let report = SHARE.report().expect("published");
    assert_eq!(report.free_slots(), 4);

    // A reader on another thread sees the pool's progress without a lock on the pool.
    let reader = std::thread::spawn(|| {
        for _ in 0..1_000_000 {
            if SHARE.counters().accepted == 2 {
                return true;
            }
            std::thread::yield_now();
        }
        false
    });
    pool.stack_mut().peer_connect(HTTP, client(2)).unwrap();
    pool.poll_shared(t(2), &SHARE);
    assert!(reader.join().unwrap(), "the second accept never became visible");
}

// ------------------------------------------------------------------------------------
// Listener lifetime; one-shot listeners (000 §3.7–3.9)
// ------------------------------------------------------------------------------------

#[test]
fn rule_one_shot_listener_stops_after_its_first_connection() {
    let mut pool = native(Config::new());
    pool.listen(
        1024,
        ListenParams::new(1)
            .with_protocol(2)
            .with_mode(ListenMode::OneShot),
    )
    .unwrap();
    let first = pool.stack_mut().peer_connect(1024, client(1)).unwrap();
    let second = pool.stack_mut().peer_connect(1024, client(2)).unwrap();
    pool.poll(t(0));
    let a = pool.accept_next().expect("first accepted");
    assert_eq!((a.port, a.protocol), (1024, 2));
    assert_eq!(pool.accept_next(), None);
    assert_eq!(pool.listener(1024), None, "one-shot listener still listening");
    assert_eq!(pool.stack().backlog_len(1024), 0);
    assert!(
        pool.stack().peer_saw_reset(second),
        "the backlog went with the listener"
    );
    // The accepted connection does not depend on the listener.
    pool.stack_mut().peer_send(first, b"RETR");
    assert_eq!(pool.read(a.handle, &mut [0u8; 8], t(1)), Ok(4));
    assert_eq!(pool.write(a.handle, b"data", true, t(1)), Ok(4));
    pool.close(a.handle, t(2)).unwrap();
    // The port can be listened on again.
    assert!(pool
        .listen(1024, ListenParams::new(1).with_mode(ListenMode::OneShot))
        .is_ok());
    pool.stack().assert_consistent();
}

#[test]
fn rule_stopping_a_listener_leaves_its_connections_running() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(
        pool.listen(HTTP, ListenParams::new(0)),
        Ok(netpool::ListenOutcome::Stopped)
    );
    assert_eq!(pool.listener(HTTP), None);
    assert!(
        pool.stack_mut().peer_connect(HTTP, client(2)).is_err(),
        "still listening"
    );
    assert_eq!(pool.write(h, b"still here", true, t(1)), Ok(10));
    assert_eq!(pool.stack().peer_received(peer), b"still here");
    assert_eq!(pool.report(t(1)).slots[h.slot()].local_port, HTTP);
}

// ------------------------------------------------------------------------------------
// Connections that cannot be served are drained and counted (000 §3.10)
// ------------------------------------------------------------------------------------

#[test]
fn rule_unservable_connections_are_accepted_and_released_at_once() {
    // Port cap 2 on a pool of 4.
    let mut pool = native(Config::new());
    pool.listen(HTTP, ListenParams::new(2)).unwrap();
    let peers: Vec<_> = (0..5)
        .map(|i| pool.stack_mut().peer_connect(HTTP, client(i)).unwrap())
        .collect();
    pool.poll(t(0));
    pool.poll(t(1)); // accepts_per_poll = 4: the fifth needs a second pass
    assert_eq!(
        pool.stack().backlog_len(HTTP),
        0,
        "rejected connections left in the backlog"
    );
    let c = pool.counters();
    assert_eq!((c.accepted, c.rejected, c.rejected_port_cap), (2, 3, 3));
    for peer in &peers[2..] {
        assert!(pool.stack().peer_saw_reset(*peer));
        assert!(
            !pool.stack().holds_pcb(*peer),
            "a rejected connection holds a PCB"
        );
    }
    // Pool full: cap 8 on a pool of 4.
    pool.listen(HTTP, ListenParams::new(8)).unwrap();
    for i in 10..14 {
        pool.stack_mut().peer_connect(HTTP, client(i)).unwrap();
    }
    pool.poll(t(2));
    let c = pool.counters();
    assert_eq!((c.accepted, c.rejected_pool_full), (4, 2));
    assert_eq!(pool.free_slots(), 0);
    pool.stack().assert_consistent();
}

// ------------------------------------------------------------------------------------
// Freeing a slot is not a new-connection event (000 §4.4)
// ------------------------------------------------------------------------------------

#[test]
fn rule_freeing_a_slot_does_not_trigger_an_accept() {
    let mut pool = native(Config::new());
    let (h, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    let (h2, _) = connect_peer(&mut pool, n, HTTP, 2, t(0));
    pool.stack_mut().clear_calls();
    pool.close(h, t(1)).unwrap();
    pool.abort(h2, t(1)).unwrap();
    assert_eq!(pool.stack().count(|c| matches!(c, Call::Accept(_))), 0);
    // The next poll asks each listener once, finds nothing, and stops.
    pool.poll(t(2));
    assert_eq!(pool.stack().count(|c| matches!(c, Call::Accept(_))), 1);
    assert_eq!(pool.accept_next(), None);
}

// ------------------------------------------------------------------------------------
// Diagnostics never block (000 §3.11)
// ------------------------------------------------------------------------------------

#[test]
fn rule_diagnostics_do_no_io() {
    let mut pool = native(Config::new());
    let (h, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.write(h, b"abc", true, t(1)).unwrap();
    pool.stack_mut().clear_calls();
    let report = pool.report(t(5));
    let counters = pool.counters();
    let text = format!("{report}");
    assert!(
        pool.stack().calls().is_empty(),
        "the report called the stack: {:?}",
        pool.stack().calls()
    );
    assert_eq!(report.slots[h.slot()].bytes_out, 3);
    assert_eq!(report.slots[h.slot()].remote, Some(client(1)));
    assert_eq!(report.counters, counters);
    assert!(
        text.contains("connected") && text.contains("127.0.0.1:40001"),
        "{text}"
    );
}

// ------------------------------------------------------------------------------------
// Read the link, never probe; every wait has a deadline (001)
// ------------------------------------------------------------------------------------

#[test]
fn rule_connect_is_refused_while_the_link_is_down_without_touching_the_network() {
    let mut pool = native(Config::new());
    pool.stack_mut().set_link(LinkState::Down);
    pool.stack_mut().clear_calls();
    assert_eq!(
        pool.connect(client(9), 0, Duration::from_secs(5), t(0)),
        Err(ConnectError::LinkDown)
    );
    assert!(
        pool.stack().calls().is_empty(),
        "probed: {:?}",
        pool.stack().calls()
    );
    assert_eq!(pool.free_slots(), 4);

    // Fallback stacks: the application sets the link it read from its driver.
    let mut pool = fallback(Config::new());
    pool.stack_mut().set_link(LinkState::Down);
    assert_eq!(
        pool.connect(client(9), 0, Duration::from_secs(5), t(0)),
        Err(ConnectError::LinkDown)
    );
    pool.stack_mut().set_link(LinkState::Unknown);
    assert!(
        pool.connect(client(9), 0, Duration::from_secs(5), t(0)).is_ok(),
        "unknown is up"
    );
}

#[test]
fn rule_connect_fails_by_its_deadline() {
    let mut pool = native(Config::new());
    pool.stack_mut().script_connect(ConnectScript::NeverComplete);
    let h = pool
        .connect(client(9), 0, Duration::from_millis(3000), t(0))
        .unwrap();
    pool.poll(t(2999));
    assert_eq!(pool.state(h), Ok(ConnState::Connecting));
    pool.poll(t(3000));
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    assert_eq!(
        pool.report(t(3000)).slots[h.slot()].close_reason,
        Some(CloseReason::ConnectTimeout)
    );
    assert!(
        pool.stack().count(|c| matches!(c, Call::Abort(_))) >= 1,
        "socket not released"
    );
    assert_eq!(
        pool.poll_at(),
        Some(t(3000) + Config::new().abandoned_after.unwrap())
    );
}

#[test]
fn rule_link_down_mid_connect_fails_the_connect_at_the_next_poll() {
    let mut pool = native(Config::new());
    pool.stack_mut().script_connect(ConnectScript::NeverComplete);
    let h = pool.connect(client(9), 0, Duration::from_secs(30), t(0)).unwrap();
    pool.stack_mut().set_link(LinkState::Down);
    pool.poll(t(1));
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    assert_eq!(
        pool.report(t(1)).slots[h.slot()].close_reason,
        Some(CloseReason::ConnectFailed(ErrorClass::NoRoute))
    );
}

// ------------------------------------------------------------------------------------
// Idempotent, ordered cleanup; the reader learns what the writer learned (002)
// ------------------------------------------------------------------------------------

#[test]
fn rule_cleanup_is_idempotent_and_stale_handles_touch_nothing() {
    let mut pool = native(Config::new());
    let (h, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.close(h, t(1)).unwrap();
    pool.close(h, t(1)).unwrap();
    pool.abort(h, t(1)).unwrap();
    assert_eq!(
        pool.write(h, b"x", true, t(1)),
        Err(nb::Error::Other(ConnError::Closed(CloseReason::Closed)))
    );
    // The slot is reused: the old handle is stale and cannot touch the new connection.
    let (h2, peer2) = connect_peer(&mut pool, n, HTTP, 2, t(2));
    assert_eq!(h2.slot(), h.slot());
    assert_eq!(pool.close(h, t(3)), Err(ConnError::Stale));
    assert_eq!(
        pool.write(h, b"x", true, t(3)),
        Err(nb::Error::Other(ConnError::Stale))
    );
    assert_eq!(pool.state(h2), Ok(ConnState::Connected));
    assert!(!pool.stack().peer_saw_fin(peer2) && !pool.stack().peer_saw_reset(peer2));
}

#[test]
fn rule_a_reader_learns_at_once_what_the_writer_learned() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().fail_next_send(peer, ErrorClass::Reset);
    assert!(pool.write(h, b"x", true, t(1)).is_err());
    pool.stack_mut().clear_calls();
    assert_eq!(
        pool.read(h, &mut [0u8; 4], t(1)),
        Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Reset)))
    );
    assert_eq!(
        pool.write(h, b"x", true, t(1)),
        Err(nb::Error::Other(ConnError::PeerGone(ErrorClass::Reset)))
    );
    assert_eq!(
        pool.stack().count(|c| matches!(c, Call::Send { .. })),
        0,
        "wrote to a dead connection"
    );
}

// ------------------------------------------------------------------------------------
// Dead peers from progress, not from application acks (003)
// ------------------------------------------------------------------------------------

const GRACE: Duration = Duration::from_secs(8);

#[test]
fn rule_reaper_reaps_a_send_stall_after_the_grace() {
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, &[0u8; 1000], true, t(0)), Ok(1000));
    pool.poll(t(1));
    pool.poll(t(7999));
    assert_eq!(pool.state(h), Ok(ConnState::Connected), "reaped before the grace");
    let summary = pool.poll(t(9001)); // grace + one reading interval (grace / 8)
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(summary.closed, 1, "the poll that reaped it says so");
    assert!(
        pool.stack().peer_saw_reset(peer),
        "a reaped connection is aborted"
    );
    assert_eq!(pool.counters().reaped, 1);
    assert_eq!(
        pool.report(t(9001)).slots[h.slot()].close_reason,
        Some(CloseReason::Stalled)
    );
}

#[test]
fn rule_reaper_spares_a_slow_peer_that_keeps_draining() {
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.write(h, &[0u8; 4096], true, t(0)).unwrap();
    // Written once; then one byte acknowledged every 5 s for 10 minutes (the queue
    // never empties). Only the acknowledgements keep it alive.
    for step in 1..=120u64 {
        pool.stack_mut().peer_ack(peer, 1);
        pool.poll(t(step * 5000));
        assert_eq!(
            pool.state(h),
            Ok(ConnState::Connected),
            "slow peer reaped at step {step}"
        );
    }
    assert_eq!(pool.counters().reaped, 0);
    // The same peer, once it stops acknowledging, is reaped.
    pool.poll(t(600_000 + 10_000));
    pool.poll(t(600_000 + 20_000));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
}

#[test]
fn rule_reaper_is_not_fooled_by_writes_the_peer_never_acknowledges() {
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    let (h, _peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    // 10 bytes a second into a peer that acknowledges nothing.
    let mut reaped_at = None;
    for s in 0..60u64 {
        if pool.write(h, &[1u8; 10], true, t(s * 1000)).is_err() {
            reaped_at = Some(s);
            break;
        }
        pool.poll(t(s * 1000));
    }
    let s = reaped_at.expect("a peer acknowledging nothing was never reaped");
    assert!((8..=11).contains(&s), "reaped after {s} s, grace 8 s");
}

#[test]
fn rule_reaper_fallback_judges_progress_by_bytes_the_stack_takes() {
    let mut pool = fallback(Config::new().with_stall_grace(GRACE));
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    pool.stack_mut().inner_mut().set_send_window(peer, 0);
    assert_eq!(pool.write(h, &[1u8; 10], false, t(0)), Ok(10)); // coalesced, cannot be flushed
    pool.poll(t(500)); // due: flush refused
                       // The stack takes a few bytes at 6 s: progress, the clock starts again.
    pool.stack_mut().inner_mut().set_send_window(peer, 4);
    pool.poll(t(6000));
    pool.poll(t(13_000));
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "reaped despite progress at 6 s"
    );
    pool.poll(t(16_000));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.counters().reaped, 1);
}

// ------------------------------------------------------------------------------------
// Pressure: a stalled connection yields its place while a listener has no room
// ------------------------------------------------------------------------------------

/// Poll every 100 ms from `from` to `to` (inclusive), as a service loop does.
fn poll_every_100ms<S: netpool::stack::Stack, const TX: usize>(
    pool: &mut Pool<S, 4, 2, TX>,
    from: u64,
    to: u64,
) {
    let mut ms = from;
    while ms <= to {
        pool.poll(t(ms));
        ms += 100;
    }
}

/// A write of 1000 bytes into a peer that takes 500 and then nothing: blocked.
fn write_blocked(pool: &mut Native, h: ConnHandle, peer: PeerId, now: Instant) {
    pool.stack_mut().set_send_window(peer, 500);
    assert_eq!(pool.write(h, &[0u8; 1000], true, now), Ok(500));
}

#[test]
fn rule_under_pressure_a_blocked_stalled_connection_yields_after_the_pressure_grace() {
    // Cap 2 on the port: two connections leave no room. One of them is blocked.
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(2)).unwrap();
    let (stalled, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    let (busy, _) = connect_peer(&mut pool, n, HTTP, 2, t(0));
    write_blocked(&mut pool, stalled, peer, t(0));
    poll_every_100ms(&mut pool, 100, 3900);
    assert_eq!(
        pool.state(stalled),
        Ok(ConnState::Connected),
        "taken before the pressure grace"
    );
    poll_every_100ms(&mut pool, 4000, 5000);
    assert_eq!(
        pool.state(stalled),
        Ok(ConnState::Free),
        "kept its place under pressure"
    );
    assert!(
        pool.stack().peer_saw_reset(peer),
        "a connection that yields is aborted"
    );
    assert_eq!(
        pool.state(busy),
        Ok(ConnState::Connected),
        "an idle connection is not stalled"
    );
    let c = pool.counters();
    assert_eq!(
        (c.pressure_reaped, c.reaped),
        (1, 0),
        "counted apart from ordinary stalls"
    );
    assert_eq!(
        pool.report(t(5000)).slots[stalled.slot()].close_reason,
        Some(CloseReason::Stalled)
    );
}

#[test]
fn rule_under_pressure_that_comes_late_the_stall_counts_from_the_last_progress() {
    // Cap 2: one blocked connection, room to spare. Its peer acknowledges a byte at
    // 2.05 s, then nothing. At 3.5 s a second connection leaves no room. A blocked
    // connection is read every eighth of the pressure grace (0.5 s) before pressure
    // comes, so its last progress is known as 2.5 s (not 3 s, at the stall grace's
    // eighth of 1 s) and it yields at 6.5 s: within two eighths of 2.05 s + 4 s.
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(2)).unwrap();
    let (stalled, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    write_blocked(&mut pool, stalled, peer, t(0));
    poll_every_100ms(&mut pool, 0, 2000);
    pool.stack_mut().peer_ack(peer, 1);
    poll_every_100ms(&mut pool, 2050, 3450);
    let (_, _) = connect_peer(&mut pool, n, HTTP, 2, t(3500));
    poll_every_100ms(&mut pool, 3550, 6050);
    assert_eq!(
        pool.state(stalled),
        Ok(ConnState::Connected),
        "taken before four seconds without progress"
    );
    poll_every_100ms(&mut pool, 6150, 6650);
    assert_eq!(
        pool.state(stalled),
        Ok(ConnState::Free),
        "its last progress was read late: it kept its place past the pressure grace"
    );
    assert_eq!(pool.counters().pressure_reaped, 1);
}

#[test]
fn rule_under_pressure_the_progress_before_a_connection_blocked_is_dated_closely() {
    // Cap 2. Everything written at 0 is taken (not blocked) and acknowledged at 1.1 s;
    // at 1.2 s a write is cut short (blocked). Bytes pending are read every eighth of
    // the pressure grace (0.5 s), blocked or not, so the last progress is dated 1.5 s
    // (not 2 s, the stall grace's eighth). At 1.5 s a second connection leaves no
    // room: it yields at 5.5 s, four seconds after its last progress was seen.
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(2)).unwrap();
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, &[0u8; 1000], true, t(0)), Ok(1000));
    poll_every_100ms(&mut pool, 0, 1000);
    pool.stack_mut().peer_ack(peer, 1000);
    pool.poll(t(1100));
    write_blocked(&mut pool, h, peer, t(1200));
    poll_every_100ms(&mut pool, 1200, 1400);
    let (_, _) = connect_peer(&mut pool, n, HTTP, 2, t(1500));
    poll_every_100ms(&mut pool, 1600, 5100);
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "taken before four seconds without progress"
    );
    poll_every_100ms(&mut pool, 5200, 5600);
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Free),
        "the progress before it blocked was dated at a slow reading: it kept its place too long"
    );
    assert_eq!(pool.counters().pressure_reaped, 1);
}

#[test]
fn rule_under_pressure_a_connection_that_is_not_blocked_keeps_the_full_grace() {
    // Everything written was taken, none acknowledged (a small response over a lossy
    // link): under pressure still, only the full grace reaps it.
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(1)).unwrap();
    let (h, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    assert_eq!(pool.write(h, &[0u8; 1000], true, t(0)), Ok(1000));
    poll_every_100ms(&mut pool, 100, 7900);
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "taken before the full grace"
    );
    assert_eq!(pool.counters().pressure_reaped, 0);
    poll_every_100ms(&mut pool, 8000, 9100);
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.counters().reaped, 1);
}

#[test]
fn rule_without_pressure_a_stalled_connection_keeps_the_full_grace() {
    // Cap 4, one connection: the listener has room; only the full grace reaps.
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    write_blocked(&mut pool, h, peer, t(0));
    poll_every_100ms(&mut pool, 100, 7900);
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "taken with room to spare"
    );
    assert_eq!(pool.counters().pressure_reaped, 0);
    poll_every_100ms(&mut pool, 8000, 9100);
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.counters().reaped, 1);
}

#[test]
fn rule_under_pressure_a_slow_reader_that_keeps_draining_is_never_taken() {
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(1)).unwrap();
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    write_blocked(&mut pool, h, peer, t(0));
    // No room (cap 1), blocked, one byte acknowledged every 3.5 s for a minute.
    for step in 1..=17u64 {
        pool.stack_mut().peer_ack(peer, 1);
        poll_every_100ms(&mut pool, step * 3500 - 3400, step * 3500);
        assert_eq!(
            pool.state(h),
            Ok(ConnState::Connected),
            "slow reader taken at step {step}"
        );
    }
    assert_eq!(pool.counters().pressure_reaped, 0);
}

#[test]
fn rule_under_pressure_the_stalest_connection_yields_first_and_only_until_there_is_room() {
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(2)).unwrap();
    let (older, p1) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    let (newer, p2) = connect_peer(&mut pool, n, HTTP, 2, t(0));
    write_blocked(&mut pool, older, p1, t(0));
    pool.poll(t(50));
    write_blocked(&mut pool, newer, p2, t(500));
    poll_every_100ms(&mut pool, 600, 7000);
    // The older stall went first; then the listener had room, so the newer one
    // keeps its place until the full grace.
    assert_eq!(pool.state(older), Ok(ConnState::Free));
    assert_eq!(pool.state(newer), Ok(ConnState::Connected));
    assert_eq!(pool.counters().pressure_reaped, 1);
}

#[test]
fn rule_under_pressure_only_connections_whose_end_gives_room_yield() {
    // Port 80 at its cap of 1; a blocked connection on another port (21, cap 4) would
    // give port 80 no room: it keeps the full grace.
    let mut pool = native(Config::new().with_stall_grace(GRACE));
    pool.listen(HTTP, ListenParams::new(1)).unwrap();
    pool.listen(21, ListenParams::new(4)).unwrap();
    let (_web, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    let (ftp, peer) = connect_peer(&mut pool, n, 21, 2, t(0));
    write_blocked(&mut pool, ftp, peer, t(0));
    poll_every_100ms(&mut pool, 100, 7000);
    assert_eq!(pool.state(ftp), Ok(ConnState::Connected));
    assert_eq!(pool.counters().pressure_reaped, 0);
}

#[test]
fn rule_peer_close_is_detected_without_reading() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_fin(peer);
    pool.poll(t(1));
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    let (h2, peer2) = connect_peer(&mut pool, n, HTTP, 2, t(2));
    pool.stack_mut().peer_reset(peer2);
    pool.poll(t(3));
    assert_eq!(pool.state(h2), Ok(ConnState::OtherEndClosed));
    assert_eq!(pool.counters().peer_closed, 2);
}

#[test]
fn idle_timeout_closes_quiet_connections_and_spares_busy_ones() {
    let mut pool = native(Config::new().with_idle_timeout(Some(Duration::from_secs(60))));
    let (quiet, _) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    let (busy, busy_peer) = connect_peer(&mut pool, n, HTTP, 2, t(0));
    for s in 1..=70u64 {
        pool.stack_mut().peer_send(busy_peer, b"ping");
        let _ = pool.read(busy, &mut [0u8; 8], t(s * 1000));
        pool.poll(t(s * 1000));
    }
    assert_eq!(pool.state(quiet), Ok(ConnState::Free));
    assert_eq!(pool.state(busy), Ok(ConnState::Connected));
    assert_eq!(pool.counters().idle_closed, 1);
}

#[test]
fn abandoned_peer_closed_slots_are_freed_after_the_timeout() {
    let mut pool = native(Config::new().with_abandoned_after(Some(Duration::from_secs(30))));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_reset(peer);
    pool.poll(t(1));
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    pool.poll(t(30_000));
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    pool.poll(t(30_001));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.counters().abandoned, 1);
}

#[test]
fn plain_push_then_close_loses_nothing_it_reported_taken() {
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    pool.stack_mut().inner_mut().set_send_window(peer, 5);
    // The stack takes 5 of 10: a push reports exactly 5.
    assert_eq!(pool.write_and_close(h, b"0123456789", t(1)), Ok(5));
    assert_eq!(
        pool.state(h),
        Ok(ConnState::Connected),
        "closed with bytes outstanding"
    );
    pool.stack_mut().inner_mut().peer_ack_all(peer);
    assert_eq!(pool.write_and_close(h, b"56789", t(2)), Ok(5));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.stack().inner().peer_received(peer), b"0123456789");
    assert_eq!(pool.counters().dropped_on_close, 0);
}

#[test]
fn plain_write_into_a_dying_connection_takes_nothing() {
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    pool.stack_mut()
        .inner_mut()
        .fail_next_send(peer, ErrorClass::Closed);
    assert!(pool.write(h, b"hello", true, t(1)).is_err());
    assert!(pool.stack().inner().peer_received(peer).is_empty());
}

#[test]
fn half_closed_connection_that_keeps_sending_is_not_abandoned() {
    let mut pool = native(Config::new().with_abandoned_after(Some(Duration::from_secs(30))));
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_send(peer, b"GET /big\r\n\r\n");
    pool.stack_mut().peer_fin(peer);
    let mut buf = [0u8; 64];
    let _ = pool.read(h, &mut buf, t(1));
    let _ = pool.read(h, &mut buf, t(1));
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    for s in 1..=90u64 {
        pool.stack_mut().peer_ack_all(peer);
        assert_eq!(pool.write(h, &[7u8; 100], true, t(s * 1000)), Ok(100));
        pool.poll(t(s * 1000));
        assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed), "freed at {s} s");
    }
}

#[test]
fn write_and_close_closes_only_when_everything_was_taken() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().set_send_window(peer, 5);
    assert_eq!(pool.write_and_close(h, b"0123456789", t(1)), Ok(5));
    assert_eq!(pool.state(h), Ok(ConnState::Connected));
    pool.stack_mut().peer_ack_all(peer);
    assert_eq!(pool.write_and_close(h, b"56789", t(2)), Ok(5));
    assert_eq!(pool.state(h), Ok(ConnState::Free));
    assert_eq!(pool.stack().peer_received(peer), b"0123456789");
    assert!(pool.stack().peer_saw_fin(peer));
}

#[test]
fn exhausted_pool_is_a_counted_error_not_a_panic() {
    let mut pool = native(Config::new());
    for i in 0..4 {
        connect_peer(&mut pool, n, HTTP, i, t(0));
    }
    assert_eq!(
        pool.connect(client(9), 0, Duration::from_secs(1), t(1)),
        Err(ConnectError::PoolFull)
    );
    assert_eq!(pool.counters().exhausted, 1);
    assert_eq!(pool.counters().high_water, 4);
}

#[test]
fn into_stack_closes_everything_and_leaks_no_socket() {
    let mut pool = native(Config::new());
    let (_h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().script_connect(ConnectScript::NeverComplete);
    pool.connect(client(9), 0, Duration::from_secs(5), t(0)).unwrap();
    let stack = pool.into_stack(t(1));
    assert_eq!(stack.open_sockets(), 0, "sockets left in the stack");
    assert!(stack.peer_saw_fin(peer));
}

// ------------------------------------------------------------------------------------
// The timer work's order and outcomes, decided once in the core (Core::poll_slot)
// ------------------------------------------------------------------------------------

#[test]
fn rule_a_connect_that_completes_later_is_connected_by_poll_and_counted_once() {
    let mut pool = native(Config::new());
    pool.stack_mut().script_connect(ConnectScript::SucceedAfter(3));
    let h = pool.connect(client(9), 1, Duration::from_secs(5), t(0)).unwrap();
    let mut connected = Vec::new();
    for ms in 1..=5 {
        connected.push(pool.poll(t(ms)).connected);
    }
    assert_eq!(pool.state(h), Ok(ConnState::Connected));
    assert_eq!(connected.iter().sum::<u16>(), 1, "{connected:?}");
    assert_eq!(pool.counters().connect_failed, 0);
}

#[test]
fn rule_a_retry_class_error_during_a_connect_waits_for_the_deadline() {
    let mut pool = native(Config::new());
    pool.stack_mut()
        .script_connect(ConnectScript::FailAfter(1, ErrorClass::Timeout));
    let h = pool
        .connect(client(9), 1, Duration::from_millis(500), t(0))
        .unwrap();
    for ms in [1, 2, 499] {
        assert_eq!(pool.poll(t(ms)).closed, 0);
        assert_eq!(
            pool.state(h),
            Ok(ConnState::Connecting),
            "a retry class is not a failure"
        );
    }
    assert_eq!(
        pool.poll(t(500)).closed,
        1,
        "the deadline ends it, counted as closed"
    );
    assert_eq!(
        pool.report(t(500)).slots[h.slot()].close_reason,
        Some(CloseReason::ConnectTimeout)
    );
}

#[test]
fn rule_a_refused_connect_is_counted_as_closed_by_the_poll_that_saw_it() {
    let mut pool = native(Config::new());
    pool.stack_mut()
        .script_connect(ConnectScript::FailAfter(1, ErrorClass::Refused));
    let h = pool.connect(client(9), 1, Duration::from_secs(5), t(0)).unwrap();
    assert_eq!(pool.poll(t(1)).closed, 1);
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    assert_eq!(pool.poll(t(2)).closed, 0, "counted once");
}

#[test]
fn rule_an_aborted_slot_left_open_is_freed_after_abandoned_after() {
    let after = Duration::from_secs(30);
    let mut pool = native(Config::new().with_abandoned_after(Some(after)));
    pool.stack_mut()
        .script_connect(ConnectScript::FailAfter(1, ErrorClass::Refused));
    let h = pool.connect(client(9), 1, Duration::from_secs(5), t(0)).unwrap();
    pool.poll(t(1));
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    let due = pool.poll_at().unwrap();
    pool.poll(Instant::from_millis(due.as_millis() - 1));
    assert_eq!(pool.state(h), Ok(ConnState::Aborted), "not a millisecond early");
    assert_eq!(pool.poll(due).closed, 1);
    assert_eq!(pool.free_slots(), 4);
    assert_eq!(pool.counters().abandoned, 1);
}

#[test]
fn rule_a_peer_fin_noticed_by_poll_counts_once_as_peer_gone() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_fin(peer);
    assert_eq!(pool.poll(t(1)).peer_gone, 1);
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    assert_eq!(pool.poll(t(2)).peer_gone, 0, "already known: not counted again");
    assert_eq!(pool.counters().peer_closed, 1);
}

#[test]
fn rule_a_reset_after_the_peers_fin_ends_the_half_close_at_the_next_poll() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_fin(peer);
    pool.poll(t(1));
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
    // Half-closed: still writable, until the peer resets.
    pool.stack_mut().peer_reset(peer);
    let summary = pool.poll(t(2));
    assert_eq!(summary.peer_gone, 0, "the peer was already gone");
    // The poll learned the reset: the write goes nowhere near the stack.
    let sends = |pool: &Native| pool.stack().count(|c| matches!(c, Call::Send { .. }));
    let before = sends(&pool);
    assert!(matches!(
        pool.write(h, b"x", true, t(3)),
        Err(nb::Error::Other(ConnError::PeerGone(_)))
    ));
    assert_eq!(sends(&pool), before, "a write after the reset reached the stack");
}

#[test]
fn rule_a_reset_noticed_by_poll_counts_as_peer_gone_not_closed() {
    let mut pool = native(Config::new());
    let (h, peer) = connect_peer(&mut pool, n, HTTP, 1, t(0));
    pool.stack_mut().peer_reset(peer);
    let summary = pool.poll(t(1));
    assert_eq!((summary.peer_gone, summary.closed), (1, 0));
    assert_eq!(pool.state(h), Ok(ConnState::OtherEndClosed));
}

#[test]
fn rule_a_fatal_error_met_by_the_timer_work_aborts_and_counts_as_closed() {
    // Coalesced bytes (plain stack) due at the coalescing delay; the stack then fails
    // the send with a fatal class: the poll aborts the connection, releases its
    // socket, and says so.
    let mut pool = fallback(Config::new());
    let (h, peer) = connect_peer(&mut pool, p, HTTP, 1, t(0));
    assert_eq!(pool.write(h, b"held back", false, t(0)), Ok(9));
    pool.stack_mut()
        .inner_mut()
        .fail_next_send(peer, ErrorClass::Fatal);
    let due = t(0) + Config::new().coalesce_delay;
    let summary = pool.poll(due);
    assert_eq!((summary.peer_gone, summary.closed), (0, 1));
    assert_eq!(pool.state(h), Ok(ConnState::Aborted));
    // Released at once: a plain stack has no RST, so its abort falls back to FIN.
    assert!(pool.stack().inner().peer_saw_fin(peer), "the socket is released");
}
