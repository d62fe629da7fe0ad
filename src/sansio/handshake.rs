//! The handshake lease (sans-IO): how long a half-open connection may hold one of a
//! listener's sockets, and which one gives way when the listener needs a socket
//! listening.
//!
//! On a stack without a SYN queue (smoltcp, embassy-net) a SYN takes a socket out of
//! LISTEN into SYN-RECEIVED. A peer that never sends the final ACK — a phone that
//! left WiFi mid-handshake, a stray SYN from a host that answers no ARP — would keep
//! it there while the stack retransmits its SYN-ACK; once every armed socket is taken
//! that way, every real client is refused. The lease is one rule for every stack that
//! arms sockets itself:
//!
//! 1. **Half-open sockets are kept apart from the room.** A listener keeps sockets
//!    listening, or holding connections not yet accepted, for its whole room (what
//!    the pool can still serve there: [`short_of_room`]); a socket taken into
//!    SYN-RECEIVED is replaced from the free sockets, as lwIP keeps SYN-RCVD PCBs
//!    apart from the listener.
//! 2. **A half-open socket holds its place for at most the deadline**
//!    ([`Config::handshake_deadline`](crate::Config::handshake_deadline)); then it is
//!    reset and listens again ([`Handshake::Expired`]).
//! 3. **When the listener is short of its room and no socket is free, the oldest
//!    half-open socket past its round trip gives way**: it is reset and listens again
//!    in the same pass. A handshake younger than [`ROUND_TRIP`] is presumed a real
//!    client's, in flight ([`Handshake::InFlight`]), and is never evicted: a real
//!    client's handshake gives way only when it has not completed within that time
//!    and SYNs keep coming, and a flood of SYNs that never finish cannot lock anyone
//!    out.
//!
//! A real client whose half-open socket was reset retransmits its SYN (Linux after
//! 1 s and 3 s) and finds a socket listening.
//!
//! [`SmoltcpStack`](crate::stack::smoltcp::SmoltcpStack) keeps the lease; a stack
//! adapter of your own that arms sockets for listeners keeps it with these functions:
//!
//! ```
//! use netpool::stack::handshake::{lease, short_of_room, Handshake};
//! use netpool::{Config, Duration, Instant};
//! let deadline = Config::new().handshake_deadline;
//! let syn_at = Instant::from_millis(1_000);
//! // At each pass, for each half-open socket of a listener ...
//! match lease(syn_at, Instant::from_millis(1_100), deadline) {
//!     Handshake::Expired => { /* reset it and listen again */ }
//!     Handshake::Overdue => { /* may give way, oldest first, if the room needs it */ }
//!     Handshake::InFlight => { /* keep it */ }
//! }
//! // ... and arm free sockets while the listener is short of its room (4 connections
//! // to come, 1 socket listening, none holding a connection not yet accepted).
//! assert_eq!(short_of_room(4, 1, 0), 3);
//! ```

use crate::time::{Duration, Instant};

/// How long a handshake is presumed a real client's, in flight: a round trip over
/// WiFi with room to spare (typically 2–100 ms). Never more than the deadline.
pub const ROUND_TRIP: Duration = Duration::from_millis(250);

/// Where a half-open socket stands in its lease.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum Handshake {
    /// Younger than [`ROUND_TRIP`]: never evicted.
    InFlight,
    /// Past its round trip: kept while sockets allow, the oldest gives way first.
    Overdue,
    /// Held its place for the whole deadline: reset, listens again.
    Expired,
}

/// Where a socket half-open since `since` stands at `now` under `deadline`.
#[inline]
pub fn lease(since: Instant, now: Instant, deadline: Duration) -> Handshake {
    let age = now.saturating_since(since);
    if age >= deadline {
        Handshake::Expired
    } else if age.as_millis() < ROUND_TRIP.as_millis().min(deadline.as_millis()) {
        Handshake::InFlight
    } else {
        Handshake::Overdue
    }
}

/// How many more sockets a listener must have listening to cover its `room`, with
/// `listening` sockets listening and `ready` holding connections not yet accepted
/// (half-open ones are not counted: they are kept apart).
#[inline]
pub const fn short_of_room(room: usize, listening: usize, ready: usize) -> usize {
    room.saturating_sub(listening + ready)
}

/// How many idle listening sockets are beyond the `room` and stop listening.
#[inline]
pub const fn beyond_room(room: usize, listening: usize, ready: usize) -> usize {
    let extra = (listening + ready).saturating_sub(room);
    // Only listening sockets stop: at most all of them.
    if extra < listening {
        extra
    } else {
        listening
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    const DEADLINE: Duration = Duration::from_secs(3);

    #[test]
    fn a_handshake_is_in_flight_for_its_round_trip_then_overdue_then_expired() {
        let since = at(10_000);
        assert_eq!(lease(since, at(10_000), DEADLINE), Handshake::InFlight);
        assert_eq!(lease(since, at(10_249), DEADLINE), Handshake::InFlight);
        assert_eq!(lease(since, at(10_250), DEADLINE), Handshake::Overdue);
        assert_eq!(lease(since, at(12_999), DEADLINE), Handshake::Overdue);
        assert_eq!(lease(since, at(13_000), DEADLINE), Handshake::Expired);
        assert_eq!(lease(since, at(20_000), DEADLINE), Handshake::Expired);
    }

    #[test]
    fn a_clock_read_before_the_handshake_began_finds_it_in_flight() {
        assert_eq!(lease(at(10_000), at(9_000), DEADLINE), Handshake::InFlight);
    }

    #[test]
    fn a_deadline_shorter_than_the_round_trip_still_expires_it() {
        let d = Duration::from_millis(100);
        assert_eq!(lease(at(0), at(99), d), Handshake::InFlight);
        assert_eq!(lease(at(0), at(100), d), Handshake::Expired);
    }

    #[test]
    fn half_open_sockets_do_not_cover_the_room() {
        assert_eq!(short_of_room(4, 0, 0), 4);
        assert_eq!(short_of_room(4, 1, 2), 1);
        assert_eq!(short_of_room(4, 3, 2), 0);
        assert_eq!(short_of_room(0, 0, 0), 0);
    }

    #[test]
    fn only_idle_listening_sockets_beyond_the_room_stop() {
        assert_eq!(beyond_room(4, 4, 0), 0);
        assert_eq!(beyond_room(2, 4, 0), 2);
        assert_eq!(beyond_room(0, 3, 0), 3);
        // Connections not yet accepted beyond the room stay; only listening ones go.
        assert_eq!(beyond_room(1, 2, 3), 2);
        assert_eq!(beyond_room(0, 0, 3), 0);
    }
}
