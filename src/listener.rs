//! Listeners: per-port caps, one-shot mode, and the admission decision (sans-IO).

use crate::handle::ListenerId;

/// Whether a listener keeps listening after an accept.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum ListenMode {
    /// Listen until stopped.
    Persistent,
    /// Stop after the first connection that is served (an FTP data port). The
    /// accepted connection keeps only the port number: nothing points at the
    /// listener once it is gone.
    OneShot,
}

/// How to listen on a port.
///
/// ```
/// use netpool::{ListenMode, ListenParams};
/// let http = ListenParams::new(4).with_protocol(0);
/// let ftp_data = ListenParams::new(1).with_protocol(2).with_mode(ListenMode::OneShot);
/// assert_eq!(ftp_data.max_conns, 1);
/// # let _ = http;
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct ListenParams {
    /// An application tag copied to every connection accepted here (HTTP, FTP, Telnet...).
    pub protocol: u8,
    /// At most this many connections on this port at once. 0 stops the listener.
    pub max_conns: u8,
    /// Persistent or one-shot.
    pub mode: ListenMode,
}

impl ListenParams {
    /// A persistent listener with protocol tag 0 and the given cap.
    pub const fn new(max_conns: u8) -> Self {
        ListenParams {
            protocol: 0,
            max_conns,
            mode: ListenMode::Persistent,
        }
    }

    /// Set the protocol tag.
    #[must_use]
    pub const fn with_protocol(mut self, protocol: u8) -> Self {
        self.protocol = protocol;
        self
    }

    /// Set the mode.
    #[must_use]
    pub const fn with_mode(mut self, mode: ListenMode) -> Self {
        self.mode = mode;
        self
    }
}

/// Why an incoming connection is turned away.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum Rejection {
    /// The port's connection cap is reached.
    PortCap,
    /// No free connection slot.
    PoolFull,
    /// An IPv6 peer while the `ipv6` feature is off.
    UnsupportedAddress,
}

/// What [`Pool::listen`](crate::Pool::listen) did.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum ListenOutcome {
    /// A new listener.
    Started(ListenerId),
    /// The port already had a listener; its parameters were replaced.
    Updated(ListenerId),
    /// `max_conns` was 0: the port's listener (if any) was stopped.
    Stopped,
}
