//! One connection slot: the bookkeeping behind a [`ConnHandle`], with no socket and
//! no buffer (the drivers keep those beside the table).

use core::net::{IpAddr, SocketAddr};

use super::progress::SendProgress;
use crate::handle::{CloseReason, ConnHandle};
use crate::sansio::Stamp;
use crate::state::ConnState;
use crate::time::{Duration, Instant};

/// A peer's address as the slot keeps it: 6 bytes for IPv4; with the `ipv6`
/// feature, 18 bytes for either family (IPv4 as IPv4-mapped). IPv6 flow info and
/// scope id are not kept: a pool only reports the address. Port 0 means "none" (no
/// TCP peer has port 0).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Remote {
    #[cfg(not(feature = "ipv6"))]
    ip: [u8; 4],
    #[cfg(feature = "ipv6")]
    ip: [u8; 16],
    port: u16,
}

/// `::ffff:0.0.0.0`, the IPv4-mapped prefix.
#[cfg(feature = "ipv6")]
const V4_MAPPED: [u8; 16] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0];

impl Remote {
    pub const NONE: Remote = Remote {
        #[cfg(not(feature = "ipv6"))]
        ip: [0; 4],
        #[cfg(feature = "ipv6")]
        ip: [0; 16],
        port: 0,
    };

    /// `None` for an address this build cannot keep (IPv6 without the `ipv6` feature).
    pub fn of(addr: SocketAddr) -> Option<Remote> {
        let port = addr.port();
        #[cfg(not(feature = "ipv6"))]
        let ip = match addr.ip() {
            IpAddr::V4(ip) => ip.octets(),
            IpAddr::V6(_) => return None,
        };
        #[cfg(feature = "ipv6")]
        let ip = match addr.ip() {
            IpAddr::V4(ip) => {
                let mut mapped = V4_MAPPED;
                mapped[12..].copy_from_slice(&ip.octets());
                mapped
            }
            IpAddr::V6(ip) => ip.octets(),
        };
        Some(Remote { ip, port })
    }

    pub fn addr(self) -> Option<SocketAddr> {
        if self.port == 0 {
            return None;
        }
        #[cfg(not(feature = "ipv6"))]
        let ip = IpAddr::from(self.ip);
        // The prefix compared by hand: `Ipv6Addr::to_ipv4_mapped` goes through 16-bit
        // segments, several times the cost on the accept path.
        #[cfg(feature = "ipv6")]
        let ip = match self.ip {
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, a, b, c, d] => IpAddr::from([a, b, c, d]),
            v6 => IpAddr::from(v6),
        };
        Some(SocketAddr::new(ip, self.port))
    }
}

/// Per-connection events, kept as bits in the slot until drained (no queue to
/// overflow; see [`Event`](crate::Event)).
pub(crate) mod event_bits {
    pub const ACCEPTED: u8 = 1 << 0;
    pub const CONNECTED: u8 = 1 << 1;
    pub const CONNECT_FAILED: u8 = 1 << 2;
    pub const PEER_CLOSED: u8 = 1 << 3;
    pub const REAPED: u8 = 1 << 4;
    pub const ABORTED: u8 = 1 << 5;
}

#[derive(Copy, Clone, Debug)]
pub(crate) struct Slot {
    pub generation: u32,
    pub state: ConnState,
    pub protocol: u8,
    /// Event bits not yet drained ([`event_bits`]).
    pub events: u8,
    /// Writes are still possible (false after reset, loss or a fatal error).
    pub can_send: bool,
    /// Opened by `connect` (else accepted on `port`).
    pub outgoing: bool,
    /// `deadline` is the coalesced bytes' flush deadline (while open).
    flush_set: bool,
    pub close_reason: Option<CloseReason>,
    /// Local port of an accepted connection (0 for outgoing ones).
    pub port: u16,
    pub remote: Remote,
    pub opened_at: Stamp,
    pub state_since: Stamp,
    pub last_activity: Stamp,
    /// The slot's own deadline: the connect deadline while `Connecting`; the flush
    /// deadline of coalesced bytes while open (when set). One field, since a slot
    /// never needs both (64 bytes a slot on 32-bit targets, `ipv6` off).
    deadline: Stamp,
    /// Send progress, and the bytes in netpool's coalescing buffer.
    pub progress: SendProgress,
    pub bytes_in: u32,
    pub bytes_out: u32,
}

