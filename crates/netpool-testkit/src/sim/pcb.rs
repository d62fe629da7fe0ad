//! A PCB-limited stack: the smoltcp backend with lwIP's behaviour when its pool of
//! TCP PCBs (`MEMP_NUM_TCP_PCB`) runs out.
//!
//! The backend's fixed socket set is the PCB pool: every listening slot, connection,
//! not-yet-accepted connection and closing connection (FIN-WAIT … TIME-WAIT) holds
//! one. A PCB is *needed* when the application asks for a socket with none free, or
//! when a listener has no socket left to take the next SYN and none is free. Then the
//! policy decides, in lwIP's order:
//!
//! | policy | on need |
//! |---|---|
//! | [`Refuse`](Exhaustion::Refuse) | nothing: the socket call fails, SYNs are refused; TIME-WAIT holds its PCB for its whole 10 s |
//! | [`Lwip2`](Exhaustion::Lwip2) | lwIP 2.x `tcp_alloc`: reclaim the oldest TIME-WAIT, then LAST-ACK, then CLOSING PCB; kill only *lower* priority connections — all are equal here, so no live connection dies |
//! | [`Lwip14`](Exhaustion::Lwip14) | lwIP 1.4 `tcp_alloc`: reclaim the oldest TIME-WAIT PCB, else `tcp_kill_prio`: kill the connection of the *same* priority with the longest inactivity — the behaviour that killed the upload in the incident |
//!
//! Inactivity is measured as lwIP does (`tcp_ticks - pcb->tmr`, reset by every segment
//! the connection processes): a socket's state or queues changing counts as activity.
//!
//! # On the backend's public API
//!
//! The wrapper sees every call, so it knows who holds each socket: the application
//! (a live handle from `socket` or `accept`, connecting or connected), nobody because
//! the application gave it back and smoltcp is still closing it, or a listener's
//! backlog (anything else not LISTEN or CLOSED). States and queues it reads from the
//! backend's read-only socket set. A killed application connection is aborted through
//! its own handle, and the wrapper answers every later call on that handle with
//! [`PcbError::Killed`]. Only a backlog or closing connection has no handle to abort it
//! by: for those it uses the one backend hook netpool keeps behind its dev-only
//! `testkit-hooks` feature, `SmoltcpStack::abort_unowned`.

use core::fmt;
use core::net::SocketAddr;
use std::vec::Vec;

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use netpool::link::{LinkState, LinkStatus};
use netpool::stack::smoltcp::{SmolError, SmolSocket, SmoltcpStack};
use netpool::stack::{PeerStatus, SendFlag, TcpAbort, TcpPeerStatus, TcpPush, TcpSendFlags, TcpSendQueue};
use netpool::{Classify, ErrorClass};
use smoltcp::iface::SocketHandle;
use smoltcp::phy::Device;
use smoltcp::socket::tcp::{self, State};
use smoltcp::socket::AnySocket;
use smoltcp::time::Instant as SmolInstant;

/// What happens when a PCB is needed and none is free.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum Exhaustion {
    /// Refuse the newcomer; TIME-WAIT holds its PCB.
    Refuse,
    /// lwIP 2.x: reclaim closing PCBs (TIME-WAIT, LAST-ACK, CLOSING), never a live one
    /// of equal priority.
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
}

/// What the allocator did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct PcbStats {
    /// Times a PCB was needed for a newcomer with none free.
    pub exhausted: u64,
    /// Closing PCBs reclaimed (TIME-WAIT, LAST-ACK, CLOSING).
    pub reclaimed: u64,
    /// Live connections killed (held by the application).
    pub killed_live: u64,
    /// Connections killed in a listener's backlog.
    pub killed_backlog: u64,
    /// Newcomers that found nothing to reclaim or kill.
    pub refused: u64,
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

/// Who holds a socket's connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Owner {
    /// Connecting or connected, held by the application.
    Application,
    /// Established or being established on a listener, not yet accepted.
    Backlog,
    /// Given back by the application; smoltcp is finishing the close.
    Closing,
}

/// One connection-holding socket: what an lwIP-style PCB allocator considers.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
struct Pcb {
    /// The backend's socket index.
    index: usize,
    state: State,
    owner: Owner,
    rx_queue: usize,
    tx_queue: usize,
}

#[derive(Copy, Clone, Debug)]
struct Seen {
    print: (State, usize, usize),
    since: SmolInstant,
}

