//! Putting a simulation together: the server host, the participant trait, and the
//! virtual-time driver.

use std::vec;

use smoltcp::iface::{Config as IfaceConfig, Interface, SocketSet};
use smoltcp::socket::tcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr, Ipv4Address};

use super::fabric::{Fabric, SimDevice};
use super::pcb::{Exhaustion, PcbLimited};
use super::peers::{HalfOpen, Poller, Storm, SynFlood, Uploader};
use super::server::{ClosePolicy, StatusServer};
use super::{next_event, to_netpool};
use netpool::stack::smoltcp::SmoltcpStack;
use netpool::stack::Stack;
use netpool::Config;
use netpool::ListenParams;
use netpool::Pool;

/// Anything the driver advances: a host with its application.
pub trait Participant {
    /// Advance to `now`: run the host's stack and its application.
    fn step(&mut self, now: SmolInstant);
    /// When it next needs a step (besides packets arriving).
    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant>;
}

/// The server host's TCP buffers per socket (the ESP8266's lwIP: `TCP_SND_BUF` and
/// `TCP_WND` of 7300 bytes).
pub const SERVER_SOCKET_BUFFER: usize = 7300;

/// The smoltcp backend as the ESP32-C3 bridge image ships it (reclaim on demand,
/// listeners sized by the pool, an accept queue 8 deep), with `M` sockets of
/// [`SERVER_SOCKET_BUFFER`] bytes each way, on `fabric` at `ip`.
pub fn smoltcp_stack<const M: usize>(
    fabric: &Fabric,
    ip: Ipv4Address,
    seed: u64,
) -> (SmoltcpStack<'static, M>, SimDevice) {
    let mut device = fabric.attach(ip);
    let mut config = IfaceConfig::new(HardwareAddress::Ip);
    config.random_seed = seed;
    let mut iface = Interface::new(config, &mut device, SmolInstant::ZERO);
    iface.update_ip_addrs(|addrs| {
        let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(ip), 24));
    });
    let mut sockets = SocketSet::new(vec![]);
    for _ in 0..M {
        sockets.add(tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0u8; SERVER_SOCKET_BUFFER]),
            tcp::SocketBuffer::new(vec![0u8; SERVER_SOCKET_BUFFER]),
        ));
    }
    let stack = SmoltcpStack::<M>::new(iface, sockets)
        .with_port_seed(seed as u32)
        .with_accept_queue(8);
    (stack, device)
}

/// An lwIP-like server stack of `M` PCBs on `fabric` at `ip`: the smoltcp backend
/// under the PCB `policy`, with a fixed listen backlog of `backlog` sockets per port.
pub fn server_stack<const M: usize>(
    fabric: &Fabric,
    ip: Ipv4Address,
    seed: u64,
    backlog: usize,
    policy: Exhaustion,
) -> (PcbLimited<'static, M>, SimDevice) {
    let (stack, device) = smoltcp_stack::<M>(fabric, ip, seed);
    (PcbLimited::new(stack.with_backlog(backlog), policy), device)
}

/// A server stack the simulation drives: a netpool [`Stack`] polled like smoltcp.
pub trait SimStack: Stack {
    /// Poll the stack's interface at `now`.
    fn drive(&mut self, now: SmolInstant, device: &mut SimDevice);
    /// When the stack next needs [`drive`](Self::drive) (besides packets arriving).
    fn next_poll(&mut self, now: SmolInstant) -> Option<SmolInstant>;
    /// Live connections the stack killed on its own (lwIP 1.4's `tcp_kill_prio`).
    fn killed_live(&self) -> u64 {
        0
    }
}

impl<const M: usize> SimStack for SmoltcpStack<'static, M> {
    fn drive(&mut self, now: SmolInstant, device: &mut SimDevice) {
        self.poll(now, device);
    }
    fn next_poll(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.poll_at(now)
    }
}

impl<const M: usize> SimStack for PcbLimited<'static, M> {
    fn drive(&mut self, now: SmolInstant, device: &mut SimDevice) {
        self.poll(now, device);
    }
    fn next_poll(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.poll_at(now)
    }
    fn killed_live(&self) -> u64 {
        self.stats().killed_live
    }
}

/// The server: a netpool pool of `N` slots over a server stack (by default the
/// PCB-limited smoltcp stack of `M` sockets), running the [`StatusServer`] application
/// on one port.
pub struct SimServer<const M: usize, const N: usize, S: SimStack = PcbLimited<'static, M>> {
    /// The pool (and through it the stack).
    pub pool: Pool<S, N, 1, 256>,
    /// The application.
    pub app: StatusServer,
    device: SimDevice,
}

