//! What netpool needs from a TCP stack, beyond embedded-nal.
//!
//! embedded-nal's [`TcpFullStack`] has no MORE flag, no abort, no send-queue depth, no
//! peer state and no link state. netpool defines one small trait for each. Every method
//! has a default that is the documented fallback, so a stack opts in to exactly what it
//! can do with an (empty or partial) `impl`:
//!
//! | trait | native behaviour | fallback (default method) |
//! |---|---|---|
//! | [`TcpAbort`] | send RST, free the PCB at once | `close` (FIN) |
//! | [`TcpSendFlags`] | pass MORE/PUSH to the stack | netpool coalesces in a per-slot buffer |
//! | [`TcpPush`] | send what MORE writes left queued, now | nothing to do (plain sends are not held) |
//! | [`TcpSendQueue`] | bytes taken but not yet acknowledged | stall detection on write progress |
//! | [`TcpPeerStatus`] | FIN/RST seen without reading | detected on the next read or write |
//! | [`LinkStatus`] | link up/down read from the driver | "unknown", treated as up |
//! | [`TcpBacklog`] | listening sockets sized to the pool's room on the port | the stack's own backlog |
//! | [`PcbDiagnostics`] | the stack's own PCB reclaims, for the pool's report | zeros |
//!
//! [`Stack`] bundles them; the pool is generic over it. A plain embedded-nal stack gets
//! every fallback by wrapping it in [`Plain`].
//!
//! ```
//! use netpool::stack::{Plain, Stack};
//! fn takes_a_stack<S: Stack>(_: S) {}
//! # fn demo<S: embedded_nal::TcpFullStack>(any_embedded_nal_stack: S) {
//! takes_a_stack(Plain::new(any_embedded_nal_stack));
//! # }
//! ```

pub use crate::sansio::handshake;
#[cfg(feature = "smoltcp")]
pub mod smoltcp;
#[cfg(feature = "std")]
pub mod std_net;

use core::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};

use crate::error::{Classify, ErrorClass};
use crate::link::LinkState;
pub use crate::link::LinkStatus;

/// Abortive close: send RST and release the stack's PCB at once.
///
/// Fallback: [`TcpClientStack::close`] (FIN; the stack finishes the close on its own).
pub trait TcpAbort: TcpClientStack {
    /// `true` when [`abort`](Self::abort) really sends RST.
    const NATIVE_ABORT: bool = false;

    /// Abort the connection. Default: a normal close.
    fn abort(&mut self, socket: Self::TcpSocket) -> Result<(), Self::Error> {
        self.close(socket)
    }
}

/// Whether more data follows a write (see [`TcpSendFlags`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub enum SendFlag {
    /// More data follows: the stack may hold this data to coalesce segments
    /// (lwIP `TCP_WRITE_FLAG_MORE`, Linux `MSG_MORE`).
    More,
    /// Send now (TCP PSH): no MORE flag.
    Push,
}

impl SendFlag {
    /// `Push` when `push` is true, `More` otherwise.
    pub const fn from_push(push: bool) -> Self {
        if push {
            SendFlag::Push
        } else {
            SendFlag::More
        }
    }
}

/// A send that carries the MORE/PUSH flag to the stack.
///
/// Fallback: plain [`TcpClientStack::send`]; netpool then coalesces `More` writes in a
/// per-slot buffer and sends them on push, when the buffer fills, on close, or when
/// the coalescing delay expires.
pub trait TcpSendFlags: TcpClientStack {
    /// `true` when [`send_flagged`](Self::send_flagged) passes the flag to the stack.
    const NATIVE_FLAGS: bool = false;

