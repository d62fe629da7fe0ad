//! Tests of the scripted stack itself (`netpool_testkit::scripted`): the double must be
//! right before anything is concluded from tests that use it.

use std::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack, TcpFullStack};
use netpool::stack::{LinkStatus, PeerStatus, SendFlag, TcpAbort, TcpPeerStatus, TcpSendFlags, TcpSendQueue};
use netpool::LinkState;
use netpool::{Classify, ErrorClass};
use netpool_testkit::scripted::*;

const PORT: u16 = 80;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn class<T: core::fmt::Debug>(r: nb::Result<T, ScriptedError>) -> ErrorClass {
    match r {
        Err(nb::Error::Other(e)) => e.class(),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// A stack with a listener on [`PORT`].
fn listening(config: ScriptedConfig) -> (ScriptedStack, SockId) {
    let mut st = ScriptedStack::new(config);
    let mut l = st.socket().unwrap();
    st.bind(&mut l, PORT).unwrap();
    st.listen(&mut l).unwrap();
    (st, l)
}

/// A peer connects and the application accepts it.
fn accepted(st: &mut ScriptedStack, l: &mut SockId, from: &str) -> (PeerId, SockId) {
    let p = st.peer_connect(PORT, addr(from)).unwrap();
    let (s, remote) = st.accept(l).unwrap();
    assert_eq!(remote, addr(from));
    (p, s)
}

#[test]
fn backlog_queues_until_accept_and_refuses_when_full() {
    let (mut st, mut l) = listening(ScriptedConfig {
        backlog: 2,
        ..Default::default()
    });
    assert_eq!(st.accept(&mut l), Err(nb::Error::WouldBlock));
    assert_eq!(
        st.peer_connect(81, addr("10.0.0.9:1")),
        Err(PeerRefused::NoListener)
    );

    let a = st.peer_connect(PORT, addr("10.0.0.2:1000")).unwrap();
    let b = st.peer_connect(PORT, addr("10.0.0.3:1000")).unwrap();
    assert_eq!(
        st.peer_connect(PORT, addr("10.0.0.4:1000")),
        Err(PeerRefused::BacklogFull)
    );
    assert_eq!(st.backlog_len(PORT), 2);
    // Listener + two queued connections, each with a PCB.
    assert_eq!(st.pcbs_in_use(), 3);

    let (sa, ra) = st.accept(&mut l).unwrap();
    assert_eq!(
        (ra, st.peer_of(sa), st.sock_of(a)),
        (addr("10.0.0.2:1000"), Some(a), Some(sa))
    );
    let (sb, _) = st.accept(&mut l).unwrap();
    assert_eq!(st.peer_of(sb), Some(b));
    assert_eq!(st.backlog_len(PORT), 0);
    assert_eq!(st.pcbs_in_use(), 3, "accept needs no new PCB");
    assert_eq!(st.open_sockets(), 3);
    st.assert_consistent();
}

#[test]
fn receive_data_eof_and_reset() {
    let (mut st, mut l) = listening(ScriptedConfig::default());
    let (p, mut s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    let mut buf = [0u8; 4];
    assert_eq!(st.receive(&mut s, &mut buf), Err(nb::Error::WouldBlock));

    st.peer_send(p, b"hello");
    st.peer_fin(p);
    assert_eq!(st.peer_status(&s), PeerStatus::Open, "data still unread");
    assert_eq!(st.receive(&mut s, &mut buf), Ok(4));
    assert_eq!(&buf, b"hell");
    assert_eq!(st.receive(&mut s, &mut buf), Ok(1));
    assert_eq!(buf[0], b'o');
    assert_eq!(st.receive(&mut s, &mut buf), Ok(0), "EOF after FIN");
    assert_eq!(st.peer_status(&s), PeerStatus::Closed);

    let (q, mut t) = accepted(&mut st, &mut l, "10.0.0.3:1000");
    st.peer_send(q, b"lost");
    let before = st.pcbs_in_use();
    st.peer_reset(q);
    assert_eq!(st.pcbs_in_use(), before - 1, "a reset frees the PCB at once");
    assert_eq!(
        class(st.receive(&mut t, &mut buf)),
        ErrorClass::Reset,
        "data discarded"
    );
    assert_eq!(class(st.send(&mut t, b"x")), ErrorClass::Reset);
    assert_eq!(st.peer_status(&t), PeerStatus::Gone(ErrorClass::Reset));
    assert_eq!(st.open_sockets(), 3, "the socket stays open until closed");
    st.close(t).unwrap();
    assert_eq!(st.open_sockets(), 2);
    st.assert_consistent();
}

#[test]
fn partial_send_within_the_window_then_would_block_until_acked() {
    let (mut st, mut l) = listening(ScriptedConfig {
        send_window: 8,
        ..Default::default()
    });
    let (p, mut s) = accepted(&mut st, &mut l, "10.0.0.2:1000");

    assert_eq!(st.send(&mut s, b"0123456789"), Ok(8), "partial send");
    assert_eq!(st.send(&mut s, b"89"), Err(nb::Error::WouldBlock));
    assert_eq!(st.send_queue(&s), Some(8));
    assert_eq!(st.peer_received(p), b"01234567");

    st.peer_ack(p, 3);
    assert_eq!((st.unacked(p), st.send_queue(&s)), (5, Some(5)));
    assert_eq!(st.send(&mut s, b"89"), Ok(2));
    assert_eq!(st.send(&mut s, b"ab"), Ok(1));
    assert_eq!(st.peer_received(p), b"0123456789a");

    st.set_send_window(p, 0);
    st.peer_ack_all(p);
    assert_eq!(st.send_queue(&s), Some(0));
    assert_eq!(st.send(&mut s, b"b"), Ok(1), "acks give room back");

    let sends: Vec<(usize, usize)> = st
        .calls()
        .iter()
        .filter_map(|c| match *c {
            Call::Send { len, taken, .. } => Some((len, taken)),
            _ => None,
        })
        .collect();
    assert_eq!(sends, [(10, 8), (2, 0), (2, 2), (2, 1), (1, 1)]);
}

#[test]
fn flags_are_recorded_per_send() {
    let (mut st, mut l) = listening(ScriptedConfig::default());
    let (p, mut s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    assert_eq!(st.send_flagged(&mut s, b"head", SendFlag::More), Ok(4));
    assert_eq!(st.send_flagged(&mut s, b"body", SendFlag::Push), Ok(4));
    assert_eq!(st.send(&mut s, b"!"), Ok(1));
    assert_eq!(
        st.peer_segments(p),
        vec![
            (b"head".to_vec(), Some(SendFlag::More)),
            (b"body".to_vec(), Some(SendFlag::Push)),
            (b"!".to_vec(), None),
        ]
    );
    assert_eq!(
        st.count(|c| matches!(
            c,
            Call::Send {
                flag: Some(SendFlag::More),
                ..
            }
        )),
        1
    );
}

#[test]
fn plain_wrapper_records_no_flags_and_collapses_classes() {
    use netpool::stack::Plain;
    let (st, mut l) = listening(ScriptedConfig::default());
    let mut plain: PlainScripted = Plain::new(st);
    let p = plain
        .inner_mut()
        .peer_connect(PORT, addr("10.0.0.2:1000"))
        .unwrap();
    let (mut s, _) = plain.accept(&mut l).unwrap();

    assert_eq!(plain.send_flagged(&mut s, b"more", SendFlag::More), Ok(4));
    assert_eq!(plain.send_flagged(&mut s, b"push", SendFlag::Push), Ok(4));
    assert_eq!(
        plain.inner().peer_segments(p),
        vec![(b"more".to_vec(), None), (b"push".to_vec(), None)]
    );
    // The fallbacks, not the double's native answers.
    assert_eq!(plain.send_queue(&s), None);
    assert_eq!(plain.peer_status(&s), PeerStatus::Unknown);

    // Through Plain only Closed survives classification; Reset becomes Fatal.
    plain.inner_mut().fail_next_send(p, ErrorClass::Closed);
    match plain.send(&mut s, b"x") {
        Err(nb::Error::Other(e)) => assert_eq!(e.class(), ErrorClass::Closed),
        other => panic!("{other:?}"),
    }
    plain.inner_mut().peer_reset(p);
    match plain.send(&mut s, b"x") {
        Err(nb::Error::Other(e)) => assert_eq!(e.class(), ErrorClass::Fatal),
        other => panic!("{other:?}"),
    }

    // Plain's abort fallback is a close.
    plain.abort(s).unwrap();
    assert_eq!(plain.inner().count(|c| matches!(c, Call::Close(_))), 1);
    assert_eq!(plain.inner().count(|c| matches!(c, Call::Abort(_))), 0);
}

#[test]
fn kill_oldest_kills_the_longest_inactive_connection() {
    // Listener + 3 connections = 4 PCBs.
    let (mut st, mut l) = listening(ScriptedConfig {
        pcbs: 4,
        exhaustion: Exhaustion::KillOldest,
        ..Default::default()
    });
    let (upload, mut up) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    let (poll1, mut s1) = accepted(&mut st, &mut l, "10.0.0.3:1000");
    let (poll2, _s2) = accepted(&mut st, &mut l, "10.0.0.4:1000");
    // The upload is the oldest, but it is active; poll1 has been idle longest.
    st.peer_send(upload, b"chunk");
    st.peer_send(poll2, b"GET");
    assert_eq!(st.pcbs_in_use(), 4);

    let newcomer = st.peer_connect(PORT, addr("10.0.0.5:1000")).unwrap();
    assert_eq!(st.killed(), 1);
    assert!(st.was_killed(poll1) && st.peer_saw_reset(poll1));
    assert!(!st.was_killed(upload) && !st.was_killed(poll2));
    assert!(st.holds_pcb(newcomer) && !st.holds_pcb(poll1));
    assert_eq!(st.pcbs_in_use(), 4);

    let mut buf = [0u8; 8];
    assert_eq!(class(st.receive(&mut s1, &mut buf)), ErrorClass::Aborted);
    assert_eq!(class(st.send(&mut s1, b"x")), ErrorClass::Aborted);
    assert_eq!(st.peer_status(&s1), PeerStatus::Gone(ErrorClass::Aborted));
    assert_eq!(st.receive(&mut up, &mut buf), Ok(5), "the upload survives");
    st.assert_consistent();
}

#[test]
fn kill_oldest_kills_an_idle_upload_like_lwip_did() {
    // The incident: the upload was the connection idle longest, so lwIP killed it.
    let (mut st, mut l) = listening(ScriptedConfig {
        pcbs: 3,
        ..Default::default()
    });
    let upload = st.peer_connect(PORT, addr("10.0.0.2:1000")).unwrap();
    let poller = st.peer_connect(PORT, addr("10.0.0.3:1000")).unwrap();
    st.peer_send(poller, b"GET");
    let _ = st.accept(&mut l).unwrap();
    st.peer_connect(PORT, addr("10.0.0.4:1000")).unwrap();
    assert!(
        st.was_killed(upload),
        "longest inactive, still in the backlog or not"
    );
    assert!(!st.was_killed(poller));
}

#[test]
fn refuse_fails_the_newcomer_and_kills_nothing() {
    let (mut st, mut l) = listening(ScriptedConfig {
        pcbs: 2,
        exhaustion: Exhaustion::Refuse,
        ..Default::default()
    });
    let (_p, _s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    assert_eq!(
        st.peer_connect(PORT, addr("10.0.0.3:1000")),
        Err(PeerRefused::NoPcb)
    );
    assert_eq!(
        class::<SockId>(st.socket().map_err(nb::Error::Other)),
        ErrorClass::OutOfResources
    );
    assert_eq!(st.killed(), 0);
    st.assert_consistent();
}

#[test]
fn lingering_close_holds_the_pcb_until_acked_and_abort_does_not() {
    let (mut st, mut l) = listening(ScriptedConfig::default());
    let (p, mut s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    let (q, mut t) = accepted(&mut st, &mut l, "10.0.0.3:1000");
    st.send(&mut s, b"unacked").unwrap();
    st.send(&mut t, b"unacked").unwrap();
    assert_eq!(st.pcbs_in_use(), 3);

    st.close(s).unwrap();
    assert!(st.peer_saw_fin(p) && !st.peer_saw_reset(p));
    assert!(st.holds_pcb(p), "FIN-WAIT: holds its PCB until acked");
    assert_eq!(
        class(st.send(&mut s, b"x")),
        ErrorClass::InvalidInput,
        "closed socket"
    );
    st.peer_ack(p, 3);
    assert!(st.holds_pcb(p));
    st.peer_ack_all(p);
    assert!(!st.holds_pcb(p));

    st.abort(t).unwrap();
    assert!(st.peer_saw_reset(q) && !st.peer_saw_fin(q));
    assert!(!st.holds_pcb(q), "abort releases at once");
    assert_eq!((st.pcbs_in_use(), st.open_sockets()), (1, 1));
    assert_eq!(
        st.close(t),
        Err(ScriptedError(ErrorClass::InvalidInput)),
        "double close"
    );
    st.assert_consistent();
}

#[test]
fn close_with_unread_data_resets() {
    let (mut st, mut l) = listening(ScriptedConfig::default());
    let (p, s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    st.peer_send(p, b"unread");
    st.close(s).unwrap();
    assert!(st.peer_saw_reset(p) && !st.peer_saw_fin(p));
    assert!(!st.holds_pcb(p));
}

#[test]
fn time_wait_is_reclaimed_before_anything_is_killed() {
    let (mut st, mut l) = listening(ScriptedConfig {
        pcbs: 2,
        time_wait_pcb: true,
        ..Default::default()
    });
    let (p, s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    st.close(s).unwrap();
    assert!(st.holds_pcb(p), "TIME-WAIT");
    st.peer_connect(PORT, addr("10.0.0.3:1000")).unwrap();
    assert!(!st.holds_pcb(p));
    assert_eq!(st.killed(), 0);

    let (q, s) = (st.last_peer().unwrap(), st.accept(&mut l).unwrap().0);
    st.close(s).unwrap();
    assert!(st.holds_pcb(q), "TIME-WAIT");
    assert_eq!(st.pcbs_in_use(), 2);
    st.expire_time_wait();
    assert!(!st.holds_pcb(q));
    assert_eq!(st.pcbs_in_use(), 1);
    st.assert_consistent();
}

#[test]
fn closing_a_listener_resets_its_backlog() {
    let (mut st, l) = listening(ScriptedConfig::default());
    let a = st.peer_connect(PORT, addr("10.0.0.2:1000")).unwrap();
    st.close(l).unwrap();
    assert!(st.peer_saw_reset(a));
    assert_eq!((st.pcbs_in_use(), st.open_sockets()), (0, 0));
    assert_eq!(
        st.peer_connect(PORT, addr("10.0.0.3:1000")),
        Err(PeerRefused::NoListener)
    );
}

#[test]
fn scripted_connects() {
    let mut st = ScriptedStack::default();
    let remote = addr("192.0.2.1:1883");

    st.script_connect(ConnectScript::SucceedAfter(2));
    st.script_connect(ConnectScript::FailAfter(1, ErrorClass::Refused));
    st.script_connect(ConnectScript::NeverComplete);

    let mut a = st.socket().unwrap();
    assert_eq!(st.connect(&mut a, remote), Err(nb::Error::WouldBlock));
    assert_eq!(st.connect(&mut a, remote), Err(nb::Error::WouldBlock));
    assert_eq!(st.connect(&mut a, remote), Ok(()));
    let pa = st.peer_of(a).unwrap();
    assert_eq!(st.remote(pa), remote);
    st.peer_send(pa, b"CONNACK");
    assert_eq!(st.receive(&mut a, &mut [0; 16]), Ok(7));

    let mut b = st.socket().unwrap();
    assert_eq!(st.connect(&mut b, remote), Err(nb::Error::WouldBlock));
    let pcbs = st.pcbs_in_use();
    assert_eq!(class(st.connect(&mut b, remote)), ErrorClass::Refused);
    assert_eq!(st.pcbs_in_use(), pcbs - 1);
    assert_eq!(st.peer_status(&b), PeerStatus::Gone(ErrorClass::Refused));

    let mut c = st.socket().unwrap();
    for _ in 0..100 {
        assert_eq!(st.connect(&mut c, remote), Err(nb::Error::WouldBlock));
    }
    assert_eq!(st.peer_status(&c), PeerStatus::Open);

    let mut d = st.socket().unwrap();
    assert_eq!(st.connect(&mut d, remote), Ok(()), "default: succeed at once");

    st.set_link(LinkState::Down);
    assert_eq!(st.link_state(), LinkState::Down);
    let mut e = st.socket().unwrap();
    assert_eq!(class(st.connect(&mut e, remote)), ErrorClass::NoRoute);

    for s in [a, b, c, d, e] {
        st.close(s).unwrap();
    }
    assert_eq!((st.pcbs_in_use(), st.open_sockets()), (0, 0));
    assert_eq!(st.count(|c| matches!(c, Call::Connect(_))), 3 + 2 + 100 + 1 + 1);
}

#[test]
fn injected_failures_are_one_shot() {
    let (mut st, mut l) = listening(ScriptedConfig::default());
    let (p, mut s) = accepted(&mut st, &mut l, "10.0.0.2:1000");
    st.fail_next_send(p, ErrorClass::Timeout);
    st.fail_next_receive(p, ErrorClass::ConnectionLost);
    assert_eq!(class(st.send(&mut s, b"x")), ErrorClass::Timeout);
    assert_eq!(st.send(&mut s, b"x"), Ok(1));
    assert_eq!(class(st.receive(&mut s, &mut [0; 4])), ErrorClass::ConnectionLost);
    assert_eq!(st.receive(&mut s, &mut [0; 4]), Err(nb::Error::WouldBlock));

    st.fail_next_accept(ErrorClass::OutOfResources);
    st.peer_connect(PORT, addr("10.0.0.3:1000")).unwrap();
    assert_eq!(class(st.accept(&mut l)), ErrorClass::OutOfResources);
    assert!(st.accept(&mut l).is_ok());

    st.fail_next_socket(ErrorClass::OutOfResources);
    assert_eq!(st.socket(), Err(ScriptedError(ErrorClass::OutOfResources)));
    assert!(st.socket().is_ok());
}

#[test]
fn unknown_sockets_never_panic() {
    let mut st = ScriptedStack::default();
    let mut bogus = SockId(999);
    let invalid = ErrorClass::InvalidInput;
    assert_eq!(class(st.send(&mut bogus, b"x")), invalid);
    assert_eq!(class(st.send_flagged(&mut bogus, b"x", SendFlag::Push)), invalid);
    assert_eq!(class(st.receive(&mut bogus, &mut [0; 1])), invalid);
    assert_eq!(class(st.connect(&mut bogus, addr("10.0.0.1:1"))), invalid);
    assert_eq!(class(st.accept(&mut bogus)), invalid);
    assert_eq!(st.bind(&mut bogus, 1), Err(ScriptedError(invalid)));
    assert_eq!(st.listen(&mut bogus), Err(ScriptedError(invalid)));
    assert_eq!(st.close(bogus), Err(ScriptedError(invalid)));
    assert_eq!(st.abort(bogus), Err(ScriptedError(invalid)));
    assert_eq!(st.send_queue(&bogus), None);
    assert_eq!(st.peer_status(&bogus), PeerStatus::Gone(invalid));
    assert_eq!(st.calls().len(), 11);
    st.clear_calls();
    assert!(st.calls().is_empty());
}

#[test]
fn bind_conflicts_and_error_kinds() {
    use embedded_nal::{TcpError, TcpErrorKind};
    let (mut st, _l) = listening(ScriptedConfig::default());
    let mut s = st.socket().unwrap();
    assert_eq!(
        st.bind(&mut s, PORT),
        Err(ScriptedError(ErrorClass::AddressInUse))
    );
    assert_eq!(ScriptedError(ErrorClass::Closed).kind(), TcpErrorKind::PipeClosed);
    assert_eq!(ScriptedError(ErrorClass::Reset).kind(), TcpErrorKind::Other);
}
