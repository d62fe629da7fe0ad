//! The scripted stack's fixed capacities, record reuse and the options a firmware-like
//! harness needs (MORE bytes held until a push, no send-queue reading, a default
//! connect outcome). Only the API that exists without the `std` feature is used, so
//! this file runs both with and without it.

use core::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack, TcpFullStack};
use netpool::stack::{LinkStatus, SendFlag, TcpAbort, TcpPush, TcpSendFlags, TcpSendQueue};
use netpool::LinkState;
use netpool::{Classify, ErrorClass};
use netpool_testkit::scripted::*;

/// 4 sockets, 2 connection records, 8 bytes of receive buffer, 4 bytes of kept sent data.
type Tiny = ScriptedStackIn<4, 2, 8, 4>;

const PORT: u16 = 80;

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([10, 0, 0, 2], port))
}

fn class<T: core::fmt::Debug>(r: nb::Result<T, ScriptedError>) -> ErrorClass {
    match r {
        Err(nb::Error::Other(e)) => e.class(),
        other => panic!("expected an error, got {other:?}"),
    }
}

fn config() -> ScriptedConfig {
    ScriptedConfig {
        pcbs: 100,
        ..ScriptedConfig::default()
    }
}

fn listening(config: ScriptedConfig) -> (Tiny, SockId) {
    let mut st = Tiny::new(config);
    let mut l = st.socket().unwrap();
    st.bind(&mut l, PORT).unwrap();
    st.listen(&mut l).unwrap();
    (st, l)
}

#[test]
fn socket_and_accept_without_a_free_socket_record_are_out_of_resources() {
    let (mut st, mut l) = listening(config());
    let a = st.socket().unwrap();
    let _b = st.socket().unwrap();
    let _c = st.socket().unwrap();
    assert_eq!(st.socket(), Err(ScriptedError(ErrorClass::OutOfResources)));
    assert_eq!(st.open_sockets(), 4);

    let p = st.peer_connect(PORT, addr(1)).unwrap();
    assert_eq!(class(st.accept(&mut l)), ErrorClass::OutOfResources);
    assert_eq!(st.backlog_len(PORT), 1, "the connection stays queued");
    st.close(a).unwrap();
    let (s, remote) = st.accept(&mut l).unwrap();
    assert_eq!((remote, st.peer_of(s)), (addr(1), Some(p)));
    st.assert_consistent();
}

#[test]
fn records_are_reused_oldest_finished_first_and_stale_ids_are_detected() {
    let (mut st, mut l) = listening(ScriptedConfig {
        fin_holds_pcb: false,
        ..config()
    });
    let a = st.peer_connect(PORT, addr(1)).unwrap();
    let b = st.peer_connect(PORT, addr(2)).unwrap();
    assert_eq!(
        st.peer_connect(PORT, addr(3)),
        Err(PeerRefused::NoRecord),
        "both records hold live connections"
    );
    assert_eq!((st.refused_no_record(), st.records_in_use()), (1, 2));

    let (sa, _) = st.accept(&mut l).unwrap();
    let (sb, _) = st.accept(&mut l).unwrap();
    st.close(sb).unwrap();
    st.close(sa).unwrap();
    // Both are finished (closed, no PCB): the oldest connection's record is reused.
    assert!(st.peer_saw_fin(a) && st.closed_by_app(a));
    let c = st.peer_connect(PORT, addr(3)).unwrap();
    assert_eq!(c.record(), a.record(), "the oldest finished record is reused");
    assert!(!st.is_current(a) && st.is_current(b) && st.is_current(c));
    assert!(c > b, "ids stay in age order");
    assert_eq!(st.peer_at(a.record()), Some(c));
    assert_eq!(st.last_peer(), Some(c));
    assert_eq!(st.find_peer(addr(3)), Some(c));
    assert_eq!(
        st.find_peer(addr(1)),
        None,
        "its record holds another connection now"
    );
    // The stale id is harmless through the non-panicking calls.
    assert_eq!(st.try_peer_send(a, b"x"), 0);
    assert_eq!(st.unread(c), 0);
    // The finished connection b is still there to inspect.
    assert!(st.peer_saw_fin(b));
    st.assert_consistent();
}

