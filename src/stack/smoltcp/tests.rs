extern crate std;

use super::*;
use crate::error::{Classify, ErrorClass};
use crate::stack::{
    LinkStatus, PcbDiagnostics, PeerStatus, SendFlag, Stack, TcpAbort, TcpBacklog, TcpPeerStatus,
    TcpSendFlags, TcpSendQueue,
};
use ::smoltcp::iface::{Config as IfaceConfig, SocketStorage};
use ::smoltcp::phy::{DeviceCapabilities, Medium, RxToken, TxToken};
use ::smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use core::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use std::boxed::Box;
use std::collections::VecDeque;
use std::vec;
use std::vec::Vec;

/// Upper bound on polls in every wait loop (× `TICK` = 60 s of virtual time).
const MAX_POLLS: usize = 12_000;
const TICK: Duration = Duration::from_millis(5);
const BUF: usize = 2048;
const PORT: u16 = 80;

fn server() -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, PORT))
}

/// A loopback device without smoltcp's `alloc` feature (which `phy::Loopback`
/// needs and the `smoltcp` feature does not enable): every frame sent is received
/// back, in order.
#[derive(Default)]
struct Loop {
    queue: VecDeque<Vec<u8>>,
    /// Lose every frame sent from now on (a peer that vanished).
    lose: bool,
}

struct Rx(Vec<u8>);
struct Tx<'q>(&'q mut VecDeque<Vec<u8>>, bool);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut frame = vec![0; len];
        let r = f(&mut frame);
        if !self.1 {
            self.0.push_back(frame);
        }
        r
    }
}

impl Device for Loop {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: Instant) -> Option<(Rx, Tx<'_>)> {
        let frame = self.queue.pop_front()?;
        Some((Rx(frame), Tx(&mut self.queue, self.lose)))
    }

    fn transmit(&mut self, _: Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.queue, self.lose))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = 1500;
        caps
    }
}

/// A stack on 127.0.0.1/8 over a loopback device, with `n` TCP sockets in the set
/// (leaked buffers: tests only), each given `timeout`.
struct Net<const M: usize> {
    stack: SmoltcpStack<'static, M>,
    dev: Loop,
    now: Instant,
}

fn set(n: usize, timeout: Option<Duration>) -> SocketSet<'static> {
    let storage: Vec<SocketStorage<'static>> = (0..n).map(|_| SocketStorage::EMPTY).collect();
    let mut sockets = SocketSet::new(Box::leak(storage.into_boxed_slice()));
    for _ in 0..n {
        let rx = tcp::SocketBuffer::new(Box::leak(vec![0u8; BUF].into_boxed_slice()));
        let tx = tcp::SocketBuffer::new(Box::leak(vec![0u8; BUF].into_boxed_slice()));
        let mut socket = tcp::Socket::new(rx, tx);
        socket.set_timeout(timeout);
        sockets.add(socket);
    }
    sockets
}

impl<const M: usize> Net<M> {
    fn new(n: usize) -> Self {
        Self::with(n, None, |s| s)
    }

