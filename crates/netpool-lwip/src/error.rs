//! The backend's errors: lwIP's `err_t` ([`LwipErr`], classified onto netpool's
//! [`ErrorClass`]) and [`LwipError`], which adds the few failures the backend itself
//! detects.
//!
//! ```
//! use netpool::{Classify, Disposition, ErrorClass};
//! use netpool_lwip::LwipErr;
//! // lwIP killed the connection to reclaim its PCB (ERR_ABRT): the peer is gone.
//! assert_eq!(LwipErr(-13).class(), ErrorClass::Aborted);
//! assert_eq!(LwipErr(-13).class().disposition(), Disposition::PeerGone);
//! // ERR_WOULDBLOCK is not an error at all.
//! assert!(LwipErr(-7).class().is_retry());
//! ```

use core::fmt;

use embedded_nal::{TcpError, TcpErrorKind};
use netpool::{Classify, ErrorClass};

/// lwIP's `err_t` codes (`lwip/err.h`), named here once for the whole crate.
pub(crate) const ERR_OK: i8 = 0;
pub(crate) const ERR_MEM: i8 = -1;
pub(crate) const ERR_BUF: i8 = -2;
pub(crate) const ERR_TIMEOUT: i8 = -3;
pub(crate) const ERR_RTE: i8 = -4;
pub(crate) const ERR_INPROGRESS: i8 = -5;
pub(crate) const ERR_VAL: i8 = -6;
pub(crate) const ERR_WOULDBLOCK: i8 = -7;
pub(crate) const ERR_USE: i8 = -8;
pub(crate) const ERR_ALREADY: i8 = -9;
pub(crate) const ERR_ISCONN: i8 = -10;
pub(crate) const ERR_CONN: i8 = -11;
pub(crate) const ERR_IF: i8 = -12;
pub(crate) const ERR_ABRT: i8 = -13;
pub(crate) const ERR_RST: i8 = -14;
pub(crate) const ERR_CLSD: i8 = -15;
pub(crate) const ERR_ARG: i8 = -16;

/// An lwIP `err_t` code (a signed byte; 0 is `ERR_OK`).
///
/// | code | name | class |
/// |---|---|---|
/// | 0 | `ERR_OK` | — (not an error; [`LwipErr::class_of`] returns `None`) |
/// | −1 | `ERR_MEM` | `OutOfResources` |
/// | −2 | `ERR_BUF` | `OutOfResources` |
/// | −3 | `ERR_TIMEOUT` | `Timeout` |
/// | −4 | `ERR_RTE` | `NoRoute` |
/// | −5 | `ERR_INPROGRESS` | `WouldBlock` |
/// | −6 | `ERR_VAL` | `InvalidInput` |
/// | −7 | `ERR_WOULDBLOCK` | `WouldBlock` |
/// | −8 | `ERR_USE` | `AddressInUse` |
/// | −9 | `ERR_ALREADY` | `WouldBlock` (a connect is already under way) |
/// | −10 | `ERR_ISCONN` | `InvalidInput` (a backend answers a repeated `connect` on an established connection with `Ok`, not with this) |
/// | −11 | `ERR_CONN` | `ConnectionLost` |
/// | −12 | `ERR_IF` | `NoRoute` |
/// | −13 | `ERR_ABRT` | `Aborted` |
/// | −14 | `ERR_RST` | `Reset` |
/// | −15 | `ERR_CLSD` | `Closed` |
/// | −16 | `ERR_ARG` | `InvalidInput` |
/// | other | — | `Fatal` |
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct LwipErr(pub i8);

impl LwipErr {
    /// `ERR_OK`
    pub const OK: LwipErr = LwipErr(ERR_OK);

    /// The class of an lwIP return code, or `None` for `ERR_OK`.
    pub const fn class_of(code: i8) -> Option<ErrorClass> {
        Some(match code {
            ERR_OK => return None,
            ERR_MEM | ERR_BUF => ErrorClass::OutOfResources,
            ERR_TIMEOUT => ErrorClass::Timeout,
            ERR_RTE | ERR_IF => ErrorClass::NoRoute,
            ERR_INPROGRESS | ERR_WOULDBLOCK | ERR_ALREADY => ErrorClass::WouldBlock,
            ERR_VAL | ERR_ISCONN | ERR_ARG => ErrorClass::InvalidInput,
            ERR_USE => ErrorClass::AddressInUse,
            ERR_CONN => ErrorClass::ConnectionLost,
            ERR_ABRT => ErrorClass::Aborted,
            ERR_RST => ErrorClass::Reset,
            ERR_CLSD => ErrorClass::Closed,
            _ => ErrorClass::Fatal,
        })
    }