#[test]
#[should_panic(expected = "not a current connection")]
fn a_stale_id_on_a_panicking_inspector_is_a_bug_in_the_test() {
    let (mut st, mut l) = listening(ScriptedConfig {
        fin_holds_pcb: false,
        ..config()
    });
    let a = st.peer_connect(PORT, addr(1)).unwrap();
    let _b = st.peer_connect(PORT, addr(2)).unwrap();
    let (sa, _) = st.accept(&mut l).unwrap();
    st.abort(sa).unwrap();
    st.peer_connect(PORT, addr(3)).unwrap();
    st.peer_saw_reset(a);
}

#[test]
fn a_record_holding_a_pcb_is_not_reused() {
    // Closed with unacknowledged data: FIN-WAIT holds the PCB, so the record is busy.
    let (mut st, mut l) = listening(config());
    let a = st.peer_connect(PORT, addr(1)).unwrap();
    let _b = st.peer_connect(PORT, addr(2)).unwrap();
    let (mut sa, _) = st.accept(&mut l).unwrap();
    st.send(&mut sa, b"data").unwrap();
    st.close(sa).unwrap();
    assert!(st.holds_pcb(a));
    assert_eq!(st.peer_connect(PORT, addr(3)), Err(PeerRefused::NoRecord));
    st.peer_ack_all(a);
    assert!(!st.holds_pcb(a));
    assert!(st.peer_connect(PORT, addr(3)).is_ok());
}

#[test]
fn an_outbound_connect_without_a_record_fails_and_leaves_the_socket_fresh() {
    let mut st = Tiny::new(config());
    let remote = addr(1883);
    let mut a = st.socket().unwrap();
    let mut b = st.socket().unwrap();
    let mut c = st.socket().unwrap();
    st.connect(&mut a, remote).unwrap();
    st.connect(&mut b, remote).unwrap();
    assert_eq!(class(st.connect(&mut c, remote)), ErrorClass::OutOfResources);
    assert_eq!(st.peer_of(c), None, "still fresh");
    st.abort(a).unwrap();
    assert_eq!(st.connect(&mut c, remote), Ok(()));
    assert_eq!(st.peer_of(c).map(|p| st.remote(p)), Some(remote));
    st.assert_consistent();
}

#[test]
fn peer_data_beyond_the_receive_buffer_is_not_taken() {
    let (mut st, mut l) = listening(config());
    let p = st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    assert_eq!(st.peer_send(p, b"0123456"), 7);
    assert_eq!(st.peer_send(p, b"789"), 1, "8 bytes of buffer");
    assert_eq!(st.try_peer_send(p, b"x"), 0);
    assert_eq!(st.unread(p), 8);
    let mut buf = [0u8; 16];
    assert_eq!(st.receive(&mut s, &mut buf), Ok(8));
    assert_eq!(&buf[..8], b"01234567");
    assert_eq!(st.peer_send(p, b"9abcdefgh"), 8, "room again");
    st.peer_fin(p);
    assert_eq!(st.try_peer_send(p, b"late"), 0, "after FIN: nothing, no panic");
}

#[test]
fn sent_data_beyond_sent_is_counted_not_kept() {
    let (mut st, mut l) = listening(config());
    let p = st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    assert_eq!(st.send(&mut s, b"abc"), Ok(3));
    assert_eq!(st.send(&mut s, b"defgh"), Ok(5));
    assert_eq!(st.peer_sent(p), b"abcd");
    assert_eq!((st.sent_total(p), st.unacked(p)), (8, 8));
    st.assert_consistent();
}

