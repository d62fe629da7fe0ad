//! The handshake lease (sans-IO): how long a half-open connection may hold one of a
//! listener's sockets, and which one gives way when the listener has none left
//! listening.
//!
//! On a stack without a SYN queue (smoltcp, embassy-net) a SYN takes a socket out of
//! LISTEN into SYN-RECEIVED. A peer that never sends the final ACK — a phone that
//! left WiFi mid-handshake, a stray SYN from a host that answers no ARP — would keep
//! it there while the stack retransmits its SYN-ACK, and once every armed socket is
//! taken that way every real client is refused. The lease keeps one rule for every
//! stack that arms sockets itself:
//!
//! 1. **A half-open socket holds its place for at most the deadline**
//!    ([`Config::handshake_deadline`](crate::Config::handshake_deadline)); then it is
//!    reset and listens again ([`expired`]).
//! 2. **A listener with room keeps a socket listening.** While a handshake is under
//!    way the listener keeps one socket armed beyond its room ([`wanted`]), so a
//!    real client's handshake is never the price of the next SYN; when even that one
//!    is taken (every armed socket half-open or holding a connection not yet
//!    accepted) the oldest half-open socket is reset and listens again in the same
//!    pass ([`evict_oldest`]). A real client's handshake is therefore evicted only
//!    when more SYNs than the listener has armed sockets arrive within its round
//!    trip, and a flood of SYNs that never finish cannot lock anyone out. When the
//!    stack has no socket for the one beyond the room, nothing is evicted: the
//!    half-open sockets keep their places until the deadline.
//!
//! The spare socket beyond the room can, at worst, take one connection more than the
//! pool serves there; the pool then turns it away by its admission rule, counted, as
//! for any connection beyond its cap.

use crate::time::{Duration, Instant};

/// How many sockets a listener keeps armed: its `room` (what the pool can still
/// serve there), and one more, listening, while `half_open` handshakes are under way
/// (none with no room: a listener the pool cannot serve does not listen).
#[inline]
pub(crate) const fn wanted(room: usize, half_open: usize) -> usize {
    if room > 0 && half_open > 0 {
        room + 1
    } else {
        room
    }
}

/// Whether a socket half-open since `since` has held its place for the whole
/// `deadline` at `now`: reset it and listen again.
#[inline]
pub(crate) fn expired(since: Instant, now: Instant, deadline: Duration) -> bool {
    now >= since + deadline
}

/// Whether, after arming, the listener must reset its oldest half-open socket to
/// listen again: it has room, and with `armed` sockets — its room and the one beyond
/// it — nothing listening and a handshake to give way. With no more than its room
/// armed (the stack had no socket to spare) nothing is evicted: every armed socket
/// may be a real client's handshake.
#[inline]
pub(crate) const fn evict_oldest(room: usize, armed: usize, listening: usize, half_open: usize) -> bool {
    room > 0 && armed > room && listening == 0 && half_open > 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_with_a_handshake_under_way_keeps_one_socket_beyond_its_room() {
        assert_eq!(wanted(4, 0), 4);
        assert_eq!(wanted(4, 1), 5);
        assert_eq!(wanted(4, 4), 5);
        assert_eq!(wanted(1, 1), 2);
    }

    #[test]
    fn a_listener_with_no_room_wants_no_socket_even_with_handshakes_under_way() {
        assert_eq!(wanted(0, 0), 0);
        assert_eq!(wanted(0, 3), 0);
        assert!(!evict_oldest(0, 3, 0, 3));
    }

    #[test]
    fn a_half_open_socket_expires_at_the_deadline_not_before() {
        let d = Duration::from_secs(3);
        let since = Instant::from_millis(10_000);
        assert!(!expired(since, Instant::from_millis(12_999), d));
        assert!(expired(since, Instant::from_millis(13_000), d));
        assert!(expired(since, Instant::from_millis(20_000), d));
        // A clock read before the handshake began never expires it.
        assert!(!expired(since, Instant::from_millis(9_000), d));
    }

    #[test]
    fn the_oldest_half_open_gives_way_only_when_nothing_listens() {
        assert!(evict_oldest(4, 5, 0, 5));
        assert!(evict_oldest(4, 5, 0, 1));
        assert!(!evict_oldest(4, 5, 1, 4));
        // Nothing half-open (every armed socket holds a connection not yet accepted):
        // nothing to evict; the pool accepts them.
        assert!(!evict_oldest(4, 5, 0, 0));
    }

    #[test]
    fn without_the_socket_beyond_the_room_no_handshake_is_evicted() {
        // One armed socket, its one real handshake under way, no socket to spare.
        assert!(!evict_oldest(1, 1, 0, 1));
        assert!(!evict_oldest(4, 4, 0, 4));
    }
}