    /// The lwIP name of the code (`"ERR_RST"`), or `"ERR_?"` for an unknown one.
    pub const fn name(self) -> &'static str {
        match self.0 {
            ERR_OK => "ERR_OK",
            ERR_MEM => "ERR_MEM",
            ERR_BUF => "ERR_BUF",
            ERR_TIMEOUT => "ERR_TIMEOUT",
            ERR_RTE => "ERR_RTE",
            ERR_INPROGRESS => "ERR_INPROGRESS",
            ERR_VAL => "ERR_VAL",
            ERR_WOULDBLOCK => "ERR_WOULDBLOCK",
            ERR_USE => "ERR_USE",
            ERR_ALREADY => "ERR_ALREADY",
            ERR_ISCONN => "ERR_ISCONN",
            ERR_CONN => "ERR_CONN",
            ERR_IF => "ERR_IF",
            ERR_ABRT => "ERR_ABRT",
            ERR_RST => "ERR_RST",
            ERR_CLSD => "ERR_CLSD",
            ERR_ARG => "ERR_ARG",
            _ => "ERR_?",
        }
    }
}

/// `ERR_OK` classifies as `Fatal` here: a caller that has an `LwipErr` in hand as an
/// error has already checked it is not `ERR_OK`. Use [`LwipErr::class_of`] on raw codes.
impl Classify for LwipErr {
    fn class(&self) -> ErrorClass {
        match Self::class_of(self.0) {
            Some(c) => c,
            None => ErrorClass::Fatal,
        }
    }
}

impl fmt::Display for LwipErr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.name(), self.0)
    }
}

/// Why an [`LwipStack`](crate::LwipStack) operation failed.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum LwipError {
    /// lwIP returned this `err_t`, or reported it in the err callback when it freed the
    /// connection (`ERR_RST`: reset by the peer; `ERR_ABRT`: aborted by lwIP itself,
    /// e.g. `tcp_kill_prio` reclaiming the PCB or retransmissions exhausted). Class:
    /// [`LwipErr`]'s table (`ERR_MEM` → out of resources, `ERR_RST` → reset,
    /// `ERR_ABRT` → aborted...).
    Lwip(LwipErr),
    /// A connect was answered with RST (nothing listening). Class
    /// [`Refused`](ErrorClass::Refused).
    Refused,
    /// A connect was given up by lwIP (SYN retransmissions exhausted). Class
    /// [`Timeout`](ErrorClass::Timeout).
    ConnectTimedOut,
    /// The handle's socket was given back (closed, aborted) and may belong to someone
    /// else now; nothing was done. Class [`InvalidInput`](ErrorClass::InvalidInput).
    Stale,
    /// The operation does not apply to the socket in its state (send on a listener,
    /// bind twice...). Class [`InvalidInput`](ErrorClass::InvalidInput).
    InvalidState,
    /// The backend's socket table is full ([`MAX_SOCKETS`](crate::MAX_SOCKETS)). Class
    /// [`OutOfResources`](ErrorClass::OutOfResources).
    NoSlot,
    /// IPv6 or an unspecified address: this backend speaks IPv4. Class
    /// [`NoRoute`](ErrorClass::NoRoute).
    Unaddressable,
    /// Another [`LwipStack`](crate::LwipStack) is alive in this process (lwIP is global
    /// state). Class [`InvalidInput`](ErrorClass::InvalidInput).
    InUse,
}

impl LwipError {
    /// The lwIP code, if the error came from lwIP.
    pub const fn code(self) -> Option<LwipErr> {
        match self {
            LwipError::Lwip(e) => Some(e),
            _ => None,
        }
    }
}