#[test]
fn hold_more_keeps_more_bytes_off_the_wire_until_a_push() {
    let (mut st, mut l) = listening(ScriptedConfig {
        hold_more: true,
        ..config()
    });
    let p = st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    assert_eq!(st.send_flagged(&mut s, b"head", SendFlag::More), Ok(4));
    assert_eq!(
        (st.held(p), st.on_wire(p), st.last_flag(p)),
        (4, 0, Some(SendFlag::More))
    );
    st.peer_ack_all(p);
    assert_eq!(st.unacked(p), 4, "held bytes cannot be acknowledged");
    assert_eq!(st.send_flagged(&mut s, b"body", SendFlag::Push), Ok(4));
    assert_eq!((st.held(p), st.on_wire(p), st.pushes(p)), (0, 8, 1));

    assert_eq!(st.send_flagged(&mut s, b"tail", SendFlag::More), Ok(4));
    assert_eq!(st.held(p), 4);
    st.push(&mut s).unwrap();
    assert_eq!(
        (st.held(p), st.on_wire(p), st.stack_pushes(p), st.pushes(p)),
        (0, 12, 1, 1)
    );
    st.peer_ack_all(p);
    assert_eq!(st.unacked(p), 0);

    // A plain send is not held and sends what is.
    st.send_flagged(&mut s, b"x", SendFlag::More).unwrap();
    st.send(&mut s, b"y").unwrap();
    assert_eq!((st.held(p), st.last_flag(p)), (0, None));
    assert_eq!(st.sent_total(p), 14);
    st.assert_consistent();
}

#[test]
fn without_hold_more_more_bytes_are_on_the_wire_at_once() {
    let (mut st, mut l) = listening(config());
    let p = st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    st.send_flagged(&mut s, b"head", SendFlag::More).unwrap();
    assert_eq!((st.held(p), st.on_wire(p)), (0, 4));
    st.peer_ack_all(p);
    assert_eq!(st.unacked(p), 0);
}

#[test]
fn the_send_queue_can_be_the_fallback() {
    let (mut st, mut l) = listening(ScriptedConfig {
        report_send_queue: false,
        ..config()
    });
    st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    st.send(&mut s, b"unacked").unwrap();
    assert_eq!(st.send_queue(&s), None);

    let (mut st, mut l) = listening(config());
    st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    st.send(&mut s, b"unacked").unwrap();
    assert_eq!(st.send_queue(&s), Some(7));
}

#[test]
fn the_default_connect_outcome_applies_when_nothing_is_queued() {
    let mut st = ScriptedStackIn::<8, 8, 8, 8>::new(config());
    let remote = addr(21);
    st.set_default_connect(ConnectScript::FailAfter(0, ErrorClass::Refused));
    let mut a = st.socket().unwrap();
    assert_eq!(class(st.connect(&mut a, remote)), ErrorClass::Refused);
    assert!(st.script_connect(ConnectScript::SucceedAfter(1)));
    let mut b = st.socket().unwrap();
    assert_eq!(st.connect(&mut b, remote), Err(nb::Error::WouldBlock));
    assert_eq!(
        st.connect(&mut b, remote),
        Ok(()),
        "the queued script comes first"
    );
    st.set_default_connect(ConnectScript::NeverComplete);
    let mut c = st.socket().unwrap();
    for _ in 0..10 {
        assert_eq!(st.connect(&mut c, remote), Err(nb::Error::WouldBlock));
    }
    // The queue is bounded: a full one says so.
    let queued = (0..CONNECT_SCRIPTS + 1)
        .filter(|_| st.script_connect(ConnectScript::SucceedAfter(0)))
        .count();
    assert_eq!(queued, CONNECT_SCRIPTS);
}

#[test]
fn an_unlimited_window_stays_unlimited_and_a_window_can_be_set() {
    let (mut st, mut l) = listening(ScriptedConfig {
        send_window: usize::MAX,
        ..config()
    });
    let p = st.peer_connect(PORT, addr(1)).unwrap();
    let (mut s, _) = st.accept(&mut l).unwrap();
    for _ in 0..100 {
        assert_eq!(st.send(&mut s, &[0u8; 100]), Ok(100));
    }
    st.set_send_window(p, 0);
    assert_eq!(st.send(&mut s, b"x"), Err(nb::Error::WouldBlock));
    st.set_send_window(p, 3);
    assert_eq!(st.send(&mut s, b"xyzw"), Ok(3));
    assert_eq!(st.sent_total(p), 10_003);
}

#[test]
fn the_link_state_is_configured_and_settable() {
    let mut st = Tiny::default();
    assert_eq!(st.link_state(), LinkState::Up);
    st.set_link(LinkState::Down);
    assert_eq!(st.link_state(), LinkState::Down);
    let st = Tiny::new(ScriptedConfig {
        link: LinkState::Unknown,
        ..config()
    });
    assert_eq!(st.link_state(), LinkState::Unknown);
}