    /// Send `data` with `flag`. Returns the bytes taken, like `send`.
    fn send_flagged(
        &mut self,
        socket: &mut Self::TcpSocket,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, Self::Error> {
        let _ = flag;
        self.send(socket, data)
    }
}

/// "Send now": make the stack transmit what earlier MORE writes left queued, without
/// writing more (lwIP `tcp_output`; Linux: `TCP_NODELAY` pushes pending frames).
///
/// Netpool calls it from [`Pool::flush`](crate::Pool::flush) and when its coalescing
/// delay expires after MORE writes, so the application never has to hold a byte back
/// to carry a late push and no stack needs its own corking timer. Only called on
/// stacks with [`TcpSendFlags::NATIVE_FLAGS`]. Fallback: nothing to do.
pub trait TcpPush: TcpClientStack {
    /// Transmit queued data now. Default: `Ok(())`.
    fn push(&mut self, socket: &mut Self::TcpSocket) -> nb::Result<(), Self::Error> {
        let _ = socket;
        Ok(())
    }
}

/// Send-queue depth: the progress signal of the reaper.
///
/// Fallback: `None`; netpool then judges progress by the bytes the stack takes.
pub trait TcpSendQueue: TcpClientStack {
    /// Bytes the stack has taken from `send` that the peer has not yet acknowledged
    /// (unsent plus unacknowledged; Linux `SIOCOUTQ`, lwIP `TCP_SND_BUF - tcp_sndbuf`).
    fn send_queue(&mut self, socket: &Self::TcpSocket) -> Option<usize> {
        let _ = socket;
        None
    }
}

/// What the stack knows about the far end of a connection, without reading from it.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub enum PeerStatus {
    /// The stack cannot tell without reading.
    Unknown,
    /// Nothing seen: the connection is open (or still connecting).
    Open,
    /// The peer sent FIN and every received byte has been read.
    Closed,
    /// The connection is gone (reset, aborted...).
    Gone(ErrorClass),
}

/// Peer-close detection without reading.
///
/// Fallback: [`PeerStatus::Unknown`]; a peer close is then found by the next read or
/// write on the connection.
pub trait TcpPeerStatus: TcpClientStack {
    /// The peer's status as the stack sees it now. Must not block or send anything.
    fn peer_status(&mut self, socket: &Self::TcpSocket) -> PeerStatus {
        let _ = socket;
        PeerStatus::Unknown
    }
}

/// How many connections a listener should be ready to take.
///
/// Stacks without a SYN queue (smoltcp, or lwIP with a small `TCP_LISTEN_BACKLOG`)
/// answer a SYN only while a socket listens for it. The pool tells the stack, for each
/// of its listeners, how many connections it can still serve there (the port's cap
/// minus its open connections, at most the free slots); the stack keeps that many
/// sockets listening when it can, so a burst as large as the pool's room is taken
/// instead of refused.
///
/// Fallback: nothing; the stack keeps its own backlog.
pub trait TcpBacklog: TcpFullStack {
    /// `true` when [`set_backlog`](Self::set_backlog) does something: the pool then
    /// works out and tells each listener's room; otherwise it skips that work.
    const NATIVE_BACKLOG: bool = false;

    /// Be ready to take `connections` connections on `listener` (a socket given to
    /// [`TcpFullStack::listen`]). Called when the number changes. Default: nothing.
    fn set_backlog(&mut self, listener: &mut Self::TcpSocket, connections: usize) {
        let _ = (listener, connections);
    }

    /// How long a half-open connection (SYN answered, final ACK not come) may hold
    /// one of the sockets the stack keeps armed: the pool's
    /// [`Config::handshake_deadline`](crate::Config::handshake_deadline), told when the
    /// pool is made and when its configuration changes. A stack that arms sockets
    /// itself keeps the handshake lease: a half-open socket is reset and listens
    /// again at the deadline, a listener with room keeps one socket listening beyond
    /// it while handshakes are under way, and when even that one is taken the oldest
    /// half-open socket gives way. Default: nothing.
    fn set_handshake_deadline(&mut self, deadline: crate::time::Duration) {
        let _ = deadline;
    }
}

/// What a stack did to its PCBs (sockets) on its own, summed since it started: the
/// part of [`Report`](crate::Report) only the stack knows.
///
/// ```
/// use netpool::stack::PcbCounters;
/// let c = PcbCounters::default();
/// assert_eq!(c.reclaimed(), 0);
/// ```
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
#[non_exhaustive]
pub struct PcbCounters {
    /// Closing sockets reclaimed from TIME-WAIT for a new connection or a listener.
    pub reclaimed_time_wait: u32,
    /// … from LAST-ACK (the peer closed first and our FIN is not yet acknowledged).
    pub reclaimed_last_ack: u32,
    /// … from CLOSING (both sides closed at once).
    pub reclaimed_closing: u32,
    /// … from FIN-WAIT-1 or FIN-WAIT-2 held past the stack's bound.
    pub reclaimed_fin_wait: u32,
    /// Stack passes that left a listener short of the sockets it wants (the pool's room
    /// on the port) with none listening: a SYN arriving then is refused.
    pub unarmed_passes: u32,
    /// Half-open connections (SYN answered, final ACK never came) reset at the
    /// handshake deadline, their socket listening again
    /// ([`Config::handshake_deadline`](crate::Config::handshake_deadline)).
    pub half_open_expired: u32,
    /// Half-open connections reset before the deadline because every socket of their
    /// listener was taken: the oldest gave way so one listens again.
    pub half_open_evicted: u32,
    /// Connections that completed their handshake beyond the pool's room and waited in
    /// the stack's accept queue for the whole handshake deadline without the pool
    /// having room for them: reset.
    pub accept_queue_expired: u32,
}

