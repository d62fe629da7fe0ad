//! The connection core: every decision of the pool, with no I/O (sans-IO).
//!
//! [`Core`] owns the slot table (generations, states, close reasons, timers,
//! progress), the listener table (ports, caps, modes), the counters and the
//! per-connection events. It never touches a socket: the drivers
//! ([`Pool`](crate::Pool) over embedded-nal, [`AsyncPool`](crate::asynch::AsyncPool)
//! over embedded-nal-async / edge-nal) do the I/O, tell the core what happened
//! through its `handle_*(…, now)` methods and carry out what it decides.
//!
//! Call order for a driver:
//!
//! 1. incoming connection on listener `l` → [`Core::handle_incoming`]: a slot, or a
//!    [`Rejection`] (release the socket at once);
//! 2. outgoing connection → [`Core::pick_connect_slot`], then (stack accepted)
//!    [`Core::handle_connect_started`]; later [`Core::handle_connected`] or
//!    [`Core::handle_connect_failed`];
//! 3. each I/O result → [`Core::handle_read`], [`Core::handle_written`],
//!    [`Core::handle_peer_fin`], [`Core::handle_error`];
//! 4. timers: [`Core::poll_slot`] runs a slot's timer work in one order for both
//!    drivers, asking the driver for the socket I/O it needs through [`SlotIo`];
//!    [`Core::poll_timeout`] is the earliest deadline of all of them — exactly the
//!    time at which `poll_slot` has something new to do;
//! 5. the slot ends → [`Core::end`] (the application's close or the pool's decision:
//!    the driver releases the socket, the core frees the slot, or keeps it in its end
//!    state until the application acknowledges it when
//!    [`Config::hold_ended`](crate::Config::hold_ended) is set).

mod errors;
pub mod handshake;
pub(crate) mod progress;
mod slot;
mod stamp;
#[cfg(test)]
mod tests;
mod timers;

pub(crate) use slot::{event_bits, Remote, Slot};
pub(crate) use stamp::Stamp;
pub(crate) use timers::{SlotIo, SlotOutcome};

use core::net::SocketAddr;

use crate::config::{Config, RejectPolicy};
use crate::error::{ConnError, ConnectError, ErrorClass, ListenError};
use crate::event::{Event, EventKind};
use crate::handle::{CloseReason, ConnHandle, ListenerId};
use crate::link::LinkState;
use crate::listener::{ListenMode, ListenOutcome, ListenParams, Rejection};
use crate::report::{CloserCounters, Counters, ListenerReport, Report, SlotReport};
use crate::stack::PcbCounters;
use crate::state::ConnState;
use crate::time::Instant;
use progress::{SendProgress, Verdict};

/// How a socket is given back to the stack.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Release {
    /// FIN, after handing over coalesced bytes.
    Close,
    /// RST where the stack can.
    Abort,
}

/// Connections one accept loop turned away in a row. After
/// [`Config::accepts_in_a_row`] of them the loop yields once, so that a stream of
/// connections the pool cannot serve never starves the other tasks (the async
/// driver's `accept` and `accept_from`; the sync pool bounds each poll instead).
#[cfg_attr(not(feature = "async"), allow(dead_code))]
#[derive(Copy, Clone, Debug, Default)]
pub(crate) struct RejectStreak(u8);

#[cfg_attr(not(feature = "async"), allow(dead_code))]
impl RejectStreak {
    /// One more connection turned away: whether the loop yields now.
    pub fn turned_away(&mut self, config: &Config) -> bool {
        self.0 = self.0.saturating_add(1);
        let yield_now = self.0 >= config.accepts_in_a_row();
        if yield_now {
            self.0 = 0;
        }
        yield_now
    }
}

/// Whether a read or write may go to the socket ([`Core::may_read`],
/// [`Core::may_write`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Not yet: the connection is still being established.
    Wait,
    /// Go ahead.
    Go,
    /// No: the connection has ended; report [`Core::error_for`].
    Fail,
}

/// What an error does to a connection (the [`Disposition`](crate::Disposition)
/// applied).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum AfterError {
    /// Not an error: nothing changes.
    Retry,
    /// The peer is gone: `OtherEndClosed`, nothing more can be sent; keep the socket
    /// so received bytes stay readable.
    PeerGone,
    /// Fatal: abort the socket now; the slot is `Aborted`.
    Abort,
}

/// The timers of one slot. [`Core::poll_timeout`] is the earliest of them all.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum Timer {
    /// An outgoing connection's deadline.
    Connect,
    /// Coalesced bytes are due at the stack.
    Flush,
    /// A send-progress reading is due (the stall verdict).
    Stall,
    /// No traffic for [`Config::idle_timeout`].
    Idle,
    /// An ended connection left unclosed for [`Config::abandoned_after`].
    Abandoned,
}

