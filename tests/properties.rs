//! Random operation sequences against the pool on the scripted stack.
//!
//! Whatever the peers, the stack and the application do, in any order:
//! - no write reports more bytes than it was given;
//! - bytes reported taken are bytes the stack sends (exactly, on a native stack;
//!   up to the coalescing buffer, on a plain one);
//! - the counters agree with the snapshot;
//! - once the application closes every handle, every slot is free and every stack
//!   socket but the listeners' is back with the stack: no leak, no zombie.
//!
//! The case count comes from `PROPTEST_CASES` (CI runs 10 000).

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;

use netpool::stack::Stack;
use netpool::{
    nb, Config, ConnHandle, ConnState, Duration, ErrorClass, Instant, LinkState, ListenMode, ListenParams,
    Pool,
};
use proptest::prelude::*;
use support::*;

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
        for s in &report.slots {
            assert!(s.state != ConnState::ClosePending && s.state != ConnState::CloseReady);
        }
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