impl PcbCounters {
    /// Closing sockets reclaimed, all states together.
    pub const fn reclaimed(&self) -> u32 {
        self.reclaimed_time_wait
            .saturating_add(self.reclaimed_last_ack)
            .saturating_add(self.reclaimed_closing)
            .saturating_add(self.reclaimed_fin_wait)
    }

    /// Half-open connections reset, at the deadline or to keep a socket listening.
    pub const fn half_open_reclaimed(&self) -> u32 {
        self.half_open_expired.saturating_add(self.half_open_evicted)
    }
}

impl core::fmt::Display for PcbCounters {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "reclaimed time_wait {} last_ack {} closing {} fin_wait {}, unarmed_passes {}, \
             half_open expired {} evicted {}, accept_queue_expired {}",
            self.reclaimed_time_wait,
            self.reclaimed_last_ack,
            self.reclaimed_closing,
            self.reclaimed_fin_wait,
            self.unarmed_passes,
            self.half_open_expired,
            self.half_open_evicted,
            self.accept_queue_expired
        )
    }
}

/// The stack's own PCB counters, read (no I/O) into the pool's [`Report`](crate::Report).
///
/// Fallback: zeros.
pub trait PcbDiagnostics {
    /// What the stack did to its PCBs so far. Default: zeros.
    fn pcb_counters(&self) -> PcbCounters {
        PcbCounters::default()
    }
}

/// Everything the pool needs from a stack: embedded-nal's [`TcpFullStack`] with
/// classifiable errors, plus the extension traits (each possibly a fallback).
///
/// One convention beyond embedded-nal's text: `receive` into a non-empty buffer
/// returns `Ok(0)` only at end of stream (the peer sent FIN and every byte was read),
/// and `WouldBlock` when nothing has arrived yet — as `std::net` does. A stack that
/// returns `Ok(0)` for "nothing yet" must be adapted, or every idle connection would
/// look closed by its peer.
pub trait Stack:
    TcpFullStack<Error: Classify>
    + TcpAbort
    + TcpSendFlags
    + TcpPush
    + TcpSendQueue
    + TcpPeerStatus
    + LinkStatus
    + TcpBacklog
    + PcbDiagnostics
{
}

impl<T> Stack for T where
    T: TcpFullStack<Error: Classify>
        + TcpAbort
        + TcpSendFlags
        + TcpPush
        + TcpSendQueue
        + TcpPeerStatus
        + LinkStatus
        + TcpBacklog
        + PcbDiagnostics
{
}

/// Any embedded-nal stack, with every extension trait on its fallback.
///
/// Errors are classified by a function: by default [`kind_class`], which can only tell
/// embedded-nal's `PipeClosed` (→ `Closed`) from everything else (→ `Fatal`, so a reset
/// aborts the slot). A stack whose error type says more should be wrapped with
/// [`Plain::with_classifier`]. The link state is whatever the application last set
/// with [`Plain::set_link`] (initially unknown), so a firmware that learns link changes
/// from its WiFi driver can still gate connects.
///
/// ```
/// use netpool::stack::Plain;
/// use netpool::Classify;
/// /// A driver's error that knows its embedded-io kind.
/// #[derive(Debug)]
/// struct DriverError(embedded_io::ErrorKind);
/// impl embedded_nal::TcpError for DriverError {
///     fn kind(&self) -> embedded_nal::TcpErrorKind {
///         embedded_nal::TcpErrorKind::Other
///     }
/// }
/// # fn demo<S: embedded_nal::TcpFullStack<Error = DriverError>>(stack: S) {
/// // Classify by the embedded-io kind: a reset is "peer gone", not fatal.
/// let stack = Plain::with_classifier(stack, |e: &DriverError| e.0.class());
/// # let _ = stack; }
/// ```
pub struct Plain<S: TcpClientStack> {
    inner: S,
    link: LinkState,
    classify: fn(&S::Error) -> ErrorClass,
}

/// The default classifier of [`Plain`]: by [`TcpError::kind`].
pub fn kind_class<E: TcpError>(e: &E) -> ErrorClass {
    e.kind().class()
}

