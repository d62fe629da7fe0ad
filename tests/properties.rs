//! Random operation sequences against the pool on the scripted stack.
//!
//! Whatever the peers, the stack and the application do, in any order:
//! - no write reports more bytes than it was given;
//! - bytes reported taken are bytes the stack sends (exactly, on a native stack;
//!   up to the coalescing buffer, on a plain one);
//! - the counters agree with the snapshot;
//! - once the application closes every handle, every slot is free and every stack
//!   socket but the listeners' is back with the stack: no leak, no zombie;
//! - per-port caps (random caps, changed at random, one-shot listeners, incoming
//!   connections and outgoing ones competing for slots): a poll never serves a
//!   connection on a port that is at its cap, every connection the stack hands over
//!   is either served or counted as rejected (and released at once), and the stack
//!   holds exactly the sockets of the listeners and of the slots that own one.
//!
//! The case count comes from `PROPTEST_CASES` (CI runs 10 000).

use std::collections::{BTreeMap, HashMap};
use std::net::SocketAddr;

use netpool::stack::{Plain, Stack};
use netpool::{
    nb, Config, ConnHandle, ConnState, Duration, ErrorClass, Instant, LinkState, ListenMode, ListenOutcome,
    ListenParams, Pool, RejectPolicy,
};
use netpool_testkit::accept_log::AcceptLog;
use netpool_testkit::scripted::*;
use proptest::prelude::*;

const N: usize = 4;
const PORTS: [u16; 2] = [80, 21];

const CLASSES: [ErrorClass; 12] = [
    ErrorClass::WouldBlock,
    ErrorClass::Timeout,
    ErrorClass::Reset,
    ErrorClass::Closed,
    ErrorClass::ConnectionLost,
    ErrorClass::Aborted,
    ErrorClass::Refused,
    ErrorClass::NoRoute,
    ErrorClass::OutOfResources,
    ErrorClass::AddressInUse,
    ErrorClass::InvalidInput,
    ErrorClass::Fatal,
];

#[derive(Debug, Clone)]
enum Op {
    PeerConnect { port: usize },
    PeerSend { peer: usize, len: usize },
    PeerFin { peer: usize },
    PeerReset { peer: usize },
    PeerAck { peer: usize, bytes: usize },
    SetWindow { peer: usize, bytes: usize },
    FailSend { peer: usize, class: usize },
    FailReceive { peer: usize, class: usize },
    Write { handle: usize, len: usize, push: bool },
    Read { handle: usize, len: usize },
    Close { handle: usize },
    Abort { handle: usize },
    Connect { script: usize, timeout_ms: u64 },
    Advance { ms: u64 },
    Listen { port: usize, cap: u8, one_shot: bool },
    Link { down: bool },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize).prop_map(|port| Op::PeerConnect { port }),
        3 => (any::<usize>(), 0..300usize).prop_map(|(peer, len)| Op::PeerSend { peer, len }),
        1 => any::<usize>().prop_map(|peer| Op::PeerFin { peer }),
        1 => any::<usize>().prop_map(|peer| Op::PeerReset { peer }),
        3 => (any::<usize>(), 0..3000usize).prop_map(|(peer, bytes)| Op::PeerAck { peer, bytes }),
        1 => (any::<usize>(), 0..200usize).prop_map(|(peer, bytes)| Op::SetWindow { peer, bytes }),
        1 => (any::<usize>(), 0..CLASSES.len()).prop_map(|(peer, class)| Op::FailSend { peer, class }),
        1 => (any::<usize>(), 0..CLASSES.len()).prop_map(|(peer, class)| Op::FailReceive { peer, class }),
        6 => (any::<usize>(), 0..200usize, any::<bool>()).prop_map(|(handle, len, push)| Op::Write { handle, len, push }),
        4 => (any::<usize>(), 0..300usize).prop_map(|(handle, len)| Op::Read { handle, len }),
        2 => any::<usize>().prop_map(|handle| Op::Close { handle }),
        1 => any::<usize>().prop_map(|handle| Op::Abort { handle }),
        1 => (0..4usize, 0..5000u64).prop_map(|(script, timeout_ms)| Op::Connect { script, timeout_ms }),
        5 => (0..4000u64).prop_map(|ms| Op::Advance { ms }),
        1 => (0..2usize, 0..4u8, any::<bool>()).prop_map(|(port, cap, one_shot)| Op::Listen { port, cap, one_shot }),
        1 => any::<bool>().prop_map(|down| Op::Link { down }),
    ]
}

