//! Pool configuration: the grace periods and policies, all with safe defaults.

use crate::time::Duration;

/// What the pool does with an incoming connection it cannot serve
/// (port cap reached, or no free slot).
///
/// Either way the connection is accepted from the stack and released at once, so it
/// never sits in the stack's backlog holding a PCB, and the rejection is counted.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum RejectPolicy {
    /// Abort (RST) where the stack can ([`TcpAbort`](crate::stack::TcpAbort)); the PCB
    /// is freed at once, with no TIME-WAIT. Falls back to a close.
    Abort,
    /// Close gracefully (FIN).
    Close,
}

/// Pool settings. Start from [`Config::new`] (the defaults) and adjust:
///
/// ```
/// use netpool::{Config, Duration};
/// let config = Config::new()
///     .with_stall_grace(Duration::from_secs(5))
///     .with_idle_timeout(Some(Duration::from_secs(60)));
/// assert_eq!(config.stall_grace, Duration::from_secs(5));
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct Config {
    /// A connection with bytes queued and no send progress (bytes acknowledged, or
    /// without [`TcpSendQueue`](crate::stack::TcpSendQueue), bytes taken by the stack)
    /// for this long is reaped: aborted and freed. Default 10 s.
    pub stall_grace: Duration,
    /// The shorter grace under pressure: while a listener has no room (its port's
    /// cap reached, or no free slot), a blocked connection (its last write could not
    /// hand everything over) whose end would give the listener room and that has
    /// made no send progress for this long yields its place (reaped, counted in
    /// [`Counters::pressure_reaped`](crate::Counters::pressure_reaped) apart from
    /// ordinary stall reaps); each reap gives room, so they go one at a time, the
    /// stalest first. A reader that keeps draining makes progress within it and is
    /// never taken; a peer that vanished mid-download (no FIN, no RST) is. At most
    /// [`stall_grace`](Self::stall_grace). Default 4 s: smoltcp and lwIP retransmit
    /// after 1 s and then 2 s, so a live peer behind a lossy link makes progress by
    /// about 3 s unless three transmissions in a row are lost.
    pub pressure_grace: Duration,
    /// How long a half-open connection (a SYN answered, the final ACK not yet come)
    /// may hold a socket on a stack that arms sockets itself (smoltcp and lwIP through
    /// [`TcpBacklog`](crate::stack::TcpBacklog), embassy-net through netpool's own
    /// acceptor) before it is reset and the socket listens again. Default 4 s: the SYN-ACK goes out at once, after 1 s and after 3 s
    /// (smoltcp's and Linux's initial retransmission timeout of 1 s, doubling), so a
    /// handshake gets three SYN-ACKs and a second for the answer to the third; a real
    /// client whose handshake is given up retransmits its SYN (Linux at 1 s, 3 s and
    /// 7 s) and finds a socket listening.
    /// Half-open sockets are kept apart from a listener's room, and the overdue one
    /// that waited longest gives way when no socket is left
    /// ([`handshake`](crate::stack::handshake)).
    pub handshake_deadline: Duration,
    /// Close connections with no traffic either way for this long. Default: off.
    pub idle_timeout: Option<Duration>,
    /// Free `Aborted` / `OtherEndClosed` slots the application has not closed after
    /// this long, so a forgotten handle cannot hold a slot forever. Default 30 s.
    pub abandoned_after: Option<Duration>,
    /// Longest time `MORE` bytes wait before they are sent anyway (Linux's `TCP_CORK`
    /// cap): in netpool's coalescing buffer on stacks without a MORE flag, or in the
    /// stack itself on stacks with one (then netpool pushes them with
    /// [`TcpPush`](crate::stack::TcpPush)). Also the retry interval when a stack
    /// refuses a flush. Default 200 ms.
    pub coalesce_delay: Duration,
    /// At most this many connections are taken from each listener's backlog per
    /// [`poll`](crate::Pool::poll), so one poll is bounded. Default 4.
    pub accepts_per_poll: u8,
    /// How connections that cannot be served are released. Default [`RejectPolicy::Abort`].
    pub reject: RejectPolicy,
    /// Keep a connection the pool ended itself (send stall, idle timeout) in its end
    /// state, `Aborted` with the reason, until the application closes the handle,
    /// instead of freeing the slot at once. The socket is released at once either way.
    /// For wire protocols whose peer must see every socket's end before its number
    /// is reused (see [`Pool::poll_event`](crate::Pool::poll_event)). Default: off.
    pub hold_ended: bool,
    /// How long the async driver gives a socket's release — the close or abort of a
    /// connection it turns away or a backlog let expire, an application's abort, a
    /// close the background closer had no room for — before it lets go of the
    /// socket. Default 1 s.
    pub release_deadline: Duration,
    /// How long the async driver's background closer
    /// ([`asynch::Closer`](crate::asynch::Closer)) gives a closed connection to finish
    /// — the rest of what the stack holds, FIN, the peer's ACK and FIN — before it
    /// resets it (within [`release_deadline`](Self::release_deadline) more). A close
    /// that finds the closer full waits for a place at most this plus
    /// `release_deadline`, the longest any close there can take. Default 2 s.
    pub close_linger: Duration,
}