    fn with(
        n: usize,
        timeout: Option<Duration>,
        f: impl FnOnce(SmoltcpStack<'static, M>) -> SmoltcpStack<'static, M>,
    ) -> Self {
        let mut dev = Loop::default();
        let mut config = IfaceConfig::new(HardwareAddress::Ip);
        config.random_seed = 0x1234_5678;
        let mut iface = Interface::new(config, &mut dev, Instant::ZERO);
        iface.update_ip_addrs(|a| {
            a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
        });
        // No accept queue unless a test asks for one: most tests count exactly the
        // sockets a listener's room arms.
        Net {
            stack: f(SmoltcpStack::new(iface, set(n, timeout)).with_accept_queue(0)),
            dev,
            now: Instant::ZERO,
        }
    }

    fn step(&mut self) {
        self.now += TICK;
        self.stack.poll(self.now, &mut self.dev);
    }

    /// Poll until `f` returns `Some`, at most `MAX_POLLS` times.
    fn until<T>(&mut self, what: &str, mut f: impl FnMut(&mut SmoltcpStack<'static, M>) -> Option<T>) -> T {
        for _ in 0..MAX_POLLS {
            if let Some(v) = f(&mut self.stack) {
                return v;
            }
            self.step();
        }
        panic!("{what}: nothing after {MAX_POLLS} polls");
    }

    fn listen(&mut self, port: u16) -> SmolSocket {
        let mut l = self.stack.socket().unwrap();
        self.stack.bind(&mut l, port).unwrap();
        self.stack.listen(&mut l).unwrap();
        assert!(l.is_listener());
        l
    }

    fn connect(&mut self, remote: SocketAddr) -> SmolSocket {
        let mut c = self.stack.socket().unwrap();
        self.until("connect", |s| match s.connect(&mut c, remote) {
            Ok(()) => Some(()),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("connect: {e}"),
        });
        c
    }

    fn accept(&mut self, l: &mut SmolSocket) -> (SmolSocket, SocketAddr) {
        self.until("accept", |s| match s.accept(l) {
            Ok(v) => Some(v),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("accept: {e}"),
        })
    }

    /// A connected pair on `PORT`: (listener, client, server side).
    fn pair(&mut self) -> (SmolSocket, SmolSocket, SmolSocket) {
        let mut l = self.listen(PORT);
        let c = self.connect(server());
        let (s, remote) = self.accept(&mut l);
        assert_eq!(Some(remote), self.stack.local_port(&c).map(addr));
        (l, c, s)
    }

    fn recv_exact(&mut self, s: &mut SmolSocket, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        self.until("receive", |st| {
            match st.receive(s, &mut buf) {
                Ok(0) => panic!("unexpected end of stream"),
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => panic!("receive: {e}"),
            }
            (out.len() >= n).then_some(())
        });
        out
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, port))
}

fn other(r: nb::Result<impl fmt::Debug, SmolError>) -> SmolError {
    match r {
        Err(nb::Error::Other(e)) => e,
        r => panic!("expected an error, got {r:?}"),
    }
}

fn assert_stack<S: Stack>(_: &S) {}

#[test]
fn is_a_full_netpool_stack() {
    let mut net: Net<4> = Net::new(4);
    assert_stack(&net.stack);
    const { assert!(<SmoltcpStack<'static, 4> as TcpAbort>::NATIVE_ABORT) };
    const { assert!(!<SmoltcpStack<'static, 4> as TcpSendFlags>::NATIVE_FLAGS) };
    assert_eq!(net.stack.backlog(), DEFAULT_BACKLOG);
    assert_eq!(net.stack.capacity(), 4);
    assert_eq!(net.stack.counts().free, 4);
    assert_eq!(net.stack.counts().total(), 4);
    assert_eq!(net.stack.link_state(), LinkState::Unknown);
    net.stack.set_link(LinkState::Down);
    assert_eq!(net.stack.link_state(), LinkState::Down);
    assert!(net.stack.poll_at(net.now).is_none());
    assert!(!std::format!("{:?}", net.stack).is_empty());
}

#[test]
fn adopts_at_most_m_and_leaves_the_rest_alone() {
    let mut net: Net<2> = Net::new(3);
    assert_eq!(net.stack.capacity(), 2);
    let handles: Vec<SocketHandle> = net.stack.sockets().iter().map(|(h, _)| h).collect();
    assert_eq!(handles.len(), 3);
    assert!(net.stack.socket_mut::<tcp::Socket>(handles[0]).is_none());
    assert!(net.stack.socket_mut::<tcp::Socket>(handles[1]).is_none());
    assert!(net.stack.socket_mut::<tcp::Socket>(handles[2]).is_some());
}

#[test]
fn listen_connect_accept_and_data_both_ways() {
    let mut net: Net<6> = Net::new(6);
    let (l, mut c, mut s) = net.pair();
    assert_eq!(net.stack.local_port(&l), Some(PORT));
    assert_eq!(net.stack.remote_addr(&c), Some(server()));
    assert_eq!(net.stack.tcp_state(&c), Some(State::Established));
    let client_port = net.stack.local_port(&c).unwrap();
    assert!(client_port >= EPHEMERAL_FIRST);
    // Connecting again to the same address is Ok, to another one refused.
    assert_eq!(net.stack.connect(&mut c, server()), Ok(()));
    assert_eq!(
        other(net.stack.connect(&mut c, addr(81))),
        SmolError::InvalidState
    );

    assert_eq!(net.stack.send(&mut c, b"ping"), Ok(4));
    assert_eq!(net.recv_exact(&mut s, 4), b"ping");
    assert_eq!(net.stack.send(&mut s, b"pong!"), Ok(5));
    assert_eq!(net.recv_exact(&mut c, 5), b"pong!");
    // Nothing pending: WouldBlock; empty buffers: Ok(0).
    assert_eq!(
        net.stack.receive(&mut c, &mut [0u8; 8]),
        Err(nb::Error::WouldBlock)
    );
    assert_eq!(net.stack.receive(&mut c, &mut []), Ok(0));
    assert_eq!(net.stack.send(&mut c, &[]), Ok(0));
    // The flagged send is the plain send.
    assert_eq!(net.stack.send_flagged(&mut c, b"x", SendFlag::More), Ok(1));
    assert_eq!(net.recv_exact(&mut s, 1), b"x");
    assert_eq!(net.stack.peer_status(&c), PeerStatus::Open);
    assert_eq!(net.stack.peer_status(&s), PeerStatus::Open);
    let counts = net.stack.counts();
    assert_eq!(counts.connected, 2);
    assert_eq!(counts.listening, 2);
}

#[test]
fn misuse_is_typed_never_a_panic() {
    let mut net: Net<4> = Net::new(4);
    let mut l = net.listen(PORT);
    // A listener is not a connection, a connection not a listener.
    assert_eq!(other(net.stack.send(&mut l, b"x")), SmolError::InvalidState);
    assert_eq!(
        other(net.stack.receive(&mut l, &mut [0; 4])),
        SmolError::InvalidState
    );
    assert_eq!(net.stack.listen(&mut l), Ok(()));
    let mut f = net.stack.socket().unwrap();
    assert_eq!(other(net.stack.accept(&mut f)), SmolError::InvalidState);
    assert_eq!(other(net.stack.send(&mut f, b"x")), SmolError::InvalidState);
    assert_eq!(net.stack.listen(&mut f), Err(SmolError::InvalidState));
    assert_eq!(net.stack.peer_status(&f), PeerStatus::Unknown);
    assert_eq!(net.stack.send_queue(&f), None);
    // The port is taken; port 0 picks an ephemeral one.
    assert_eq!(net.stack.bind(&mut f, PORT), Err(SmolError::AddressInUse));
    net.stack.bind(&mut f, 0).unwrap();
    assert!(net.stack.local_port(&f).unwrap() >= EPHEMERAL_FIRST);
    assert_eq!(net.stack.bind(&mut f, 0), Err(SmolError::InvalidState));
    assert_eq!(
        other(net.stack.connect(&mut f, server())),
        SmolError::InvalidState
    );
    net.stack.close(f).unwrap();
    // IPv6 and unspecified remotes are unaddressable.
    let mut g = net.stack.socket().unwrap();
    let v6 = SocketAddr::new(Ipv6Addr::LOCALHOST.into(), 80);
    assert_eq!(other(net.stack.connect(&mut g, v6)), SmolError::Unaddressable);
    let unspec = SocketAddr::new(Ipv4Addr::UNSPECIFIED.into(), 80);
    assert_eq!(other(net.stack.connect(&mut g, unspec)), SmolError::Unaddressable);
    assert_eq!(SmolError::Unaddressable.class(), ErrorClass::NoRoute);
}

#[test]
fn backlog_is_rearmed_after_accept() {
    let mut net: Net<6> = Net::new(6);
    let mut l = net.listen(PORT);
    let c0 = net.stack.counts();
    assert_eq!((c0.listening, c0.free), (2, 4));
    let _c = net.connect(server());
    // The connection waits in the backlog until accepted (the server side is
    // established once the client's ACK arrives, one poll after the client).
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    let c1 = net.stack.counts();
    assert_eq!((c1.listening, c1.pending, c1.connected, c1.free), (1, 1, 1, 3));
    let (_s, _) = net.accept(&mut l);
    // Accepting re-armed a free socket: two listening again.
    let c2 = net.stack.counts();
    assert_eq!((c2.listening, c2.pending, c2.connected, c2.free), (2, 0, 2, 2));
    assert_eq!(net.stack.accept(&mut l), Err(nb::Error::WouldBlock));
}

#[test]
fn a_full_backlog_refuses_until_accepted() {
    let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1));
    assert_eq!(net.stack.backlog(), 1);
    let mut l = net.listen(PORT);
    assert_eq!(net.stack.counts().listening, 1);
    let _c1 = net.connect(server());
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    // The only armed socket holds a connection: the next SYN is answered with RST.
    let mut c2 = net.stack.socket().unwrap();
    let e = net.until("refused", |s| match s.connect(&mut c2, server()) {
        Ok(()) => panic!("connected past a full backlog"),
        Err(nb::Error::WouldBlock) => None,
        Err(nb::Error::Other(e)) => Some(e),
    });
    assert_eq!(e, SmolError::Refused);
    let _ = net.accept(&mut l);
    assert_eq!(net.stack.counts().listening, 1);
}

#[test]
fn exhaustion_is_out_of_resources_not_a_panic() {
    let mut net: Net<3> = Net::new(3);
    let mut l = net.listen(PORT); // arms 2 (backlog) of 3
    let _c = net.connect(server()); // the last free socket
    assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
    assert_eq!(SmolError::NoSocket.class(), ErrorClass::OutOfResources);
    let (_s, _) = net.accept(&mut l);
    // Nothing free to re-arm with: one listening socket left, still no panic.
    let counts = net.stack.counts();
    assert_eq!((counts.free, counts.listening, counts.connected), (0, 1, 2));
    assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
    for _ in 0..20 {
        net.step();
    }
}

#[test]
fn close_sends_fin_and_the_socket_is_recycled_after_the_close_completes() {
    let mut net: Net<6> = Net::new(6);
    let (l, mut c, s) = net.pair();
    let free_before = net.stack.counts().free;
    net.stack.close(s).unwrap();
    assert_eq!(net.stack.counts().closing, 1);
    // The client sees end of stream.
    let mut buf = [0u8; 8];
    net.until("fin", |st| match st.receive(&mut c, &mut buf) {
        Ok(0) => Some(()),
        Ok(n) => panic!("{n} bytes"),
        Err(nb::Error::WouldBlock) => None,
        Err(nb::Error::Other(e)) => panic!("{e}"),
    });
    assert_eq!(net.stack.peer_status(&c), PeerStatus::Closed);
    // Half-close: the client may still send.
    assert_eq!(net.stack.send(&mut c, b"bye"), Ok(3));
    net.stack.close(c).unwrap();
    // The client (passive closer) is free after LAST-ACK; the server (active
    // closer) holds its socket through TIME-WAIT, then it is free too.
    let t0 = net.now;
    net.until("client freed", |st| (st.counts().closing == 1).then_some(()));
    assert_eq!(net.stack.counts().free, free_before + 1);
    // The server socket in TIME-WAIT (local port 80) does not block a new listener.
    assert_eq!(net.stack.tcp_state(&l), None);
    net.stack.close(l).unwrap();
    assert_eq!(net.stack.counts().free, free_before + 3);
    let _l2 = net.listen(PORT);
    assert_eq!(net.stack.counts().free, free_before + 1);
    net.until("time-wait over", |st| (st.counts().closing == 0).then_some(()));
    assert!(net.now - t0 >= Duration::from_secs(10), "{}", net.now - t0);
    assert_eq!(net.stack.counts().free, free_before + 2);
}

/// `n` fresh sockets from `socket()` (taking free ones, then reclaiming).
fn take<const M: usize>(net: &mut Net<M>, n: usize) -> Vec<SmolSocket> {
    (0..n).map(|_| net.stack.socket().unwrap()).collect()
}

/// A connection on `l` whose server side `s` ends in TIME-WAIT (it closes first)
/// and whose client side is free again. Returns the server side's socket index.
fn time_wait<const M: usize>(net: &mut Net<M>, l: &mut SmolSocket) -> usize {
    let c = net.connect(server());
    let (s, _) = net.accept(l);
    let i = s.index();
    net.stack.close(s).unwrap();
    net.until("fin-wait-2", |st| {
        (tcp_ref(&st.sockets, st.entries[i].handle).state() == State::FinWait2).then_some(())
    });
    let ci = c.index();
    net.stack.close(c).unwrap();
    net.until("time-wait, client free", |st| {
        let tw = tcp_ref(&st.sockets, st.entries[i].handle).state() == State::TimeWait;
        (tw && st.entries[ci].role == Role::Free).then_some(())
    });
    i
}

fn state_of<const M: usize>(net: &Net<M>, i: usize) -> State {
    tcp_ref(&net.stack.sockets, net.stack.entries[i].handle).state()
}

#[test]
fn reclaim_takes_the_oldest_time_wait_socket_when_none_is_free() {
    let mut net: Net<6> = Net::with(6, None, |s| s.with_backlog(1));
    let mut l = net.listen(PORT);
    let older = time_wait(&mut net, &mut l);
    net.step();
    let newer = time_wait(&mut net, &mut l);
    let c = net.stack.counts();
    assert_eq!((c.listening, c.closing, c.free), (1, 2, 3));
    let _fresh = take(&mut net, 3);
    // Nothing free: the oldest TIME-WAIT socket is taken, then the other.
    let first = net.stack.socket().unwrap();
    assert_eq!(first.index(), older);
    assert_eq!(net.stack.pcb_counters().reclaimed_time_wait, 1);
    let second = net.stack.socket().unwrap();
    assert_eq!(second.index(), newer);
    assert_eq!(net.stack.pcb_counters().reclaimed(), 2);
    // An open connection or a listening socket is never taken.
    assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
    // A reclaimed socket carries a new connection.
    let mut c = first;
    net.until("connect on a reclaimed socket", |st| {
        match st.connect(&mut c, server()) {
            Ok(()) => Some(()),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
    });
    let _ = net.accept(&mut l);
}

#[test]
fn reclaim_rank_follows_tcp_alloc_and_the_policy() {
    let bound = Duration::from_secs(20);
    let mut net: Net<1> = Net::new(1);
    net.now = Instant::from_secs(100);
    net.stack.poll(net.now, &mut net.dev);
    let fresh = net.now;
    let past_bound = net.now - bound;
    let table = [
        // (state, since, Closing, TimeWait, Never)
        (State::TimeWait, fresh, Some(0), Some(0), None),
        (State::LastAck, fresh, Some(1), None, None),
        (State::Closing, fresh, Some(2), None, None),
        (State::FinWait1, fresh, None, None, None),
        (State::FinWait2, fresh, None, None, None),
        (State::FinWait1, past_bound, Some(3), None, None),
        (State::FinWait2, past_bound, Some(3), None, None),
        (State::Established, past_bound, None, None, None),
        (State::CloseWait, past_bound, None, None, None),
    ];
    for (state, since, closing, time_wait, never) in table {
        for (policy, want) in [
            (Reclaim::Closing, closing),
            (Reclaim::TimeWait, time_wait),
            (Reclaim::Never, never),
        ] {
            net.stack.reclaim = policy;
            assert_eq!(
                net.stack.reclaim_rank(state, since),
                want,
                "{state} since {since} under {policy:?}"
            );
        }
    }
}

#[test]
fn reclaim_takes_the_oldest_of_the_first_state_and_counts_it_by_state() {
    let mut net: Net<5> = Net::new(5);
    let at = Instant::from_secs;
    let roles = [
        (State::TimeWait, at(3)),
        (State::TimeWait, at(1)),
        (State::Closing, at(0)),
        (State::LastAck, at(2)),
        (State::LastAck, at(1)),
    ];
    for (e, (state, since)) in net.stack.entries.iter_mut().zip(roles) {
        e.role = Role::Closing { state, since };
    }
    let mut take = || {
        let i = net.stack.take_socket()?;
        net.stack.entries[i].role = Role::Fresh; // as `socket()` would
        Some(i)
    };
    let order: Vec<usize> = (0..5).map(|_| take().unwrap()).collect();
    assert_eq!(take(), None);
    assert_eq!(
        order,
        [1, 0, 4, 3, 2],
        "oldest first within TIME-WAIT, LAST-ACK, CLOSING"
    );
    let c = net.stack.pcb_counters();
    assert_eq!(
        (
            c.reclaimed_time_wait,
            c.reclaimed_last_ack,
            c.reclaimed_closing,
            c.reclaimed_fin_wait
        ),
        (2, 2, 1, 0)
    );
    assert_eq!(
        PcbDiagnostics::pcb_counters(&net.stack),
        c,
        "the pool's report reads the same"
    );
}

#[test]
fn a_reclaimed_last_ack_socket_carries_a_new_connection() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    let mut l = net.listen(PORT);
    let c1 = net.connect(server());
    let (s1, _) = net.accept(&mut l);
    let last_ack = s1.index();
    net.stack.close(c1).unwrap();
    net.until("close-wait", |st| {
        (tcp_ref(&st.sockets, st.entries[last_ack].handle).state() == State::CloseWait).then_some(())
    });
    net.dev.lose = true;
    net.stack.close(s1).unwrap();
    net.step();
    assert_eq!(state_of(&net, last_ack), State::LastAck);
    net.dev.lose = false;
    // The client side sits in FIN-WAIT-2 within its bound; one socket is free.
    let free = net.stack.counts().free;
    let _fresh = take(&mut net, free);
    let mut c = net.stack.socket().unwrap();
    assert_eq!(c.index(), last_ack);
    net.until("connect on a reclaimed LAST-ACK socket", |st| {
        match st.connect(&mut c, server()) {
            Ok(()) => Some(()),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
    });
}

#[test]
fn an_armed_connection_that_dies_before_accept_listens_again() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    let mut l = net.listen(PORT);
    let armed = net
        .stack
        .entries
        .iter()
        .position(|e| matches!(e.role, Role::Armed { .. }))
        .unwrap();
    let c = net.connect(server());
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    net.stack.abort(c).unwrap();
    net.until("listening again", |st| (st.counts().listening == 1).then_some(()));
    assert_eq!(
        state_of(&net, armed),
        State::Listen,
        "the same socket, back in LISTEN"
    );
    assert_eq!(net.stack.counts().pending, 0);
    let _c2 = net.connect(server());
    let _ = net.accept(&mut l);
}

#[test]
fn a_listener_short_of_sockets_but_listening_is_not_an_unarmed_pass() {
    let mut net: Net<3> = Net::new(3);
    let mut l = net.listen(PORT);
    let c = net.connect(server());
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    // Wants 4: one pending, one listening, no socket left; short, but listening.
    net.stack.set_backlog(&mut l, 4);
    let before = net.stack.pcb_counters().unarmed_passes;
    net.step();
    net.step();
    let counts = net.stack.counts();
    assert_eq!((counts.listening, counts.pending), (1, 1));
    assert_eq!(net.stack.pcb_counters().unarmed_passes, before);
    let _ = (c, net.accept(&mut l));
}

#[test]
fn unarmed_passes_count_exactly_the_polls_with_a_short_listener_and_nothing_listening() {
    let mut net: Net<3> = Net::with(3, None, |s| s.with_backlog(1).with_reclaim(Reclaim::Never));
    let mut l = net.listen(PORT);
    let tw = time_wait(&mut net, &mut l);
    // One armed socket, one TIME-WAIT socket kept (no reclaim), one free.
    let _c = net.connect(server());
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    net.stack.set_backlog(&mut l, 3);
    let c = net.stack.counts();
    assert_eq!((c.listening, c.pending, c.closing, c.free), (0, 1, 1, 0));
    // Short, nothing listening: every poll counts, until TIME-WAIT ends (10 s).
    let mut before = net.stack.pcb_counters().unarmed_passes;
    let mut counted = 0;
    for _ in 0..MAX_POLLS {
        net.step();
        let now = net.stack.pcb_counters().unarmed_passes;
        if net.stack.counts().listening == 1 {
            assert_eq!(now, before, "the poll that armed the freed socket is not unarmed");
            break;
        }
        assert_eq!(now, before + 1, "a poll with nothing listening is counted");
        counted += 1;
        before = now;
    }
    assert!(counted > 100, "{counted}");
    assert_eq!(
        state_of(&net, tw),
        State::Listen,
        "the TIME-WAIT socket, freed and armed"
    );
    // Short but listening from now on: not counted.
    net.step();
    assert_eq!(net.stack.pcb_counters().unarmed_passes, before);
}

#[test]
fn recv_queue_counts_unread_bytes_and_nothing_for_a_listener() {
    let mut net: Net<6> = Net::new(6);
    let (l, mut c, mut s) = net.pair();
    assert_eq!(net.stack.recv_queue(&s), Some(0));
    assert_eq!(net.stack.send(&mut c, b"hello"), Ok(5));
    net.until("bytes in", |st| (st.recv_queue(&s) == Some(5)).then_some(()));
    let _ = net.recv_exact(&mut s, 5);
    assert_eq!(net.stack.recv_queue(&s), Some(0));
    assert_eq!(net.stack.recv_queue(&l), None);
    let stale = s;
    net.stack.close(s).unwrap();
    assert_eq!(net.stack.recv_queue(&stale), None);
}

#[test]
fn reclaim_never_keeps_time_wait_until_smoltcp_is_done() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1).with_reclaim(Reclaim::Never));
    assert_eq!(net.stack.reclaim(), Reclaim::Never);
    let mut l = net.listen(PORT);
    let _tw = time_wait(&mut net, &mut l);
    let _fresh = take(&mut net, 2);
    assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
    assert_eq!(net.stack.pcb_counters().reclaimed(), 0);
}

