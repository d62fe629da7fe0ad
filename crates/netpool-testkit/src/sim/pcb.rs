//! A PCB-limited stack: the smoltcp backend with lwIP's behaviour when its pool of
//! TCP PCBs (`MEMP_NUM_TCP_PCB`) runs out, built on the backend's public API only.
//!
//! The backend's fixed socket set is the PCB pool: every listening slot, connection,
//! not-yet-accepted connection and closing connection (FIN-WAIT … TIME-WAIT) holds
//! one. The backend itself reclaims closing sockets when one is needed
//! ([`Reclaim`]); the policy picks how, and adds lwIP 1.4's last resort:
//!
//! | policy | backend [`Reclaim`] | when nothing can be reclaimed |
//! |---|---|---|
//! | [`Refuse`](Exhaustion::Refuse) | [`Never`](Reclaim::Never): TIME-WAIT holds its PCB for its whole 10 s | the socket call fails, SYNs are refused |
//! | [`Lwip2`](Exhaustion::Lwip2) | [`Closing`](Reclaim::Closing): lwIP 2.x `tcp_alloc` (TIME-WAIT, LAST-ACK, CLOSING, FIN-WAIT past a bound) | refused: lwIP 2 kills only *lower* priority connections, and all are equal here |
//! | [`Lwip14`](Exhaustion::Lwip14) | [`TimeWait`](Reclaim::TimeWait) | `tcp_kill_prio`: kill the application's connection with the longest inactivity — the behaviour the incident's killed upload was blamed on (also in the lwIP of ESP8266 RTOS SDK release/v3.2–v3.3; the incident's SDK lwIP, esp-lwip `4fd84ab`, kills only lower priorities like lwIP 2) |
//!
//! Unlike lwIP, a listener here keeps the fixed backlog it was built with: the wrapper
//! ignores the pool's [`TcpBacklog::set_backlog`] (lwIP's listen backlog does not
//! follow the application either).
//!
//! Inactivity is measured as lwIP does (`tcp_ticks - pcb->tmr`, reset by every segment
//! the connection processes): a socket's state or queues changing counts as activity.
//! The wrapper sees every call, so it knows the application's handle of each socket; a
//! killed connection is aborted through that handle, and the wrapper answers every
//! later call on it with [`PcbError::Killed`]. A connection still in a listener's
//! backlog has no handle, so it is never the victim (lwIP could pick it; the pool
//! accepts every poll, so such a connection is never the longest inactive).

use core::fmt;
use core::net::SocketAddr;
use std::vec::Vec;

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use netpool::stack::smoltcp::{Reclaim, SmolError, SmolSocket, SmoltcpStack};
use netpool::stack::LinkStatus;
use netpool::stack::{
    PcbCounters, PcbDiagnostics, PeerStatus, SendFlag, TcpAbort, TcpBacklog, TcpPeerStatus, TcpPush,
    TcpSendFlags, TcpSendQueue,
};
use netpool::LinkState;
use netpool::{Classify, ErrorClass};
use smoltcp::phy::Device;
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant as SmolInstant;

/// What happens when a PCB is needed and none is free.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Exhaustion {
    /// Refuse the newcomer; TIME-WAIT holds its PCB.
    Refuse,
    /// lwIP 2.x: reclaim closing PCBs, never a live one of equal priority.
    Lwip2,
    /// lwIP 1.4: reclaim TIME-WAIT, else kill the longest-inactive connection.
    Lwip14,
}

impl Exhaustion {
    /// The policy's name as the benchmark prints it.
    pub const fn name(self) -> &'static str {
        match self {
            Exhaustion::Refuse => "refuse",
            Exhaustion::Lwip2 => "lwip2",
            Exhaustion::Lwip14 => "lwip14",
        }
    }

    /// What the backend may reclaim under this policy.
    pub const fn reclaim(self) -> Reclaim {
        match self {
            Exhaustion::Refuse => Reclaim::Never,
            Exhaustion::Lwip2 => Reclaim::Closing,
            Exhaustion::Lwip14 => Reclaim::TimeWait,
        }
    }
}

/// What the allocator did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PcbStats {
    /// Closing PCBs the backend reclaimed (all states).
    pub reclaimed: u64,
    /// Live connections killed (held by the application).
    pub killed_live: u64,
    /// Polls that left a listener with no PCB listening and nothing to reclaim or kill.
    pub starved: u64,
}

/// Why a [`PcbLimited`] operation failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PcbError {
    /// The smoltcp backend's error.
    Stack(SmolError),
    /// The connection was killed to reclaim its PCB (lwIP's `tcp_kill_*`); every later
    /// call on its handle says so. Class [`Aborted`](ErrorClass::Aborted).
    Killed,
}

impl From<SmolError> for PcbError {
    fn from(e: SmolError) -> Self {
        PcbError::Stack(e)
    }
}

impl fmt::Display for PcbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PcbError::Stack(e) => e.fmt(f),
            PcbError::Killed => f.write_str("connection killed to reclaim its PCB"),
        }
    }
}

impl std::error::Error for PcbError {}