impl Config {
    /// The defaults.
    pub const fn new() -> Self {
        Config {
            stall_grace: Duration::from_secs(10),
            pressure_grace: Duration::from_secs(4),
            handshake_deadline: Duration::from_secs(4),
            idle_timeout: None,
            abandoned_after: Some(Duration::from_secs(30)),
            coalesce_delay: Duration::from_millis(200),
            accepts_per_poll: 4,
            reject: RejectPolicy::Abort,
            hold_ended: false,
            release_deadline: Duration::from_secs(1),
            close_linger: Duration::from_secs(2),
        }
    }

    /// Set [`stall_grace`](Self::stall_grace).
    #[must_use]
    pub const fn with_stall_grace(mut self, d: Duration) -> Self {
        self.stall_grace = d;
        self
    }

    /// Set [`pressure_grace`](Self::pressure_grace).
    #[must_use]
    pub const fn with_pressure_grace(mut self, d: Duration) -> Self {
        self.pressure_grace = d;
        self
    }

    /// Set [`handshake_deadline`](Self::handshake_deadline).
    #[must_use]
    pub const fn with_handshake_deadline(mut self, d: Duration) -> Self {
        self.handshake_deadline = d;
        self
    }

    /// Set [`idle_timeout`](Self::idle_timeout).
    #[must_use]
    pub const fn with_idle_timeout(mut self, d: Option<Duration>) -> Self {
        self.idle_timeout = d;
        self
    }

    /// Set [`abandoned_after`](Self::abandoned_after).
    #[must_use]
    pub const fn with_abandoned_after(mut self, d: Option<Duration>) -> Self {
        self.abandoned_after = d;
        self
    }

    /// Set [`coalesce_delay`](Self::coalesce_delay).
    #[must_use]
    pub const fn with_coalesce_delay(mut self, d: Duration) -> Self {
        self.coalesce_delay = d;
        self
    }

    /// The most connections taken from one listener's backlog in a row: at least 1
    /// whatever [`accepts_per_poll`](Self::accepts_per_poll) says (both drivers use
    /// this).
    pub const fn accepts_in_a_row(&self) -> u8 {
        if self.accepts_per_poll == 0 {
            1
        } else {
            self.accepts_per_poll
        }
    }

    /// Set [`close_linger`](Self::close_linger).
    #[must_use]
    pub const fn with_close_linger(mut self, d: Duration) -> Self {
        self.close_linger = d;
        self
    }

    /// Set [`release_deadline`](Self::release_deadline).
    #[must_use]
    pub const fn with_release_deadline(mut self, d: Duration) -> Self {
        self.release_deadline = d;
        self
    }

    /// Set [`accepts_per_poll`](Self::accepts_per_poll) (at least 1).
    #[must_use]
    pub const fn with_accepts_per_poll(mut self, n: u8) -> Self {
        self.accepts_per_poll = if n == 0 { 1 } else { n };
        self
    }

    /// Set [`hold_ended`](Self::hold_ended).
    #[must_use]
    pub const fn with_hold_ended(mut self, hold: bool) -> Self {
        self.hold_ended = hold;
        self
    }

    /// Set [`reject`](Self::reject).
    #[must_use]
    pub const fn with_reject(mut self, p: RejectPolicy) -> Self {
        self.reject = p;
        self
    }
}

impl Default for Config {
    fn default() -> Self {
        Config::new()
    }
}