/// The harness: a pool on a scripted stack (native or `Plain`-wrapped), and what the
/// application has seen.
struct World<S: Stack, const TX: usize> {
    pool: Pool<S, N, 2, TX>,
    now: Instant,
    /// Every handle ever issued (stale ones included: they must be harmless).
    handles: Vec<ConnHandle>,
    /// Bytes each accepted connection's writes reported taken, by peer.
    taken: HashMap<PeerId, usize>,
    peer_of: HashMap<ConnHandle, PeerId>,
    next_client: u16,
}

fn pick<T: Copy>(items: &[T], i: usize) -> Option<T> {
    (!items.is_empty()).then(|| items[i % items.len()])
}

impl<S: Stack, const TX: usize> World<S, TX> {
    fn new(stack: S) -> Self {
        let config = Config::new()
            .with_stall_grace(Duration::from_secs(5))
            .with_idle_timeout(Some(Duration::from_secs(20)))
            .with_abandoned_after(Some(Duration::from_secs(10)));
        let mut pool = Pool::new(stack, config);
        pool.listen(PORTS[0], ListenParams::new(3)).unwrap();
        World {
            pool,
            now: Instant::from_millis(0),
            handles: Vec::new(),
            taken: HashMap::new(),
            peer_of: HashMap::new(),
            next_client: 1,
        }
    }

    fn poll(&mut self, sim: impl Fn(&S) -> &ScriptedStack) {
        self.pool.poll(self.now);
        while let Some(a) = self.pool.accept_next() {
            self.handles.push(a.handle);
            let stack = sim(self.pool.stack());
            let peer = stack
                .peers()
                .into_iter()
                .find(|p| stack.remote(*p) == a.remote)
                .expect("peer");
            self.peer_of.insert(a.handle, peer);
        }
    }