#[test]
fn reclaim_order_is_time_wait_then_last_ack_then_fin_wait_past_the_bound() {
    let bound = Duration::from_secs(2);
    let mut net: Net<9> = Net::with(9, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
    let mut l = net.listen(PORT);
    let tw = time_wait(&mut net, &mut l);
    // LAST-ACK: the client closes first (it waits in FIN-WAIT-2); the server's FIN
    // is then lost.
    let c1 = net.connect(server());
    let fin_wait_2 = c1.index();
    let (s1, _) = net.accept(&mut l);
    let last_ack = s1.index();
    net.stack.close(c1).unwrap();
    net.until("close-wait", |st| {
        (tcp_ref(&st.sockets, st.entries[last_ack].handle).state() == State::CloseWait).then_some(())
    });
    // FIN-WAIT-1: an open connection whose server side closes into a lost FIN.
    let _c2 = net.connect(server());
    let (s2, _) = net.accept(&mut l);
    let fin_wait = s2.index();
    net.dev.lose = true;
    net.stack.close(s1).unwrap();
    net.stack.close(s2).unwrap();
    net.step();
    assert_eq!(state_of(&net, last_ack), State::LastAck);
    assert_eq!(state_of(&net, fin_wait), State::FinWait1);
    let free = net.stack.counts().free;
    let _fresh = take(&mut net, free);
    assert_eq!(net.stack.socket().unwrap().index(), tw);
    assert_eq!(net.stack.socket().unwrap().index(), last_ack);
    // FIN-WAIT within its bound is kept; the open client sides are never taken.
    assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
    for _ in 0..(bound.total_millis() / TICK.total_millis()) {
        net.step();
    }
    assert_eq!(state_of(&net, fin_wait_2), State::FinWait2);
    assert_eq!(state_of(&net, fin_wait), State::FinWait1);
    // Past the bound: the older FIN-WAIT first.
    assert_eq!(net.stack.socket().unwrap().index(), fin_wait_2);
    assert_eq!(net.stack.socket().unwrap().index(), fin_wait);
    let c = net.stack.pcb_counters();
    assert_eq!(
        (
            c.reclaimed_time_wait,
            c.reclaimed_last_ack,
            c.reclaimed_closing,
            c.reclaimed_fin_wait
        ),
        (1, 1, 0, 2)
    );
    assert_eq!(net.stack.socket(), Err(SmolError::NoSocket));
}

#[test]
fn set_backlog_arms_the_pools_room_and_a_burst_that_size_is_taken_not_refused() {
    const BURST: usize = 8;
    let mut net: Net<18> = Net::new(18);
    let mut l = net.listen(PORT);
    assert_eq!(net.stack.counts().listening, DEFAULT_BACKLOG);
    net.stack.set_backlog(&mut l, BURST);
    assert_eq!(net.stack.counts().listening, BURST);
    // Eight SYNs at once: every one finds a listening socket.
    let mut clients = take(&mut net, BURST);
    for c in &mut clients {
        assert_eq!(net.stack.connect(c, server()), Err(nb::Error::WouldBlock));
    }
    let mut done = 0;
    net.until("burst connected", |st| {
        done = 0;
        for c in clients.iter_mut() {
            match st.connect(c, server()) {
                Ok(()) => done += 1,
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => panic!("refused in a burst the backlog covers: {e}"),
            }
        }
        (done == BURST).then_some(())
    });
    net.until("all pending", |st| (st.counts().pending == BURST).then_some(()));
    // Room shrinks: idle listening sockets beyond it are freed, pending ones stay,
    // not handed out while the pool has no room for them.
    net.stack.set_backlog(&mut l, 0);
    assert_eq!(net.stack.counts().listening, 0);
    assert_eq!(net.stack.counts().pending, BURST);
    assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
    net.stack.set_backlog(&mut l, BURST);
    for _ in 0..BURST {
        let _ = net.accept(&mut l);
    }
    net.stack.set_backlog(&mut l, 0);
    assert_eq!(net.stack.counts().listening, 0);
    assert_eq!(net.stack.pcb_counters().unarmed_passes, 0);
}

#[test]
fn a_listener_is_rearmed_by_reclaiming_and_a_pass_with_none_listening_is_counted() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    let mut l = net.listen(PORT);
    let tw = time_wait(&mut net, &mut l);
    let _fresh = take(&mut net, 2);
    // listener 1 + TIME-WAIT 1 + fresh 2: growing the backlog reclaims the TIME-WAIT.
    net.stack.set_backlog(&mut l, 2);
    assert_eq!(net.stack.counts().listening, 2);
    assert_eq!(net.stack.pcb_counters().reclaimed_time_wait, 1);
    assert_eq!(state_of(&net, tw), State::Listen);
    net.stack.set_backlog(&mut l, 0);
    let _more = take(&mut net, 2);
    let before = net.stack.pcb_counters().unarmed_passes;
    net.step();
    assert_eq!(
        net.stack.pcb_counters().unarmed_passes,
        before,
        "room 0 wants nothing"
    );
    net.stack.set_backlog(&mut l, 1);
    net.step();
    net.step();
    assert_eq!(net.stack.pcb_counters().unarmed_passes, before + 2);
}

