//! The handshake lease on lwIP: how long a SYN-RCVD PCB may hold an entry of its
//! listener's backlog and a PCB of the pool, and which one gives way when the listener
//! cannot cover its room.
//!
//! lwIP keeps a SYN-RCVD PCB apart from its listener, but counts it against the
//! listener's backlog (`accepts_pending < backlog`, `TCP_LISTEN_BACKLOG`) and it takes a
//! PCB from the pool until the handshake completes or lwIP's own SYN-RCVD timeout
//! (`TCP_SYN_RCVD_TIMEOUT`, 20 s) gives up. A flood of SYNs that never complete then
//! fills the backlog and real clients' SYNs are dropped. [`Lease`] keeps netpool's rule
//! ([`netpool::stack::handshake`], the one rule every stack keeps) over those PCBs, at each
//! [`LwipStack::poll`](crate::LwipStack::poll) and each room the pool tells
//! ([`TcpBacklog::set_backlog`](netpool::stack::TcpBacklog::set_backlog)):
//!
//! 1. **Half-open PCBs are kept apart from the room**: the listen backlog is set to the
//!    listener's own (or the pool's room, if larger) plus the SYN-RCVD PCBs it has, so
//!    they take no backlog entry a real client needs.
//! 2. **A SYN-RCVD PCB older than the deadline**
//!    ([`Config::handshake_deadline`](netpool::Config::handshake_deadline)) is dropped
//!    (counted `half_open_expired`).
//! 3. **While the listener cannot take as many connections as its room** — free backlog
//!    entries and PCBs a SYN could get, plus connections waiting for `accept` — the
//!    oldest SYN-RCVD PCB past its round trip is dropped (counted `half_open_evicted`);
//!    one younger than [`ROUND_TRIP`] is presumed a real client's handshake in flight
//!    and is never dropped. The same when `tcp_new` finds no PCB for a new socket.
//!
//! A PCB is dropped with `tcp_abandon(pcb, 0)`: no RST, so a real client whose SYN-ACK
//! was lost retransmits its SYN and finds room (a RST would refuse it). lwIP gives the
//! backlog entry (`tcp_backlog_accepted`) and the PCB back at once and calls no
//! callback (a SYN-RCVD PCB has no err callback: `tcp_alloc` zeroes it and
//! `tcp_listen_input` sets only the listener's `callback_arg`), so the backend's
//! registry never hears of it.
//!
//! lwIP does not say when a SYN arrived (its `tmr` counts 500 ms ticks): a SYN-RCVD PCB
//! is dated from the first pass that sees it, on the stack's clock. A handshake is
//! therefore never older than it is taken to be, and never dropped early.

use netpool::stack::handshake::{lease, Handshake, ROUND_TRIP};
use netpool::stack::PcbCounters;
use netpool::{Duration, Instant};

use crate::ffi::{self, HalfOpen, MAX_HALF_OPEN, MAX_SOCKETS};
use crate::socket::LwipSocket;

/// A SYN-RCVD PCB being leased.
#[derive(Copy, Clone, Debug)]
struct Tracked {
    listener: LwipSocket,
    pcb: HalfOpen,
    /// First seen half-open (stack clock).
    since: Instant,
}

/// What the lease knows of a listener.
#[derive(Copy, Clone, Debug)]
struct Listen {
    /// The listener's table slot generation: a later user of the slot inherits nothing.
    generation: u32,
    /// The listen backlog it was made with: connections lwIP holds for it besides its
    /// half-open PCBs.
    base: u8,
    /// The room the pool told, if it did.
    room: Option<usize>,
}

/// The lease's state: the half-open PCBs seen, each listener's backlog and room, the
/// deadline, the counters.
#[derive(Debug)]
pub(crate) struct Lease {
    pub on: bool,
    pub deadline: Duration,
    /// By listener table slot.
    listens: [Option<Listen>; MAX_SOCKETS],
    half_open: [Option<Tracked>; MAX_HALF_OPEN],
    pub counters: PcbCounters,
}

impl Lease {
    pub(crate) fn new() -> Self {
        Lease {
            on: true,
            deadline: netpool::Config::new().handshake_deadline,
            listens: [None; MAX_SOCKETS],
            half_open: [None; MAX_HALF_OPEN],
            counters: PcbCounters::default(),
        }
    }

