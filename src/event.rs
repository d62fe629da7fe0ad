//! Per-connection events ([`Event`], [`EventKind`]).

use crate::handle::{CloseReason, ConnHandle};

/// What happened to a connection.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum EventKind {
    /// An incoming connection was accepted into the slot.
    Accepted,
    /// An outgoing connection became established.
    Connected,
    /// An outgoing connection failed or timed out (the slot is `Aborted`).
    ConnectFailed,
    /// The peer closed (FIN) or went away (reset, lost): the slot is `OtherEndClosed`.
    PeerClosed,
    /// The pool ended the connection: send stall or idle timeout (see the reason).
    Reaped,
    /// A fatal stack error, or the application, aborted the connection.
    Aborted,
}

/// One event: the connection, what happened, and the close reason recorded so far.
///
/// Wire protocols that mirror the pool's slots (the bridge reports every socket's
/// state over SPI) need to learn that a connection arrived, that its peer left or
/// that the pool reaped it — without polling every slot's state and guessing what
/// changed. Both drivers keep the events as bits in the slot, so they never
/// overflow; [`Pool::poll_event`](crate::Pool::poll_event) drains them, slot by slot.
///
/// An event names its connection by handle. Events of a connection whose slot was
/// freed and given to a new connection are superseded by the new connection's: set
/// [`Config::hold_ended`](crate::Config::hold_ended) to keep a slot the pool ended
/// until the application has seen it and closed the handle.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Event {
    /// The connection (its handle may be stale by the time the event is read).
    pub handle: ConnHandle,
    /// What happened.
    pub kind: EventKind,
    /// Why the connection ended, if it has.
    pub reason: Option<CloseReason>,
}