#[test]
fn abort_resets_the_peer_and_frees_the_socket_after_the_rst() {
    let mut net: Net<6> = Net::new(6);
    let (_l, c, mut s) = net.pair();
    assert_eq!(net.stack.send(&mut s, b"data"), Ok(4));
    net.stack.abort(c).unwrap();
    // The RST is sent at the next poll; until then the socket is closing.
    assert_eq!(net.stack.counts().closing, 1);
    net.step();
    assert_eq!(net.stack.counts().closing, 0);
    let status = net.until("reset seen", |st| match st.peer_status(&s) {
        PeerStatus::Open => None,
        status => Some(status),
    });
    assert_eq!(status, PeerStatus::Gone(ErrorClass::Reset));
    assert_eq!(other(net.stack.receive(&mut s, &mut [0u8; 8])), SmolError::Reset);
    assert_eq!(other(net.stack.send(&mut s, b"x")), SmolError::Reset);
    assert_eq!(SmolError::Reset.kind(), TcpErrorKind::PipeClosed);
    net.stack.abort(s).unwrap();
    assert_eq!(net.stack.counts().closing, 0);
}

#[test]
fn data_before_a_reset_stays_readable() {
    let mut net: Net<6> = Net::new(6);
    let (_l, mut c, mut s) = net.pair();
    assert_eq!(net.stack.send(&mut c, b"last words"), Ok(10));
    net.until("queued", |st| (st.send_queue(&c) == Some(0)).then_some(()));
    net.stack.abort(c).unwrap();
    net.step();
    net.step();
    assert_eq!(net.stack.tcp_state(&s), Some(State::Closed));
    let mut buf = [0u8; 32];
    assert_eq!(net.stack.receive(&mut s, &mut buf), Ok(10));
    assert_eq!(&buf[..10], b"last words");
    assert_eq!(other(net.stack.receive(&mut s, &mut buf)), SmolError::Reset);
}

#[test]
fn a_stale_handle_is_refused_and_never_touches_the_new_user() {
    let mut net: Net<4> = Net::new(4);
    let mut l = net.listen(PORT); // arms 2: 2 free left
    let old = net.stack.socket().unwrap();
    let keep = old;
    net.stack.close(old).unwrap(); // fresh: free at once
    let mut new = net.stack.socket().unwrap();
    assert_eq!(new.index(), keep.index());
    assert_ne!(new.generation(), keep.generation());
    // Every use of the kept copy is refused.
    let mut stale = keep;
    assert_eq!(other(net.stack.connect(&mut stale, server())), SmolError::Stale);
    assert_eq!(other(net.stack.send(&mut stale, b"x")), SmolError::Stale);
    assert_eq!(net.stack.close(stale), Err(SmolError::Stale));
    assert_eq!(net.stack.abort(stale), Err(SmolError::Stale));
    assert_eq!(net.stack.peer_status(&stale), PeerStatus::Unknown);
    assert_eq!(SmolError::Stale.class(), ErrorClass::InvalidInput);
    // The new user connects and talks undisturbed.
    net.until("connect", |st| st.connect(&mut new, server()).ok());
    let (mut s, _) = net.accept(&mut l);
    assert_eq!(net.stack.send(&mut new, b"ok"), Ok(2));
    assert_eq!(net.recv_exact(&mut s, 2), b"ok");
    // A listener handle goes stale when it is closed.
    let kept_listener = l;
    net.stack.close(l).unwrap();
    let mut stale_l = kept_listener;
    assert_eq!(other(net.stack.accept(&mut stale_l)), SmolError::Stale);
    assert_eq!(net.stack.close(stale_l), Err(SmolError::Stale));
}

#[test]
fn closing_a_listener_frees_its_sockets_and_resets_pending_connections() {
    let mut net: Net<6> = Net::new(6);
    let l = net.listen(PORT);
    let mut c = net.connect(server()); // pending, never accepted
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    net.stack.close(l).unwrap();
    let counts = net.stack.counts();
    assert_eq!((counts.listening, counts.pending, counts.closing), (0, 0, 1));
    let status = net.until("reset", |st| match st.peer_status(&c) {
        PeerStatus::Open => None,
        status => Some(status),
    });
    assert_eq!(status, PeerStatus::Gone(ErrorClass::Reset));
    assert_eq!(other(net.stack.send(&mut c, b"x")), SmolError::Reset);
    net.stack.close(c).unwrap();
    assert_eq!(net.stack.counts().free, 6);
    // Nothing listens any more.
    let mut d = net.stack.socket().unwrap();
    let e = net.until("refused", |st| match st.connect(&mut d, server()) {
        Err(nb::Error::WouldBlock) => None,
        r => Some(other(r)),
    });
    assert_eq!(e, SmolError::Refused);
    // The port can be listened on again at once.
    let _l2 = net.listen(PORT);
    assert_eq!(net.stack.counts().listening, 2);
}

#[test]
fn send_queue_rises_after_send_and_falls_to_zero_after_ack() {
    let mut net: Net<6> = Net::new(6);
    let (_l, mut c, mut s) = net.pair();
    assert_eq!(net.stack.send_queue(&c), Some(0));
    let data = [0x5au8; 1000];
    assert_eq!(net.stack.send(&mut c, &data), Ok(1000));
    assert_eq!(net.stack.send_queue(&c), Some(1000));
    // Fill the buffer: WouldBlock, not an error.
    assert_eq!(net.stack.send(&mut c, &[0u8; BUF]), Ok(BUF - 1000));
    assert_eq!(net.stack.send(&mut c, b"more"), Err(nb::Error::WouldBlock));
    assert_eq!(net.stack.send_queue(&c), Some(BUF));
    // The peer reads; everything is acknowledged.
    assert_eq!(net.recv_exact(&mut s, BUF).len(), BUF);
    net.until("acked", |st| (st.send_queue(&c) == Some(0)).then_some(()));
}

#[test]
fn peer_status_is_closed_after_peer_fin_and_drain() {
    let mut net: Net<6> = Net::new(6);
    let (_l, mut c, mut s) = net.pair();
    assert_eq!(net.stack.send(&mut c, b"abc"), Ok(3));
    net.stack.close(c).unwrap();
    net.until("fin arrived", |st| {
        (st.tcp_state(&s) == Some(State::CloseWait)).then_some(())
    });
    // Unread data: still open.
    assert_eq!(net.stack.peer_status(&s), PeerStatus::Open);
    assert_eq!(net.recv_exact(&mut s, 3), b"abc");
    assert_eq!(net.stack.peer_status(&s), PeerStatus::Closed);
    assert_eq!(net.stack.receive(&mut s, &mut [0u8; 8]), Ok(0));
    assert_eq!(net.stack.receive(&mut s, &mut [0u8; 8]), Ok(0));
    // Still writable (half-close) until we close too.
    assert_eq!(net.stack.send(&mut s, b"ok"), Ok(2));
}

#[test]
fn connect_to_a_closed_port_is_refused_and_sticky() {
    let mut net: Net<4> = Net::new(4);
    let mut c = net.stack.socket().unwrap();
    assert_eq!(net.stack.connect(&mut c, addr(9)), Err(nb::Error::WouldBlock));
    assert_eq!(net.stack.peer_status(&c), PeerStatus::Open);
    assert_eq!(net.stack.send(&mut c, b"x"), Err(nb::Error::WouldBlock));
    assert_eq!(net.stack.counts().connecting, 1);
    let e = net.until("refused", |st| match st.connect(&mut c, addr(9)) {
        Err(nb::Error::WouldBlock) => None,
        r => Some(other(r)),
    });
    assert_eq!(e, SmolError::Refused);
    assert_eq!(e.class(), ErrorClass::Refused);
    // Sticky until closed.
    assert_eq!(other(net.stack.connect(&mut c, addr(9))), SmolError::Refused);
    assert_eq!(other(net.stack.receive(&mut c, &mut [0; 4])), SmolError::Refused);
    assert_eq!(net.stack.peer_status(&c), PeerStatus::Gone(ErrorClass::Refused));
    assert_eq!(net.stack.counts().idle, 1);
    net.stack.close(c).unwrap();
    assert_eq!(net.stack.counts().free, 4);
}

