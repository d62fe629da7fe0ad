//! Connection states with stable numbers.
//!
//! The numbers are part of wire protocols: the Duet WiFi-to-SPI bridge sends them to
//! the main board as a `u8`. They never change. The numbers 5, 6 and 7 are reserved:
//! no state has them, and `ConnState::try_from` refuses them.

use core::fmt;

/// The state of one connection slot.
///
/// ```text
/// Free ──connect──▶ Connecting ──established──▶ Connected ──peer FIN/RST──▶ OtherEndClosed
///   ▲                   │ fails / deadline          │ fatal error                 │
///   │                   ▼                           ▼                             │
///   └──── close ──── Aborted ◀──────────────────────┘                             │
///   └──── close ──────────────────────────────────────────────────────────────────┘
/// ```
///
/// ```
/// use netpool::ConnState;
/// assert_eq!(ConnState::OtherEndClosed.as_u8(), 3);
/// assert_eq!(ConnState::try_from(4), Ok(ConnState::Aborted));
/// assert!(ConnState::try_from(5).is_err()); // 5, 6 and 7 are reserved
/// assert!(ConnState::try_from(8).is_err());
/// ```
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[repr(u8)]
pub enum ConnState {
    /// The slot holds nothing.
    Free = 0,
    /// An outgoing connection is being established.
    Connecting = 1,
    /// Established; data flows both ways.
    Connected = 2,
    /// The peer closed or reset the connection. Data already received stays readable;
    /// the application closes the slot when it is done with it.
    OtherEndClosed = 3,
    /// The connection failed (connect failure or a fatal stack error). The stack
    /// socket is already released; the application closes the slot to reuse it.
    Aborted = 4,
}

/// A byte that is not a [`ConnState`] number.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct InvalidState(pub u8);

impl ConnState {
    /// The wire number of this state.
    pub const fn as_u8(self) -> u8 {
        self as u8
    }

    /// Short lower-case name, as the original firmware printed it.
    pub const fn name(self) -> &'static str {
        match self {
            ConnState::Free => "free",
            ConnState::Connecting => "connecting",
            ConnState::Connected => "connected",
            ConnState::OtherEndClosed => "otherEndClosed",
            ConnState::Aborted => "aborted",
        }
    }

    /// Whether the slot is in use (anything but `Free`).
    pub const fn is_in_use(self) -> bool {
        !matches!(self, ConnState::Free)
    }
}

impl TryFrom<u8> for ConnState {
    type Error = InvalidState;
    fn try_from(v: u8) -> Result<Self, InvalidState> {
        Ok(match v {
            0 => ConnState::Free,
            1 => ConnState::Connecting,
            2 => ConnState::Connected,
            3 => ConnState::OtherEndClosed,
            4 => ConnState::Aborted,
            other => return Err(InvalidState(other)),
        })
    }
}

impl From<ConnState> for u8 {
    fn from(s: ConnState) -> u8 {
        s.as_u8()
    }
}

impl fmt::Display for ConnState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_wire_stable_and_round_trip() {
        let expected = [
            (ConnState::Free, 0),
            (ConnState::Connecting, 1),
            (ConnState::Connected, 2),
            (ConnState::OtherEndClosed, 3),
            (ConnState::Aborted, 4),
        ];
        for (state, n) in expected {
            assert_eq!(state.as_u8(), n);
            assert_eq!(ConnState::try_from(n), Ok(state));
        }
        for n in 5..=255u8 {
            assert_eq!(ConnState::try_from(n), Err(InvalidState(n)));
        }
    }
}