    fn apply(
        &mut self,
        op: Op,
        sim: impl Fn(&S) -> &ScriptedStack,
        sim_mut: impl Fn(&mut S) -> &mut ScriptedStack,
    ) {
        let peers = sim(self.pool.stack()).peers();
        let now = self.now;
        match op {
            Op::PeerConnect { port } => {
                let from = SocketAddr::from(([127, 0, 0, 1], 10_000 + self.next_client));
                self.next_client += 1;
                let _ = sim_mut(self.pool.stack_mut()).peer_connect(PORTS[port], from);
            }
            Op::PeerSend { peer, len } => {
                if let Some(p) = pick(&peers, peer) {
                    let s = sim_mut(self.pool.stack_mut());
                    if !s.peer_fin_sent(p) {
                        s.peer_send(p, &vec![0xabu8; len]);
                    }
                }
            }
            Op::PeerFin { peer } => {
                if let Some(p) = pick(&peers, peer) {
                    let s = sim_mut(self.pool.stack_mut());
                    if !s.peer_fin_sent(p) {
                        s.peer_fin(p);
                    }
                }
            }
            Op::PeerReset { peer } => pick(&peers, peer)
                .into_iter()
                .for_each(|p| sim_mut(self.pool.stack_mut()).peer_reset(p)),
            Op::PeerAck { peer, bytes } => pick(&peers, peer)
                .into_iter()
                .for_each(|p| sim_mut(self.pool.stack_mut()).peer_ack(p, bytes)),
            Op::SetWindow { peer, bytes } => pick(&peers, peer)
                .into_iter()
                .for_each(|p| sim_mut(self.pool.stack_mut()).set_send_window(p, bytes)),
            Op::FailSend { peer, class } => pick(&peers, peer)
                .into_iter()
                .for_each(|p| sim_mut(self.pool.stack_mut()).fail_next_send(p, CLASSES[class])),
            Op::FailReceive { peer, class } => pick(&peers, peer)
                .into_iter()
                .for_each(|p| sim_mut(self.pool.stack_mut()).fail_next_receive(p, CLASSES[class])),
            Op::Write { handle, len, push } => {
                if let Some(h) = pick(&self.handles, handle) {
                    // The stream continues where the bytes taken so far end, so the
                    // peer must receive 0, 1, 2, … (mod 251) in order, each once.
                    let offset = self
                        .peer_of
                        .get(&h)
                        .and_then(|p| self.taken.get(p))
                        .copied()
                        .unwrap_or(0);
                    let data: Vec<u8> = (offset..offset + len).map(|i| (i % 251) as u8).collect();
                    let connecting = self.pool.state(h) == Ok(ConnState::Connecting);
                    match self.pool.write(h, &data, push, now) {
                        Ok(n) => {
                            assert!(n <= len, "write of {len} reported {n}");
                            assert!(n > 0 || len == 0, "Ok(0) for a non-empty write");
                            if let Some(p) = self.peer_of.get(&h) {
                                *self.taken.entry(*p).or_default() += n;
                            }
                        }
                        Err(nb::Error::WouldBlock) => {
                            assert!(len > 0 || connecting, "would-block on an empty write")
                        }
                        Err(nb::Error::Other(_)) => {}
                    }
                }
            }
            Op::Read { handle, len } => {
                if let Some(h) = pick(&self.handles, handle) {
                    let mut buf = vec![0u8; len];
                    if let Ok(n) = self.pool.read(h, &mut buf, now) {
                        assert!(n <= len);
                    }
                }
            }
            Op::Close { handle } => {
                if let Some(h) = pick(&self.handles, handle) {
                    let _ = self.pool.close(h, now);
                }
            }
            Op::Abort { handle } => {
                if let Some(h) = pick(&self.handles, handle) {
                    let _ = self.pool.abort(h, now);
                }
            }
            Op::Connect { script, timeout_ms } => {
                let script = [
                    ConnectScript::SucceedAfter(0),
                    ConnectScript::SucceedAfter(3),
                    ConnectScript::FailAfter(2, ErrorClass::Refused),
                    ConnectScript::NeverComplete,
                ][script];
                sim_mut(self.pool.stack_mut()).script_connect(script);
                let target = SocketAddr::from(([127, 0, 0, 1], 9000));
                if let Ok(h) = self
                    .pool
                    .connect(target, 9, Duration::from_millis(timeout_ms), now)
                {
                    self.handles.push(h);
                    let peer = sim(self.pool.stack())
                        .last_peer()
                        .expect("the connect made a connection");
                    self.peer_of.insert(h, peer);
                }
            }
            Op::Advance { ms } => {
                self.now = self.now + Duration::from_millis(ms);
            }
            Op::Listen { port, cap, one_shot } => {
                let mode = if one_shot {
                    ListenMode::OneShot
                } else {
                    ListenMode::Persistent
                };
                let _ = self
                    .pool
                    .listen(PORTS[port], ListenParams::new(cap).with_mode(mode));
            }
            Op::Link { down } => {
                let link = if down { LinkState::Down } else { LinkState::Up };
                sim_mut(self.pool.stack_mut()).set_link(link);
            }
        }
        self.poll(&sim);
        self.check(&sim);
    }

