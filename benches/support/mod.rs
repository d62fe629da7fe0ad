//! The operations the cost benchmarks measure, shared by `benches/instructions.rs`
//! (instruction counts under callgrind) and `benches/cost.rs` (wall clock, criterion).
//!
//! Every operation comes twice: through a [`Pool`] and straight on the stack ("raw"),
//! on the same scripted stack double (netpool-testkit's `scripted.rs`), so that netpool's
//! own cost is the difference (or the ratio) of two numbers measured in one run.
//!
//! A [`Scenario`] alternates an untimed [`prepare`](Scenario::prepare) (acknowledge
//! the last write, close the last accepted connection, queue a new peer, advance the
//! clock, check what the last operation returned) with the measured
//! [`op`](Scenario::op), which does exactly the operation and stores its result.
//! State that the scripted double keeps forever (its call log, per-connection wire
//! copies, connection records) is cleared or rebuilt in `prepare`, so memory stays
//! bounded however many iterations a harness asks for.

use std::hint::black_box;
use std::net::SocketAddr;

use netpool::stack::{PeerStatus, Stack};
use netpool::{nb, Accepted, Config, ConnError, ConnHandle, Instant, ListenParams, PollSummary, Pool};

use crate::scripted::{PeerId, PlainScripted, ScriptedConfig, ScriptedStack};

/// The port every scenario listens on.
pub const PORT: u16 = 80;
/// Connection slots of every pool.
pub const SLOTS: usize = 8;
/// Listener slots of every pool (one in use).
pub const LISTENERS: usize = 2;
/// Bytes of one measured write.
pub const WRITE_LEN: usize = 1024;
/// The bytes written.
pub static DATA: [u8; WRITE_LEN] = [0x5a; WRITE_LEN];

/// How often the accept and write scenarios start over on a fresh stack and pool.
///
/// The double keeps a record of every connection and a copy of every byte sent, so a
/// long run must start over now and then. Starting over before *every* operation
/// (`ops_per_stack: 1`, what the instruction counts use) gives the pool and the raw
/// scenario the same heap state each time, so the double's own amortised costs
/// (vector growth) cancel out of the difference exactly; the wall-clock benches start
/// over less often, to spend their time in the operation.
#[derive(Copy, Clone, Debug)]
pub struct Params {
    /// Operations on one stack before starting over (at least 1).
    pub ops_per_stack: u32,
}

/// A peer address on loopback (the scripted stack moves no packets; the address is
/// only data).
pub fn peer_addr(i: u32) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 40_000 + (i % 20_000) as u16))
}

/// The stack doubles: the scripted stack with every netpool extension trait native,
/// and the same stack behind [`netpool::stack::Plain`] (every fallback).
pub trait Double: Stack + Sized {
    /// Short name for tables.
    const LABEL: &'static str;
    /// A fresh stack with nothing open.
    fn build() -> Self;
    /// The scripted stack underneath (the peers' side).
    fn scripted(&mut self) -> &mut ScriptedStack;
}

fn scripted_config() -> ScriptedConfig {
    ScriptedConfig {
        pcbs: 32,
        backlog: 8,
        send_window: 16 * 1024,
        ..ScriptedConfig::default()
    }
}

impl Double for ScriptedStack {
    const LABEL: &'static str = "native";
    fn build() -> Self {
        ScriptedStack::new(scripted_config())
    }
    fn scripted(&mut self) -> &mut ScriptedStack {
        self
    }
}

impl Double for PlainScripted {
    const LABEL: &'static str = "plain";
    fn build() -> Self {
        PlainScripted::new(ScriptedStack::new(scripted_config()))
    }
    fn scripted(&mut self) -> &mut ScriptedStack {
        self.inner_mut()
    }
}

/// One measured operation with its untimed preparation.
pub trait Scenario {
    /// Set up (untimed).
    fn new(params: Params) -> Self;
    /// Untimed, before every [`op`](Self::op): check the last result, restore the state
    /// the next `op` expects.
    fn prepare(&mut self);
    /// The measured operation. Stores its result for `prepare` to check.
    fn op(&mut self);
}

const TICK: netpool::Duration = netpool::Duration::from_millis(1);