impl Timer {
    pub const ALL: [Timer; 5] = [
        Timer::Connect,
        Timer::Flush,
        Timer::Stall,
        Timer::Idle,
        Timer::Abandoned,
    ];

    /// Whether this timer runs for a slot in `state`: the one table of which timer
    /// applies when, read by [`Core::deadline`] and by the timer work
    /// ([`Core::poll_slot`]).
    ///
    /// | state | timers |
    /// |---|---|
    /// | `Connecting` | `Connect` |
    /// | `Connected` | `Flush`, `Stall`, `Idle` |
    /// | `OtherEndClosed` | `Flush`, `Stall`, `Idle`, `Abandoned` |
    /// | `Aborted` | `Abandoned` |
    /// | `Free` | none |
    #[inline(always)]
    pub const fn runs_in(self, state: ConnState) -> bool {
        use ConnState::*;
        match self {
            Timer::Connect => matches!(state, Connecting),
            Timer::Flush | Timer::Stall | Timer::Idle => matches!(state, Connected | OtherEndClosed),
            Timer::Abandoned => matches!(state, OtherEndClosed | Aborted),
        }
    }
}

/// One entry of the listener table (the driver keeps the socket, if any).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct ListenerEntry {
    pub port: u16,
    pub params: ListenParams,
    pub generation: u16,
}

/// What [`Core::plan_listen`] decided.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListenPlan {
    /// Start a new listener in entry `i` (the driver opens its socket first).
    Start(usize),
    /// Replace the parameters of entry `i`.
    Update(usize),
    /// Stop entry `i`.
    Stop(usize),
    /// `max_conns == 0` for a port with no listener: nothing to do.
    Nothing,
    /// Every entry is in use.
    TableFull,
}

/// The I/O a listener table change needs from the driver (entry index).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) enum ListenerIo {
    /// Open the listening socket of entry `i`.
    Open(usize),
    /// Close the listening socket of entry `i` (stopped).
    Close(usize),
}

/// An admitted incoming connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub(crate) struct Admitted {
    pub handle: ConnHandle,
    /// The listener was one-shot and is now stopped (close its socket).
    pub listener_stopped: bool,
}

/// The sans-IO connection core: see the [module docs](self).
pub(crate) struct Core<const N: usize, const L: usize> {
    slots: [Slot; N],
    listeners: [Option<ListenerEntry>; L],
    /// The room the driver last told the stack for each listener.
    rooms_told: [Option<u8>; L],
    listener_generation: u16,
    counters: Counters,
    config: Config,
    /// The latest `now` the core was given (deadlines are reported relative to it).
    clock: Instant,
    /// Where the next event scan starts (round robin over slots).
    event_cursor: u8,
    /// Slots not `Free` (kept by `occupy` and `handle_released`, so counting is O(1)).
    in_use: u8,
}

impl<const N: usize, const L: usize> Core<N, L> {
    const CAPACITY_FITS: () = assert!(
        N <= u8::MAX as usize && L <= u8::MAX as usize,
        "a pool has at most 255 connection and 255 listener slots"
    );

    /// An empty table.
    pub const fn new(config: Config) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::CAPACITY_FITS;
        Core {
            slots: [const { Slot::new() }; N],
            listeners: [const { None }; L],
            rooms_told: [None; L],
            listener_generation: 0,
            counters: Counters::ZERO,
            config,
            clock: Instant::ZERO,
            event_cursor: 0,
            in_use: 0,
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn set_config(&mut self, config: Config) {
        self.config = config;
    }

    fn tick(&mut self, now: Instant) {
        if now > self.clock {
            self.clock = now;
        }
    }

    /// The latest `now` the core was given.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub fn clock(&self) -> Instant {
        self.clock
    }

    pub fn slot(&self, i: usize) -> &Slot {
        &self.slots[i]
    }

    /// Slot `i`, mutably: for the core's own tests, which play a driver's writes.
    #[cfg(test)]
    pub fn slot_mut(&mut self, i: usize) -> &mut Slot {
        &mut self.slots[i]
    }

    /// Slot `i` and the configuration together, for the write path (no copy of the
    /// configuration on the hot path).
    pub fn send_side(&mut self, i: usize) -> (&mut Slot, &Config) {
        (&mut self.slots[i], &self.config)
    }

    // ------------------------------------------------------------ listeners

    pub fn listener_index(&self, port: u16) -> Option<usize> {
        self.listeners
            .iter()
            .position(|l| l.as_ref().is_some_and(|l| l.port == port))
    }

