//! A slot's timer work, in one order for both drivers: the core decides what happens
//! and in which order; the driver only does the socket I/O it is asked for, through
//! [`SlotIo`].
//!
//! The sync pool owns its sockets and answers every question; the async driver's
//! reaper holds none (the tasks do), so it answers "still under way", "nothing to
//! push", "unknown", "cannot tell" and "a task holds it" — and the same rules give the
//! same outcome wherever a socket's answer is not needed.

use core::net::SocketAddr;

use super::{Core, Release, Slot, Stamp, Timer};
use crate::config::Config;
use crate::error::ErrorClass;
use crate::handle::CloseReason;
use crate::link::LinkState;
use crate::stack::PeerStatus;
use crate::state::ConnState;
use crate::time::Instant;

/// Whether a deadline is set and reached.
#[inline(always)]
fn reached(deadline: Option<Stamp>, now: Instant) -> bool {
    deadline.is_some_and(|d| d.reached(now))
}

/// The socket I/O the core asks a driver for while it runs a slot's timers.
pub(crate) trait SlotIo {
    /// Drive the connect of slot `i` to `remote`: `Ok(true)` established, `Ok(false)`
    /// still under way (or not the driver's to drive), `Err` the stack's error.
    fn connect(&mut self, i: usize, remote: SocketAddr) -> Result<bool, ErrorClass>;
    /// Push what is held back for slot `i` now (coalesced bytes, MORE bytes).
    fn push(&mut self, i: usize, slot: &mut Slot, config: &Config, now: Instant) -> Result<(), ErrorClass>;
    /// The peer's status, without reading.
    fn peer_status(&mut self, i: usize) -> PeerStatus;
    /// The stack's send-queue depth for slot `i`, if it can tell.
    fn send_queue(&mut self, i: usize) -> Option<usize>;
    /// Give slot `i`'s socket back to the stack, `how`: `Some(bytes dropped)` (what a
    /// close could not hand over), or `None` when a task holds the socket and will
    /// release it itself.
    fn release(
        &mut self,
        i: usize,
        how: Release,
        slot: &mut Slot,
        config: &Config,
        now: Instant,
    ) -> Option<usize>;
    /// Release slot `i`'s socket at once (RST where the stack can) while the slot
    /// keeps its end state: a failed connect or a fatal error.
    fn abort(&mut self, i: usize);
}

/// What the timer work did, summed over the slots it ran on (the sync pool's
/// [`PollSummary`](crate::PollSummary)).
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct SlotOutcome {
    /// Outgoing connections that became established.
    pub connected: u16,
    /// Connections whose peer went away.
    pub peer_gone: u16,
    /// Connections the pool ended (connect failure, fatal error, stall, idle,
    /// abandoned).
    pub closed: u16,
}

impl<const N: usize, const L: usize> Core<N, L> {
    /// [`poll_slot`](Self::poll_slot) for every slot, in slot order (the sync pool's
    /// `poll`; the async reaper runs one slot per critical section).
    #[inline(always)]
    pub fn poll_slots<I: SlotIo>(
        &mut self,
        now: Instant,
        link: LinkState,
        io: &mut I,
        out: &mut SlotOutcome,
    ) {
        for i in 0..N {
            self.poll_slot(i, now, link, io, out);
        }
    }

    /// Run slot `i`'s timer work at `now`, the timers [`Timer::runs_in`] gives its
    /// state, in this order: finish or fail a connect (the link gate first, then the
    /// stack, then the deadline); push due held-back bytes; notice a peer that left;
    /// take a due stall reading and reap a stall; apply the idle timeout; then the
    /// abandoned timeout. `link` is the link state as the driver last read it.
    #[inline(always)]
    pub fn poll_slot<I: SlotIo>(
        &mut self,
        i: usize,
        now: Instant,
        link: LinkState,
        io: &mut I,
        out: &mut SlotOutcome,
    ) {
        // Open slots first: they are the ones an idle poll walks over.
        let state = self.slots[i].state;
        // The idle or abandoned timer that ends the slot, if one expired: one call for
        // every ending (one copy of its set-up).
        let expired = if Timer::Idle.runs_in(state) {
            self.watch(i, now, io, out)
        } else if Timer::Connect.runs_in(state) {
            self.advance_connect(i, now, link, io, out);
            None
        } else if Timer::Abandoned.runs_in(state) {
            self.due(i, Timer::Abandoned, now).then_some(Timer::Abandoned)
        } else {
            None
        };
        if let Some(timer) = expired {
            self.expired(i, timer, now, io, out);
        }
    }

    fn advance_connect<I: SlotIo>(
        &mut self,
        i: usize,
        now: Instant,
        link: LinkState,
        io: &mut I,
        out: &mut SlotOutcome,
    ) {
        // The reason first, then one call for every failure (one copy of its set-up).
        let reason = match self.slots[i].remote.addr() {
            None => CloseReason::ConnectFailed(ErrorClass::Fatal),
            Some(_) if !link.allows_connect() => CloseReason::ConnectFailed(ErrorClass::NoRoute),
            Some(remote) => match io.connect(i, remote) {
                Ok(true) => {
                    self.handle_connected(i, now);
                    out.connected += 1;
                    return;
                }
                Err(class) if !class.is_retry() => CloseReason::ConnectFailed(class),
                _ if self.due(i, Timer::Connect, now) => CloseReason::ConnectTimeout,
                _ => return,
            },
        };
        self.fail_connect(i, reason, now, io, out);
    }