    fn check(&self, sim: impl Fn(&S) -> &ScriptedStack) {
        let stack = sim(self.pool.stack());
        stack.assert_consistent();
        let report = self.pool.report(self.now);
        let in_use = report.slots.iter().filter(|s| s.state != ConnState::Free).count();
        assert_eq!(report.counters.in_use as usize, in_use);
        assert!(report.counters.high_water as usize >= in_use && report.counters.high_water as usize <= N);
        assert_eq!(report.free_slots(), self.pool.free_slots());
        // Exactly-once accounting, for connections still open on the application side.
        for (h, peer) in &self.peer_of {
            let Ok(state) = self.pool.state(*h) else { continue };
            if state == ConnState::Free {
                continue;
            }
            let taken = self.taken.get(peer).copied().unwrap_or(0);
            let received = stack.peer_received(*peer);
            let sent = received.len();
            assert!(
                received.iter().enumerate().all(|(i, b)| *b == (i % 251) as u8),
                "{h}: bytes reordered, duplicated or corrupted"
            );
            let buffered = report.slots[h.slot()].buffered as usize;
            if state == ConnState::Connected {
                assert_eq!(
                    taken,
                    sent + buffered,
                    "{h}: taken {taken}, sent {sent}, buffered {buffered}"
                );
            } else {
                // Peer gone: buffered bytes are dropped with it.
                assert!(
                    sent <= taken && taken <= sent + TX,
                    "{h}: taken {taken}, sent {sent}"
                );
            }
        }
    }

    /// The application closes everything it holds; nothing may remain.
    fn quiesce(&mut self, sim: impl Fn(&S) -> &ScriptedStack) {
        for i in 0..N {
            if let Some(h) = self.pool.handle_at(i) {
                assert!(
                    self.pool.close(h, self.now).is_ok(),
                    "slot {i} could not be freed"
                );
            }
        }
        self.now = self.now + Duration::from_millis(1);
        self.pool.poll(self.now);
        // Whatever poll accepted meanwhile is closed too.
        while let Some(a) = self.pool.accept_next() {
            self.pool.close(a.handle, self.now).unwrap();
        }
        assert_eq!(self.pool.free_slots(), N, "{}", self.pool.report(self.now));
        let listeners = PORTS.iter().filter(|p| self.pool.listener(**p).is_some()).count();
        assert_eq!(
            sim(self.pool.stack()).open_sockets(),
            listeners,
            "stack sockets leaked"
        );
        sim(self.pool.stack()).assert_consistent();
    }
}

fn native(s: &ScriptedStack) -> &ScriptedStack {
    s
}
fn native_mut(s: &mut ScriptedStack) -> &mut ScriptedStack {
    s
}
fn plain(s: &PlainScripted) -> &ScriptedStack {
    s.inner()
}
fn plain_mut(s: &mut PlainScripted) -> &mut ScriptedStack {
    s.inner_mut()
}

proptest! {
    #[test]
    fn native_stack_never_leaks_lies_or_leaves_zombies(ops in prop::collection::vec(op(), 1..80)) {
        let mut w: World<ScriptedStack, 0> = World::new(ScriptedStack::default());
        for op in ops {
            w.apply(op, native, native_mut);
        }
        w.quiesce(native);
    }

    #[test]
    fn plain_stack_never_leaks_lies_or_leaves_zombies(ops in prop::collection::vec(op(), 1..80)) {
        let mut w: World<PlainScripted, 32> = World::new(PlainScripted::new(ScriptedStack::default()));
        for op in ops {
            w.apply(op, plain, plain_mut);
        }
        w.quiesce(plain);
    }
}

// -------------------------------------------------------------------------------------
// Per-port caps
// -------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
enum CapOp {
    PeerConnect {
        port: usize,
    },
    Listen {
        port: usize,
        cap: u8,
        one_shot: bool,
    },
    StopListening {
        port: usize,
    },
    Close {
        handle: usize,
    },
    Abort {
        handle: usize,
    },
    PeerFin {
        peer: usize,
    },
    PeerReset {
        peer: usize,
    },
    /// An outgoing connection: takes a slot, counts against no port.
    Connect {
        completes: bool,
    },
    Advance {
        ms: u64,
    },
}

