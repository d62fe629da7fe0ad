//! Diagnostics: a `Copy` snapshot of every slot and the pool's counters.
//!
//! Producing a [`Report`] is O(N + L), does no I/O and takes no lock beyond the
//! caller's own: it is safe to do from a service loop at any rate. It formats with
//! `core::fmt` (one line per slot) and, with feature `defmt`, with `defmt::Format`.

use core::fmt;
use core::net::SocketAddr;

use crate::handle::CloseReason;
use crate::link::LinkState;
use crate::listener::ListenParams;
use crate::state::ConnState;
use crate::time::{Duration, Instant};

/// Event counters since the pool was created. They only grow (wrapping at `u32::MAX`),
/// except `in_use` and `high_water`.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Counters {
    /// Incoming connections served.
    pub accepted: u32,
    /// Incoming connections turned away (accepted from the stack and released at once).
    pub rejected: u32,
    /// ... of which because the port's cap was reached.
    pub rejected_port_cap: u32,
    /// ... of which because no slot was free.
    pub rejected_pool_full: u32,
    /// Connections reaped for a send stall.
    pub reaped: u32,
    /// Connections closed by the idle timeout.
    pub idle_closed: u32,
    /// Connections whose peer went away (FIN, RST, lost, stack abort).
    pub peer_closed: u32,
    /// Connections aborted: fatal stack errors and application aborts.
    pub aborted: u32,
    /// Outgoing connections started.
    pub connects: u32,
    /// Outgoing connections that failed or timed out.
    pub connect_failed: u32,
    /// Connects or accepts refused because every slot was in use.
    pub exhausted: u32,
    /// `Aborted`/`OtherEndClosed` slots freed because the application never closed them.
    pub abandoned: u32,
    /// Errors from the stack's `accept` (other than would-block).
    pub accept_errors: u32,
    /// Coalesced bytes the stack would not take at close time (see [`crate::write`]).
    pub dropped_on_close: u32,
    /// Slots in use now.
    pub in_use: u32,
    /// Most slots ever in use at once.
    pub high_water: u32,
}

/// One slot, as seen at the moment of the report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotReport {
    /// Slot number.
    pub slot: u8,
    /// Generation of the connection in (or last in) the slot.
    pub generation: u16,
    /// State.
    pub state: ConnState,
    /// Local port (the listener's port for accepted connections; 0 if unknown).
    pub local_port: u16,
    /// Remote address, if known.
    pub remote: Option<SocketAddr>,
    /// Protocol tag.
    pub protocol: u8,
    /// Time since the connection was opened.
    pub age: Duration,
    /// Bytes read by the application.
    pub bytes_in: u64,
    /// Bytes taken from the application.
    pub bytes_out: u64,
    /// Time since the last byte moved either way.
    pub idle: Duration,
    /// Bytes waiting in netpool's coalescing buffer.
    pub buffered: u16,
    /// Why the connection ended or is ending (kept until the slot is reused).
    pub close_reason: Option<CloseReason>,
}

impl SlotReport {
    /// The report of a slot that never held a connection.
    pub const fn empty(slot: u8) -> Self {
        SlotReport {
            slot,
            generation: 0,
            state: ConnState::Free,
            local_port: 0,
            remote: None,
            protocol: 0,
            age: Duration::ZERO,
            bytes_in: 0,
            bytes_out: 0,
            idle: Duration::ZERO,
            buffered: 0,
            close_reason: None,
        }
    }
}

/// One listener.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenerReport {
    /// Port.
    pub port: u16,
    /// Parameters.
    pub params: ListenParams,
    /// Connections open on the port now.
    pub open: u8,
}

/// Everything at once: slots, listeners, counters, link.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Report<const N: usize, const L: usize> {
    /// When it was taken.
    pub at: Instant,
    /// Every connection slot.
    pub slots: [SlotReport; N],
    /// Every listener slot (`None` = unused).
    pub listeners: [Option<ListenerReport>; L],
    /// Counters.
    pub counters: Counters,
    /// The link as last read.
    pub link: LinkState,
}

impl<const N: usize, const L: usize> Report<N, L> {
    /// Number of free connection slots.
    pub fn free_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.state == ConnState::Free).count()
    }
}

impl fmt::Display for Counters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "accepted {} rejected {} (cap {}, full {}) reaped {} idle {} peer-closed {} \
             aborted {} connects {} connect-failed {} exhausted {} abandoned {} \
             in-use {} high-water {}",
            self.accepted,
            self.rejected,
            self.rejected_port_cap,
            self.rejected_pool_full,
            self.reaped,
            self.idle_closed,
            self.peer_closed,
            self.aborted,
            self.connects,
            self.connect_failed,
            self.exhausted,
            self.abandoned,
            self.in_use,
            self.high_water
        )
    }
}

impl fmt::Display for SlotReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "conn {}: {} port {} proto {} age {} idle {} in {} out {} buffered {}",
            self.slot,
            self.state,
            self.local_port,
            self.protocol,
            self.age,
            self.idle,
            self.bytes_in,
            self.bytes_out,
            self.buffered
        )?;
        if let Some(remote) = self.remote {
            write!(f, " remote {remote}")?;
        }
        if let Some(reason) = self.close_reason {
            write!(f, " reason {reason}")?;
        }
        Ok(())
    }
}

impl<const N: usize, const L: usize> fmt::Display for Report<N, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "netpool at {}: {} of {} slots free, link {:?}",
            self.at,
            self.free_slots(),
            N,
            self.link
        )?;
        for slot in &self.slots {
            writeln!(f, "  {slot}")?;
        }
        for l in self.listeners.iter().flatten() {
            writeln!(
                f,
                "  listen port {} proto {} open {}/{} {:?}",
                l.port, l.params.protocol, l.open, l.params.max_conns, l.params.mode
            )?;
        }
        write!(f, "  {}", self.counters)
    }
}