    pub fn listener(&self, i: usize) -> Option<ListenerEntry> {
        self.listeners.get(i).copied().flatten()
    }

    /// What `listen(port, params)` must do.
    pub fn plan_listen(&self, port: u16, params: ListenParams) -> ListenPlan {
        match (self.listener_index(port), params.max_conns) {
            (Some(i), 0) => ListenPlan::Stop(i),
            (Some(i), _) => ListenPlan::Update(i),
            (None, 0) => ListenPlan::Nothing,
            (None, _) => match self.listeners.iter().position(Option::is_none) {
                Some(i) => ListenPlan::Start(i),
                None => ListenPlan::TableFull,
            },
        }
    }

    /// `listen(port, params)` for both drivers: decide, ask the driver for the I/O
    /// (`io`: open the listening socket of a new entry, close a stopped one's), and
    /// update the table. A failed open leaves the table as it was.
    pub fn handle_listen(
        &mut self,
        port: u16,
        params: ListenParams,
        io: impl FnOnce(ListenerIo) -> Result<(), ListenError>,
    ) -> Result<ListenOutcome, ListenError> {
        match self.plan_listen(port, params) {
            ListenPlan::Stop(i) => {
                self.remove_listener(i);
                io(ListenerIo::Close(i))?;
                Ok(ListenOutcome::Stopped)
            }
            ListenPlan::Nothing => Ok(ListenOutcome::Stopped),
            ListenPlan::TableFull => Err(ListenError::TableFull),
            ListenPlan::Update(i) => Ok(ListenOutcome::Updated(self.set_listener(i, port, params))),
            ListenPlan::Start(i) => {
                io(ListenerIo::Open(i))?;
                Ok(ListenOutcome::Started(self.set_listener(i, port, params)))
            }
        }
    }

    /// Carry out [`ListenPlan::Start`] or [`ListenPlan::Update`].
    pub fn set_listener(&mut self, i: usize, port: u16, params: ListenParams) -> ListenerId {
        let generation = match self.listeners[i] {
            Some(l) if l.port == port => l.generation,
            _ => {
                self.listener_generation = self.listener_generation.wrapping_add(1);
                self.listener_generation
            }
        };
        self.listeners[i] = Some(ListenerEntry {
            port,
            params,
            generation,
        });
        self.rooms_told[i] = None;
        ListenerId {
            index: i as u8,
            generation,
        }
    }

    pub fn remove_listener(&mut self, i: usize) {
        self.listeners[i] = None;
    }

    /// How many more connections listener `li` can serve now: its port's cap minus the
    /// connections open there, at most the free slots (0 for an unused entry). What a
    /// stack without a SYN queue should keep listening for
    /// ([`TcpBacklog`](crate::stack::TcpBacklog)).
    pub fn listener_room(&self, li: usize) -> usize {
        self.listeners[li].map_or(0, |l| {
            usize::from(l.params.max_conns)
                .saturating_sub(self.open_on_port(l.port))
                .min(self.free_slots())
        })
    }

    /// Listener `li`'s room when it differs from what the driver last told the stack
    /// (a slot taken or freed, the listener's cap changed), once per change; `None`
    /// otherwise, or for an unused entry. O(N).
    pub fn room_to_announce(&mut self, li: usize) -> Option<usize> {
        self.listeners[li]?;
        let room = self.listener_room(li);
        // A room fits in u8: at most the port's cap.
        let told = Some(room as u8);
        if self.rooms_told[li] == told {
            return None;
        }
        self.rooms_told[li] = told;
        Some(room)
    }

    /// Connections open on `port` that count against its cap.
    pub fn open_on_port(&self, port: u16) -> usize {
        self.slots.iter().filter(|s| s.counts_against(port)).count()
    }

    // ------------------------------------------------------------ admission

    /// How the driver releases a connection [`handle_incoming`](Self::handle_incoming)
    /// rejected, at once ([`Config::reject`]).
    pub fn rejected_release(&self) -> Release {
        match self.config.reject {
            RejectPolicy::Abort => Release::Abort,
            RejectPolicy::Close => Release::Close,
        }
    }