impl Slot {
    pub const fn new() -> Self {
        Slot {
            generation: 0,
            state: ConnState::Free,
            protocol: 0,
            events: 0,
            can_send: false,
            outgoing: false,
            flush_set: false,
            close_reason: None,
            port: 0,
            remote: Remote::NONE,
            opened_at: Stamp::ZERO,
            state_since: Stamp::ZERO,
            last_activity: Stamp::ZERO,
            deadline: Stamp::ZERO,
            progress: SendProgress::new(Instant::ZERO),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    pub fn handle(&self, index: usize) -> ConnHandle {
        ConnHandle {
            slot: index as u8,
            generation: self.generation,
        }
    }

    pub fn set_state(&mut self, state: ConnState, now: Instant) {
        if self.state != state {
            self.state = state;
            self.state_since = Stamp::of(now);
        }
    }

    /// Record the first reason only: later ones are consequences.
    pub fn note_reason(&mut self, reason: CloseReason) {
        if self.close_reason.is_none() {
            self.close_reason = Some(reason);
        }
    }

    /// A fresh slot record for a new connection (the core sets its generation).
    pub fn occupied(
        state: ConnState,
        outgoing: bool,
        port: u16,
        remote: Remote,
        protocol: u8,
        deadline: Instant,
        now: Instant,
    ) -> Slot {
        Slot {
            generation: 0,
            state,
            protocol,
            events: 0,
            can_send: true,
            outgoing,
            flush_set: false,
            close_reason: None,
            port,
            remote,
            opened_at: Stamp::of(now),
            state_since: Stamp::of(now),
            last_activity: Stamp::of(now),
            deadline: Stamp::of(deadline),
            progress: SendProgress::new(now),
            bytes_in: 0,
            bytes_out: 0,
        }
    }

    /// The connect deadline (meaningful while `Connecting`).
    pub fn connect_deadline(&self) -> Stamp {
        self.deadline
    }

    /// When coalesced bytes must be handed to the stack, if any wait.
    pub fn flush_due(&self) -> Option<Stamp> {
        (self.flush_set && self.state != ConnState::Connecting).then_some(self.deadline)
    }

    // The flush and stall timers of an open slot (`Connected` or `OtherEndClosed`):
    // `Core::deadline` checks the state first, and the timer work reads them only for
    // slots it found open.

    /// Held-back bytes due to be pushed, while the slot may send. (Open, so
    /// `deadline` holds the flush deadline, not the connect deadline.)
    pub fn open_flush_deadline(&self) -> Option<Stamp> {
        (self.can_send && self.flush_set).then_some(self.deadline)
    }

    /// The next stall reading, while the slot may send and the watch is armed.
    pub fn open_stall_deadline(&self) -> Option<Stamp> {
        self.can_send.then(|| self.progress.deadline()).flatten()
    }

    /// The idle timeout of an open slot, counted from its last activity.
    pub fn idle_deadline(&self, idle_timeout: Option<Duration>) -> Option<Stamp> {
        idle_timeout.map(|d| self.last_activity.plus(d))
    }

    pub fn set_flush_due(&mut self, due: Option<Stamp>) {
        if (due.is_none() && !self.flush_set) || self.state == ConnState::Connecting {
            return; // nothing to clear; or the deadline field is the connect deadline
        }
        self.flush_set = due.is_some();
        if let Some(d) = due {
            self.deadline = d;
        }
    }

    /// Nothing more can be sent: no writes, and nothing left to flush.
    pub fn stop_sending(&mut self) {
        self.can_send = false;
        self.flush_set = false;
        self.progress.set_buffered(0, Instant::ZERO);
    }

    pub fn touch(&mut self, now: Instant) {
        self.last_activity = Stamp::of(now);
    }

    /// Whether this slot is an open connection accepted on `port` (counts against its cap).
    pub fn counts_against(&self, port: u16) -> bool {
        self.state.is_in_use() && !self.outgoing && self.port == port
    }

    /// Whether a task may keep waiting on this connection: a writer while sending is
    /// still possible (also after the peer's FIN: a half-close); a reader only while
    /// more can arrive (connecting or connected: after the peer's FIN whatever is left
    /// is read at once, without waiting). Both drivers' read and write rules
    /// ([`Core::may_read`](super::Core::may_read), [`Core::may_write`](super::Core::may_write))
    /// agree with it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub fn may_wait(&self, writer: bool) -> bool {
        use ConnState::*;
        if writer {
            self.can_send && matches!(self.state, Connecting | Connected | OtherEndClosed)
        } else {
            matches!(self.state, Connecting | Connected)
        }
    }

    /// Open and able to carry data (possibly half-closed by the peer).
    pub fn is_open(&self) -> bool {
        matches!(self.state, ConnState::Connected | ConnState::OtherEndClosed)
    }

    pub fn age(&self, now: Instant) -> Duration {
        if self.state.is_in_use() {
            self.opened_at.elapsed(now)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use core::net::{Ipv4Addr, SocketAddr};

    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    /// A slot opened at 1 s with a connect deadline at 3 s.
    fn slot(state: ConnState) -> Slot {
        let remote = Remote::of(SocketAddr::new(Ipv4Addr::new(192, 0, 2, 1).into(), 4000));
        Slot::occupied(state, true, 0, remote.unwrap(), 0, at(3_000), at(1_000))
    }

    #[test]
    fn coalesced_bytes_are_due_by_their_flush_deadline_while_the_slot_may_send() {
        let mut s = slot(ConnState::Connected);
        let due = Stamp::of(at(1_005));
        assert_eq!(
            (s.flush_due(), s.open_flush_deadline()),
            (None, None),
            "nothing held back"
        );
        s.set_flush_due(Some(due));
        assert_eq!((s.flush_due(), s.open_flush_deadline()), (Some(due), Some(due)));
        s.set_flush_due(None);
        assert_eq!(
            (s.flush_due(), s.open_flush_deadline()),
            (None, None),
            "handed over"
        );
        s.set_flush_due(Some(due));
        s.stop_sending();
        assert_eq!(
            (s.flush_due(), s.open_flush_deadline()),
            (None, None),
            "nothing more can be sent"
        );
    }

    #[test]
    fn a_connecting_slot_keeps_its_connect_deadline_and_has_nothing_to_flush() {
        let mut s = slot(ConnState::Connecting);
        assert_eq!(s.connect_deadline(), Stamp::of(at(3_000)));
        s.set_flush_due(Some(Stamp::of(at(1_005))));
        assert_eq!(s.connect_deadline(), Stamp::of(at(3_000)));
        assert_eq!(s.flush_due(), None);
    }

    #[test]
    fn a_writer_waits_while_it_may_still_send_and_a_reader_while_more_can_arrive() {
        let mut s = slot(ConnState::Connecting);
        assert_eq!((s.may_wait(true), s.may_wait(false)), (true, true));
        s.state = ConnState::Connected;
        assert_eq!((s.may_wait(true), s.may_wait(false)), (true, true));
        // The peer's FIN: a half-close, nothing more will arrive.
        s.state = ConnState::OtherEndClosed;
        assert_eq!((s.may_wait(true), s.may_wait(false)), (true, false));
        // The peer is gone.
        s.stop_sending();
        assert_eq!((s.may_wait(true), s.may_wait(false)), (false, false));
        s.state = ConnState::Aborted;
        assert_eq!((s.may_wait(true), s.may_wait(false)), (false, false));
    }

    #[test]
    fn a_slots_age_runs_from_its_opening_while_in_use() {
        let mut s = slot(ConnState::Connected);
        assert_eq!(s.age(at(5_000)), Duration::from_secs(4));
        s.set_state(ConnState::Free, at(6_000));
        assert_eq!(s.age(at(7_000)), Duration::ZERO);
    }
}