#[test]
fn connect_to_a_silent_host_times_out_with_a_socket_timeout() {
    let timeout = Duration::from_secs(3);
    let mut net: Net<2> = Net::with(2, Some(timeout), |s| s);
    // 127.0.0.2 is on the link but not ours: the SYN is never answered.
    let silent = SocketAddr::new(Ipv4Addr::new(127, 0, 0, 2).into(), 80);
    let mut c = net.stack.socket().unwrap();
    let t0 = net.now;
    let e = net.until("timeout", |st| match st.connect(&mut c, silent) {
        Err(nb::Error::WouldBlock) => None,
        r => Some(other(r)),
    });
    assert_eq!(e, SmolError::TimedOut);
    // A connect that timed out failed for good: not "try again later".
    assert_eq!(e.class(), ErrorClass::ConnectionTimedOut);
    assert!(!e.class().is_retry());
    assert!(net.now - t0 >= timeout);
    net.stack.abort(c).unwrap();
    net.step();
    assert_eq!(net.stack.counts().free, 2);
}

#[test]
fn with_a_socket_timeout_a_reset_is_connection_lost() {
    let mut net: Net<6> = Net::with(6, Some(Duration::from_secs(30)), |s| s);
    let (_l, c, mut s) = net.pair();
    net.stack.abort(c).unwrap();
    let status = net.until("gone", |st| match st.peer_status(&s) {
        PeerStatus::Open => None,
        status => Some(status),
    });
    assert_eq!(status, PeerStatus::Gone(ErrorClass::ConnectionLost));
    assert_eq!(
        other(net.stack.receive(&mut s, &mut [0; 4])),
        SmolError::ConnectionLost
    );
}

#[test]
fn ephemeral_ports_follow_the_seed_and_skip_ports_in_use() {
    let mut net: Net<6> = Net::with(6, None, |s| s.with_port_seed(16383));
    // Seed 16383: the first port is 65535, then the counter wraps to 49152.
    let mut l = net.stack.socket().unwrap();
    net.stack.bind(&mut l, 49152).unwrap();
    net.stack.listen(&mut l).unwrap();
    let c = net.connect(addr(49152));
    assert_eq!(net.stack.local_port(&c), Some(65535));
    let d = net.connect(addr(49152));
    assert_eq!(net.stack.local_port(&d), Some(49153));
}

#[test]
fn the_pool_tells_the_stack_its_room_and_the_listening_sockets_follow_it() {
    use crate::{Config, ListenParams, Pool};

    let mut dev = Loop::default();
    let iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
    let stack: SmoltcpStack<'static, 8> = SmoltcpStack::new(iface, set(8, None)).with_accept_queue(0);
    let mut pool: Pool<SmoltcpStack<'static, 8>, 5, 1, 0> = Pool::new(stack, Config::new());
    pool.listen(PORT, ListenParams::new(5)).unwrap();
    assert_eq!(
        pool.stack().counts().listening,
        DEFAULT_BACKLOG,
        "before the first poll"
    );
    pool.poll(crate::Instant::ZERO);
    assert_eq!(
        pool.stack().counts().listening,
        5,
        "the port's room: its cap of 5"
    );
    pool.listen(PORT, ListenParams::new(3)).unwrap();
    pool.poll(crate::Instant::from_millis(1));
    assert_eq!(
        pool.stack().counts().listening,
        3,
        "a smaller cap, a smaller room"
    );
}

#[test]
fn serves_a_pool_connection_from_a_client_on_the_same_stack() {
    use crate::{Config, ListenParams, Pool};

    let mut dev = Loop::default();
    let mut iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
    iface.update_ip_addrs(|a| {
        a.push(IpCidr::new(IpAddress::v4(127, 0, 0, 1), 8)).unwrap();
    });
    let stack: SmoltcpStack<'static, 6> = SmoltcpStack::new(iface, set(6, None));
    let mut pool: Pool<SmoltcpStack<'static, 6>, 4, 1, 64> = Pool::new(stack, Config::new());
    pool.listen(PORT, ListenParams::new(4)).unwrap();

    let mut now = Instant::ZERO;
    let mut tick = |pool: &mut Pool<SmoltcpStack<'static, 6>, 4, 1, 64>| {
        now += TICK;
        pool.stack_mut().poll(now, &mut dev);
        pool.poll(crate::Instant::from_millis(now.total_millis() as u64));
        crate::Instant::from_millis(now.total_millis() as u64)
    };

    let mut client = pool.stack_mut().socket().unwrap();
    let mut accepted = None;
    let mut np_now = crate::Instant::ZERO;
    for _ in 0..MAX_POLLS {
        let _ = pool.stack_mut().connect(&mut client, server());
        if let Some(a) = pool.accept_next() {
            accepted = Some(a);
            break;
        }
        np_now = tick(&mut pool);
    }
    let a = accepted.expect("pool accepted nothing");
    assert_eq!(a.port, PORT);
    assert_eq!(pool.stack_mut().connect(&mut client, server()), Ok(()));
    assert_eq!(Some(a.remote.port()), pool.stack().local_port(&client));

    // Client → pool.
    assert_eq!(pool.stack_mut().send(&mut client, b"hello"), Ok(5));
    let mut buf = [0u8; 16];
    let mut got = 0;
    for _ in 0..MAX_POLLS {
        match pool.read(a.handle, &mut buf, np_now) {
            Ok(n) => {
                got = n;
                break;
            }
            Err(nb::Error::WouldBlock) => np_now = tick(&mut pool),
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
    }
    assert_eq!(&buf[..got], b"hello");

    // Pool → client: MORE bytes wait in netpool's buffer (smoltcp has no MORE
    // flag) and count in the send queue; the push hands them to the stack, where
    // they are queued until the client acknowledges them.
    assert_eq!(pool.send_queue(a.handle), Ok(Some(0)));
    assert_eq!(pool.handle_at(a.handle.slot()), Some(a.handle));
    assert_eq!(pool.write(a.handle, b"wor", false, np_now), Ok(3));
    assert_eq!(pool.send_queue(a.handle), Ok(Some(3)), "buffered in netpool");
    assert_eq!(pool.write(a.handle, b"ld", true, np_now), Ok(2));
    assert_eq!(pool.send_queue(a.handle), Ok(Some(5)), "handed to the stack");
    // Then close: the client reads it all, then EOF.
    pool.close(a.handle, np_now).unwrap();
    assert_eq!(pool.handle_at(a.handle.slot()), None);
    let mut out = Vec::new();
    for _ in 0..MAX_POLLS {
        match pool.stack_mut().receive(&mut client, &mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(nb::Error::WouldBlock) => np_now = tick(&mut pool),
            Err(nb::Error::Other(e)) => panic!("{e}"),
        }
    }
    assert_eq!(out, b"world");
    pool.stack_mut().close(client).unwrap();
    assert_eq!(pool.free_slots(), 4);
    let _ = np_now;
}

/// A SYN to `PORT` from 127.0.0.`host`:`port` that no one will ever complete: the
/// SYN-ACK goes to an address the interface does not have, and is lost.
fn half_open_syn<const M: usize>(net: &mut Net<M>, host: u8, port: u16) {
    half_open_syn_to(net, host, port, PORT);
}

/// [`half_open_syn`] to local port `to`.
fn half_open_syn_to<const M: usize>(net: &mut Net<M>, host: u8, port: u16, to: u16) {
    let frame = netpool_testkit::wire::syn(
        SocketAddrV4::new(Ipv4Addr::new(127, 0, 0, host), port),
        SocketAddrV4::new(Ipv4Addr::LOCALHOST, to),
        u32::from(port) * 1000,
        1024,
        1400,
    );
    net.dev.queue.push_back(frame);
}

/// The TCP states of listener slot 0's armed sockets: (listening, half-open, other).
fn armed_states<const M: usize>(net: &Net<M>) -> (usize, usize, usize) {
    let mut c = (0, 0, 0);
    for e in net.stack.entries.iter().filter(|e| e.role.armed_for(0)) {
        match tcp_ref(&net.stack.sockets, e.handle).state() {
            State::Listen => c.0 += 1,
            State::SynReceived => c.1 += 1,
            _ => c.2 += 1,
        }
    }
    c
}

/// Step until the stack's clock reaches `ms`.
fn step_to<const M: usize>(net: &mut Net<M>, ms: i64) {
    while net.now < Instant::from_millis(ms) {
        net.step();
    }
}

#[test]
fn a_half_open_handshake_is_reset_at_the_deadline_and_its_socket_listens_again() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    net.stack
        .set_handshake_deadline(crate::time::Duration::from_millis(500));
    let _l = net.listen(PORT);
    half_open_syn(&mut net, 9, 4000);
    net.step();
    // The half-open socket is kept apart: another one listens for the room.
    assert_eq!(armed_states(&net), (1, 1, 0));
    // Not before the deadline (a free socket covers the room: nothing evicted) ...
    step_to(&mut net, 400);
    assert_eq!(armed_states(&net), (1, 1, 0));
    assert_eq!(net.stack.pcb_counters().half_open_reclaimed(), 0);
    // ... but at it: reset and listening again; the listener keeps just its room.
    step_to(&mut net, 600);
    assert_eq!(armed_states(&net), (1, 0, 0));
    let c = net.stack.pcb_counters();
    assert_eq!((c.half_open_expired, c.half_open_evicted), (1, 0), "{c}");
    assert_eq!(c.half_open_reclaimed(), 1);
}

#[test]
fn a_flood_of_half_open_syns_never_takes_the_room_and_a_real_client_is_served() {
    let mut net: Net<6> = Net::with(6, None, |s| s.with_backlog(2));
    let mut l = net.listen(PORT);
    // A SYN every 100 ms, none ever completing.
    for k in 0..30u16 {
        half_open_syn(&mut net, 9 + k as u8, 4000 + k);
        let t = net.now.total_millis() + 100;
        step_to(&mut net, t);
        let (listening, half_open, _) = armed_states(&net);
        assert!(
            listening >= 2,
            "after SYN {k}: {listening} listening, {half_open} half-open"
        );
    }
    let c = net.stack.pcb_counters();
    assert!(c.half_open_evicted >= 20, "{c}");
    assert_eq!(c.unarmed_passes, 0, "{c}");
    // A real client is served at once, in the middle of the flood.
    let client = net.connect(server());
    let (s, remote) = net.accept(&mut l);
    assert_eq!(Some(remote), net.stack.local_port(&client).map(addr));
    assert_eq!(net.stack.tcp_state(&s), Some(State::Established));
}