    /// An incoming connection arrived on listener `li`: serve it in a free slot, or
    /// reject it (the driver releases it at once, as
    /// [`rejected_release`](Self::rejected_release) says). Counted either way.
    pub fn handle_incoming(
        &mut self,
        li: usize,
        remote: SocketAddr,
        now: Instant,
    ) -> Result<Admitted, Rejection> {
        self.tick(now);
        let Some(l) = self.listener(li) else {
            // Cannot happen through the drivers; refuse rather than serve unlisted.
            return Err(self.count_rejection(Rejection::PortCap));
        };
        // One pass: the port's open connections and the first free slot.
        let (mut on_port, mut free) = (0, None);
        for (i, s) in self.slots.iter().enumerate() {
            if !s.state.is_in_use() {
                free = free.or(Some(i));
            } else if s.counts_against(l.port) {
                on_port += 1;
            }
        }
        if on_port >= l.params.max_conns as usize {
            return Err(self.count_rejection(Rejection::PortCap));
        }
        let Some(i) = free else {
            return Err(self.count_rejection(Rejection::PoolFull));
        };
        let Some(remote) = Remote::of(remote) else {
            return Err(self.count_rejection(Rejection::UnsupportedAddress));
        };
        let protocol = l.params.protocol;
        let mut new = Slot::occupied(ConnState::Connected, false, l.port, remote, protocol, now, now);
        new.events = event_bits::ACCEPTED;
        let handle = self.occupy(i, new, now);
        self.counters.accepted = self.counters.accepted.wrapping_add(1);
        let listener_stopped = l.params.mode == ListenMode::OneShot;
        if listener_stopped {
            self.listeners[li] = None;
        }
        Ok(Admitted {
            handle,
            listener_stopped,
        })
    }

    fn count_rejection(&mut self, why: Rejection) -> Rejection {
        let c = &mut self.counters;
        c.rejected = c.rejected.wrapping_add(1);
        match why {
            Rejection::PortCap => c.rejected_port_cap = c.rejected_port_cap.wrapping_add(1),
            Rejection::PoolFull => {
                c.rejected_pool_full = c.rejected_pool_full.wrapping_add(1);
                c.exhausted = c.exhausted.wrapping_add(1);
            }
            Rejection::UnsupportedAddress => {
                c.rejected_address = c.rejected_address.wrapping_add(1);
            }
        }
        why
    }

    /// An error from the stack's accept (retry classes are not counted).
    pub fn handle_accept_error(&mut self, class: ErrorClass) {
        if !class.is_retry() {
            self.counters.accept_errors = self.counters.accept_errors.wrapping_add(1);
        }
    }

    // ------------------------------------------------------------ connect

    /// The slot an outgoing connection will take: `want` if given and free, else the
    /// first free one. Nothing is taken yet.
    pub fn pick_connect_slot(
        &mut self,
        want: Option<usize>,
        remote: SocketAddr,
        link: LinkState,
    ) -> Result<usize, ConnectError> {
        if !link.allows_connect() {
            return Err(ConnectError::LinkDown);
        }
        if remote.port() == 0 {
            return Err(ConnectError::PortZero);
        }
        if Remote::of(remote).is_none() {
            return Err(ConnectError::UnsupportedAddress);
        }
        match want {
            Some(i) if i >= N => Err(ConnectError::NoSuchSlot),
            Some(i) if self.slots[i].state.is_in_use() => Err(ConnectError::SlotInUse),
            Some(i) => Ok(i),
            None => self.free_slot().ok_or_else(|| {
                self.counters.exhausted = self.counters.exhausted.wrapping_add(1);
                ConnectError::PoolFull
            }),
        }
    }

    /// The stack started (or completed) the connect: the slot is taken.
    pub fn handle_connect_started(
        &mut self,
        i: usize,
        remote: SocketAddr,
        protocol: u8,
        established: bool,
        deadline: Instant,
        now: Instant,
    ) -> ConnHandle {
        let state = if established {
            ConnState::Connected
        } else {
            ConnState::Connecting
        };
        // Checked by `pick_connect_slot`.
        let remote = Remote::of(remote).unwrap_or(Remote::NONE);
        let h = self.occupy(
            i,
            Slot::occupied(state, true, 0, remote, protocol, deadline, now),
            now,
        );
        self.counters.connects = self.counters.connects.wrapping_add(1);
        if established {
            self.slots[i].events |= event_bits::CONNECTED;
        }
        h
    }

    /// The stack refused the connect before a slot was taken.
    pub fn handle_connect_refused(&mut self) {
        self.counters.connects = self.counters.connects.wrapping_add(1);
        self.counters.connect_failed = self.counters.connect_failed.wrapping_add(1);
    }

    /// A connect completed: the slot becomes `Connected` if it is still connecting
    /// (`true`); `false` when the pool already failed it (deadline, link down).
    pub fn handle_connected(&mut self, i: usize, now: Instant) -> bool {
        self.tick(now);
        let s = &mut self.slots[i];
        if s.state != ConnState::Connecting {
            return false;
        }
        s.set_state(ConnState::Connected, now);
        s.touch(now);
        s.progress = SendProgress::new(now);
        s.events |= event_bits::CONNECTED;
        true
    }