/// The backend's kind; a killed connection is [`TcpErrorKind::PipeClosed`].
impl TcpError for PcbError {
    fn kind(&self) -> TcpErrorKind {
        match self {
            PcbError::Stack(e) => e.kind(),
            PcbError::Killed => TcpErrorKind::PipeClosed,
        }
    }
}

/// The backend's class; a killed connection is [`Aborted`](ErrorClass::Aborted).
impl Classify for PcbError {
    fn class(&self) -> ErrorClass {
        match self {
            PcbError::Stack(e) => e.class(),
            PcbError::Killed => ErrorClass::Aborted,
        }
    }
}

/// What lwIP's inactivity timer would say of a connection: its state and queues, and
/// since when they have not changed.
#[derive(Copy, Clone, Debug)]
struct Seen {
    print: (State, usize, usize),
    since: SmolInstant,
}

/// [`SmoltcpStack`] with a PCB exhaustion policy; a netpool [`Stack`](netpool::stack::Stack).
pub struct PcbLimited<'a, const M: usize> {
    inner: SmoltcpStack<'a, M>,
    policy: Exhaustion,
    killed_live: u64,
    starved: u64,
    /// The application's handle of each socket, from `socket` or `accept`, until it
    /// gives it back (or it becomes a listener's), with its activity.
    held: Vec<Option<(SmolSocket, Option<Seen>)>>,
    /// The generation of the last handle of each socket whose connection was killed.
    killed: Vec<Option<u32>>,
}

impl<'a, const M: usize> PcbLimited<'a, M> {
    /// Wrap a stack; its sockets are the PCB pool. The stack's reclaim setting is
    /// replaced by the policy's.
    pub fn new(inner: SmoltcpStack<'a, M>, policy: Exhaustion) -> Self {
        let n = inner.capacity();
        PcbLimited {
            inner: inner.with_reclaim(policy.reclaim()),
            policy,
            killed_live: 0,
            starved: 0,
            held: vec![None; n],
            killed: vec![None; n],
        }
    }

    /// The wrapped stack.
    pub fn inner(&self) -> &SmoltcpStack<'a, M> {
        &self.inner
    }

    /// The wrapped stack, mutably. Drive it through [`poll`](Self::poll), not through
    /// this: the wrapper notes activity after each poll.
    pub fn inner_mut(&mut self) -> &mut SmoltcpStack<'a, M> {
        &mut self.inner
    }

    /// The policy.
    pub fn policy(&self) -> Exhaustion {
        self.policy
    }

    /// What the allocator did so far.
    pub fn stats(&self) -> PcbStats {
        PcbStats {
            reclaimed: u64::from(self.inner.pcb_counters().reclaimed()),
            killed_live: self.killed_live,
            starved: self.starved,
        }
    }

    /// Poll the stack at `now` (it reclaims closing PCBs to keep listeners armed), note
    /// which connections were active, and, when a listener is left with no PCB
    /// listening, apply lwIP 1.4's last resort: kill one connection, send its RST and
    /// re-arm the listener in the same step (as lwIP's `tcp_alloc` does on a SYN).
    pub fn poll<D: Device>(&mut self, now: SmolInstant, device: &mut D) {
        self.inner.poll(now, device);
        self.note_activity(now);
        let c = self.inner.counts();
        let has_listener = c.listening + c.pending > 0;
        if has_listener && c.listening == 0 && c.free == 0 {
            if self.kill_oldest() {
                self.inner.poll(now, device);
                self.inner.poll(now, device);
            } else {
                self.starved += 1;
            }
        }
    }

    /// When the stack next needs [`poll`](Self::poll).
    pub fn poll_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.inner.poll_at(now)
    }

    fn note_activity(&mut self, now: SmolInstant) {
        for i in 0..self.held.len() {
            let Some((h, seen)) = self.held[i] else {
                continue;
            };
            let print = (
                self.inner.tcp_state(&h).unwrap_or(State::Closed),
                self.inner.recv_queue(&h).unwrap_or(0),
                self.inner.send_queue(&h).unwrap_or(0),
            );
            if seen.is_none_or(|s| s.print != print) {
                self.held[i] = Some((h, Some(Seen { print, since: now })));
            }
        }
    }

    /// lwIP 1.4's `tcp_kill_prio` (all connections of equal priority): RST the
    /// application's connection with the longest inactivity; its socket is reusable
    /// once the RST is out (next poll), and its handle reports [`PcbError::Killed`].
    /// Only under [`Exhaustion::Lwip14`]; returns whether one was killed.
    fn kill_oldest(&mut self) -> bool {
        if self.policy != Exhaustion::Lwip14 {
            return false;
        }
        let victim = self
            .held
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                let (h, seen) = (*h)?;
                // Connecting or connected: the backend names a remote only then.
                self.inner.remote_addr(&h)?;
                Some((seen.map_or(SmolInstant::ZERO, |s| s.since), i, h))
            })
            .min_by_key(|(since, i, _)| (*since, *i));
        let Some((_, i, h)) = victim else {
            return false;
        };
        // A connecting or connected handle: its abort cannot fail.
        let _ = self.inner.abort(h);
        self.held[i] = None;
        self.killed[i] = Some(h.generation());
        self.killed_live += 1;
        true
    }

    /// `Err(Killed)` for the handle of a killed connection.
    fn alive(&self, s: &SmolSocket) -> Result<(), PcbError> {
        let killed = !s.is_listener()
            && self
                .killed
                .get(s.index())
                .is_some_and(|k| *k == Some(s.generation()));
        if killed {
            Err(PcbError::Killed)
        } else {
            Ok(())
        }
    }

    /// The application holds `s` from now on.
    fn hand_out(&mut self, s: SmolSocket) -> SmolSocket {
        if let Some(held) = self.held.get_mut(s.index()) {
            *held = Some((s, None));
        }
        s
    }

    /// The application gave `s` back (close, abort, or listen made it a listener's).
    fn given_back(&mut self, s: &SmolSocket) {
        if let Some(held) = self.held.get_mut(s.index()) {
            if held.is_some_and(|(h, _)| h == *s) {
                *held = None;
            }
        }
    }
}