/// Empties the scripted stack's call log between repetitions so it does not grow
/// through a run. The log exists only when netpool's `std` feature compiles it in
/// (the stack's source is included into this crate, so its `cfg(feature = "std")`
/// reads netpool's features); without it there is nothing to empty.
fn forget_calls(stack: &mut ScriptedStack) {
    #[cfg(feature = "std")]
    stack.clear_calls();
    #[cfg(not(feature = "std"))]
    let _ = stack;
}

type BenchPool<S, const TX: usize> = Pool<S, SLOTS, LISTENERS, TX>;

fn listening_pool<S: Double, const TX: usize>() -> BenchPool<S, TX> {
    let mut pool = BenchPool::<S, TX>::new(S::build(), Config::new());
    pool.listen(PORT, ListenParams::new(SLOTS as u8))
        .expect("listen on the scripted stack");
    pool
}

/// Accept one queued peer through the pool (untimed helper).
fn pool_accept_one<S: Double, const TX: usize>(
    pool: &mut BenchPool<S, TX>,
    i: u32,
    now: Instant,
) -> ConnHandle {
    pool.stack_mut()
        .scripted()
        .peer_connect(PORT, peer_addr(i))
        .expect("peer connects");
    pool.poll(now);
    pool.accept_next().expect("accepted").handle
}

fn raw_listener<S: Double>(stack: &mut S) -> S::TcpSocket {
    let mut l = stack.socket().expect("socket");
    stack.bind(&mut l, PORT).expect("bind");
    stack.listen(&mut l).expect("listen");
    l
}

fn raw_accept_one<S: Double>(stack: &mut S, listener: &mut S::TcpSocket, i: u32) -> S::TcpSocket {
    stack
        .scripted()
        .peer_connect(PORT, peer_addr(i))
        .expect("peer connects");
    stack.accept(listener).expect("accepted").0
}

// ---------------------------------------------------------------------------------
// poll over 8 idle connected slots (and one listener with an empty backlog)
// ---------------------------------------------------------------------------------

/// `pool.poll(now)` with all 8 slots connected and idle, one listener, nothing queued.
pub struct PoolPoll<S: Double, const TX: usize> {
    pool: BenchPool<S, TX>,
    now: Instant,
    summary: PollSummary,
}

impl<S: Double, const TX: usize> Scenario for PoolPoll<S, TX> {
    fn new(_: Params) -> Self {
        let mut pool = listening_pool::<S, TX>();
        let mut now = Instant::ZERO;
        for i in 0..SLOTS as u32 {
            pool_accept_one(&mut pool, i, now);
            now = now + TICK;
        }
        assert_eq!(pool.free_slots(), 0);
        PoolPoll {
            pool,
            now,
            summary: PollSummary::default(),
        }
    }
    fn prepare(&mut self) {
        assert_eq!(self.summary, PollSummary::default(), "an idle poll did something");
        self.now = self.now + TICK;
        forget_calls(self.pool.stack_mut().scripted());
    }
    fn op(&mut self) {
        self.summary = self.pool.poll(black_box(self.now));
    }
}

/// The stack calls of that poll, by hand: the link state, the peer status of each of
/// the 8 sockets, one accept on the listener (would-block).
pub struct RawPoll<S: Double> {
    stack: S,
    listener: S::TcpSocket,
    socks: Vec<S::TcpSocket>,
    events: u32,
}

impl<S: Double> Scenario for RawPoll<S> {
    fn new(_: Params) -> Self {
        let mut stack = S::build();
        let mut listener = raw_listener(&mut stack);
        let socks = (0..SLOTS as u32)
            .map(|i| raw_accept_one(&mut stack, &mut listener, i))
            .collect();
        RawPoll {
            stack,
            listener,
            socks,
            events: 0,
        }
    }
    fn prepare(&mut self) {
        assert_eq!(self.events, 0, "an idle poll saw something");
        forget_calls(self.stack.scripted());
    }
    fn op(&mut self) {
        let mut events = u32::from(!self.stack.link_state().allows_connect());
        for s in &self.socks {
            if !matches!(self.stack.peer_status(s), PeerStatus::Open | PeerStatus::Unknown) {
                events += 1;
            }
        }
        if !matches!(self.stack.accept(&mut self.listener), Err(nb::Error::WouldBlock)) {
            events += 1;
        }
        self.events = events;
    }
}

