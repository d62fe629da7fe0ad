//! Listener arming: each pass keeps a listener's room listening, leases half-open
//! handshakes ([`handshake`]), holds the accept queue, and
//! closes a listener.

use ::smoltcp::socket::tcp::State;
use ::smoltcp::time::Instant;

use super::{netpool_instant, tcp_mut, tcp_ref, Listener, Role, SmolError, SmolSocket, SmoltcpStack};
use crate::sansio::handshake;

impl<'a, const M: usize> SmoltcpStack<'a, M> {
    /// After a poll: free finished closing sockets, put armed sockets whose connection
    /// died before it was accepted back in LISTEN, keep listeners armed (counting a
    /// listener left short with no socket listening).
    pub(super) fn maintain(&mut self) {
        for i in 0..self.entries.len() {
            self.note_closing(i);
        }
        for li in 0..M {
            if self.listeners[li].open && self.refresh_listener(li) {
                let c = &mut self.counters.unarmed_passes;
                *c = c.saturating_add(1);
            }
        }
    }

    /// Keep listener `li` at its backlog under the handshake lease
    /// ([`handshake`]): re-listen dead armed sockets and half-open ones past
    /// the deadline, reset connections that waited out the deadline in the accept
    /// queue while the pool had no room; keep sockets listening, or holding
    /// connections not yet accepted, for the whole backlog (the pool's room, at least
    /// the accept queue's depth; half-open ones kept apart), stopping idle listening
    /// ones beyond it and arming up to it from free or reclaimed sockets — and, none
    /// left, from the overdue half-open socket that has waited longest
    /// ([`take_socket`](Self::take_socket)). Returns whether it is left short with no
    /// socket listening (the next SYN is refused although the listener wants more
    /// connections).
    pub(super) fn refresh_listener(&mut self, li: usize) -> bool {
        let Listener {
            port, backlog, sized, ..
        } = self.listeners[li];
        // The room, and the accept queue: at least its depth armed, beyond the room
        // connections wait for the pool to have room.
        let room = backlog;
        let backlog = if sized {
            backlog.max(self.accept_queue)
        } else {
            backlog
        };
        let (mut listening, mut ready) = (0, 0);
        for i in 0..self.entries.len() {
            if !self.entries[i].role.armed_for(li) {
                continue;
            }
            let socket = tcp_ref(&self.sockets, self.entries[i].handle);
            match socket.state() {
                // The connection died before it was accepted: the socket is free, and
                // armed again below.
                State::Closed => self.entries[i].role = Role::Free,
                State::Listen => {
                    self.entries[i].role = Role::armed(li);
                    listening += 1;
                }
                State::SynReceived => match self.half_open_lease(i, li) {
                    handshake::Handshake::Expired => {
                        if self.relisten(i, li, port) {
                            listening += 1;
                        }
                        let c = &mut self.counters.half_open_expired;
                        *c = c.saturating_add(1);
                    }
                    handshake::Handshake::InFlight | handshake::Handshake::Overdue => {}
                },
                // A connection waiting for `accept` (no longer half-open): for at most
                // the deadline, when the pool sizes the listener.
                _ => {
                    let since = match self.entries[i].role {
                        Role::Armed {
                            ready_since: Some(since),
                            ..
                        } => since,
                        _ => self.now,
                    };
                    self.entries[i].role = Role::Armed {
                        listener: li as u16,
                        half_open_since: None,
                        ready_since: Some(since),
                    };
                    let waited_out = handshake::lease(
                        netpool_instant(since),
                        netpool_instant(self.now),
                        self.handshake_deadline,
                    ) == handshake::Handshake::Expired;
                    if sized && room == 0 && waited_out {
                        // Reset (RST at the next poll), then free like a closing socket.
                        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
                        self.entries[i].role = Role::Closing {
                            state: State::Closed,
                            since: self.now,
                        };
                        let c = &mut self.counters.accept_queue_expired;
                        *c = c.saturating_add(1);
                    } else {
                        ready += 1;
                    }
                }
            }
        }
        // More than the pool can serve: idle listening sockets stop (a handshake under
        // way completes and is accepted; the pool's admission decides).
        let mut stop = handshake::beyond_room(backlog, listening, ready);
        for i in 0..self.entries.len() {
            if stop == 0 {
                break;
            }
            if self.entries[i].role.armed_for(li) {
                let socket = tcp_mut(&mut self.sockets, self.entries[i].handle);
                if socket.state() == State::Listen {
                    socket.close();
                    self.entries[i].role = Role::Free;
                    listening -= 1;
                    stop -= 1;
                }
            }
        }
        while handshake::short_of_room(backlog, listening, ready) > 0 {
            // A free socket, a reclaimed closing one, or — none left — the overdue
            // half-open socket that has waited longest, of any listener.
            let Some(i) = self.take_socket() else {
                break;
            };
            if tcp_mut(&mut self.sockets, self.entries[i].handle)
                .listen(port)
                .is_err()
            {
                break;
            }
            self.entries[i].role = Role::armed(li);
            listening += 1;
        }
        handshake::short_of_room(backlog, listening, ready) > 0 && listening == 0
    }