impl<S: TcpClientStack> Plain<S> {
    /// Wrap a stack; errors classified by [`kind_class`].
    pub const fn new(inner: S) -> Self {
        Self::with_classifier(inner, kind_class::<S::Error>)
    }

    /// Wrap a stack whose errors `classify` maps to an [`ErrorClass`].
    pub const fn with_classifier(inner: S, classify: fn(&S::Error) -> ErrorClass) -> Self {
        Plain {
            inner,
            link: LinkState::Unknown,
            classify,
        }
    }

    /// Record the link state read from the network driver.
    pub fn set_link(&mut self, link: LinkState) {
        self.link = link;
    }

    /// The wrapped stack.
    pub fn inner(&self) -> &S {
        &self.inner
    }

    /// The wrapped stack, mutably.
    pub fn inner_mut(&mut self) -> &mut S {
        &mut self.inner
    }

    /// Unwrap.
    pub fn into_inner(self) -> S {
        self.inner
    }

    fn wrap(&self, e: S::Error) -> NalError<S::Error> {
        NalError {
            class: (self.classify)(&e),
            error: e,
        }
    }

    fn wrap_nb<T>(&self, r: nb::Result<T, S::Error>) -> nb::Result<T, NalError<S::Error>> {
        r.map_err(|e| e.map(|e| self.wrap(e)))
    }
}

impl<S: TcpClientStack + core::fmt::Debug> core::fmt::Debug for Plain<S> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Plain")
            .field("inner", &self.inner)
            .field("link", &self.link)
            .finish()
    }
}

/// An embedded-nal error with the class [`Plain`]'s classifier gave it.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct NalError<E> {
    /// The stack's own error.
    pub error: E,
    /// Its class.
    pub class: ErrorClass,
}

impl<E: TcpError> TcpError for NalError<E> {
    fn kind(&self) -> TcpErrorKind {
        self.error.kind()
    }
}

impl<E> Classify for NalError<E> {
    fn class(&self) -> ErrorClass {
        self.class
    }
}

impl<S: TcpClientStack> TcpClientStack for Plain<S> {
    type TcpSocket = S::TcpSocket;
    type Error = NalError<S::Error>;

    fn socket(&mut self) -> Result<Self::TcpSocket, Self::Error> {
        self.inner.socket().map_err(|e| self.wrap(e))
    }
    fn connect(&mut self, s: &mut Self::TcpSocket, remote: SocketAddr) -> nb::Result<(), Self::Error> {
        let r = self.inner.connect(s, remote);
        self.wrap_nb(r)
    }
    #[inline]
    fn send(&mut self, s: &mut Self::TcpSocket, buf: &[u8]) -> nb::Result<usize, Self::Error> {
        let r = self.inner.send(s, buf);
        self.wrap_nb(r)
    }
    #[inline]
    fn receive(&mut self, s: &mut Self::TcpSocket, buf: &mut [u8]) -> nb::Result<usize, Self::Error> {
        let r = self.inner.receive(s, buf);
        self.wrap_nb(r)
    }
    fn close(&mut self, s: Self::TcpSocket) -> Result<(), Self::Error> {
        self.inner.close(s).map_err(|e| self.wrap(e))
    }
}

impl<S: TcpFullStack> TcpFullStack for Plain<S> {
    fn bind(&mut self, s: &mut Self::TcpSocket, port: u16) -> Result<(), Self::Error> {
        self.inner.bind(s, port).map_err(|e| self.wrap(e))
    }
    fn listen(&mut self, s: &mut Self::TcpSocket) -> Result<(), Self::Error> {
        self.inner.listen(s).map_err(|e| self.wrap(e))
    }
    fn accept(&mut self, s: &mut Self::TcpSocket) -> nb::Result<(Self::TcpSocket, SocketAddr), Self::Error> {
        let r = self.inner.accept(s);
        self.wrap_nb(r)
    }
}

impl<S: TcpClientStack> TcpAbort for Plain<S> {}
impl<S: TcpClientStack> TcpSendFlags for Plain<S> {}
impl<S: TcpClientStack> TcpPush for Plain<S> {}
impl<S: TcpClientStack> TcpSendQueue for Plain<S> {}
impl<S: TcpClientStack> TcpPeerStatus for Plain<S> {}
impl<S: TcpFullStack> TcpBacklog for Plain<S> {}
impl<S: TcpClientStack> PcbDiagnostics for Plain<S> {}
impl<S: TcpClientStack> LinkStatus for Plain<S> {
    fn link_state(&self) -> LinkState {
        self.link
    }
}