fn cap_op() -> impl Strategy<Value = CapOp> {
    prop_oneof![
        8 => (0..2usize).prop_map(|port| CapOp::PeerConnect { port }),
        2 => (0..2usize, 0..5u8, prop::bool::weighted(0.25))
            .prop_map(|(port, cap, one_shot)| CapOp::Listen { port, cap, one_shot }),
        1 => (0..2usize).prop_map(|port| CapOp::StopListening { port }),
        3 => any::<usize>().prop_map(|handle| CapOp::Close { handle }),
        1 => any::<usize>().prop_map(|handle| CapOp::Abort { handle }),
        1 => any::<usize>().prop_map(|peer| CapOp::PeerFin { peer }),
        1 => any::<usize>().prop_map(|peer| CapOp::PeerReset { peer }),
        1 => any::<bool>().prop_map(|completes| CapOp::Connect { completes }),
        2 => (0..15_000u64).prop_map(|ms| CapOp::Advance { ms }),
    ]
}

/// What the test expects of a port's listener (kept apart from the pool's own view).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Expected {
    cap: u8,
    one_shot: bool,
}

/// A pool whose stack records every accept; the harness keeps its own books of
/// listeners and of the connections the pool served.
struct CapWorld<S: Stack> {
    pool: Pool<S, N, 2, 0>,
    log: fn(&S) -> &AcceptLog,
    log_mut: fn(&mut S) -> &mut AcceptLog,
    now: Instant,
    listeners: BTreeMap<u16, Expected>,
    /// Every connection the pool served: handle, port (from the stack), peer.
    served: Vec<(ConnHandle, u16, PeerId)>,
    outgoing: Vec<ConnHandle>,
    /// How much of the accept log has been accounted for.
    seen: usize,
    next_client: u16,
}

impl<S: Stack> CapWorld<S> {
    fn new(
        stack: S,
        log: fn(&S) -> &AcceptLog,
        log_mut: fn(&mut S) -> &mut AcceptLog,
        config: Config,
    ) -> Self {
        let mut pool = Pool::new(stack, config);
        pool.listen(PORTS[0], ListenParams::new(2)).unwrap();
        let listeners = BTreeMap::from([(
            PORTS[0],
            Expected {
                cap: 2,
                one_shot: false,
            },
        )]);
        CapWorld {
            pool,
            log,
            log_mut,
            now: Instant::from_millis(0),
            listeners,
            served: Vec::new(),
            outgoing: Vec::new(),
            seen: 0,
            next_client: 1,
        }
    }

    fn sim(&self) -> &ScriptedStack {
        (self.log)(self.pool.stack()).sim()
    }

    fn sim_mut(&mut self) -> &mut ScriptedStack {
        (self.log_mut)(self.pool.stack_mut()).sim_mut()
    }

    fn handles(&self) -> Vec<ConnHandle> {
        self.served
            .iter()
            .map(|s| s.0)
            .chain(self.outgoing.iter().copied())
            .collect()
    }

    /// Served connections on `port` whose slot is still in use.
    fn open_on(&self, port: u16) -> usize {
        self.served
            .iter()
            .filter(|(h, p, _)| *p == port && self.pool.state(*h).is_ok_and(|s| s.is_in_use()))
            .count()
    }