    /// A connect failed: the socket goes at once, the slot stays `Aborted` with the
    /// reason so the application sees it.
    fn fail_connect<I: SlotIo>(
        &mut self,
        i: usize,
        reason: CloseReason,
        now: Instant,
        io: &mut I,
        out: &mut SlotOutcome,
    ) {
        io.abort(i);
        self.handle_connect_failed(i, reason, now);
        out.closed += 1;
    }

    /// An open slot's timers (`Flush`, `Stall`, `Idle`, and `Abandoned` when
    /// [`Timer::runs_in`] says so), for a slot `poll_slot` found open. Returns the
    /// idle or abandoned timer that has expired, for `poll_slot` to end the slot.
    #[inline(always)]
    fn watch<I: SlotIo>(
        &mut self,
        i: usize,
        now: Instant,
        io: &mut I,
        out: &mut SlotOutcome,
    ) -> Option<Timer> {
        if reached(self.slots[i].open_flush_deadline(), now) {
            let (slot, config) = (&mut self.slots[i], &self.config);
            if let Err(class) = io.push(i, slot, config, now) {
                self.on_error(i, class, now, io, out);
                return None;
            }
        }

        // The slot is read only when the peer's status needs it (an idle open
        // connection reads nothing here).
        match io.peer_status(i) {
            PeerStatus::Closed if self.slots[i].state == ConnState::Connected => {
                self.handle_peer_fin(i, now);
                out.peer_gone += 1;
            }
            PeerStatus::Gone(class)
                if !class.is_retry()
                    && (self.slots[i].can_send || self.slots[i].state == ConnState::Connected) =>
            {
                self.on_error(i, class, now, io, out);
                return None;
            }
            _ => {}
        }

        if reached(self.slots[i].open_stall_deadline(), now) {
            let queue = io.send_queue(i);
            if self.handle_stall_reading(i, queue, now) {
                self.end(i, Release::Abort, CloseReason::Stalled, now, io);
                out.closed += 1;
                return None;
            }
        }

        // An idle timeout ends the slot: its abandoned timer is not read then.
        if reached(self.slots[i].idle_deadline(self.config.idle_timeout), now) {
            Some(Timer::Idle)
        } else {
            // Read again: the peer's FIN may have come in this pass.
            let state = self.slots[i].state;
            (Timer::Abandoned.runs_in(state) && self.due(i, Timer::Abandoned, now))
                .then_some(Timer::Abandoned)
        }
    }

    /// An expired idle or abandoned timer: the core's release, carried out. (The
    /// check is inline; the rare ending is not, to keep every poll's path short.)
    #[cold]
    #[inline(never)]
    fn expired<I: SlotIo>(
        &mut self,
        i: usize,
        timer: Timer,
        now: Instant,
        io: &mut I,
        out: &mut SlotOutcome,
    ) {
        if let Some((how, reason)) = self.handle_expired(i, timer, now) {
            self.end(i, how, reason, now, io);
            out.closed += 1;
        }
    }

    /// A stack error met while running the timers: the error rule, carried out.
    #[cold]
    #[inline(never)]
    fn on_error<I: SlotIo>(
        &mut self,
        i: usize,
        class: ErrorClass,
        now: Instant,
        io: &mut I,
        out: &mut SlotOutcome,
    ) {
        let was_connected = self.slots[i].state == ConnState::Connected;
        if class.is_peer_gone() {
            out.peer_gone += u16::from(was_connected);
        } else if !class.is_retry() {
            out.closed += 1;
        }
        self.apply_error(i, class, now, io);
    }

    /// Apply an error's disposition: a fatal one releases the socket at once; a
    /// peer-gone one keeps it, so received bytes stay readable.
    pub fn apply_error<I: SlotIo>(&mut self, i: usize, class: ErrorClass, now: Instant, io: &mut I) {
        if self.handle_error(i, class, now) == super::AfterError::Abort {
            io.abort(i);
        }
    }

    /// End slot `i`'s connection, `how`, for `reason` (the application's close or
    /// abort, or the pool's decision): the socket goes back to the stack and the slot
    /// is freed (or held, [`Config::hold_ended`]). When a task holds the socket, the
    /// slot stays `Aborted` with the reason until the task lets go — except for an
    /// abandoned one, which is freed (the holder's handle is stale from then on).
    pub fn end<I: SlotIo>(&mut self, i: usize, how: Release, reason: CloseReason, now: Instant, io: &mut I) {
        let (slot, config) = (&mut self.slots[i], &self.config);
        match io.release(i, how, slot, config, now) {
            Some(dropped) => {
                self.count_dropped_on_close(dropped);
                self.handle_released(i, reason, now);
            }
            None if reason == CloseReason::Abandoned => self.handle_released(i, reason, now),
            None => self.handle_gave_up(i, reason, now),
        }
    }
}