fn nb_err(e: nb::Error<SmolError>) -> nb::Error<PcbError> {
    e.map(PcbError::Stack)
}

impl<const M: usize> TcpClientStack for PcbLimited<'_, M> {
    type TcpSocket = SmolSocket;
    type Error = PcbError;

    fn socket(&mut self) -> Result<SmolSocket, PcbError> {
        // The backend reclaims what the policy allows; lwIP 1.4 then kills. A killed
        // socket is reusable once its RST is out, at the next poll: until then the
        // caller retries, as after ERR_MEM.
        let s = match self.inner.socket() {
            Err(SmolError::NoSocket) => {
                self.kill_oldest();
                self.inner.socket()
            }
            other => other,
        }?;
        Ok(self.hand_out(s))
    }
    fn connect(&mut self, s: &mut SmolSocket, remote: SocketAddr) -> nb::Result<(), PcbError> {
        self.alive(s)?;
        self.inner.connect(s, remote).map_err(nb_err)
    }
    fn send(&mut self, s: &mut SmolSocket, buf: &[u8]) -> nb::Result<usize, PcbError> {
        self.alive(s)?;
        self.inner.send(s, buf).map_err(nb_err)
    }
    fn receive(&mut self, s: &mut SmolSocket, buf: &mut [u8]) -> nb::Result<usize, PcbError> {
        self.alive(s)?;
        self.inner.receive(s, buf).map_err(nb_err)
    }
    fn close(&mut self, s: SmolSocket) -> Result<(), PcbError> {
        self.alive(&s)?;
        self.inner.close(s)?;
        self.given_back(&s);
        Ok(())
    }
}

impl<const M: usize> TcpFullStack for PcbLimited<'_, M> {
    fn bind(&mut self, s: &mut SmolSocket, port: u16) -> Result<(), PcbError> {
        self.alive(s)?;
        Ok(self.inner.bind(s, port)?)
    }
    fn listen(&mut self, s: &mut SmolSocket) -> Result<(), PcbError> {
        self.alive(s)?;
        let socket = *s;
        self.inner.listen(s)?;
        if !socket.is_listener() {
            // The socket is the listener's now; the application holds the listener.
            self.given_back(&socket);
        }
        Ok(())
    }
    fn accept(&mut self, s: &mut SmolSocket) -> nb::Result<(SmolSocket, SocketAddr), PcbError> {
        let (c, remote) = self.inner.accept(s).map_err(nb_err)?;
        Ok((self.hand_out(c), remote))
    }
}

impl<const M: usize> TcpAbort for PcbLimited<'_, M> {
    const NATIVE_ABORT: bool = true;
    fn abort(&mut self, s: SmolSocket) -> Result<(), PcbError> {
        self.alive(&s)?;
        self.inner.abort(s)?;
        self.given_back(&s);
        Ok(())
    }
}

impl<const M: usize> TcpSendFlags for PcbLimited<'_, M> {
    fn send_flagged(
        &mut self,
        s: &mut SmolSocket,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, PcbError> {
        self.alive(s)?;
        self.inner.send_flagged(s, data, flag).map_err(nb_err)
    }
}

impl<const M: usize> TcpPush for PcbLimited<'_, M> {}

impl<const M: usize> TcpSendQueue for PcbLimited<'_, M> {
    fn send_queue(&mut self, s: &SmolSocket) -> Option<usize> {
        self.inner.send_queue(s)
    }
}

impl<const M: usize> TcpPeerStatus for PcbLimited<'_, M> {
    fn peer_status(&mut self, s: &SmolSocket) -> PeerStatus {
        self.inner.peer_status(s)
    }
}

/// lwIP's listen backlog does not follow the application: the pool's number is ignored
/// and the backend keeps the backlog it was built with.
impl<const M: usize> TcpBacklog for PcbLimited<'_, M> {}

/// The backend's counters.
impl<const M: usize> PcbDiagnostics for PcbLimited<'_, M> {
    fn pcb_counters(&self) -> PcbCounters {
        self.inner.pcb_counters()
    }
}

impl<const M: usize> LinkStatus for PcbLimited<'_, M> {
    fn link_state(&self) -> LinkState {
        self.inner.link_state()
    }
}