impl<const M: usize, const N: usize> SimServer<M, N> {
    /// A server at `ip` listening on `port` with at most `max_conns` connections, on
    /// an lwIP-like stack ([`server_stack`]).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        fabric: &Fabric,
        ip: Ipv4Address,
        port: u16,
        max_conns: u8,
        seed: u64,
        backlog: usize,
        exhaustion: Exhaustion,
        policy: ClosePolicy,
        config: Config,
    ) -> Self {
        let (stack, device) = server_stack::<M>(fabric, ip, seed, backlog, exhaustion);
        SimServer::with_stack(stack, device, port, max_conns, policy, config)
    }
}

impl<const M: usize, const N: usize> SimServer<M, N, SmoltcpStack<'static, M>> {
    /// A server at `ip` listening on `port` with at most `max_conns` connections, on
    /// the smoltcp backend as shipped ([`smoltcp_stack`]).
    pub fn shipped(
        fabric: &Fabric,
        ip: Ipv4Address,
        port: u16,
        max_conns: u8,
        seed: u64,
        policy: ClosePolicy,
        config: Config,
    ) -> Self {
        let (stack, device) = smoltcp_stack::<M>(fabric, ip, seed);
        SimServer::with_stack(stack, device, port, max_conns, policy, config)
    }
}

impl<const M: usize, const N: usize, S: SimStack> SimServer<M, N, S> {
    /// A server on `stack` (attached through `device`) listening on `port` with at
    /// most `max_conns` connections.
    pub fn with_stack(
        stack: S,
        device: SimDevice,
        port: u16,
        max_conns: u8,
        policy: ClosePolicy,
        config: Config,
    ) -> Self {
        let mut pool = Pool::new(stack, config);
        // A listener on a fresh stack cannot fail: sockets and listener slots are free.
        let _ = pool.listen(port, ListenParams::new(max_conns));
        SimServer {
            pool,
            app: StatusServer::new(policy, N),
            device,
        }
    }
}

impl<const M: usize, const N: usize, S: SimStack> Participant for SimServer<M, N, S> {
    fn step(&mut self, now: SmolInstant) {
        self.pool.stack_mut().drive(now, &mut self.device);
        self.app.step(&mut self.pool, to_netpool(now));
        self.pool.stack_mut().drive(now, &mut self.device);
    }

    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        let pool = self
            .pool
            .poll_at()
            .map(|t| SmolInstant::from_millis(t.as_millis() as i64));
        [self.pool.stack_mut().next_poll(now), pool]
            .into_iter()
            .flatten()
            .min()
    }
}

impl Participant for Poller {
    fn step(&mut self, now: SmolInstant) {
        Poller::step(self, now)
    }
    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        Poller::wake_at(self, now)
    }
}

impl Participant for Uploader {
    fn step(&mut self, now: SmolInstant) {
        Uploader::step(self, now)
    }
    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        Uploader::wake_at(self, now)
    }
}

impl Participant for HalfOpen {
    fn step(&mut self, now: SmolInstant) {
        HalfOpen::step(self, now)
    }
    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        HalfOpen::wake_at(self, now)
    }
}

impl Participant for SynFlood {
    fn step(&mut self, now: SmolInstant) {
        SynFlood::step(self, now)
    }
    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        SynFlood::wake_at(self, now)
    }
}

impl Participant for Storm {
    fn step(&mut self, now: SmolInstant) {
        Storm::step(self, now)
    }
    fn wake_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        Storm::wake_at(self, now)
    }
}

/// Advance every participant from `from` to `until` in virtual time, jumping from
/// event to event (at most `max_step_ms` at a time, at least 1 ms). Returns the time
/// reached. Bounded: at most `(until - from)` in 1 ms steps.
pub fn run(
    fabric: &Fabric,
    participants: &mut [&mut dyn Participant],
    from: SmolInstant,
    until: SmolInstant,
    max_step_ms: i64,
) -> SmolInstant {
    let mut now = from;
    while now < until {
        for p in participants.iter_mut() {
            p.step(now);
        }
        let wakes: std::vec::Vec<_> = participants
            .iter_mut()
            .map(|p| p.wake_at(now))
            .chain([fabric.next_delivery()])
            .collect();
        let mut next = next_event(now, wakes, max_step_ms);
        if next <= now {
            next = now + smoltcp::time::Duration::from_millis(1);
        }
        now = next.min(until);
    }
    for p in participants.iter_mut() {
        p.step(now);
    }
    now
}