    /// The connect failed or timed out: the socket is released; the slot stays
    /// `Aborted` with the reason until the application closes it.
    pub fn handle_connect_failed(&mut self, i: usize, reason: CloseReason, now: Instant) {
        self.tick(now);
        let s = &mut self.slots[i];
        if s.state.is_in_use() && s.state != ConnState::Aborted {
            s.stop_sending();
            s.note_reason(reason);
            s.set_state(ConnState::Aborted, now);
            s.events |= event_bits::CONNECT_FAILED;
            self.counters.connect_failed = self.counters.connect_failed.wrapping_add(1);
        }
    }

    // ------------------------------------------------------------ handles

    /// The slot a handle names, if the handle is not stale (its connection may have
    /// ended: the slot is then `Free`).
    pub fn slot_of(&self, h: ConnHandle) -> Result<usize, ConnError> {
        match self.slots.get(h.slot()) {
            Some(slot) if slot.generation == h.generation => Ok(h.slot()),
            _ => Err(ConnError::Stale),
        }
    }

    /// Whether slot `i` still holds the connection of `generation` (in use, not
    /// reused): what a task holding a socket checks before the core acts on it.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub fn holds(&self, i: usize, generation: u32) -> bool {
        let s = &self.slots[i];
        s.generation == generation && s.state.is_in_use()
    }

    /// The slot of a handle whose connection has not ended.
    pub fn live(&self, h: ConnHandle) -> Result<usize, ConnError> {
        let i = self.slot_of(h)?;
        let slot = &self.slots[i];
        if !slot.state.is_in_use() {
            return Err(ConnError::Closed(
                slot.close_reason.unwrap_or(CloseReason::Closed),
            ));
        }
        Ok(i)
    }

    /// Whether a read on slot `i` goes to the socket now: wait while connecting, go
    /// while open (also after the peer's FIN: what it sent before stays readable),
    /// else fail ([`error_for`](Self::error_for) says with what).
    pub fn may_read(&self, i: usize) -> Access {
        match self.slots[i].state {
            ConnState::Connecting => Access::Wait,
            ConnState::Connected | ConnState::OtherEndClosed => Access::Go,
            _ => Access::Fail,
        }
    }

    /// Whether a write on slot `i` goes to the socket now: wait while connecting, go
    /// while sending is possible (also after the peer's FIN: a half-close), else fail
    /// ([`error_for`](Self::error_for) says with what).
    pub fn may_write(&self, i: usize) -> Access {
        let s = &self.slots[i];
        // Two tests, the common case first (smaller than a dispatch on the state).
        if s.can_send && s.is_open() {
            Access::Go
        } else if s.state == ConnState::Connecting {
            Access::Wait
        } else {
            Access::Fail
        }
    }

    /// The error a handle operation reports for a slot's current state.
    pub fn error_for(&self, i: usize) -> ConnError {
        let s = &self.slots[i];
        errors::ended_error(s.state, s.close_reason)
    }

    /// What a read that found nothing reports: wait, unless the connection is
    /// already known dead (a write or the reaper found out), in which case the
    /// reader learns it at once.
    pub fn nothing_to_read(&self, i: usize) -> Option<ConnError> {
        let s = &self.slots[i];
        (s.state == ConnState::OtherEndClosed && !s.can_send).then(|| self.error_for(i))
    }

    // ------------------------------------------------------------ traffic

    pub fn handle_read(&mut self, i: usize, n: usize, now: Instant) {
        let s = &mut self.slots[i];
        s.bytes_in = s.bytes_in.wrapping_add(n as u32);
        if n > 0 {
            s.touch(now);
        }
    }

    /// A write took `taken` bytes (progress and the flush timer were updated by the
    /// write path on the slot).
    pub fn handle_written(&mut self, i: usize, taken: usize, now: Instant) {
        let s = &mut self.slots[i];
        s.bytes_out = s.bytes_out.wrapping_add(taken as u32);
        if taken > 0 {
            s.touch(now);
        }
    }

    /// A write handed `taken` of `requested` bytes straight to the stack (no
    /// coalescing: the async driver): the send progress the stall watch reads (bytes
    /// taken count as progress; fewer than requested means blocked), then
    /// [`handle_written`](Self::handle_written).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub fn handle_handed(&mut self, i: usize, taken: usize, requested: usize, now: Instant) {
        let progress = &mut self.slots[i].progress;
        progress.on_handed(taken, now);
        progress.set_blocked(taken < requested, now);
        self.handle_written(i, taken, now);
    }

    /// The peer sent FIN: `OtherEndClosed`, still writable (half-close). Returns
    /// whether this was news.
    pub fn handle_peer_fin(&mut self, i: usize, now: Instant) -> bool {
        self.tick(now);
        let s = &mut self.slots[i];
        if s.state != ConnState::Connected {
            return false;
        }
        s.set_state(ConnState::OtherEndClosed, now);
        s.note_reason(CloseReason::PeerGone(ErrorClass::Closed));
        s.events |= event_bits::PEER_CLOSED;
        self.counters.peer_closed = self.counters.peer_closed.wrapping_add(1);
        true
    }

    /// Apply an error's [`Disposition`](crate::Disposition) to a connection: the one
    /// rule of both drivers.
    pub fn handle_error(&mut self, i: usize, class: ErrorClass, now: Instant) -> AfterError {
        self.tick(now);
        let s = &mut self.slots[i];
        let Some((next, reason)) = errors::after_error(class) else {
            return AfterError::Retry;
        };
        // Both dispositions stop sending and record the reason (once, before the arms).
        let was = s.state;
        s.stop_sending();
        s.note_reason(reason);
        if next == ConnState::OtherEndClosed {
            if was == ConnState::Connected {
                s.set_state(ConnState::OtherEndClosed, now);
                s.events |= event_bits::PEER_CLOSED;
                self.counters.peer_closed = self.counters.peer_closed.wrapping_add(1);
            }
            AfterError::PeerGone
        } else {
            s.set_state(ConnState::Aborted, now);
            if matches!(
                was,
                ConnState::Connecting | ConnState::Connected | ConnState::OtherEndClosed
            ) {
                s.events |= event_bits::ABORTED;
                self.counters.aborted = self.counters.aborted.wrapping_add(1);
            }
            AfterError::Abort
        }
    }

    // ------------------------------------------------------------ timers

    /// When `timer` of slot `i` expires, if it is running.
    pub fn deadline(&self, i: usize, timer: Timer) -> Option<Stamp> {
        let s = &self.slots[i];
        let c = &self.config;
        if !timer.runs_in(s.state) {
            return None;
        }
        match timer {
            Timer::Connect => Some(s.connect_deadline()),
            Timer::Flush => s.open_flush_deadline(),
            Timer::Stall => s.open_stall_deadline(),
            Timer::Idle => s.idle_deadline(c.idle_timeout),
            Timer::Abandoned => {
                let after = c.abandoned_after?;
                // A half-closed connection still moving data is in use, not abandoned.
                let since = if s.can_send {
                    s.state_since.later(s.last_activity)
                } else {
                    s.state_since
                };
                Some(since.plus(after))
            }
        }
    }

    /// Whether `timer` of slot `i` has expired at `now`.
    pub fn due(&self, i: usize, timer: Timer, now: Instant) -> bool {
        self.deadline(i, timer).is_some_and(|d| d.reached(now))
    }

    /// The earliest deadline of every running timer: the first time at which a
    /// [`due`](Self::due) check returns `true` (it may already have passed).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let mut earliest: Option<Instant> = None;
        for i in 0..N {
            for timer in Timer::ALL {
                if let Some(d) = self.deadline(i, timer) {
                    let t = d.instant(self.clock);
                    earliest = Some(earliest.map_or(t, |e| e.min(t)));
                }
            }
        }
        earliest
    }

    /// The stall reading of slot `i` (its [`Timer::Stall`] expired): `queue` is the
    /// stack's send-queue depth if it can tell (netpool's coalesced bytes count too).
    /// Returns `true` when the connection is stalled and must be reaped (counted).
    ///
    /// Under pressure — while the connection is blocked (its last write could not hand
    /// everything over: the peer stopped taking bytes) and its end would give room to
    /// a listener that has none (no slot free, or its port's cap reached) — the
    /// shorter [`Config::pressure_grace`] applies: a connection with no send progress
    /// for that long yields its place (counted as `pressure_reaped`, apart from `reaped`). Each such reap gives
    /// the listener room, so the next stalled connection keeps its full grace unless
    /// the listener is short again: the first to reach the pressure grace, the
    /// stalest, goes first, one at a time. A reader that keeps draining makes progress
    /// within the pressure grace and is never taken; a connection that is not blocked
    /// (a small response retransmitted over a lossy link) keeps the full grace.
    ///
    /// A connection with bytes pending is read every eighth of the pressure grace,
    /// under pressure or not: when a listener runs out of room, the time of its last
    /// progress is known to within that eighth, and a blocked one yields at most two
    /// eighths after its pressure grace. (A reading is one send-queue query.)
    pub fn handle_stall_reading(&mut self, i: usize, queue: Option<usize>, now: Instant) -> bool {
        self.tick(now);
        let c = &self.config;
        let pressure = self.slots[i].progress.blocked() && self.relieves_pressure(i);
        let short = c.pressure_grace.min(c.stall_grace);
        let grace = if pressure { short } else { c.stall_grace };
        let stalled = self.slots[i].progress.observe_every(queue, now, grace, short) == Verdict::Stalled;
        if stalled {
            let c = &mut self.counters;
            c.pressure_reaped = c.pressure_reaped.wrapping_add(u32::from(pressure));
            c.reaped = c.reaped.wrapping_add(u32::from(!pressure));
        }
        stalled
    }

    /// Whether ending slot `i` would give room to a listener that has none: any
    /// listener, when no slot is free; else the one on the slot's port, at its cap.
    #[inline(always)]
    fn relieves_pressure(&self, i: usize) -> bool {
        if self.free_slots() == 0 {
            return self.listeners.iter().any(Option::is_some);
        }
        let s = &self.slots[i];
        self.listeners
            .iter()
            .flatten()
            .any(|l| s.counts_against(l.port) && self.open_on_port(l.port) >= usize::from(l.params.max_conns))
    }

    /// The pool's decision for an expired [`Timer::Idle`] or [`Timer::Abandoned`]
    /// (counted): how to release the socket and the reason to record. Slot `i`'s
    /// timer must be [`due`](Self::due): the poll that calls this has just checked
    /// (checked again in debug builds only, to keep a second copy out of the firmware).
    pub fn handle_expired(&mut self, i: usize, timer: Timer, now: Instant) -> Option<(Release, CloseReason)> {
        debug_assert!(self.due(i, timer, now), "slot {i}'s {timer:?} timer is not due");
        self.tick(now);
        let c = &mut self.counters;
        match timer {
            Timer::Idle => {
                c.idle_closed = c.idle_closed.wrapping_add(1);
                Some((Release::Close, CloseReason::Idle))
            }
            Timer::Abandoned => {
                c.abandoned = c.abandoned.wrapping_add(1);
                Some((Release::Abort, CloseReason::Abandoned))
            }
            // The drivers fail connects and read stalls themselves (I/O first).
            Timer::Connect | Timer::Flush | Timer::Stall => None,
        }
    }

    // ------------------------------------------------------------ ending

    /// The application closes (or aborts) a connection: `Ok(Some(i))` when slot `i`
    /// must be released now, `Ok(None)` when it has already ended (idempotent).
    pub fn handle_app_close(&mut self, h: ConnHandle, abort: bool) -> Result<Option<usize>, ConnError> {
        match self.live(h) {
            Ok(i) => {
                if abort && self.slots[i].state != ConnState::Aborted {
                    self.counters.aborted = self.counters.aborted.wrapping_add(1);
                }
                Ok(Some(i))
            }
            Err(ConnError::Closed(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// How the socket of a connection the application closes now is released: RST
    /// when the pool or the stack already gave up on it (send stall, fatal error,
    /// abandoned) — what the sync pool does when it decides — FIN otherwise (an open
    /// or half-closed connection, or one the idle timeout ended).
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub fn release_on_close(&self, i: usize) -> Release {
        let s = &self.slots[i];
        match (s.state, s.close_reason) {
            (ConnState::Aborted, Some(CloseReason::Idle)) => Release::Close,
            (ConnState::Aborted, _) => Release::Abort,
            (ConnState::Free, Some(CloseReason::Abandoned)) => Release::Abort,
            _ => Release::Close,
        }
    }

    /// The driver released slot `i`'s socket (`reason` says who decided). The slot
    /// is free — unless the pool decided it, [`Config::hold_ended`] is set and the
    /// application has not closed it: then it stays `Aborted` (with the reason and a
    /// [`EventKind::Reaped`] event) until the application closes the handle.
    pub fn handle_released(&mut self, i: usize, reason: CloseReason, now: Instant) {
        self.tick(now);
        let hold = self.config.hold_ended;
        let s = &mut self.slots[i];
        s.stop_sending();
        match reason {
            CloseReason::Closed | CloseReason::Aborted => s.note_reason(reason),
            _ => s.close_reason = Some(reason),
        }
        let pool_decision = matches!(reason, CloseReason::Stalled | CloseReason::Idle);
        if pool_decision {
            s.events |= event_bits::REAPED;
        }
        if pool_decision && hold {
            s.set_state(ConnState::Aborted, now);
        } else {
            s.events &= !event_bits::ACCEPTED;
            if s.state.is_in_use() {
                self.in_use -= 1;
            }
            s.set_state(ConnState::Free, now);
        }
    }

    /// The async driver's reaper ended a connection whose socket a task still holds:
    /// `Aborted` with `reason` (counted by the timer that decided it) until the task
    /// drops or closes its guard.
    #[cfg_attr(not(feature = "async"), allow(dead_code))]
    pub fn handle_gave_up(&mut self, i: usize, reason: CloseReason, now: Instant) {
        self.tick(now);
        let s = &mut self.slots[i];
        s.stop_sending();
        s.close_reason = Some(reason);
        s.events |= event_bits::REAPED;
        s.set_state(ConnState::Aborted, now);
    }

    // ------------------------------------------------------------ events

    /// The next per-connection event not yet drained (round robin over slots).
    pub fn poll_event(&mut self) -> Option<Event> {
        for k in 0..N {
            let i = (self.event_cursor as usize + k) % N;
            let s = &mut self.slots[i];
            if s.events == 0 {
                continue;
            }
            let bit = s.events & s.events.wrapping_neg();
            s.events &= !bit;
            self.event_cursor = ((i + 1) % N) as u8;
            let kind = match bit {
                event_bits::ACCEPTED => EventKind::Accepted,
                event_bits::CONNECTED => EventKind::Connected,
                event_bits::CONNECT_FAILED => EventKind::ConnectFailed,
                event_bits::PEER_CLOSED => EventKind::PeerClosed,
                event_bits::REAPED => EventKind::Reaped,
                _ => EventKind::Aborted,
            };
            return Some(Event {
                handle: s.handle(i),
                kind,
                reason: s.close_reason,
            });
        }
        None
    }

    /// The next accepted connection not yet handed out (drains its
    /// [`EventKind::Accepted`] event).
    pub fn take_accepted(&mut self) -> Option<usize> {
        let i = self
            .slots
            .iter()
            .position(|s| s.events & event_bits::ACCEPTED != 0 && s.state.is_in_use())?;
        self.claim_accepted(i);
        Some(i)
    }

    /// The accepted connection in slot `i` was handed to the application: its
    /// [`EventKind::Accepted`] event is drained (the async driver's `accept`).
    pub fn claim_accepted(&mut self, i: usize) {
        self.slots[i].events &= !event_bits::ACCEPTED;
    }

    // ------------------------------------------------------------ queries

    pub fn free_slot(&self) -> Option<usize> {
        self.slots.iter().position(|s| !s.state.is_in_use())
    }

    pub fn free_slots(&self) -> usize {
        N - usize::from(self.in_use)
    }

    pub fn handles(&self) -> impl Iterator<Item = ConnHandle> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.state.is_in_use())
            .map(|(i, s)| s.handle(i))
    }

    pub fn counters(&self) -> Counters {
        let mut c = self.counters;
        c.in_use = u32::from(self.in_use);
        c
    }

    pub fn count_dropped_on_close(&mut self, bytes: usize) {
        self.counters.dropped_on_close = self.counters.dropped_on_close.wrapping_add(bytes as u32);
    }

    /// Bytes waiting in netpool's coalescing buffer of slot `i`.
    pub fn buffered(&self, i: usize) -> usize {
        usize::from(self.slots[i].progress.buffered)
    }

    /// A snapshot of everything (both drivers' `report`). O(N + L), no I/O.
    pub fn report(&self, now: Instant, link: LinkState) -> Report<N, L> {
        Report {
            at: now,
            slots: core::array::from_fn(|i| self.slot_report(i, now)),
            listeners: core::array::from_fn(|i| {
                self.listener(i).map(|l| ListenerReport {
                    port: l.port,
                    params: l.params,
                    open: self.open_on_port(l.port) as u8,
                })
            }),
            counters: self.counters(),
            link,
            pcbs: PcbCounters::default(),
            closer: CloserCounters::ZERO,
        }
    }

    pub fn slot_report(&self, i: usize, now: Instant) -> SlotReport {
        let s = &self.slots[i];
        SlotReport {
            slot: i as u8,
            generation: s.generation,
            state: s.state,
            local_port: s.port,
            remote: s.remote.addr(),
            protocol: s.protocol,
            age: s.age(now),
            bytes_in: u64::from(s.bytes_in),
            bytes_out: u64::from(s.bytes_out),
            idle: s.last_activity.elapsed(now),
            buffered: s.progress.buffered,
            close_reason: s.close_reason,
        }
    }

    // ------------------------------------------------------------ internals

    /// Give free slot `i` to a new connection (`new`, from [`Slot::occupied`]).
    fn occupy(&mut self, i: usize, mut new: Slot, now: Instant) -> ConnHandle {
        self.tick(now);
        new.generation = self.slots[i].generation.wrapping_add(1);
        // Callers pick a free slot: this one becomes in use.
        self.in_use += 1;
        self.slots[i] = new;
        self.counters.high_water = self.counters.high_water.max(u32::from(self.in_use));
        self.slots[i].handle(i)
    }
}