/// [`SmoltcpStack`] with a PCB exhaustion policy; a netpool [`Stack`](netpool::stack::Stack).
pub struct PcbLimited<'a, const M: usize> {
    inner: SmoltcpStack<'a, M>,
    policy: Exhaustion,
    seen: Vec<Option<Seen>>,
    stats: PcbStats,
    /// The smoltcp handles of the backend's sockets, by socket index (adoption order:
    /// the first `capacity()` TCP sockets of the set).
    handles: Vec<SocketHandle>,
    /// The application's handle of each socket, from `socket` or `accept`, until it
    /// gives it back (or it becomes a listener's).
    held: Vec<Option<SmolSocket>>,
    /// Given back by the application and not yet seen CLOSED or LISTEN since.
    closing: Vec<bool>,
    /// The generation of the last handle of each socket whose connection was killed.
    killed: Vec<Option<u32>>,
}

impl<'a, const M: usize> PcbLimited<'a, M> {
    /// Wrap a stack; its `M` sockets are the PCB pool.
    pub fn new(inner: SmoltcpStack<'a, M>, policy: Exhaustion) -> Self {
        let handles: Vec<SocketHandle> = inner
            .sockets()
            .iter()
            .filter(|(_, s)| tcp::Socket::downcast(s).is_some())
            .map(|(h, _)| h)
            .take(inner.capacity())
            .collect();
        let n = handles.len();
        let mut limited = PcbLimited {
            inner,
            policy,
            seen: (0..M).map(|_| None).collect(),
            stats: PcbStats::default(),
            handles,
            held: vec![None; n],
            // The backend closes every adopted socket that still had a connection.
            closing: vec![true; n],
            killed: vec![None; n],
        };
        limited.track();
        limited
    }