    /// What the lease knows of `listener` (`None`: nothing yet, or only of an earlier
    /// user of its slot).
    fn listen(&self, listener: LwipSocket) -> Option<Listen> {
        self.listens[listener.index()].filter(|l| l.generation == listener.generation())
    }

    /// Note that `listener` listens with backlog `base`.
    pub(crate) fn set_base(&mut self, listener: LwipSocket, base: u8) {
        self.listens[listener.index()] = Some(Listen {
            generation: listener.generation(),
            base,
            room: None,
        });
    }

    /// Note the room the pool told for `listener` (listening with backlog `base` if the
    /// lease did not know it).
    pub(crate) fn set_room(&mut self, listener: LwipSocket, room: usize, base: u8) {
        let mut l = self.listen(listener).unwrap_or(Listen {
            generation: listener.generation(),
            base,
            room: None,
        });
        l.room = Some(room);
        self.listens[listener.index()] = Some(l);
    }

    /// Rule 1, on lwIP: half-open PCBs are kept apart from the room. lwIP keeps a
    /// SYN-RCVD PCB apart from its listener but counts it in `accepts_pending` against
    /// the listen backlog; the backlog is set to the listener's own (`base`, or the
    /// room if larger: a burst as large as the room is taken) plus the half-open PCBs
    /// it has now (`accepts_pending` less the connections waiting for `accept`), so
    /// they take no entry the room needs (PCBs permitting: rule 3 sees to those). With
    /// no half-open PCB and a room within it, the backlog is the listener's own.
    fn keep_apart(listener: LwipSocket, base: usize) {
        if let Some((_, pending)) = ffi::listen_backlog_of(listener) {
            let half_open = usize::from(pending).saturating_sub(ffi::waiting(listener));
            let backlog = base.saturating_add(half_open).min(usize::from(u8::MAX));
            ffi::set_listen_backlog(listener, backlog as u8);
        }
    }

    /// A pass over every listener at `now`; `default_base`: the backlog of a listener
    /// the lease does not know; `count_unarmed`: count a listener left short of its
    /// room with no room for a single SYN (`unarmed_passes`).
    pub(crate) fn pass(&mut self, now: Instant, default_base: u8, count_unarmed: bool) {
        if !self.on {
            return;
        }
        let mut listeners = [LwipSocket::new(0, 0); MAX_SOCKETS];
        let n = ffi::listeners(&mut listeners);
        let listeners = &listeners[..n];
        // Listeners gone: their half-open PCBs went with them (lwIP clears `listener`).
        for t in self.half_open.iter_mut() {
            if t.is_some_and(|t| !listeners.contains(&t.listener)) {
                *t = None;
            }
        }
        for &l in listeners {
            self.pass_listener(l, now, default_base, count_unarmed);
        }
    }

    /// Keep the lease of `listener`'s half-open PCBs at `now` (see the module docs).
    pub(crate) fn pass_listener(
        &mut self,
        listener: LwipSocket,
        now: Instant,
        default_base: u8,
        count_unarmed: bool,
    ) {
        if !self.on {
            return;
        }
        let mut seen = [HalfOpen::NONE; MAX_HALF_OPEN];
        let total = ffi::half_opens(listener, &mut seen);
        let seen = &seen[..total.min(MAX_HALF_OPEN)];
        // Forget the PCBs lwIP no longer has half-open for this listener (the handshake
        // completed, lwIP gave up, or the PCB went to another handshake).
        for t in self.half_open.iter_mut() {
            if t.is_some_and(|t| t.listener == listener && !seen.contains(&t.pcb)) {
                *t = None;
            }
        }
        // Date the new ones from now.
        for h in seen {
            let known = self
                .half_open
                .iter()
                .flatten()
                .any(|t| t.listener == listener && t.pcb == *h);
            if !known {
                if let Some(free) = self.half_open.iter_mut().find(|t| t.is_none()) {
                    *free = Some(Tracked {
                        listener,
                        pcb: *h,
                        since: now,
                    });
                }
            }
        }
        // Rule 2: past the deadline, dropped.
        for k in 0..MAX_HALF_OPEN {
            let Some(t) = self.half_open[k] else {
                continue;
            };
            if t.listener == listener && lease(t.since, now, self.deadline) == Handshake::Expired {
                if ffi::drop_half_open(listener, t.pcb.id) {
                    let c = &mut self.counters.half_open_expired;
                    *c = c.saturating_add(1);
                }
                self.half_open[k] = None;
            }
        }
        // Rule 1: half-open PCBs kept apart from the backlog. The room: what the pool
        // told, else the listener's own backlog.
        let listen = self.listen(listener);
        let base = usize::from(listen.map_or(default_base, |l| l.base));
        let room = listen.and_then(|l| l.room).unwrap_or(base);
        let base = base.max(room);
        Self::keep_apart(listener, base);
        // Rule 3: short of the room, the oldest overdue ones give way.
        loop {
            let (listening, ready) = Self::takes(listener);
            if room.saturating_sub(listening + ready) == 0 {
                break;
            }
            let Some(k) = self.oldest_overdue(listener, now) else {
                if listening == 0 && count_unarmed {
                    let c = &mut self.counters.unarmed_passes;
                    *c = c.saturating_add(1);
                }
                break;
            };
            let id = self.half_open[k].map_or(0, |t| t.pcb.id);
            self.half_open[k] = None;
            if ffi::drop_half_open(listener, id) {
                let c = &mut self.counters.half_open_evicted;
                *c = c.saturating_add(1);
            }
            Self::keep_apart(listener, base);
        }
    }

