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

use core::net::SocketAddr;
use std::vec::Vec;

use embedded_nal::{nb, TcpClientStack, TcpFullStack};
use smoltcp::phy::Device;
use smoltcp::socket::tcp::State;
use smoltcp::time::Instant as SmolInstant;

use crate::link::{LinkState, LinkStatus};
use crate::stack::smoltcp::{PcbInfo, PcbOwner, SmolError, SmolSocket, SmoltcpStack};
use crate::stack::{PeerStatus, SendFlag, TcpAbort, TcpPeerStatus, TcpPush, TcpSendFlags, TcpSendQueue};

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

#[derive(Copy, Clone, Debug)]
struct Seen {
    print: (State, usize, usize),
    since: SmolInstant,
}

/// [`SmoltcpStack`] with a PCB exhaustion policy; a netpool [`Stack`](crate::stack::Stack).
pub struct PcbLimited<'a, const M: usize> {
    inner: SmoltcpStack<'a, M>,
    policy: Exhaustion,
    seen: Vec<Option<Seen>>,
    stats: PcbStats,
}

impl<'a, const M: usize> PcbLimited<'a, M> {
    /// Wrap a stack; its `M` sockets are the PCB pool.
    pub fn new(inner: SmoltcpStack<'a, M>, policy: Exhaustion) -> Self {
        PcbLimited {
            inner,
            policy,
            seen: (0..M).map(|_| None).collect(),
            stats: PcbStats::default(),
        }
    }

    /// The wrapped stack.
    pub fn inner(&self) -> &SmoltcpStack<'a, M> {
        &self.inner
    }

    /// The wrapped stack, mutably.
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
        self.note_activity(now);
        let backlog = self.inner.backlog();
        let c = self.inner.counts();
        let has_listener = c.listening + c.pending > 0;
        // One PCB per poll at most, as lwIP reclaims one per SYN: a reclaimed or killed
        // socket is free only once its RST is out, at the next poll.
        if has_listener && c.free == 0 && c.listening < backlog && self.need_pcb(c.listening == 0) {
            // Send the RST and re-arm the listener now, not a poll later.
            self.inner.poll(now, device);
            self.inner.poll(now, device);
        }
    }

    /// When the stack next needs [`poll`](Self::poll).
    pub fn poll_at(&mut self, now: SmolInstant) -> Option<SmolInstant> {
        self.inner.poll_at(now)
    }

    fn note_activity(&mut self, now: SmolInstant) {
        let mut live = [false; M];
        for p in self.inner.pcbs() {
            let i = p.index as usize;
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

    fn idle_since(&self, p: &PcbInfo) -> SmolInstant {
        self.seen[p.index as usize].map_or(SmolInstant::ZERO, |s| s.since)
    }

    /// The oldest-inactive PCB among those `pick` accepts.
    fn oldest(&self, pick: impl Fn(&PcbInfo) -> bool) -> Option<PcbInfo> {
        self.inner
            .pcbs()
            .filter(|p| pick(p))
            .min_by_key(|p| (self.idle_since(p), p.index))
    }

    /// A PCB is needed and none is free: apply the policy once. Live connections are
    /// killed (lwIP 1.4) only when `starving` (nothing else can take the newcomer).
    fn need_pcb(&mut self, starving: bool) -> bool {
        self.stats.exhausted += u64::from(starving);
        let closing_in = |state: State| move |p: &PcbInfo| p.owner == PcbOwner::Closing && p.state == state;
        let reclaim_order: &[State] = match self.policy {
            Exhaustion::Refuse => &[],
            Exhaustion::Lwip2 => &[State::TimeWait, State::LastAck, State::Closing],
            Exhaustion::Lwip14 => &[State::TimeWait],
        };
        for &state in reclaim_order {
            if let Some(p) = self.oldest(closing_in(state)) {
                self.inner.kill(p.index as usize);
                self.stats.reclaimed += 1;
                return true;
            }
        }
        if self.policy == Exhaustion::Lwip14 && starving {
            // tcp_kill_prio: every active PCB of the same priority is a candidate.
            if let Some(p) = self.oldest(|p| p.state != State::TimeWait) {
                self.inner.kill(p.index as usize);
                match p.owner {
                    PcbOwner::Backlog => self.stats.killed_backlog += 1,
                    _ => self.stats.killed_live += 1,
                }
                return true;
            }
        }
        self.stats.refused += u64::from(starving);
        false
    }
}

impl<const M: usize> TcpClientStack for PcbLimited<'_, M> {
    type TcpSocket = SmolSocket;
    type Error = SmolError;

    fn socket(&mut self) -> Result<SmolSocket, SmolError> {
        match self.inner.socket() {
            Err(SmolError::NoSocket) if self.need_pcb(true) => {
                // A killed or reclaimed socket is reusable once its RST is out: at the
                // next poll. Until then the caller retries, as after ERR_MEM.
                self.inner.socket()
            }
            other => other,
        }
    }
    fn connect(&mut self, s: &mut SmolSocket, remote: SocketAddr) -> nb::Result<(), SmolError> {
        self.inner.connect(s, remote)
    }
    fn send(&mut self, s: &mut SmolSocket, buf: &[u8]) -> nb::Result<usize, SmolError> {
        self.inner.send(s, buf)
    }
    fn receive(&mut self, s: &mut SmolSocket, buf: &mut [u8]) -> nb::Result<usize, SmolError> {
        self.inner.receive(s, buf)
    }
    fn close(&mut self, s: SmolSocket) -> Result<(), SmolError> {
        self.inner.close(s)
    }
}

impl<const M: usize> TcpFullStack for PcbLimited<'_, M> {
    fn bind(&mut self, s: &mut SmolSocket, port: u16) -> Result<(), SmolError> {
        self.inner.bind(s, port)
    }
    fn listen(&mut self, s: &mut SmolSocket) -> Result<(), SmolError> {
        self.inner.listen(s)
    }
    fn accept(&mut self, s: &mut SmolSocket) -> nb::Result<(SmolSocket, SocketAddr), SmolError> {
        self.inner.accept(s)
    }
}

impl<const M: usize> TcpAbort for PcbLimited<'_, M> {
    const NATIVE_ABORT: bool = true;
    fn abort(&mut self, s: SmolSocket) -> Result<(), SmolError> {
        self.inner.abort(s)
    }
}

impl<const M: usize> TcpSendFlags for PcbLimited<'_, M> {
    fn send_flagged(
        &mut self,
        s: &mut SmolSocket,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, SmolError> {
        self.inner.send_flagged(s, data, flag)
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