    fn apply(&mut self, op: CapOp) {
        let now = self.now;
        let peers = self.sim().peers();
        match op {
            CapOp::PeerConnect { port } => {
                let from = SocketAddr::from(([127, 0, 0, 1], 10_000 + self.next_client));
                self.next_client += 1;
                let _ = self.sim_mut().peer_connect(PORTS[port], from);
            }
            CapOp::Listen { port, cap, one_shot } => {
                let mode = if one_shot {
                    ListenMode::OneShot
                } else {
                    ListenMode::Persistent
                };
                let port = PORTS[port];
                match self.pool.listen(port, ListenParams::new(cap).with_mode(mode)) {
                    Ok(ListenOutcome::Started(_) | ListenOutcome::Updated(_)) => {
                        self.listeners.insert(port, Expected { cap, one_shot });
                    }
                    Ok(ListenOutcome::Stopped) => {
                        self.listeners.remove(&port);
                    }
                    Err(e) => panic!("listen on {port} failed: {e:?}"),
                }
            }
            CapOp::StopListening { port } => {
                let port = PORTS[port];
                assert_eq!(
                    self.pool.stop_listening(port),
                    self.listeners.remove(&port).is_some()
                );
            }
            CapOp::Close { handle } => {
                if let Some(h) = pick(&self.handles(), handle) {
                    let _ = self.pool.close(h, now);
                }
            }
            CapOp::Abort { handle } => {
                if let Some(h) = pick(&self.handles(), handle) {
                    let _ = self.pool.abort(h, now);
                }
            }
            CapOp::PeerFin { peer } => {
                if let Some(p) = pick(&peers, peer) {
                    self.sim_mut().peer_fin(p);
                }
            }
            CapOp::PeerReset { peer } => {
                if let Some(p) = pick(&peers, peer) {
                    self.sim_mut().peer_reset(p);
                }
            }
            CapOp::Connect { completes } => {
                let script = if completes {
                    ConnectScript::SucceedAfter(0)
                } else {
                    ConnectScript::NeverComplete
                };
                self.sim_mut().script_connect(script);
                let target = SocketAddr::from(([127, 0, 0, 1], 9000));
                if let Ok(h) = self.pool.connect(target, 9, Duration::from_secs(5), now) {
                    self.outgoing.push(h);
                }
            }
            CapOp::Advance { ms } => self.now = self.now + Duration::from_millis(ms),
        }
        self.poll_and_check();
    }

    fn poll_and_check(&mut self) {
        let before: BTreeMap<u16, (Expected, usize)> = PORTS
            .iter()
            .map(|&p| {
                let expected = self.listeners.get(&p).copied().unwrap_or(Expected {
                    cap: 0,
                    one_shot: false,
                });
                (p, (expected, self.open_on(p)))
            })
            .collect();
        let counters_before = self.pool.counters();

        let summary = self.pool.poll(self.now);
        let mut served_now: BTreeMap<u16, usize> = BTreeMap::new();
        let mut served_peers = Vec::new();
        while let Some(a) = self.pool.accept_next() {
            let sim = self.sim();
            let peer = sim
                .peers()
                .into_iter()
                .find(|p| sim.remote(*p) == a.remote)
                .expect("a served connection has a peer");
            let port = sim.local_port(peer);
            assert_eq!(a.port, port, "served on {port}, reported on {}", a.port);
            *served_now.entry(port).or_default() += 1;
            served_peers.push(peer);
            self.served.push((a.handle, port, peer));
        }

        // The cap: a poll serves a connection on a port only below its cap, and never
        // takes a port above its cap (a lowered cap leaves running connections alone).
        for (&port, &(expected, open_before)) in &before {
            let open = self.open_on(port);
            let served = served_now.get(&port).copied().unwrap_or(0);
            let cap = expected.cap as usize;
            assert!(
                open <= cap.max(open_before),
                "port {port}: {open} open, cap {cap}, {open_before} before the poll"
            );
            if served > 0 {
                assert!(
                    open <= cap,
                    "port {port}: served {served}, now {open} open over cap {cap}"
                );
            }
            if expected.one_shot && served > 0 {
                assert_eq!(served, 1, "one-shot listener on {port} served {served}");
                self.listeners.remove(&port);
            }
        }
        for &port in &PORTS {
            assert_eq!(
                self.pool.listener(port).map(|p| p.max_conns),
                self.listeners.get(&port).map(|e| e.cap),
                "listener on {port}"
            );
        }
        let report = self.pool.report(self.now);
        for l in report.listeners.iter().flatten() {
            assert_eq!(l.open as usize, self.open_on(l.port), "report of port {}", l.port);
        }

        // Every connection the stack handed over is served or counted as rejected,
        // and a rejected one is released at once.
        let log = (self.log)(self.pool.stack()).accepted();
        let handed: Vec<PeerId> = log[self.seen..].to_vec();
        self.seen = log.len();
        for p in &served_peers {
            assert!(handed.contains(p), "{p:?} served without an accept this poll");
        }
        let rejected: Vec<PeerId> = handed
            .iter()
            .copied()
            .filter(|p| !served_peers.contains(p))
            .collect();
        let c = self.pool.counters();
        assert_eq!(c.accepted - counters_before.accepted, served_peers.len() as u32);
        assert_eq!(
            c.rejected - counters_before.rejected,
            rejected.len() as u32,
            "uncounted rejection"
        );
        assert_eq!(summary.rejected as usize, rejected.len());
        assert_eq!(summary.accepted as usize, served_peers.len());
        assert_eq!(
            (c.rejected_port_cap - counters_before.rejected_port_cap)
                + (c.rejected_pool_full - counters_before.rejected_pool_full),
            c.rejected - counters_before.rejected,
            "a rejection counted without its reason"
        );
        for p in &rejected {
            assert_eq!(self.sim().sock_of(*p), None, "{p:?} rejected but its socket kept");
            assert!(!self.sim().holds_pcb(*p), "{p:?} rejected but holds a PCB");
        }

        // No leaked stack socket: the listeners' and those of slots that own one.
        let with_socket = report
            .slots
            .iter()
            .filter(|s| {
                matches!(
                    s.state,
                    ConnState::Connecting | ConnState::Connected | ConnState::OtherEndClosed
                )
            })
            .count();
        assert_eq!(
            self.sim().open_sockets(),
            self.listeners.len() + with_socket,
            "stack sockets out of step with the pool\n{report}"
        );
        self.sim().assert_consistent();
    }