    /// No PCB is left for a new socket (`tcp_new` failed): the overdue half-open PCB of
    /// any listener seen first gives way (counted `half_open_evicted`), as for a
    /// listener short of its room. `false` if there is none (a handshake in flight is
    /// never taken).
    pub(crate) fn evict_for_socket(&mut self, now: Instant, default_base: u8) -> bool {
        if !self.on {
            return false;
        }
        self.pass(now, default_base, false);
        let oldest = self
            .half_open
            .iter()
            .enumerate()
            .filter_map(|(k, t)| t.map(|t| (k, t)))
            .filter(|(_, t)| lease(t.since, now, self.deadline) == Handshake::Overdue)
            .min_by_key(|(_, t)| t.since);
        let Some((k, t)) = oldest else {
            return false;
        };
        self.half_open[k] = None;
        if !ffi::drop_half_open(t.listener, t.pcb.id) {
            return false;
        }
        let c = &mut self.counters.half_open_evicted;
        *c = c.saturating_add(1);
        true
    }

    /// How many more SYNs `listener` would take now (free backlog entries, PCBs a SYN
    /// could get), and how many connections wait for `accept` on it. Half-open PCBs
    /// count in neither: they are kept apart from the room (netpool's
    /// `short_of_room(room, listening, ready)` is `room - (listening + ready)`).
    fn takes(listener: LwipSocket) -> (usize, usize) {
        let backlog = ffi::listen_backlog_of(listener)
            .map_or(usize::MAX, |(b, pending)| usize::from(b.saturating_sub(pending)));
        let pcbs = usize::try_from(ffi::pcbs_for_syn()).unwrap_or(usize::MAX);
        (backlog.min(pcbs), ffi::waiting(listener))
    }

    /// The overdue half-open PCB of `listener` seen first.
    fn oldest_overdue(&self, listener: LwipSocket, now: Instant) -> Option<usize> {
        let mut oldest: Option<(Instant, usize)> = None;
        for (k, t) in self.half_open.iter().enumerate() {
            let Some(t) = t else {
                continue;
            };
            if t.listener == listener
                && lease(t.since, now, self.deadline) == Handshake::Overdue
                && oldest.is_none_or(|(s, _)| t.since < s)
            {
                oldest = Some((t.since, k));
            }
        }
        oldest.map(|(_, k)| k)
    }

    /// When the lease next changes for a PCB it knows (one passes its round trip or its
    /// deadline), as of `now`.
    pub(crate) fn next_change(&self, now: Instant) -> Option<Instant> {
        if !self.on {
            return None;
        }
        self.half_open
            .iter()
            .flatten()
            .map(|t| {
                let overdue = t.since + ROUND_TRIP.min(self.deadline);
                if overdue > now {
                    overdue
                } else {
                    t.since + self.deadline
                }
            })
            .min()
    }

    /// The half-open PCBs of `listener` as of the last pass: remote end, first seen.
    pub(crate) fn of(
        &self,
        listener: LwipSocket,
    ) -> impl Iterator<Item = (core::net::SocketAddrV4, Instant)> + '_ {
        self.half_open
            .iter()
            .flatten()
            .filter(move |t| t.listener == listener)
            .map(|t| (t.pcb.remote, t.since))
    }
}