#[test]
fn the_oldest_overdue_half_open_socket_gives_way_and_one_in_flight_never_does() {
    // Two sockets: the listener's one, and one for the first half-open.
    let mut net: Net<2> = Net::with(2, None, |s| s.with_backlog(1));
    let _l = net.listen(PORT);
    half_open_syn(&mut net, 9, 4001);
    net.step();
    assert_eq!(armed_states(&net), (1, 1, 0));
    // A second SYN while the first is still in flight: it takes the last listening
    // socket, and the first, in flight, is not evicted for it.
    half_open_syn(&mut net, 10, 4002);
    net.step();
    assert_eq!(armed_states(&net), (0, 2, 0));
    assert_eq!(net.stack.pcb_counters().half_open_evicted, 0);
    // Past their round trip, the older gives way so one listens again.
    step_to(&mut net, 300);
    assert_eq!(net.stack.pcb_counters().half_open_evicted, 1);
    let remotes: Vec<_> = net
        .stack
        .entries
        .iter()
        .filter(|e| e.role.armed_for(0))
        .filter_map(|e| tcp_ref(&net.stack.sockets, e.handle).remote_endpoint())
        .map(|ep| ep.port)
        .collect();
    assert_eq!(remotes, [4002], "the newer handshake stays, the older gave way");
    assert_eq!(armed_states(&net), (1, 1, 0));
}

#[test]
fn when_a_listeners_room_shrinks_a_handshake_under_way_keeps_its_socket() {
    let mut net: Net<6> = Net::with(6, None, |s| s.with_backlog(3));
    let mut l = net.listen(PORT);
    half_open_syn(&mut net, 9, 4000);
    net.step();
    assert_eq!(armed_states(&net), (3, 1, 0));
    net.stack.set_backlog(&mut l, 0);
    // Only idle listening sockets go; the handshake under way stays.
    assert_eq!(armed_states(&net), (0, 1, 0));
    assert_eq!(net.stack.pcb_counters().half_open_reclaimed(), 0);
}

/// Connect `clients` to the server and wait until every one is established.
fn connect_all<const M: usize>(net: &mut Net<M>, clients: &mut [SmolSocket]) {
    for c in clients.iter_mut() {
        assert_eq!(net.stack.connect(c, server()), Err(nb::Error::WouldBlock));
    }
    net.until("all connected", |st| {
        let mut done = 0;
        for c in clients.iter_mut() {
            match st.connect(c, server()) {
                Ok(()) => done += 1,
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => panic!("refused: {e}"),
            }
        }
        (done == clients.len()).then_some(())
    });
}

#[test]
fn a_burst_beyond_the_pools_room_waits_in_the_accept_queue_and_is_taken_when_room_frees() {
    let mut net: Net<12> = Net::with(12, None, |s| s.with_accept_queue(5));
    let mut l = net.listen(PORT);
    net.stack.set_backlog(&mut l, 2);
    assert_eq!(net.stack.counts().listening, 5, "a room of 2 in a queue 5 deep");
    let mut clients = take(&mut net, 5);
    connect_all(&mut net, &mut clients);
    // Two for the room; the other three wait, not handed out.
    let _a = net.accept(&mut l);
    let _b = net.accept(&mut l);
    assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
    assert_eq!(net.stack.counts().pending, 3);
    // A slot frees: the pool tells its room of 1, and one waiting is taken.
    net.stack.set_backlog(&mut l, 1);
    let _c = net.accept(&mut l);
    assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
    assert_eq!(net.stack.pcb_counters().accept_queue_expired, 0);
}

#[test]
fn a_connection_waiting_in_the_accept_queue_is_reset_at_the_deadline_while_the_pool_has_no_room() {
    let mut net: Net<6> = Net::with(6, None, |s| s.with_accept_queue(1));
    net.stack
        .set_handshake_deadline(crate::time::Duration::from_millis(500));
    let mut l = net.listen(PORT);
    net.stack.set_backlog(&mut l, 0);
    assert_eq!(net.stack.counts().listening, 1, "no room, a queue of 1");
    let mut client = take(&mut net, 1);
    connect_all(&mut net, &mut client);
    let waiting_since = net.now;
    // It waits ...
    let until = waiting_since.total_millis() + 400;
    step_to(&mut net, until);
    assert_eq!(net.stack.counts().pending, 1);
    // ... for the deadline, then it is reset and the socket listens again.
    let until = waiting_since.total_millis() + 600;
    step_to(&mut net, until);
    assert_eq!(net.stack.pcb_counters().accept_queue_expired, 1);
    let mut buf = [0u8; 4];
    net.until("the client sees the reset", |st| {
        match st.receive(&mut client[0], &mut buf) {
            Err(nb::Error::Other(e)) => Some(e),
            _ => None,
        }
    });
    assert_eq!(net.stack.counts().listening, 1);
}

#[test]
fn a_connect_takes_an_idle_accept_queue_socket_when_nothing_else_is_free() {
    let mut net: Net<3> = Net::with(3, None, |s| s.with_accept_queue(2));
    let mut l = net.listen(PORT);
    net.stack.set_backlog(&mut l, 0);
    // Two sockets listen for the queue; one is free.
    assert_eq!(net.stack.counts().listening, 2);
    assert_eq!(net.stack.counts().free, 1);
    let _a = net.stack.socket().unwrap();
    // Nothing free: the connect takes an idle socket of the queue.
    let b = net.stack.socket().expect("an idle queue socket");
    assert_eq!(net.stack.counts().listening, 1);
    let mut b = b;
    assert_eq!(net.stack.connect(&mut b, server()), Err(nb::Error::WouldBlock));
}

/// The pass that resets an expired half-open socket counts it as listening: it
/// arms no socket beyond the room (kills the expiry's `listening += 1` mutated).
#[test]
fn the_pass_that_expires_a_half_open_socket_arms_nothing_beyond_the_room() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    net.stack
        .set_handshake_deadline(crate::time::Duration::from_millis(500));
    let _l = net.listen(PORT);
    half_open_syn(&mut net, 9, 4000);
    net.step();
    assert_eq!(armed_states(&net), (1, 1, 0));
    for _ in 0..MAX_POLLS {
        net.step();
        if net.stack.pcb_counters().half_open_expired == 1 {
            break;
        }
    }
    assert_eq!(net.stack.pcb_counters().half_open_expired, 1);
    assert_eq!(armed_states(&net), (1, 0, 0), "in the expiring pass itself");
    assert_eq!(net.stack.counts().free, 3);
}

#[test]
fn of_two_overdue_half_open_sockets_the_one_that_waited_longest_gives_way_first() {
    // Three sockets: the listener's one and two for handshakes.
    let mut net: Net<3> = Net::with(3, None, |s| s.with_backlog(1));
    let _l = net.listen(PORT);
    half_open_syn(&mut net, 9, 4001);
    net.step();
    step_to(&mut net, 100);
    half_open_syn(&mut net, 10, 4002);
    net.step();
    assert_eq!(armed_states(&net), (1, 2, 0));
    // Both overdue; a third SYN takes the last listening socket.
    step_to(&mut net, 500);
    half_open_syn(&mut net, 11, 4003);
    net.step();
    assert_eq!(net.stack.pcb_counters().half_open_evicted, 1);
    let mut remotes: Vec<_> = net
        .stack
        .entries
        .iter()
        .filter(|e| e.role.armed_for(0))
        .filter_map(|e| tcp_ref(&net.stack.sockets, e.handle).remote_endpoint())
        .map(|ep| ep.port)
        .collect();
    remotes.sort();
    assert_eq!(
        remotes,
        [4002, 4003],
        "the first handshake, overdue longest, gave way"
    );
}

#[test]
fn a_connect_takes_the_overdue_half_open_socket_that_waited_longest_of_any_listener() {
    // Two listeners, one socket each and one handshake each, the one on port 81
    // (the second listener) older; nothing free.
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    let _l80 = net.listen(PORT);
    let mut l81 = net.stack.socket().unwrap();
    net.stack.bind(&mut l81, 81).unwrap();
    net.stack.listen(&mut l81).unwrap();
    half_open_syn_to(&mut net, 9, 4001, 81);
    net.step();
    step_to(&mut net, 100);
    half_open_syn(&mut net, 10, 4002);
    net.step();
    step_to(&mut net, 500);
    assert_eq!(net.stack.counts().free, 0);
    let s = net.stack.socket().expect("an overdue handshake's socket");
    assert_eq!(net.stack.pcb_counters().half_open_evicted, 1);
    let left: Vec<_> = net
        .stack
        .entries
        .iter()
        .filter(|e| matches!(e.role, Role::Armed { .. }))
        .map(|e| tcp_ref(&net.stack.sockets, e.handle))
        .filter(|t| t.state() == State::SynReceived)
        .filter_map(|t| t.remote_endpoint())
        .map(|ep| ep.port)
        .collect();
    assert_eq!(left, [4002], "the older handshake (port 81) gave way");
    assert_eq!(net.stack.tcp_state(&s), Some(State::Closed), "handed over fresh");
}

#[test]
fn a_connect_never_takes_a_socket_of_a_listeners_room_nor_of_a_listener_the_pool_does_not_size() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_accept_queue(2));
    assert_eq!(net.stack.accept_queue(), 2);
    // Port 80: sized, a room of 2 = the queue's depth: both sockets are its room.
    let mut l80 = net.listen(PORT);
    net.stack.set_backlog(&mut l80, 2);
    // Port 81: never sized by a pool, its own backlog of 2.
    let mut l81 = net.stack.socket().unwrap();
    net.stack.bind(&mut l81, 81).unwrap();
    net.stack.listen(&mut l81).unwrap();
    assert_eq!(net.stack.counts().listening, 4);
    assert_eq!(
        net.stack.socket(),
        Err(SmolError::NoSocket),
        "no idle queue socket to take"
    );
    assert_eq!(net.stack.counts().listening, 4);
    // Port 80's room shrinks to 1: its second socket is only the queue's now.
    net.stack.set_backlog(&mut l80, 1);
    assert!(net.stack.socket().is_ok(), "an idle queue socket");
    assert_eq!(net.stack.counts().listening, 3);
}