    /// The wrapped stack.
    pub fn inner(&self) -> &SmoltcpStack<'a, M> {
        &self.inner
    }

    /// The wrapped stack, mutably. Drive it through [`poll`](Self::poll), not through
    /// this: the wrapper notes activity and closing sockets after each poll.
    pub fn inner_mut(&mut self) -> &mut SmoltcpStack<'a, M> {
        &mut self.inner
    }

    /// The policy.
    pub fn policy(&self) -> Exhaustion {
        self.policy
    }

    /// What the allocator did so far.
    pub fn stats(&self) -> PcbStats {
        self.stats
    }

    /// Poll the stack at `now`, note which connections were active, and keep the
    /// listeners able to take SYNs: with no free socket, one closing PCB is reclaimed
    /// (as lwIP's `tcp_alloc` does on a SYN's arrival) to top up the backlog; a live
    /// connection is killed (lwIP 1.4) only when a listener has no socket at all.
    pub fn poll<D: Device>(&mut self, now: SmolInstant, device: &mut D) {
        self.inner.poll(now, device);
        self.track();
        self.note_activity(now);
        let backlog = self.inner.backlog();
        let c = self.inner.counts();
        let has_listener = c.listening + c.pending > 0;
        // One PCB per poll at most, as lwIP reclaims one per SYN: a reclaimed or killed
        // socket is free only once its RST is out, at the next poll.
        if has_listener && c.free == 0 && c.listening < backlog && self.need_pcb(c.listening == 0) {
            // Send the RST and re-arm the listener now, not a poll later.
            self.inner.poll(now, device);
            self.track();
            self.inner.poll(now, device);
            self.track();
        }
    }

    /// When the stack next needs [`poll`](Self::poll).
    pub fn poll_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.inner.poll_at(now)
    }

    fn tcp(&self, index: usize) -> &tcp::Socket<'a> {
        self.inner.sockets().get::<tcp::Socket<'a>>(self.handles[index])
    }

    /// A closing socket stops being one once smoltcp is done with it: CLOSED (free, or
    /// its RST still to send), or LISTEN again for a listener. Called after every poll
    /// of the backend, before a socket freed by it can take a new connection.
    fn track(&mut self) {
        for i in 0..self.handles.len() {
            if matches!(self.tcp(i).state(), State::Closed | State::Listen) {
                self.closing[i] = false;
            }
        }
    }

    /// Every socket that holds a connection, in index order.
    fn pcbs(&mut self) -> Vec<Pcb> {
        self.track();
        (0..self.handles.len())
            .filter_map(|i| {
                let socket = self.tcp(i);
                let state = socket.state();
                let owner = if self.held[i].is_some_and(|h| self.inner.remote_addr(&h).is_some()) {
                    // Connecting or connected (the backend names a remote only then),
                    // whatever the TCP state: a reset connection still holds its PCB
                    // until the application closes it.
                    Owner::Application
                } else if matches!(state, State::Listen | State::Closed) {
                    return None;
                } else if self.closing[i] {
                    Owner::Closing
                } else {
                    Owner::Backlog
                };
                Some(Pcb {
                    index: i,
                    state,
                    owner,
                    rx_queue: socket.recv_queue(),
                    tx_queue: socket.send_queue(),
                })
            })
            .collect()
    }

    fn note_activity(&mut self, now: SmolInstant) {
        let mut live = [false; M];
        for p in self.pcbs() {
            let i = p.index;
            live[i] = true;
            let print = (p.state, p.rx_queue, p.tx_queue);
            match &mut self.seen[i] {
                Some(s) if s.print == print => {}
                slot => *slot = Some(Seen { print, since: now }),
            }
        }
        for (i, alive) in live.iter().enumerate() {
            if !alive {
                self.seen[i] = None;
            }
        }
    }

    fn idle_since(&self, p: &Pcb) -> SmolInstant {
        self.seen[p.index].map_or(SmolInstant::ZERO, |s| s.since)
    }

    /// The oldest-inactive PCB among those `pick` accepts.
    fn oldest(&mut self, pick: impl Fn(&Pcb) -> bool) -> Option<Pcb> {
        self.pcbs()
            .into_iter()
            .filter(|p| pick(p))
            .min_by_key(|p| (self.idle_since(p), p.index))
    }

    /// Kill a connection as lwIP's `tcp_kill_*` do: RST to the peer, the socket
    /// reusable once the RST is out (next poll). An application's handle then reports
    /// [`PcbError::Killed`]; a backlog connection is dropped (the listener re-arms).
    fn kill(&mut self, p: &Pcb) {
        let i = p.index;
        match (p.owner, self.held[i]) {
            (Owner::Application, Some(h)) => {
                // A connecting or connected handle: its abort cannot fail.
                let _ = self.inner.abort(h);
                self.held[i] = None;
                self.killed[i] = Some(h.generation());
            }
            _ => {
                self.inner.abort_unowned(i);
            }
        }
        // Aborted: CLOSED now, so no longer closing.
        self.closing[i] = false;
    }

    /// A PCB is needed and none is free: apply the policy once. Live connections are
    /// killed (lwIP 1.4) only when `starving` (nothing else can take the newcomer).
    fn need_pcb(&mut self, starving: bool) -> bool {
        self.stats.exhausted += u64::from(starving);
        let closing_in = |state: State| move |p: &Pcb| p.owner == Owner::Closing && p.state == state;
        let reclaim_order: &[State] = match self.policy {
            Exhaustion::Refuse => &[],
            Exhaustion::Lwip2 => &[State::TimeWait, State::LastAck, State::Closing],
            Exhaustion::Lwip14 => &[State::TimeWait],
        };
        for &state in reclaim_order {
            if let Some(p) = self.oldest(closing_in(state)) {
                self.kill(&p);
                self.stats.reclaimed += 1;
                return true;
            }
        }
        if self.policy == Exhaustion::Lwip14 && starving {
            // tcp_kill_prio: every active PCB of the same priority is a candidate.
            if let Some(p) = self.oldest(|p| p.state != State::TimeWait) {
                self.kill(&p);
                match p.owner {
                    Owner::Backlog => self.stats.killed_backlog += 1,
                    _ => self.stats.killed_live += 1,
                }
                return true;
            }
        }
        self.stats.refused += u64::from(starving);
        false
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
            *held = Some(s);
            self.closing[s.index()] = false;
        }
        s
    }

    /// The application gave `s` back (close or abort succeeded).
    fn given_back(&mut self, s: &SmolSocket) {
        if s.is_listener() {
            return;
        }
        if let Some(held) = self.held.get_mut(s.index()) {
            *held = None;
            self.closing[s.index()] = true;
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
        let s = match self.inner.socket() {
            Err(SmolError::NoSocket) if self.need_pcb(true) => {
                // A killed or reclaimed socket is reusable once its RST is out: at the
                // next poll. Until then the caller retries, as after ERR_MEM.
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
            if let Some(held) = self.held.get_mut(socket.index()) {
                *held = None;
            }
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

impl<const M: usize> LinkStatus for PcbLimited<'_, M> {
    fn link_state(&self) -> LinkState {
        self.inner.link_state()
    }
}