    /// The lease of armed socket `i` of listener `li`, half-open: noted since the
    /// first pass that saw it so.
    pub(super) fn half_open_lease(&mut self, i: usize, li: usize) -> handshake::Handshake {
        let since = match self.entries[i].role {
            Role::Armed {
                half_open_since: Some(since),
                ..
            } => since,
            _ => self.now,
        };
        self.entries[i].role = Role::Armed {
            listener: li as u16,
            half_open_since: Some(since),
            ready_since: None,
        };
        handshake::lease(
            netpool_instant(since),
            netpool_instant(self.now),
            self.handshake_deadline,
        )
    }

    /// The overdue half-open socket of listener `li` that has waited longest.
    pub(super) fn oldest_overdue(&self, li: usize) -> Option<usize> {
        let now = netpool_instant(self.now);
        let mut oldest: Option<(Instant, usize)> = None;
        for (i, e) in self.entries.iter().enumerate() {
            let Role::Armed {
                listener,
                half_open_since: Some(since),
                ..
            } = e.role
            else {
                continue;
            };
            let overdue = usize::from(listener) == li
                && tcp_ref(&self.sockets, e.handle).state() == State::SynReceived
                && handshake::lease(netpool_instant(since), now, self.handshake_deadline)
                    == handshake::Handshake::Overdue;
            if overdue && oldest.is_none_or(|(s, _)| since < s) {
                oldest = Some((since, i));
            }
        }
        oldest.map(|(_, i)| i)
    }

    /// Reset armed socket `i`'s half-open connection (no word to the peer) and listen
    /// on `port` again; `false` (the socket freed) if smoltcp refuses.
    pub(super) fn relisten(&mut self, i: usize, li: usize, port: u16) -> bool {
        tcp_mut(&mut self.sockets, self.entries[i].handle).abort();
        self.fresh_slot(i);
        let socket = tcp_mut(&mut self.sockets, self.entries[i].handle);
        if socket.listen(port).is_ok() {
            self.entries[i].role = Role::armed(li);
            true
        } else {
            self.entries[i].role = Role::Free;
            false
        }
    }

    /// Give socket `i` a fresh place in the set: taken out and put back, the same
    /// socket (buffers, settings) under a new handle. smoltcp keeps per place, not per
    /// connection, that a neighbour did not answer (its SYN-ACK to a host that answers
    /// no ARP) and then keeps the socket silent for a second: reused as it is for the
    /// next peer, a real client's SYN-ACK would wait that second. Never panics: the
    /// place just emptied is free for `add`.
    pub(super) fn fresh_slot(&mut self, i: usize) {
        let socket = self.sockets.remove(self.entries[i].handle);
        self.entries[i].handle = self.sockets.add(socket);
    }

    /// Close a listener: listening sockets are closed (free at once), connections it
    /// had not handed out are reset.
    pub(super) fn close_listener(&mut self, s: &SmolSocket) -> Result<(), SmolError> {
        let li = self.resolve_listener(s)?;
        let l = &mut self.listeners[li];
        l.open = false;
        l.generation = l.generation.wrapping_add(1);
        for i in 0..self.entries.len() {
            if !self.entries[i].role.armed_for(li) {
                continue;
            }
            let socket = tcp_mut(&mut self.sockets, self.entries[i].handle);
            if socket.state() == State::Listen {
                socket.close();
            } else {
                socket.abort();
            }
            self.release(i);
        }
        Ok(())
    }
}