/// The overdue handshake that waited longest is found by its age, not by its
/// place: here the youngest sits in the first socket (kills `oldest_overdue`
/// keeping the first overdue one it meets).
#[test]
fn the_overdue_handshake_taken_is_the_oldest_wherever_its_socket_is() {
    let mut net: Net<4> = Net::with(4, None, |s| s.with_backlog(1));
    let c0 = net.stack.socket().unwrap();
    assert_eq!(c0.index(), 0);
    let _l = net.listen(PORT);
    half_open_syn(&mut net, 9, 4001); // A, on socket 1
    net.step();
    net.stack.close(c0).unwrap(); // socket 0 free
    step_to(&mut net, 100);
    half_open_syn(&mut net, 10, 4002); // B, on socket 2; socket 0 armed
    net.step();
    step_to(&mut net, 200);
    half_open_syn(&mut net, 11, 4003); // C, on socket 0; socket 3 armed
    net.step();
    let port_of = |net: &Net<4>, i: usize| {
        tcp_ref(&net.stack.sockets, net.stack.entries[i].handle)
            .remote_endpoint()
            .map(|ep| ep.port)
    };
    assert_eq!(port_of(&net, 0), Some(4003), "the youngest in the first socket");
    assert_eq!(port_of(&net, 1), Some(4001));
    step_to(&mut net, 700);
    // Nothing free: a new socket takes the oldest overdue handshake's, A's.
    let s = net.stack.socket().expect("an overdue handshake's socket");
    assert_eq!(s.index(), 1);
}

#[test]
fn the_pool_tells_the_stack_its_handshake_deadline() {
    let net: Net<4> = Net::new(4);
    let config = crate::Config::new().with_handshake_deadline(crate::time::Duration::from_millis(750));
    let mut pool: crate::Pool<_, 2, 1, 0> = crate::Pool::new(net.stack, config);
    assert_eq!(
        pool.stack().handshake_deadline,
        crate::Config::new().handshake_deadline
    );
    pool.listen(PORT, crate::ListenParams::new(2)).unwrap();
    assert_eq!(pool.stack().handshake_deadline.as_millis(), 750);
    pool.set_config(config.with_handshake_deadline(crate::time::Duration::from_millis(900)));
    assert_eq!(pool.stack().handshake_deadline.as_millis(), 900);
}

#[test]
fn error_table() {
    use SmolError as E;
    let all = [
        (E::NoSocket, ErrorClass::OutOfResources),
        (E::NoListenerSlot, ErrorClass::OutOfResources),
        (E::NoPort, ErrorClass::OutOfResources),
        (E::Stale, ErrorClass::InvalidInput),
        (E::InvalidState, ErrorClass::InvalidInput),
        (E::Unaddressable, ErrorClass::NoRoute),
        (E::AddressInUse, ErrorClass::AddressInUse),
        (E::Refused, ErrorClass::Refused),
        (E::TimedOut, ErrorClass::ConnectionTimedOut),
        (E::Reset, ErrorClass::Reset),
        (E::ConnectionLost, ErrorClass::ConnectionLost),
        (E::Closed, ErrorClass::Closed),
    ];
    for (e, class) in all {
        assert_eq!(e.class(), class, "{e}");
        assert!(!e.as_str().is_empty());
        let pipe = matches!(e, E::Reset | E::ConnectionLost | E::Closed);
        assert_eq!(e.kind() == TcpErrorKind::PipeClosed, pipe, "{e}");
    }
}

// ------------------------------------------------------------------------------
// The adapter's own rules (issue 23, item 4), each with the hand-made bug it kills.
// ------------------------------------------------------------------------------

/// Whether socket `i` of the stack is in `state`.
fn in_state<const M: usize>(st: &SmoltcpStack<'static, M>, i: usize, state: State) -> bool {
    tcp_ref(&st.sockets, st.entries[i].handle).state() == state
}

/// Two server sides closed into FIN-WAIT, where the one closed first enters
/// FIN-WAIT-2 last: `a` is closed first with its FIN lost (FIN-WAIT-1 until smoltcp
/// retransmits it), `b` closed later and acknowledged at once. The client sides stay
/// open (CLOSE-WAIT), so both stay in FIN-WAIT-2. Returns `(a, b, a_entered,
/// b_entered, kept)`: the socket indices, when each entered FIN-WAIT-2 (the poll
/// that saw it), with `b_entered < a_entered`, and the handles to keep (the
/// listener, both clients, and every socket that was free then, taken).
fn fin_wait_2_closed_first_entered_last<const M: usize>(
    net: &mut Net<M>,
) -> (usize, usize, Instant, Instant, Vec<SmolSocket>) {
    let mut l = net.listen(PORT);
    let ca = net.connect(server());
    let (sa, _) = net.accept(&mut l);
    let cb = net.connect(server());
    let (sb, _) = net.accept(&mut l);
    let (a, b) = (sa.index(), sb.index());
    net.dev.lose = true;
    net.stack.close(sa).unwrap();
    net.step();
    net.dev.lose = false;
    assert_eq!(state_of(net, a), State::FinWait1, "a's FIN was lost");
    for _ in 0..20 {
        net.step();
    }
    net.stack.close(sb).unwrap();
    net.until("b in FIN-WAIT-2", |st| {
        in_state(st, b, State::FinWait2).then_some(())
    });
    let b_entered = net.now;
    assert_eq!(state_of(net, a), State::FinWait1, "a's FIN not retransmitted yet");
    net.until("a in FIN-WAIT-2", |st| {
        in_state(st, a, State::FinWait2).then_some(())
    });
    let a_entered = net.now;
    assert!(a_entered > b_entered + Duration::from_millis(100));
    let free = net.stack.counts().free;
    let mut kept = take(net, free);
    kept.extend([ca, cb, l]);
    (a, b, a_entered, b_entered, kept)
}

/// Rule 1a (bound): the FIN-WAIT bound counts from when the socket entered
/// FIN-WAIT-2, not from when the application closed it.
/// Kills: `note_closing` keeping the old `since` on a state change (or `release`'s
/// time kept): `a`, closed first, would be past the bound with `b` and taken first.
#[test]
fn a_closing_sockets_fin_wait_bound_is_counted_from_its_state_entry_not_its_close() {
    let bound = Duration::from_secs(2);
    let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
    let (a, b, a_entered, b_entered, _kept) = fin_wait_2_closed_first_entered_last(&mut net);
    // `b` is past the bound, `a` (closed earlier, in FIN-WAIT-2 later) is not.
    step_to(&mut net, (b_entered + bound).total_millis());
    assert!(net.now < a_entered + bound);
    assert_eq!(net.stack.socket().map(SmolSocket::index), Ok(b));
    assert_eq!(
        net.stack.socket(),
        Err(SmolError::NoSocket),
        "a is within its bound: counted from FIN-WAIT-2, not from its close"
    );
    step_to(&mut net, (a_entered + bound).total_millis());
    assert_eq!(net.stack.socket().map(SmolSocket::index), Ok(a));
    assert_eq!(net.stack.pcb_counters().reclaimed_fin_wait, 2);
}

/// Rule 1a (order): among FIN-WAIT sockets past the bound, the one that entered its
/// state first is taken first, whatever the order of their closes.
/// Kills: the same mutant (age from the close): `a` would come first.
#[test]
fn a_closing_sockets_reclaim_order_is_by_state_entry_not_by_close() {
    let bound = Duration::from_secs(2);
    let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
    let (a, b, a_entered, _, _kept) = fin_wait_2_closed_first_entered_last(&mut net);
    step_to(&mut net, (a_entered + bound).total_millis());
    assert_eq!(
        net.stack.socket().map(SmolSocket::index),
        Ok(b),
        "b entered FIN-WAIT-2 first"
    );
    assert_eq!(net.stack.socket().map(SmolSocket::index), Ok(a));
}

/// Rule 1b: when a listener's room shrinks only idle LISTEN sockets stop. The
/// connection waiting for `accept` and the real handshake under way sit before the
/// idle ones in the set (smoltcp hands a SYN to the first listening socket), so the
/// stop loop must pass over them.
/// Kills: the stop loop not checking `State::Listen` (closing and freeing every
/// armed socket it meets), or marking a non-listening socket free.
#[test]
fn when_a_listeners_room_shrinks_only_idle_listening_sockets_stop_and_both_connections_are_accepted() {
    let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(4));
    let mut l = net.listen(PORT);
    // The first SYN: established, not accepted.
    let c1 = net.connect(server());
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    // The next one: caught in SYN-RECEIVED.
    let mut c2 = net.stack.socket().unwrap();
    assert_eq!(net.stack.connect(&mut c2, server()), Err(nb::Error::WouldBlock));
    let armed_in = |net: &Net<8>, state: State| {
        (0..8)
            .filter(|&i| net.stack.entries[i].role.armed_for(0) && state_of(net, i) == state)
            .collect::<Vec<_>>()
    };
    for _ in 0..MAX_POLLS {
        if !armed_in(&net, State::SynReceived).is_empty() {
            break;
        }
        net.step();
    }
    let (pending, half_open) = (
        armed_in(&net, State::Established),
        armed_in(&net, State::SynReceived),
    );
    let idle = armed_in(&net, State::Listen);
    assert_eq!((pending.len(), half_open.len()), (1, 1));
    let (pending, half_open) = (pending[0], half_open[0]);
    assert!(
        idle.len() >= 2,
        "idle listening sockets beyond the room: {idle:?}"
    );
    // Both come before every idle listening socket: the stop loop meets them first.
    assert!(
        pending < idle[0] && half_open < idle[0],
        "{pending} {half_open} {idle:?}"
    );
    net.stack.set_backlog(&mut l, 0);
    assert_eq!(
        armed_states(&net),
        (0, 1, 1),
        "only the idle listening sockets stopped"
    );
    assert_eq!(state_of(&net, pending), State::Established);
    assert_eq!(state_of(&net, half_open), State::SynReceived);
    assert!(
        net.stack.entries[pending].role.armed_for(0),
        "the pending connection is kept"
    );
    assert!(
        net.stack.entries[half_open].role.armed_for(0),
        "the handshake is kept"
    );
    // Neither socket is handed to someone else.
    let free = net.stack.counts().free;
    let fresh = take(&mut net, free);
    assert!(
        fresh
            .iter()
            .all(|s| s.index() != pending && s.index() != half_open),
        "{fresh:?}"
    );
    // Both complete and are accepted: the handshake, and the one waiting.
    net.until("c2 connected", |st| match st.connect(&mut c2, server()) {
        Ok(()) => Some(()),
        Err(nb::Error::WouldBlock) => None,
        Err(nb::Error::Other(e)) => panic!("the handshake under way was cut: {e}"),
    });
    // Room 0: the pool has none for them, so they wait; with room they are taken.
    assert_eq!(net.stack.accept(&mut l).map(|_| ()), Err(nb::Error::WouldBlock));
    net.stack.set_backlog(&mut l, 2);
    let (_, r1) = net.accept(&mut l);
    let (_, r2) = net.accept(&mut l);
    let mut got = [r1, r2];
    got.sort();
    let mut want = [c1, c2].map(|c| addr(net.stack.local_port(&c).unwrap()));
    want.sort();
    assert_eq!(got, want);
    assert_eq!(
        net.stack.counts().listening,
        0,
        "the room taken: nothing listens again"
    );
}

