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
use crate::stack::PcbCounters;
use crate::state::ConnState;
use crate::time::{Duration, Instant};

/// The one list of counters: [`Counters`], its `Display`, and the atomic mirror
/// [`SharedCounters`](crate::shared::SharedCounters) are all generated from it.
macro_rules! counter_fields {
    ($callback:ident) => {
        $callback! {
            accepted: "Incoming connections served.",
            rejected: "Incoming connections turned away (accepted from the stack and released at once).",
            rejected_port_cap: "... of which because the port's cap was reached.",
            rejected_pool_full: "... of which because no slot was free.",
            rejected_address: "... of which because the peer is IPv6 and the `ipv6` feature is off.",
            reaped: "Connections reaped for a send stall.",
            pressure_reaped: "Connections reaped under pressure: no send progress for `Config::pressure_grace` while a listener had no room (apart from `reaped`).",
            idle_closed: "Connections closed by the idle timeout.",
            peer_closed: "Connections whose peer went away (FIN, RST, lost, stack abort).",
            aborted: "Connections aborted: fatal stack errors and application aborts.",
            connects: "Outgoing connections started.",
            connect_failed: "Outgoing connections that failed or timed out.",
            exhausted: "Connects or accepts refused because every slot was in use.",
            abandoned: "`Aborted`/`OtherEndClosed` slots freed because the application never closed them.",
            accept_errors: "Errors from the stack's `accept` (other than would-block).",
            dropped_on_close: "Coalesced (MORE) bytes the stack would not take at close time.",
            in_use: "Slots in use now.",
            high_water: "Most slots ever in use at once.",
        }
    };
}
pub(crate) use counter_fields;

macro_rules! define_counters {
    ($($field:ident: $doc:literal,)*) => {
        /// Event counters since the pool was created. They only grow (wrapping at
        /// `u32::MAX`), except `in_use` and `high_water`.
        #[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
        #[cfg_attr(feature = "defmt", derive(defmt::Format))]
        #[non_exhaustive]
        pub struct Counters {
            $(#[doc = $doc] pub $field: u32,)*
        }

        impl Counters {
            /// All zero.
            pub const ZERO: Counters = Counters { $($field: 0,)* };
        }

        /// `name value` pairs, space-separated, every counter.
        impl fmt::Display for Counters {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut sep = "";
                $(
                    write!(f, "{}{} {}", sep, stringify!($field), self.$field)?;
                    sep = " ";
                )*
                let _ = sep;
                Ok(())
            }
        }
    };
}
counter_fields!(define_counters);

/// One slot, as seen at the moment of the report.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct SlotReport {
    /// Slot number.
    pub slot: u8,
    /// Generation of the connection in (or last in) the slot.
    pub generation: u32,
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
    /// What the stack did to its PCBs on its own ([`PcbDiagnostics`](crate::stack::PcbDiagnostics); zeros for a
    /// stack that does not say, and from the async driver, which has no stack).
    pub pcbs: PcbCounters,
    /// What the async driver's background closer did with the sockets of closed
    /// connections (zeros from the sync pool, which hands a close to the stack).
    pub closer: CloserCounters,
}

/// What the async driver's background closer (`asynch::Closer`) did with the
/// sockets [`Conn::close`](crate::asynch::Conn::close) gave it: in the pool's
/// [`Report::closer`] and `AsyncPool::closer_counters`.
///
/// `handed` = `finished` + `reset` + `closing`; a close that found every place busy is
/// counted in `waited`, and if no place freed in time, in `overflow` as well.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct CloserCounters {
    /// Sockets handed to the closer.
    pub handed: u32,
    /// Closes the stack finished (FIN exchanged) within
    /// [`Config::close_linger`](crate::Config::close_linger).
    pub finished: u32,
    /// Closes that had not finished by then (or failed): reset.
    pub reset: u32,
    /// Closes that found every place busy and waited for one.
    pub waited: u32,
    /// … of which found none in time: reset by `close` itself, never handed.
    pub overflow: u32,
    /// Sockets closing now (waiting for a worker or being closed).
    pub closing: u32,
    /// Most sockets ever closing at once.
    pub high_water: u32,
}

impl CloserCounters {
    /// All zero.
    pub const ZERO: CloserCounters = CloserCounters {
        handed: 0,
        finished: 0,
        reset: 0,
        waited: 0,
        overflow: 0,
        closing: 0,
        high_water: 0,
    };

    /// A socket was handed over.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn note_handed(&mut self) {
        self.handed = self.handed.wrapping_add(1);
        self.closing = self.closing.saturating_add(1);
        self.high_water = self.high_water.max(self.closing);
    }

    /// A close handed over ended: the stack finished it, or it was reset.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub(crate) fn note_ended(&mut self, finished: bool) {
        self.closing = self.closing.saturating_sub(1);
        if finished {
            self.finished = self.finished.wrapping_add(1);
        } else {
            self.reset = self.reset.wrapping_add(1);
        }
    }
}

impl fmt::Display for CloserCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "handed {} finished {} reset {} waited {} overflow {} closing {} high_water {}",
            self.handed, self.finished, self.reset, self.waited, self.overflow, self.closing, self.high_water
        )
    }
}

impl<const N: usize, const L: usize> Report<N, L> {
    /// Number of free connection slots.
    pub fn free_slots(&self) -> usize {
        self.slots.iter().filter(|s| s.state == ConnState::Free).count()
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
        writeln!(f, "  {}", self.counters)?;
        writeln!(f, "  stack: {}", self.pcbs)?;
        write!(f, "  closer: {}", self.closer)
    }
}