impl fmt::Display for LwipError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LwipError::Lwip(e) => write!(f, "lwIP: {e}"),
            LwipError::Refused => f.write_str("connection refused"),
            LwipError::ConnectTimedOut => f.write_str("connect timed out (SYN retries exhausted)"),
            LwipError::Stale => f.write_str("stale socket handle"),
            LwipError::InvalidState => f.write_str("invalid socket state for this operation"),
            LwipError::NoSlot => f.write_str("socket table full"),
            LwipError::Unaddressable => f.write_str("unaddressable endpoint (IPv4 only)"),
            LwipError::InUse => f.write_str("another LwipStack is alive in this process"),
        }
    }
}

impl core::error::Error for LwipError {}

/// See each variant for its class.
impl Classify for LwipError {
    fn class(&self) -> ErrorClass {
        match self {
            LwipError::Lwip(e) => e.class(),
            LwipError::Refused => ErrorClass::Refused,
            LwipError::ConnectTimedOut => ErrorClass::Timeout,
            LwipError::Stale | LwipError::InvalidState | LwipError::InUse => ErrorClass::InvalidInput,
            LwipError::NoSlot => ErrorClass::OutOfResources,
            LwipError::Unaddressable => ErrorClass::NoRoute,
        }
    }
}

/// Errors that mean the peer is gone (reset, closed, lost, aborted) are
/// [`TcpErrorKind::PipeClosed`]; everything else is [`TcpErrorKind::Other`].
impl TcpError for LwipError {
    fn kind(&self) -> TcpErrorKind {
        if self.class().is_peer_gone() {
            TcpErrorKind::PipeClosed
        } else {
            TcpErrorKind::Other
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use netpool::Disposition;

    /// The incident's `Poll()` fix: these four lwIP codes mean the peer is gone,
    /// WOULDBLOCK and TIMEOUT are not errors, everything else is fatal.
    #[test]
    fn lwip_codes_classify_as_the_incident_fix_requires() {
        for code in [-11, -13, -14, -15] {
            assert_eq!(
                LwipErr(code).class().disposition(),
                Disposition::PeerGone,
                "{}",
                LwipErr(code)
            );
        }
        for code in [-3, -5, -7, -9] {
            assert!(LwipErr(code).class().is_retry(), "{}", LwipErr(code));
        }
        for code in [-1, -2, -4, -6, -8, -10, -12, -16, -17, -100, 5] {
            assert_eq!(
                LwipErr(code).class().disposition(),
                Disposition::Fatal,
                "{}",
                LwipErr(code)
            );
        }
        assert_eq!(LwipErr::class_of(0), None);
    }

    #[test]
    fn every_lwip_code_has_a_name_and_never_panics() {
        for code in i8::MIN..=i8::MAX {
            let e = LwipErr(code);
            let _ = e.class();
            let known = (-16..=0).contains(&code);
            assert_eq!(e.name() != "ERR_?", known, "{code}");
        }
    }

    #[test]
    fn lwip_codes_keep_netpool_classes() {
        assert_eq!(LwipError::Lwip(LwipErr(-14)).class(), ErrorClass::Reset);
        assert_eq!(LwipError::Lwip(LwipErr(-13)).class(), ErrorClass::Aborted);
        assert_eq!(LwipError::Lwip(LwipErr(-1)).class(), ErrorClass::OutOfResources);
        assert_eq!(LwipError::Lwip(LwipErr(-14)).kind(), TcpErrorKind::PipeClosed);
        assert_eq!(LwipError::Lwip(LwipErr(-1)).kind(), TcpErrorKind::Other);
        assert_eq!(LwipError::Refused.class(), ErrorClass::Refused);
        assert!(LwipError::ConnectTimedOut.class().is_retry());
        assert_eq!(LwipError::Stale.code(), None);
        assert_eq!(LwipError::Lwip(LwipErr(-8)).code(), Some(LwipErr(-8)));
        for e in [
            LwipError::Lwip(LwipErr(-15)),
            LwipError::Refused,
            LwipError::ConnectTimedOut,
            LwipError::Stale,
            LwipError::InvalidState,
            LwipError::NoSlot,
            LwipError::Unaddressable,
            LwipError::InUse,
        ] {
            assert!(!std::format!("{e}").is_empty());
        }
    }
}