// ---------------------------------------------------------------------------------
// one accept: a peer is queued; one poll accepts it, accept_next hands it out
// ---------------------------------------------------------------------------------

/// One peer waits in the backlog of an otherwise idle pool: `poll(now)` (which accepts
/// it and finds the backlog empty) and `accept_next()`.
pub struct PoolAccept<S: Double, const TX: usize> {
    pool: BenchPool<S, TX>,
    now: Instant,
    accepted: Option<Accepted>,
    n: u32,
    params: Params,
}

impl<S: Double, const TX: usize> Scenario for PoolAccept<S, TX> {
    fn new(params: Params) -> Self {
        PoolAccept {
            pool: listening_pool::<S, TX>(),
            now: Instant::ZERO,
            accepted: None,
            n: 0,
            params,
        }
    }
    fn prepare(&mut self) {
        if let Some(a) = self.accepted.take() {
            self.pool.close(a.handle, self.now).expect("close");
        } else {
            assert_eq!(self.n, 0, "the last accept returned nothing");
        }
        if self.n >= self.params.ops_per_stack {
            *self = Self::new(self.params);
        }
        self.n += 1;
        self.now = self.now + TICK;
        let s = self.pool.stack_mut().scripted();
        s.peer_connect(PORT, peer_addr(self.n)).expect("peer connects");
        forget_calls(s);
    }
    fn op(&mut self) {
        self.pool.poll(black_box(self.now));
        self.accepted = self.pool.accept_next();
    }
}

/// The same by hand: `accept` (a connection) and `accept` again (would-block: the
/// backlog is drained).
pub struct RawAccept<S: Double> {
    stack: S,
    listener: S::TcpSocket,
    accepted: Option<S::TcpSocket>,
    drained: bool,
    n: u32,
    params: Params,
}

impl<S: Double> Scenario for RawAccept<S> {
    fn new(params: Params) -> Self {
        let mut stack = S::build();
        let listener = raw_listener(&mut stack);
        RawAccept {
            stack,
            listener,
            accepted: None,
            drained: true,
            n: 0,
            params,
        }
    }
    fn prepare(&mut self) {
        assert!(self.drained, "the backlog was not drained");
        if let Some(s) = self.accepted.take() {
            self.stack.close(s).expect("close");
        } else {
            assert_eq!(self.n, 0, "the last accept returned nothing");
        }
        if self.n >= self.params.ops_per_stack {
            *self = Self::new(self.params);
        }
        self.n += 1;
        let s = self.stack.scripted();
        s.peer_connect(PORT, peer_addr(self.n)).expect("peer connects");
        forget_calls(s);
    }
    fn op(&mut self) {
        self.accepted = self.stack.accept(&mut self.listener).ok().map(|(s, _)| s);
        self.drained = matches!(self.stack.accept(&mut self.listener), Err(nb::Error::WouldBlock));
    }
}

// ---------------------------------------------------------------------------------
// one 1 KiB write with push
// ---------------------------------------------------------------------------------

/// `pool.write(h, &[0x5a; 1024], push = true, now)` on a connected, idle connection
/// whose peer has acknowledged everything sent before.
pub struct PoolWrite<S: Double, const TX: usize> {
    pool: BenchPool<S, TX>,
    now: Instant,
    handle: ConnHandle,
    peer: PeerId,
    taken: nb::Result<usize, ConnError>,
    n: u32,
    params: Params,
}

impl<S: Double, const TX: usize> Scenario for PoolWrite<S, TX> {
    fn new(params: Params) -> Self {
        let mut pool = listening_pool::<S, TX>();
        let handle = pool_accept_one(&mut pool, 0, Instant::ZERO);
        let peer = pool.stack_mut().scripted().last_peer().expect("a peer");
        PoolWrite {
            pool,
            now: Instant::ZERO,
            handle,
            peer,
            taken: Ok(WRITE_LEN),
            n: 0,
            params,
        }
    }
    fn prepare(&mut self) {
        assert_eq!(self.taken, Ok(WRITE_LEN), "the write did not take everything");
        if self.n >= self.params.ops_per_stack {
            *self = Self::new(self.params);
        }
        self.n += 1;
        self.now = self.now + TICK;
        let s = self.pool.stack_mut().scripted();
        s.peer_ack_all(self.peer);
        forget_calls(s);
    }
    fn op(&mut self) {
        self.taken = self.pool.write(self.handle, black_box(&DATA), true, self.now);
    }
}