/// Rule 1c: closing a listener resets every connection it had not handed out —
/// the one waiting for `accept`, a real handshake under way, a half-open one that
/// will never complete — and frees every socket it had armed.
/// Kills: `close_listener` closing (FIN) instead of resetting a non-listening
/// socket (the handshake would complete and end with a FIN), or skipping half-open
/// sockets / not releasing them (they would stay armed for a dead listener).
#[test]
fn closing_a_listener_resets_every_connection_it_had_not_handed_out_half_open_ones_included() {
    let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(3));
    let l = net.listen(PORT);
    let c1 = net.connect(server());
    net.until("pending", |st| (st.counts().pending == 1).then_some(()));
    half_open_syn(&mut net, 9, 4000);
    let mut c2 = net.stack.socket().unwrap();
    assert_eq!(net.stack.connect(&mut c2, server()), Err(nb::Error::WouldBlock));
    net.until("two half-open", |st| {
        let half_open = st
            .entries
            .iter()
            .filter(|e| e.role.armed_for(0))
            .filter(|e| tcp_ref(&st.sockets, e.handle).state() == State::SynReceived)
            .count();
        (half_open == 2).then_some(())
    });
    let (_, half_open, pending) = armed_states(&net);
    assert_eq!((half_open, pending), (2, 1));
    net.stack.close(l).unwrap();
    assert!(
        net.stack.entries.iter().all(|e| !e.role.armed_for(0)),
        "every armed socket released"
    );
    let c = net.stack.counts();
    assert_eq!((c.listening, c.pending), (0, 0));
    // Each client learns its connection was reset, never a FIN.
    for c in [c1, c2] {
        let status = net.until("client told", |st| match st.peer_status(&c) {
            PeerStatus::Open => None,
            status => Some(status),
        });
        assert!(matches!(status, PeerStatus::Gone(_)), "{c}: {status:?}");
    }
    // The RSTs went out: every socket but the two clients' is free.
    net.step();
    let c = net.stack.counts();
    assert_eq!((c.closing, c.free), (0, 6), "{c:?}");
}

/// Connect `c` (a socket handle just taken) to the server, or panic with the error.
fn connect_on<const M: usize>(net: &mut Net<M>, mut c: SmolSocket, what: &str) -> SmolSocket {
    net.until(what, |st| match st.connect(&mut c, server()) {
        Ok(()) => Some(()),
        Err(nb::Error::WouldBlock) => None,
        Err(nb::Error::Other(e)) => panic!("{what}: {e}"),
    });
    c
}

/// Rule 1d (FIN-WAIT): a reclaimed FIN-WAIT-1 or FIN-WAIT-2 socket carries nothing
/// of its old connection: a connect on one and a listen on the other succeed.
/// Kills: `take_socket` not aborting a reclaimed FIN-WAIT socket (smoltcp refuses
/// `connect` and `listen` on an open socket: InvalidState).
#[test]
fn a_reclaimed_fin_wait_socket_carries_nothing_of_its_old_connection() {
    let bound = Duration::from_secs(1);
    let mut net: Net<8> = Net::with(8, None, |s| s.with_backlog(1).with_fin_wait_bound(bound));
    let mut l = net.listen(PORT);
    // FIN-WAIT-2: the server side closes, the client stays open.
    let _c1 = net.connect(server());
    let (s1, _) = net.accept(&mut l);
    let fin_wait_2 = s1.index();
    net.stack.close(s1).unwrap();
    net.until("fin-wait-2", |st| {
        in_state(st, fin_wait_2, State::FinWait2).then_some(())
    });
    // FIN-WAIT-1: the server side closes into a lost network.
    let _c2 = net.connect(server());
    let (s2, _) = net.accept(&mut l);
    let fin_wait_1 = s2.index();
    net.dev.lose = true;
    net.stack.close(s2).unwrap();
    let t = (net.now + bound + TICK).total_millis();
    step_to(&mut net, t);
    assert_eq!(state_of(&net, fin_wait_1), State::FinWait1);
    assert_eq!(state_of(&net, fin_wait_2), State::FinWait2);
    let free = net.stack.counts().free;
    let _fresh = take(&mut net, free);
    let first = net.stack.socket().unwrap();
    let second = net.stack.socket().unwrap();
    assert_eq!([first.index(), second.index()], [fin_wait_2, fin_wait_1]);
    assert_eq!(net.stack.pcb_counters().reclaimed_fin_wait, 2);
    // Listening on the FIN-WAIT-1 socket succeeds at once ...
    let mut l81 = second;
    net.stack.bind(&mut l81, 81).unwrap();
    assert_eq!(net.stack.listen(&mut l81), Ok(()));
    assert_eq!(state_of(&net, fin_wait_1), State::Listen);
    // ... and so does a connect on the FIN-WAIT-2 one.
    net.dev.lose = false;
    let c = connect_on(&mut net, first, "connect on a reclaimed FIN-WAIT-2 socket");
    assert_eq!(net.stack.remote_addr(&c), Some(server()));
    let _ = net.accept(&mut l);
}

/// Rule 1d (CLOSING): a simultaneous close whose last ACKs are lost leaves both
/// sides in CLOSING; reclaimed, one connects and the other listens.
/// Kills: `take_socket` aborting only some states (e.g. LAST-ACK) before handing a
/// reclaimed socket over.
#[test]
fn a_reclaimed_closing_socket_carries_nothing_of_its_old_connection() {
    let mut net: Net<5> = Net::with(5, None, |s| s.with_backlog(1));
    let (mut l, c, s) = net.pair();
    let (ci, si) = (c.index(), s.index());
    // Both FINs cross; the ACKs of both are lost.
    net.stack.close(c).unwrap();
    net.stack.close(s).unwrap();
    net.step();
    net.dev.lose = true;
    net.step();
    assert_eq!(
        (state_of(&net, ci), state_of(&net, si)),
        (State::Closing, State::Closing)
    );
    let free = net.stack.counts().free;
    let _fresh = take(&mut net, free);
    let first = net.stack.socket().unwrap();
    let mut second = net.stack.socket().unwrap();
    let mut taken = [first.index(), second.index()];
    taken.sort();
    let mut want = [ci, si];
    want.sort();
    assert_eq!(taken, want);
    assert_eq!(net.stack.pcb_counters().reclaimed_closing, 2);
    net.stack.bind(&mut second, 81).unwrap();
    assert_eq!(net.stack.listen(&mut second), Ok(()));
    net.dev.lose = false;
    let first = connect_on(&mut net, first, "connect on a reclaimed CLOSING socket");
    let (_, remote) = net.accept(&mut l);
    assert_eq!(Some(remote), net.stack.local_port(&first).map(addr));
}

/// Rule 1e: a listener stopped and started again through the pool has its room told
/// to the stack at the next poll, even when the number is the one told before.
/// Kills: `Core::set_listener` not forgetting the room last told (the pool would
/// think the new listener already knows it; it would keep the stack's default
/// backlog).
#[test]
fn a_listener_started_again_through_the_pool_is_told_its_room_even_if_unchanged() {
    use crate::{Config, ListenParams, Pool};

    let mut dev = Loop::default();
    let iface = Interface::new(IfaceConfig::new(HardwareAddress::Ip), &mut dev, Instant::ZERO);
    let stack: SmoltcpStack<'static, 8> = SmoltcpStack::new(iface, set(8, None)).with_accept_queue(0);
    let mut pool: Pool<SmoltcpStack<'static, 8>, 5, 1, 0> = Pool::new(stack, Config::new());
    pool.listen(PORT, ListenParams::new(5)).unwrap();
    pool.poll(crate::Instant::ZERO);
    assert_eq!(pool.stack().counts().listening, 5);
    pool.listen(PORT, ListenParams::new(0)).unwrap();
    assert_eq!(pool.listener(PORT), None, "a cap of 0 stops it");
    pool.poll(crate::Instant::from_millis(1));
    assert_eq!(pool.stack().counts().listening, 0);
    pool.listen(PORT, ListenParams::new(5)).unwrap();
    assert_eq!(
        pool.stack().counts().listening,
        DEFAULT_BACKLOG,
        "the stack's default first"
    );
    pool.poll(crate::Instant::from_millis(2));
    assert_eq!(
        pool.stack().counts().listening,
        5,
        "the same room of 5, told again to the new listener"
    );
}