    fn quiesce(&mut self) {
        for i in 0..N {
            if let Some(h) = self.pool.handle_at(i) {
                self.pool.close(h, self.now).unwrap();
            }
        }
        // Nothing new arrives: the backlogs are drained (served connections closed).
        for _ in 0..4 {
            self.now = self.now + Duration::from_millis(1);
            self.poll_and_check();
            for (h, _, _) in self.served.clone() {
                let _ = self.pool.close(h, self.now);
            }
        }
        assert_eq!(self.pool.free_slots(), N);
        assert_eq!(
            self.sim().open_sockets(),
            self.listeners.len(),
            "stack sockets leaked"
        );
        let c = self.pool.counters();
        let log = (self.log)(self.pool.stack()).accepted().len();
        assert_eq!(c.accepted as usize, self.served.len());
        assert_eq!((c.accepted + c.rejected) as usize, log);
    }
}

fn cap_config() -> impl Strategy<Value = Config> {
    (1..6u8, any::<bool>()).prop_map(|(accepts, abort)| {
        let reject = if abort {
            RejectPolicy::Abort
        } else {
            RejectPolicy::Close
        };
        Config::new()
            .with_accepts_per_poll(accepts)
            .with_abandoned_after(Some(Duration::from_secs(10)))
            .with_reject(reject)
    })
}

fn logged(s: &AcceptLog) -> &AcceptLog {
    s
}
fn logged_mut(s: &mut AcceptLog) -> &mut AcceptLog {
    s
}
fn plain_logged(s: &Plain<AcceptLog>) -> &AcceptLog {
    s.inner()
}
fn plain_logged_mut(s: &mut Plain<AcceptLog>) -> &mut AcceptLog {
    s.inner_mut()
}

proptest! {
    #[test]
    fn port_caps_hold_and_every_rejection_is_counted_and_released(
        config in cap_config(),
        ops in prop::collection::vec(cap_op(), 1..80),
    ) {
        let mut w = CapWorld::new(AcceptLog::new(ScriptedStack::default()), logged, logged_mut, config);
        for op in ops {
            w.apply(op);
        }
        w.quiesce();
    }

    #[test]
    fn port_caps_hold_on_a_plain_stack(
        config in cap_config(),
        ops in prop::collection::vec(cap_op(), 1..80),
    ) {
        let stack = Plain::new(AcceptLog::new(ScriptedStack::default()));
        let mut w = CapWorld::new(stack, plain_logged, plain_logged_mut, config);
        for op in ops {
            w.apply(op);
        }
        w.quiesce();
    }
}