/// The same by hand: `send_flagged(Push)`, which on a stack without a native MORE flag
/// is embedded-nal's plain `send`.
pub struct RawWrite<S: Double> {
    stack: S,
    sock: S::TcpSocket,
    peer: PeerId,
    taken: usize,
    n: u32,
    params: Params,
}

impl<S: Double> Scenario for RawWrite<S> {
    fn new(params: Params) -> Self {
        let mut stack = S::build();
        let mut listener = raw_listener(&mut stack);
        let sock = raw_accept_one(&mut stack, &mut listener, 0);
        let peer = stack.scripted().last_peer().expect("a peer");
        // The listener stays open (as in the pool scenario); dropping the handle is fine.
        RawWrite {
            stack,
            sock,
            peer,
            taken: WRITE_LEN,
            n: 0,
            params,
        }
    }
    fn prepare(&mut self) {
        assert_eq!(self.taken, WRITE_LEN, "the send did not take everything");
        if self.n >= self.params.ops_per_stack {
            *self = Self::new(self.params);
        }
        self.n += 1;
        let s = self.stack.scripted();
        s.peer_ack_all(self.peer);
        forget_calls(s);
    }
    fn op(&mut self) {
        self.taken = self
            .stack
            .send_flagged(&mut self.sock, black_box(&DATA), netpool::stack::SendFlag::Push)
            .unwrap_or(0);
    }
}

// ---------------------------------------------------------------------------------
// The catalogue
// ---------------------------------------------------------------------------------

/// Pools over the native double use no coalescing buffer; over the plain double, the
/// default 256 bytes per slot.
pub const TX_NATIVE: usize = 0;
/// See [`TX_NATIVE`].
pub const TX_PLAIN: usize = 256;

/// One row of the tables: an operation on one double, through the pool and raw.
pub struct Case {
    /// Stable identifier (`poll8/native`).
    pub id: &'static str,
    /// What is measured.
    pub what: &'static str,
    /// Stack double label.
    pub stack: &'static str,
}

/// A scenario behind a name, for the harnesses.
pub trait Visit {
    /// Called once per (case, pool scenario, raw scenario).
    fn case<P: Scenario, R: Scenario>(&mut self, case: Case);
}

/// Every case, in table order.
pub fn visit_all<V: Visit>(v: &mut V) {
    v.case::<PoolPoll<ScriptedStack, TX_NATIVE>, RawPoll<ScriptedStack>>(Case {
        id: "poll8/native",
        what: "poll, 8 idle connected slots + 1 listener",
        stack: <ScriptedStack as Double>::LABEL,
    });
    v.case::<PoolPoll<PlainScripted, TX_PLAIN>, RawPoll<PlainScripted>>(Case {
        id: "poll8/plain",
        what: "poll, 8 idle connected slots + 1 listener",
        stack: <PlainScripted as Double>::LABEL,
    });
    v.case::<PoolAccept<ScriptedStack, TX_NATIVE>, RawAccept<ScriptedStack>>(Case {
        id: "accept/native",
        what: "accept one queued peer (poll + accept_next)",
        stack: <ScriptedStack as Double>::LABEL,
    });
    v.case::<PoolAccept<PlainScripted, TX_PLAIN>, RawAccept<PlainScripted>>(Case {
        id: "accept/plain",
        what: "accept one queued peer (poll + accept_next)",
        stack: <PlainScripted as Double>::LABEL,
    });
    v.case::<PoolWrite<ScriptedStack, TX_NATIVE>, RawWrite<ScriptedStack>>(Case {
        id: "write1k/native",
        what: "write 1 KiB with push",
        stack: <ScriptedStack as Double>::LABEL,
    });
    v.case::<PoolWrite<PlainScripted, TX_PLAIN>, RawWrite<PlainScripted>>(Case {
        id: "write1k/plain",
        what: "write 1 KiB with push",
        stack: <PlainScripted as Double>::LABEL,
    });
}
