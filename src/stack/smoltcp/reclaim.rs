//! Roles and reclaim: giving a socket back, and which closing socket (or overdue
//! half-open handshake, or idle accept-queue socket) is taken when none is free
//! ([`Reclaim`], lwIP's `tcp_alloc` order).

use ::smoltcp::socket::tcp::State;
use ::smoltcp::time::Instant;

use super::{elapsed, tcp_mut, tcp_ref, Role, SmoltcpStack};

/// Which closing sockets (given back by the application, still finishing their close
/// in smoltcp) may be taken for a new connection or a listener when no socket is free.
///
/// A candidate is taken oldest first (by when it entered its state) within the first
/// state that has one. An open connection is never taken.
///
/// ```
/// use netpool::stack::smoltcp::Reclaim;
/// assert_eq!(Reclaim::default(), Reclaim::Closing);
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Reclaim {
    /// lwIP 2's `tcp_alloc` order: TIME-WAIT, then LAST-ACK, then CLOSING, then
    /// FIN-WAIT-1/FIN-WAIT-2 held past the
    /// [FIN-WAIT bound](SmoltcpStack::with_fin_wait_bound). The default.
    #[default]
    Closing,
    /// TIME-WAIT only (lwIP 1.4's first step).
    TimeWait,
    /// Never: a closing socket holds its socket until smoltcp is done with it (10 s of
    /// TIME-WAIT for an active closer), and a listener with no free socket refuses SYNs.
    Never,
}

impl<'a, const M: usize> SmoltcpStack<'a, M> {
    /// The application gives socket `i` back: every copy of its handle goes stale; it
    /// is free once smoltcp is done with it (at once if it already is).
    pub(super) fn release(&mut self, i: usize) {
        let state = tcp_ref(&self.sockets, self.entries[i].handle).state();
        let e = &mut self.entries[i];
        e.generation = e.generation.wrapping_add(1);
        e.role = Role::Closing {
            state,
            since: self.now,
        };
        self.note_closing(i);
    }

    /// Follow a closing socket: note when it enters a new TCP state, and free it once
    /// smoltcp is done with it (CLOSED with nothing left to send: an abort's RST goes
    /// out at the next poll).
    pub(super) fn note_closing(&mut self, i: usize) {
        let Role::Closing { state, .. } = self.entries[i].role else {
            return;
        };
        let socket = tcp_ref(&self.sockets, self.entries[i].handle);
        let now_state = socket.state();
        if now_state == State::Closed && socket.remote_endpoint().is_none() {
            self.entries[i].role = Role::Free;
        } else if now_state != state {
            self.entries[i].role = Role::Closing {
                state: now_state,
                since: self.now,
            };
        }
    }

    /// When a closing socket in `state` since `since` may be reclaimed, its rank in
    /// lwIP's `tcp_alloc` order (lower first); `None`: not under this policy.
    pub(super) fn reclaim_rank(&self, state: State, since: Instant) -> Option<u8> {
        match (self.reclaim, state) {
            (Reclaim::Never, _) => None,
            (_, State::TimeWait) => Some(0),
            (Reclaim::TimeWait, _) => None,
            (_, State::LastAck) => Some(1),
            (_, State::Closing) => Some(2),
            (_, State::FinWait1 | State::FinWait2) if elapsed(since, self.now) >= self.fin_wait_bound => {
                Some(3)
            }
            _ => None,
        }
    }

    /// A socket for a new use: a free one, else the closing socket the policy reclaims
    /// first (the oldest in the first state of TIME-WAIT, LAST-ACK, CLOSING, FIN-WAIT
    /// past the bound), counted by state. A reclaimed socket is handed over CLOSED:
    /// the caller's `listen` or `connect` restarts it without a word to the old peer
    /// (any segment it still sends gets the interface's RST, as for any unknown
    /// connection). `None`: every socket is in use, armed, or closing and kept.
    pub(super) fn take_socket(&mut self) -> Option<usize> {
        if let Some(i) = self.entries.iter().position(|e| e.role == Role::Free) {
            return Some(i);
        }
        // Closing sockets' states are up to date: smoltcp changes them only in a poll,
        // after which `maintain` notes every one.
        let mut best: Option<(u8, Instant, usize, State)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            if let Role::Closing { state, since } = e.role {
                if let Some(rank) = self.reclaim_rank(state, since) {
                    if best.is_none_or(|(r, s, _, _)| (rank, since) < (r, s)) {
                        best = Some((rank, since, i, state));
                    }
                }
            }
        }
        let Some((_, _, i, state)) = best else {
            return self.take_overdue_handshake();
        };
        let c = &mut self.counters;
        let counter = match state {
            State::TimeWait => &mut c.reclaimed_time_wait,
            State::LastAck => &mut c.reclaimed_last_ack,
            State::Closing => &mut c.reclaimed_closing,
            _ => &mut c.reclaimed_fin_wait,
        };
        *counter = counter.saturating_add(1);
        if state != State::TimeWait {
            // Out of the connection (CLOSED): `listen` and `connect` refuse an open one.
            tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        }
        self.entries[i].role = Role::Free;
        Some(i)
    }

    /// A socket for a new use when none is free or reclaimable: the half-open socket
    /// of any listener that is overdue and has waited longest (counted as evicted).
    /// Its listener re-arms at its next pass, taking an overdue one of its own if it
    /// must; a handshake in flight is never taken.
    pub(super) fn take_overdue_handshake(&mut self) -> Option<usize> {
        let i = (0..M)
            .filter(|&li| self.listeners[li].open)
            .filter_map(|li| self.oldest_overdue(li))
            .min_by_key(|&i| match self.entries[i].role {
                Role::Armed {
                    half_open_since: Some(since),
                    ..
                } => since,
                _ => self.now,
            })?;
        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        self.fresh_slot(i);
        self.entries[i].role = Role::Free;
        let c = &mut self.counters.half_open_evicted;
        *c = c.saturating_add(1);
        Some(i)
    }

    /// A socket for a new use when nothing else can be had: an idle listening socket
    /// of a listener's accept queue (beyond its room).
    pub(super) fn take_idle_queue_socket(&mut self) -> Option<usize> {
        for li in 0..M {
            let l = self.listeners[li];
            if !(l.open && l.sized) {
                continue;
            }
            let (mut held, mut idle) = (0, None);
            for (i, e) in self.entries.iter().enumerate() {
                if e.role.armed_for(li) {
                    held += 1;
                    if tcp_ref(&self.sockets, e.handle).state() == State::Listen {
                        idle = Some(i);
                    }
                }
            }
            if let Some(i) = idle.filter(|_| held > l.backlog) {
                tcp_mut(&mut self.sockets, self.entries[i].handle).close();
                self.entries[i].role = Role::Free;
                return Some(i);
            }
        }
        None
    }
}
