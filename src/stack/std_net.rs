//! OS-socket backend: [`StdStack`], an embedded-nal [`TcpFullStack`] over the host's
//! kernel TCP (through `socket2`), for host simulators, examples and tests.
//!
//! Every socket is non-blocking and no call ever blocks: `connect` starts the
//! handshake and returns [`nb::Error::WouldBlock`] until it completes, `send`,
//! `receive` and `accept` map `WouldBlock` and `Interrupted` to
//! [`nb::Error::WouldBlock`]. [`TcpClientStack::receive`] returning `Ok(0)` for a
//! non-empty buffer means the peer sent FIN and everything it sent has been read
//! (the `read(2)` convention, kept as is).
//!
//! Connected sockets (made by `connect` or `accept`) have `TCP_NODELAY` on: netpool
//! decides itself when data goes out (MORE/PUSH), Nagle would only add delay.
//! Listeners have `SO_REUSEADDR` on and a backlog of [`DEFAULT_BACKLOG`] (8, like
//! lwIP's `TCP_DEFAULT_LISTEN_BACKLOG`) unless set with [`StdStack::with_backlog`].
//!
//! # Extension traits: native or fallback
//!
//! | trait | here | how |
//! |---|---|---|
//! | [`TcpAbort`] | native everywhere | `SO_LINGER` = 0, then close: the kernel sends RST and frees the socket |
//! | [`TcpSendFlags`] | native on Linux/Android, fallback elsewhere | `MSG_MORE` for [`SendFlag::More`], no flag for [`SendFlag::Push`]; other systems have no per-call MORE flag |
//! | [`TcpSendQueue`] | native on Linux/Android, fallback elsewhere | `tx_queue` of the socket's line in `/proc/net/tcp{,6}` (see below) |
//! | [`TcpPeerStatus`] | native everywhere | non-blocking 1-byte `MSG_PEEK` |
//! | [`LinkStatus`] | set by the application | a host has no single link; [`StdStack::set_link`] (tests simulate link loss with it) |
//!
//! ## Why the send queue comes from procfs
//!
//! The direct way to read "bytes taken but not yet acknowledged" on Linux is the
//! `SIOCOUTQ` (`TIOCOUTQ`) ioctl, and the precise alternative is `getsockopt(TCP_INFO)`.
//! Neither has a safe wrapper in `socket2` 0.6, `rustix` 1 or `std` (rustix's generic
//! `ioctl` is an `unsafe fn`), and this crate forbids `unsafe`. The kernel publishes
//! the same number — `write_seq - snd_una`, exactly what `SIOCOUTQ` returns — as the
//! `tx_queue` column of `/proc/net/tcp` and `/proc/net/tcp6`, keyed by socket inode
//! (read safely from the `/proc/self/fd/N` link). Cost: one `readlink` plus reading
//! the whole table (every TCP socket of the network namespace), so it is meant for
//! simulators and tests, not for hosts with tens of thousands of sockets. When procfs
//! is not mounted or the socket is not found, [`TcpSendQueue::send_queue`] returns
//! `None` (the documented fallback).
//!
//! ## Other limits
//!
//! * [`TcpPeerStatus::peer_status`] reading an error (e.g. a reset) consumes the
//!   socket's pending error (`SO_ERROR`), as any read does: a following `receive`
//!   may then report end of stream (`Ok(0)`) instead of the reset.
//! * On Linux/Android sends use `MSG_NOSIGNAL`, on Apple systems `SO_NOSIGPIPE` is set;
//!   elsewhere writing to a reset connection relies on the Rust runtime ignoring
//!   `SIGPIPE` (the default for Rust binaries).
//! * [`TcpClientStack::socket`] allocates no OS socket: its address family is known
//!   only at `connect` or `bind`.
//!
//! ```no_run
//! use embedded_nal::{nb, TcpClientStack};
//! use netpool::stack::std_net::StdStack;
//!
//! let mut stack = StdStack::loopback();
//! let mut socket = stack.socket().unwrap();
//! let remote = "127.0.0.1:8080".parse().unwrap();
//! loop {
//!     match stack.connect(&mut socket, remote) {
//!         Ok(()) => break,
//!         Err(nb::Error::WouldBlock) => { /* do other work, poll again later */ }
//!         Err(nb::Error::Other(e)) => panic!("connect failed: {e}"),
//!     }
//! }
//! ```

use core::ffi::c_int;
use core::fmt;
use core::mem::{self, MaybeUninit};
use core::net::{IpAddr, Ipv4Addr, SocketAddr};
use core::time::Duration;

use std::io::{self, ErrorKind, Read};
#[cfg(any(target_os = "linux", target_os = "android"))]
use std::string::String;

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use socket2::{Domain, Protocol, Socket, Type};

use super::{
    LinkState, LinkStatus, PcbDiagnostics, PeerStatus, SendFlag, TcpAbort, TcpBacklog, TcpPeerStatus,
    TcpPush, TcpSendFlags, TcpSendQueue,
};
use crate::error::{Classify, ErrorClass};

/// Listen backlog used unless [`StdStack::with_backlog`] sets another (lwIP's default).
pub const DEFAULT_BACKLOG: u32 = 8;

/// Flags from `<linux/socket.h>`. They are architecture independent (unlike errno
/// values), so hard-coding them avoids a `libc` dependency for two constants.
#[cfg(any(target_os = "linux", target_os = "android"))]
mod msg {
    use core::ffi::c_int;
    /// `MSG_NOSIGNAL`: no `SIGPIPE` when the peer is gone, `EPIPE` instead.
    pub const NOSIGNAL: c_int = 0x4000;
    /// `MSG_MORE`: more data follows, hold partial segments (like `TCP_CORK` for one call).
    pub const MORE: c_int = 0x8000;
}

/// Flags added to every send.
#[cfg(any(target_os = "linux", target_os = "android"))]
const SEND_FLAGS: c_int = msg::NOSIGNAL;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const SEND_FLAGS: c_int = 0;

// ---------------------------------------------------------------------------------
// Error
// ---------------------------------------------------------------------------------

/// An OS socket error: a [`std::io::Error`], classified by its [`ErrorKind`].
///
/// Misuse of a socket (sending on a listener, listening on an unbound socket...) is
/// reported as [`ErrorKind::InvalidInput`], which classifies as
/// [`ErrorClass::InvalidInput`].
#[derive(Debug)]
pub struct StdError(pub io::Error);

impl StdError {
    /// The [`ErrorKind`] of the underlying error.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind()
    }

    /// The underlying [`std::io::Error`].
    pub fn io(&self) -> &io::Error {
        &self.0
    }

    /// Unwrap into the underlying [`std::io::Error`].
    pub fn into_inner(self) -> io::Error {
        self.0
    }

    fn invalid(what: &'static str) -> Self {
        StdError(io::Error::new(ErrorKind::InvalidInput, what))
    }
}

impl From<io::Error> for StdError {
    fn from(e: io::Error) -> Self {
        StdError(e)
    }
}

impl From<StdError> for io::Error {
    fn from(e: StdError) -> Self {
        e.0
    }
}

impl fmt::Display for StdError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

/// `Display` already shows the wrapped error, so the source is the wrapped error's own
/// source (not the wrapped error itself, which would print it twice).
impl std::error::Error for StdError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.0.source()
    }
}

/// `BrokenPipe` is [`TcpErrorKind::PipeClosed`], everything else [`TcpErrorKind::Other`].
impl TcpError for StdError {
    fn kind(&self) -> TcpErrorKind {
        match self.0.kind() {
            ErrorKind::BrokenPipe => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

/// Classified by [`std::io::ErrorKind`] (see [`Classify` for `std::io::ErrorKind`](Classify)).
impl Classify for StdError {
    fn class(&self) -> ErrorClass {
        self.0.class()
    }
}

/// `WouldBlock` and `Interrupted` are "try again"; anything else is an error.
fn nb_err(e: io::Error) -> nb::Error<StdError> {
    match e.kind() {
        ErrorKind::WouldBlock | ErrorKind::Interrupted => nb::Error::WouldBlock,
        _ => nb::Error::Other(StdError(e)),
    }
}

// ---------------------------------------------------------------------------------
// Socket
// ---------------------------------------------------------------------------------

/// What a [`StdSocket`] is, as reported by [`StdSocket::state`].
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum StdSocketState {
    /// Fresh from [`TcpClientStack::socket`] (no OS socket yet), or a connect failed.
    Unbound,
    /// Bound to a local port by [`TcpFullStack::bind`], not yet listening.
    Bound,
    /// Listening: [`TcpFullStack::accept`] may return connections.
    Listening,
    /// Handshake under way: call [`TcpClientStack::connect`] again to complete it.
    Connecting,
    /// Connected (by `connect` or `accept`).
    Connected,
}

#[derive(Debug)]
enum Inner {
    Unbound,
    Bound(Socket),
    Listening(Socket),
    Connecting { sock: Socket, remote: SocketAddr },
    Connected { sock: Socket, remote: SocketAddr },
}

/// A TCP socket of [`StdStack`]: a non-blocking OS socket (or none yet).
///
/// Dropping it closes the OS socket like [`TcpClientStack::close`] (FIN).
#[derive(Debug)]
pub struct StdSocket {
    inner: Inner,
}

impl StdSocket {
    /// What the socket is now.
    pub fn state(&self) -> StdSocketState {
        match self.inner {
            Inner::Unbound => StdSocketState::Unbound,
            Inner::Bound(_) => StdSocketState::Bound,
            Inner::Listening(_) => StdSocketState::Listening,
            Inner::Connecting { .. } => StdSocketState::Connecting,
            Inner::Connected { .. } => StdSocketState::Connected,
        }
    }

    fn os(&self) -> Option<&Socket> {
        match &self.inner {
            Inner::Unbound => None,
            Inner::Bound(s) | Inner::Listening(s) => Some(s),
            Inner::Connecting { sock, .. } | Inner::Connected { sock, .. } => Some(sock),
        }
    }

    fn into_os(self) -> Option<Socket> {
        match self.inner {
            Inner::Unbound => None,
            Inner::Bound(s) | Inner::Listening(s) => Some(s),
            Inner::Connecting { sock, .. } | Inner::Connected { sock, .. } => Some(sock),
        }
    }

    /// The connected OS socket, completing a pending connect first.
    ///
    /// `WouldBlock` while the handshake is under way; a failed handshake is returned as
    /// the error and leaves the socket `Unbound`.
    fn established(&mut self) -> nb::Result<&Socket, StdError> {
        if let Inner::Connecting { .. } = self.inner {
            if let Inner::Connecting { sock, remote } = mem::replace(&mut self.inner, Inner::Unbound) {
                match connect_progress(&sock) {
                    Progress::Done => self.inner = Inner::Connected { sock, remote },
                    Progress::Pending => {
                        self.inner = Inner::Connecting { sock, remote };
                        return Err(nb::Error::WouldBlock);
                    }
                    Progress::Failed(e) => return Err(nb::Error::Other(StdError(e))),
                }
            }
        }
        match &self.inner {
            Inner::Connected { sock, .. } => Ok(sock),
            _ => Err(nb::Error::Other(StdError::invalid("socket is not connected"))),
        }
    }
}

enum Progress {
    Done,
    Pending,
    Failed(io::Error),
}

/// Where a non-blocking connect stands, without blocking: a peer address means
/// established; "not connected" with a pending socket error means failed, without one
/// still in progress.
fn connect_progress(sock: &Socket) -> Progress {
    match sock.peer_addr() {
        Ok(_) => Progress::Done,
        Err(e) if e.kind() == ErrorKind::NotConnected => match sock.take_error() {
            Ok(None) => Progress::Pending,
            Ok(Some(e)) | Err(e) => Progress::Failed(e),
        },
        Err(e) => Progress::Failed(e),
    }
}

/// Options every connected socket gets.
fn setup_connected(sock: &Socket) -> io::Result<()> {
    sock.set_nonblocking(true)?;
    sock.set_tcp_nodelay(true)?;
    #[cfg(target_vendor = "apple")]
    sock.set_nosigpipe(true)?;
    Ok(())
}

/// Start a connect without blocking. `Ok(true)`: connected at once, `Ok(false)`: in
/// progress.
///
/// `socket2::Socket::connect_timeout` with a zero timeout issues a non-blocking
/// `connect(2)` and recognises "in progress" (`EINPROGRESS`, `WSAEWOULDBLOCK`) itself,
/// answering `TimedOut` for it without polling. That spares us the per-OS errno value
/// of `EINPROGRESS` (which differs between Linux architectures and is not a stable
/// `ErrorKind` on our MSRV). A non-blocking `connect(2)` never reports a real
/// `ETIMEDOUT` synchronously, so `TimedOut` here always means "in progress".
fn start_connect(sock: &Socket, remote: SocketAddr) -> io::Result<bool> {
    let r = sock.connect_timeout(&remote.into(), Duration::ZERO);
    // connect_timeout leaves the socket blocking: make it non-blocking again.
    let connected = match r {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::TimedOut => false,
        Err(e) => return Err(e),
    };
    setup_connected(sock)?;
    Ok(connected)
}

// ---------------------------------------------------------------------------------
// Stack
// ---------------------------------------------------------------------------------

/// The host's kernel TCP as an embedded-nal stack with netpool's extension traits.
///
/// Listeners bind to the address chosen at construction: [`StdStack::new`] binds to
/// every interface (`0.0.0.0`, what a server wants), [`StdStack::loopback`] to
/// `127.0.0.1` only (tests, local simulators), [`StdStack::with_bind_ip`] to any
/// address. Binding to port 0 picks an ephemeral port; read it back with
/// [`StdStack::local_addr`].
#[derive(Debug)]
pub struct StdStack {
    bind_ip: IpAddr,
    backlog: u32,
    link: LinkState,
    /// Reused buffer for `/proc/net/tcp` reads.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    scratch: String,
}

impl Default for StdStack {
    /// [`StdStack::new`].
    fn default() -> Self {
        Self::new()
    }
}

impl StdStack {
    /// A stack whose listeners bind to every IPv4 interface (`0.0.0.0`).
    pub fn new() -> Self {
        Self::with_bind_ip(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }

    /// A stack whose listeners bind to `127.0.0.1` only.
    pub fn loopback() -> Self {
        Self::with_bind_ip(IpAddr::V4(Ipv4Addr::LOCALHOST))
    }

    /// A stack whose listeners bind to `ip`. The IPv6 unspecified address (`::`) is
    /// bound dual-stack (IPv4 clients too) where the OS allows it.
    pub fn with_bind_ip(ip: IpAddr) -> Self {
        StdStack {
            bind_ip: ip,
            backlog: DEFAULT_BACKLOG,
            link: LinkState::Unknown,
            #[cfg(any(target_os = "linux", target_os = "android"))]
            scratch: String::new(),
        }
    }

    /// Use `backlog` as the listen backlog (pending, not yet accepted connections)
    /// for later [`listen`](TcpFullStack::listen) calls. The OS may cap it.
    #[must_use]
    pub fn with_backlog(mut self, backlog: u32) -> Self {
        self.backlog = backlog;
        self
    }

    /// The address listeners bind to.
    pub fn bind_ip(&self) -> IpAddr {
        self.bind_ip
    }

    /// The listen backlog.
    pub fn backlog(&self) -> u32 {
        self.backlog
    }

    /// Set the link state reported by [`LinkStatus::link_state`] (initially
    /// [`LinkState::Unknown`]). The host has no link of its own; tests set `Down` to
    /// simulate link loss.
    pub fn set_link(&mut self, link: LinkState) {
        self.link = link;
    }

    /// The local address of `socket`: the port a bind to port 0 picked, the local end
    /// of a connection. `InvalidInput` for a socket without an OS socket (`Unbound`).
    pub fn local_addr(&self, socket: &StdSocket) -> Result<SocketAddr, StdError> {
        let sock = socket
            .os()
            .ok_or_else(|| StdError::invalid("socket is not bound"))?;
        sock.local_addr()?
            .as_socket()
            .ok_or_else(|| StdError::invalid("not an IP socket"))
    }

    /// The remote address of a connected (or connecting) socket, as given to
    /// `connect` or returned by `accept`. `None` for other sockets.
    pub fn remote_addr(&self, socket: &StdSocket) -> Option<SocketAddr> {
        match &socket.inner {
            Inner::Connecting { remote, .. } | Inner::Connected { remote, .. } => Some(*remote),
            _ => None,
        }
    }

    fn send_with(
        &mut self,
        socket: &mut StdSocket,
        data: &[u8],
        flags: c_int,
    ) -> nb::Result<usize, StdError> {
        let sock = socket.established()?;
        sock.send_with_flags(data, SEND_FLAGS | flags).map_err(nb_err)
    }
}

impl TcpClientStack for StdStack {
    type TcpSocket = StdSocket;
    type Error = StdError;

    /// A socket handle without an OS socket: that is created by `connect` or `bind`,
    /// once the address family is known. Never fails.
    fn socket(&mut self) -> Result<StdSocket, StdError> {
        Ok(StdSocket {
            inner: Inner::Unbound,
        })
    }

    /// Never blocks. The first call creates the OS socket and starts the handshake
    /// (`WouldBlock` while it runs); later calls report `Ok` once established, or the
    /// failure (e.g. `ConnectionRefused`), after which the socket is `Unbound` again
    /// and a new call starts over. `Ok` again on an already connected socket to the
    /// same `remote`; `InvalidInput` for another remote, a bound or listening socket.
    fn connect(&mut self, socket: &mut StdSocket, remote: SocketAddr) -> nb::Result<(), StdError> {
        match &socket.inner {
            Inner::Unbound => {
                let sock = Socket::new(Domain::for_address(remote), Type::STREAM, Some(Protocol::TCP))
                    .map_err(nb_err)?;
                if start_connect(&sock, remote).map_err(|e| nb::Error::Other(StdError(e)))? {
                    socket.inner = Inner::Connected { sock, remote };
                    Ok(())
                } else {
                    socket.inner = Inner::Connecting { sock, remote };
                    Err(nb::Error::WouldBlock)
                }
            }
            Inner::Connecting { remote: r, .. } | Inner::Connected { remote: r, .. } => {
                if *r != remote {
                    return Err(nb::Error::Other(StdError::invalid(
                        "socket is connecting or connected to another address",
                    )));
                }
                socket.established().map(|_| ())
            }
            Inner::Bound(_) | Inner::Listening(_) => Err(nb::Error::Other(StdError::invalid(
                "connect on a bound or listening socket",
            ))),
        }
    }

    /// Non-blocking send; `WouldBlock` when the send buffer is full (or the connect
    /// has not completed yet).
    fn send(&mut self, socket: &mut StdSocket, buffer: &[u8]) -> nb::Result<usize, StdError> {
        self.send_with(socket, buffer, 0)
    }

    /// Non-blocking receive; `WouldBlock` when nothing is pending. `Ok(0)` for a
    /// non-empty `buffer` means the peer sent FIN and all its data has been read.
    /// An empty `buffer` returns `Ok(0)` without looking at the socket.
    fn receive(&mut self, socket: &mut StdSocket, buffer: &mut [u8]) -> nb::Result<usize, StdError> {
        let mut sock = socket.established()?;
        if buffer.is_empty() {
            return Ok(0);
        }
        sock.read(buffer).map_err(nb_err)
    }

    /// Graceful close: the OS socket is closed, the kernel sends any queued data and
    /// then FIN. Never fails.
    fn close(&mut self, socket: StdSocket) -> Result<(), StdError> {
        drop(socket);
        Ok(())
    }
}

impl TcpFullStack for StdStack {
    /// Create the OS socket and bind it to `local_port` on the stack's bind address,
    /// with `SO_REUSEADDR`. Port 0 picks an ephemeral port ([`StdStack::local_addr`]).
    fn bind(&mut self, socket: &mut StdSocket, local_port: u16) -> Result<(), StdError> {
        if !matches!(socket.inner, Inner::Unbound) {
            return Err(StdError::invalid("socket is already bound or connected"));
        }
        let addr = SocketAddr::new(self.bind_ip, local_port);
        let sock = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        sock.set_reuse_address(true)?;
        if let IpAddr::V6(ip) = self.bind_ip {
            if ip.is_unspecified() {
                // Dual stack where possible; not an error where the OS refuses.
                let _ = sock.set_only_v6(false);
            }
        }
        sock.set_nonblocking(true)?;
        sock.bind(&addr.into())?;
        socket.inner = Inner::Bound(sock);
        Ok(())
    }

    /// Listen on a bound socket with the stack's backlog.
    fn listen(&mut self, socket: &mut StdSocket) -> Result<(), StdError> {
        match mem::replace(&mut socket.inner, Inner::Unbound) {
            Inner::Bound(sock) => {
                let backlog = c_int::try_from(self.backlog).unwrap_or(c_int::MAX);
                let r = sock.listen(backlog);
                match r {
                    Ok(()) => socket.inner = Inner::Listening(sock),
                    Err(e) => {
                        socket.inner = Inner::Bound(sock);
                        return Err(StdError(e));
                    }
                }
                Ok(())
            }
            Inner::Listening(sock) => {
                socket.inner = Inner::Listening(sock);
                Ok(())
            }
            other => {
                socket.inner = other;
                Err(StdError::invalid("listen on a socket that is not bound"))
            }
        }
    }

    /// Non-blocking accept: `WouldBlock` when no connection is pending. The new socket
    /// is non-blocking with `TCP_NODELAY` on.
    fn accept(&mut self, socket: &mut StdSocket) -> nb::Result<(StdSocket, SocketAddr), StdError> {
        let Inner::Listening(listener) = &socket.inner else {
            return Err(nb::Error::Other(StdError::invalid(
                "accept on a socket that is not listening",
            )));
        };
        let (sock, addr) = listener.accept().map_err(nb_err)?;
        setup_connected(&sock).map_err(|e| nb::Error::Other(StdError(e)))?;
        let remote = addr
            .as_socket()
            .ok_or_else(|| nb::Error::Other(StdError::invalid("accepted a non-IP connection")))?;
        Ok((
            StdSocket {
                inner: Inner::Connected { sock, remote },
            },
            remote,
        ))
    }
}

/// Native: `SO_LINGER` with a zero timeout, then close, makes the kernel send RST and
/// free the socket at once (queued data is discarded).
impl TcpAbort for StdStack {
    const NATIVE_ABORT: bool = true;

    /// RST for a connected or connecting socket; other sockets are simply closed. The
    /// socket is closed even on error (the error says the close was not abortive).
    fn abort(&mut self, socket: StdSocket) -> Result<(), StdError> {
        let abortive = matches!(socket.inner, Inner::Connecting { .. } | Inner::Connected { .. });
        let Some(sock) = socket.into_os() else {
            return Ok(());
        };
        if abortive {
            sock.set_linger(Some(Duration::ZERO))?;
        }
        drop(sock);
        Ok(())
    }
}

/// Native on Linux/Android: [`SendFlag::More`] sends with `MSG_MORE` (the kernel holds
/// partial segments until a send without it), [`SendFlag::Push`] without. Elsewhere the
/// fallback (plain send; netpool coalesces).
impl TcpSendFlags for StdStack {
    const NATIVE_FLAGS: bool = cfg!(any(target_os = "linux", target_os = "android"));

    fn send_flagged(
        &mut self,
        socket: &mut StdSocket,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, StdError> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        let flags = match flag {
            SendFlag::More => msg::MORE,
            SendFlag::Push => 0,
        };
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        let flags = {
            let _ = flag;
            0
        };
        self.send_with(socket, data, flags)
    }
}

/// Native: setting `TCP_NODELAY` (already on) makes Linux push the frames that
/// `MSG_MORE` sends left pending, at once.
impl TcpPush for StdStack {
    fn push(&mut self, socket: &mut StdSocket) -> nb::Result<(), StdError> {
        match &socket.inner {
            Inner::Connected { sock, .. } => {
                sock.set_tcp_nodelay(true).map_err(|e| nb::Error::Other(e.into()))
            }
            _ => Ok(()),
        }
    }
}

/// Native on Linux/Android through procfs (see the [module docs](self) for why not
/// `SIOCOUTQ`); `None` elsewhere, for sockets that are not connected, or when procfs
/// cannot be read.
impl TcpSendQueue for StdStack {
    fn send_queue(&mut self, socket: &StdSocket) -> Option<usize> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            let Inner::Connected { sock, remote } = &socket.inner else {
                return None;
            };
            procfs::send_queue(sock, remote.is_ipv4(), &mut self.scratch)
        }
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = socket;
            None
        }
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
mod procfs {
    use std::fs::File;
    use std::io::Read;
    use std::os::fd::AsRawFd;
    use std::string::String;

    use socket2::Socket;

    /// `tx_queue` (hex) of the line of `/proc/net/tcp{,6}` whose inode is the socket's.
    ///
    /// Line format: `sl local rem st tx_queue:rx_queue tr:when retrnsmt uid timeout
    /// inode ...`; for non-listening sockets the kernel prints `write_seq - snd_una`
    /// as `tx_queue` (the value of `SIOCOUTQ`).
    pub(super) fn send_queue(sock: &Socket, ipv4: bool, scratch: &mut String) -> Option<usize> {
        let link = std::fs::read_link(std::format!("/proc/self/fd/{}", sock.as_raw_fd())).ok()?;
        let inode = link.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?;
        // An IPv4 peer on an IPv6 (dual-stack) socket still lives in tcp6: try both.
        let (first, second) = if ipv4 {
            ("/proc/net/tcp", "/proc/net/tcp6")
        } else {
            ("/proc/net/tcp6", "/proc/net/tcp")
        };
        find(first, inode, scratch).or_else(|| find(second, inode, scratch))
    }

    fn find(path: &str, inode: &str, scratch: &mut String) -> Option<usize> {
        scratch.clear();
        File::open(path).ok()?.read_to_string(scratch).ok()?;
        scratch.lines().skip(1).find_map(|line| {
            let mut fields = line.split_ascii_whitespace();
            let queues = fields.nth(4)?;
            if fields.nth(4)? != inode {
                return None;
            }
            let tx = queues.split(':').next()?;
            usize::from_str_radix(tx, 16).ok()
        })
    }
}

/// Native: a non-blocking 1-byte `MSG_PEEK` on connected sockets. End of stream is
/// [`PeerStatus::Closed`] (FIN, all data read), data or nothing pending is `Open`, an
/// error is `Gone(class)` (this consumes the socket's pending error). Connecting
/// sockets are `Open`, other sockets `Unknown`.
impl TcpPeerStatus for StdStack {
    fn peer_status(&mut self, socket: &StdSocket) -> PeerStatus {
        match &socket.inner {
            Inner::Connected { sock, .. } => {
                let mut byte = [MaybeUninit::<u8>::uninit(); 1];
                match sock.peek(&mut byte) {
                    Ok(0) => PeerStatus::Closed,
                    Ok(_) => PeerStatus::Open,
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::Interrupted) => {
                        PeerStatus::Open
                    }
                    Err(e) => PeerStatus::Gone(e.class()),
                }
            }
            Inner::Connecting { .. } => PeerStatus::Open,
            Inner::Unbound | Inner::Bound(_) | Inner::Listening(_) => PeerStatus::Unknown,
        }
    }
}

/// The state last set with [`StdStack::set_link`] (initially `Unknown`).
/// Fallback: the kernel keeps its own SYN queue (the `listen` backlog).
impl TcpBacklog for StdStack {}
/// Fallback: the kernel does not report its reclaims.
impl PcbDiagnostics for StdStack {}

impl LinkStatus for StdStack {
    fn link_state(&self) -> LinkState {
        self.link
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::Stack;
    use std::io::Write;
    use std::net::{TcpListener, TcpStream};
    use std::thread::sleep;
    use std::vec::Vec;

    /// Upper bound on polls in every wait loop (× `TICK` ≈ 10 s worst case).
    const MAX_POLLS: usize = 10_000;
    const TICK: Duration = Duration::from_millis(1);

    fn assert_stack<S: Stack>(_: &S) {}

    /// The value of a result that must be `Ok` (`StdError` has no `PartialEq`).
    fn ok<T>(r: nb::Result<T, StdError>) -> Result<T, ()> {
        r.map_err(|e| panic!("{e:?}"))
    }

    /// Poll `f` until it returns `Some`, at most `MAX_POLLS` times.
    fn poll<T>(what: &str, mut f: impl FnMut() -> Option<T>) -> T {
        for _ in 0..MAX_POLLS {
            if let Some(v) = f() {
                return v;
            }
            sleep(TICK);
        }
        panic!("{what}: no result after {MAX_POLLS} polls");
    }

    fn std_listener() -> (TcpListener, SocketAddr) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let a = l.local_addr().unwrap();
        (l, a)
    }

    /// Connect `stack` to `remote`, polling; returns the socket and how many calls
    /// answered `WouldBlock` (each of which must leave the socket `Connecting`).
    fn connect(stack: &mut StdStack, remote: SocketAddr) -> (StdSocket, usize) {
        let mut s = stack.socket().unwrap();
        let mut pending = 0;
        poll("connect", || match stack.connect(&mut s, remote) {
            Ok(()) => Some(()),
            Err(nb::Error::WouldBlock) => {
                pending += 1;
                assert_eq!(s.state(), StdSocketState::Connecting);
                assert_eq!(stack.peer_status(&s), PeerStatus::Open);
                None
            }
            Err(nb::Error::Other(e)) => panic!("connect failed: {e}"),
        });
        (s, pending)
    }

    /// A connected pair: our socket and the peer's std stream (blocking, with a read
    /// timeout so a broken test fails instead of hanging).
    fn pair(stack: &mut StdStack) -> (StdSocket, TcpStream) {
        let (l, addr) = std_listener();
        let (s, _) = connect(stack, addr);
        let (peer, _) = l.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        (s, peer)
    }

    fn recv_all(stack: &mut StdStack, s: &mut StdSocket, n: usize) -> Vec<u8> {
        let mut out = Vec::new();
        let mut buf = [0u8; 256];
        poll("receive", || {
            match stack.receive(s, &mut buf) {
                Ok(0) => panic!("unexpected end of stream"),
                Ok(k) => out.extend_from_slice(&buf[..k]),
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(e)) => panic!("receive: {e}"),
            }
            (out.len() >= n).then_some(())
        });
        out
    }

    #[test]
    fn is_a_full_netpool_stack() {
        let stack = StdStack::loopback();
        assert_stack(&stack);
        const { assert!(<StdStack as TcpAbort>::NATIVE_ABORT) };
        assert_eq!(stack.backlog(), DEFAULT_BACKLOG);
        assert_eq!(stack.bind_ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(StdStack::new().bind_ip(), IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    }

    #[test]
    fn nonblocking_connect_completes_after_polls() {
        let mut stack = StdStack::loopback();
        let (l, addr) = std_listener();
        // Typically one WouldBlock on Linux loopback (the first call only starts the
        // handshake); the count is the kernel's business, so it is only checked that
        // the stack does not claim to be pending forever (bounded by `poll`).
        let (mut s, pending) = connect(&mut stack, addr);
        assert!(pending < MAX_POLLS);
        assert_eq!(s.state(), StdSocketState::Connected);
        assert_eq!(stack.remote_addr(&s), Some(addr));
        assert_eq!(stack.local_addr(&s).unwrap().ip(), addr.ip());
        // Connecting again to the same address is Ok, to another one is rejected.
        assert_eq!(ok(stack.connect(&mut s, addr)), Ok(()));
        let other = SocketAddr::new(addr.ip(), addr.port().wrapping_add(1));
        match stack.connect(&mut s, other) {
            Err(nb::Error::Other(e)) => assert_eq!(e.class(), ErrorClass::InvalidInput),
            r => panic!("{r:?}"),
        }
        // Data flows both ways.
        let (mut peer, _) = l.accept().unwrap();
        peer.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        assert_eq!(ok(stack.send(&mut s, b"ping")), Ok(4));
        let mut buf = [0u8; 4];
        std::io::Read::read_exact(&mut peer, &mut buf).unwrap();
        assert_eq!(&buf, b"ping");
        peer.write_all(b"pong").unwrap();
        assert_eq!(recv_all(&mut stack, &mut s, 4), b"pong");
        assert_eq!(stack.peer_status(&s), PeerStatus::Open);
        stack.close(s).unwrap();
    }

    #[test]
    fn connect_to_closed_port_is_refused_never_ok() {
        let mut stack = StdStack::loopback();
        let (l, addr) = std_listener();
        drop(l);
        let mut s = stack.socket().unwrap();
        let err = poll("refused", || match stack.connect(&mut s, addr) {
            Ok(()) => panic!("connect to a closed port reported Ok"),
            Err(nb::Error::WouldBlock) => {
                assert_eq!(stack.peer_status(&s), PeerStatus::Open);
                None
            }
            Err(nb::Error::Other(e)) => Some(e),
        });
        assert_eq!(err.kind(), ErrorKind::ConnectionRefused, "{err}");
        assert_eq!(err.class(), ErrorClass::Refused);
        assert_eq!(TcpError::kind(&err), TcpErrorKind::Other);
        assert_eq!(s.state(), StdSocketState::Unbound);
        // Send on the failed socket is misuse, not a hang.
        match stack.send(&mut s, b"x") {
            Err(nb::Error::Other(e)) => assert_eq!(e.class(), ErrorClass::InvalidInput),
            r => panic!("{r:?}"),
        }
    }

    #[test]
    fn listen_accept_would_block_then_accepts() {
        let mut stack = StdStack::loopback();
        let mut l = stack.socket().unwrap();
        stack.bind(&mut l, 0).unwrap();
        assert_eq!(l.state(), StdSocketState::Bound);
        stack.listen(&mut l).unwrap();
        assert_eq!(l.state(), StdSocketState::Listening);
        let addr = stack.local_addr(&l).unwrap();
        assert_ne!(addr.port(), 0);
        assert_eq!(addr.ip(), IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(stack.peer_status(&l), PeerStatus::Unknown);
        assert!(matches!(stack.accept(&mut l), Err(nb::Error::WouldBlock)));

        let mut client = TcpStream::connect(addr).unwrap();
        let client_addr = client.local_addr().unwrap();
        let (mut s, remote) = poll("accept", || match stack.accept(&mut l) {
            Ok(v) => Some(v),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("accept: {e}"),
        });
        assert_eq!(remote, client_addr);
        assert_eq!(s.state(), StdSocketState::Connected);
        // The accepted socket is non-blocking.
        let mut buf = [0u8; 8];
        assert!(matches!(
            stack.receive(&mut s, &mut buf),
            Err(nb::Error::WouldBlock)
        ));
        client.write_all(b"hi").unwrap();
        assert_eq!(recv_all(&mut stack, &mut s, 2), b"hi");
        // Misuse is InvalidInput.
        match stack.send(&mut l, b"x") {
            Err(nb::Error::Other(e)) => assert_eq!(e.class(), ErrorClass::InvalidInput),
            r => panic!("{r:?}"),
        }
        assert!(stack.listen(&mut s).is_err());
        assert_eq!(s.state(), StdSocketState::Connected);
        assert!(matches!(stack.accept(&mut l), Err(nb::Error::WouldBlock)));
    }

    #[test]
    fn peer_fin_is_closed_after_data_drained() {
        let mut stack = StdStack::loopback();
        let (mut s, mut peer) = pair(&mut stack);
        peer.write_all(b"abc").unwrap();
        peer.shutdown(std::net::Shutdown::Write).unwrap();
        // Unread data: still open even once the FIN has arrived.
        poll("data", || {
            let mut b = [MaybeUninit::<u8>::uninit(); 1];
            match &s.inner {
                Inner::Connected { sock, .. } => sock.peek(&mut b).ok(),
                _ => unreachable!(),
            }
        });
        assert_eq!(stack.peer_status(&s), PeerStatus::Open);
        assert_eq!(recv_all(&mut stack, &mut s, 3), b"abc");
        poll("fin", || {
            (stack.peer_status(&s) == PeerStatus::Closed).then_some(())
        });
        let mut buf = [0u8; 8];
        assert_eq!(ok(stack.receive(&mut s, &mut buf)), Ok(0));
        assert_eq!(ok(stack.receive(&mut s, &mut [])), Ok(0));
        stack.close(s).unwrap();
    }

    #[test]
    fn abort_resets_the_peer() {
        let mut stack = StdStack::loopback();
        let (mut s, mut peer) = pair(&mut stack);
        assert_eq!(ok(stack.send(&mut s, b"data")), Ok(4));
        stack.abort(s).unwrap();
        let mut buf = [0u8; 64];
        // The peer may read the data first; then the reset.
        let err = poll("reset", || match std::io::Read::read(&mut peer, &mut buf) {
            Ok(0) => panic!("peer saw FIN, not RST"),
            Ok(_) => None,
            Err(e) => Some(e),
        });
        assert_eq!(err.kind(), ErrorKind::ConnectionReset, "{err}");
    }

    #[test]
    fn peer_reset_is_gone() {
        let mut stack = StdStack::loopback();
        let (s, peer) = pair(&mut stack);
        socket2::SockRef::from(&peer)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
        drop(peer);
        let status = poll("gone", || match stack.peer_status(&s) {
            PeerStatus::Open => None,
            st => Some(st),
        });
        assert_eq!(status, PeerStatus::Gone(ErrorClass::Reset));
    }

    #[test]
    fn more_then_push_delivers_everything() {
        let mut stack = StdStack::loopback();
        let (mut s, mut peer) = pair(&mut stack);
        assert_eq!(
            <StdStack as TcpSendFlags>::NATIVE_FLAGS,
            cfg!(any(target_os = "linux", target_os = "android"))
        );
        assert_eq!(ok(stack.send_flagged(&mut s, b"hello ", SendFlag::More)), Ok(6));
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // MSG_MORE really reached the kernel: the partial segment is held back.
            assert_eq!(stack.send_queue(&s), Some(6));
        }
        assert_eq!(ok(stack.send_flagged(&mut s, b"world", SendFlag::Push)), Ok(5));
        let mut buf = [0u8; 11];
        std::io::Read::read_exact(&mut peer, &mut buf).unwrap();
        assert_eq!(&buf, b"hello world");
        poll("acked", || (stack.send_queue(&s).unwrap_or(0) == 0).then_some(()));
    }

    #[cfg(any(target_os = "linux", target_os = "android"))]
    #[test]
    fn send_queue_idle_zero_and_grows_when_peer_does_not_read() {
        let mut stack = StdStack::loopback();
        let (mut s, peer) = pair(&mut stack);
        assert_eq!(stack.send_queue(&s), Some(0));
        let chunk = [0x5au8; 64 * 1024];
        let mut total = 0usize;
        poll("send buffer full", || match stack.send(&mut s, &chunk) {
            Ok(n) => {
                total += n;
                None
            }
            Err(nb::Error::WouldBlock) => Some(()),
            Err(nb::Error::Other(e)) => panic!("send: {e}"),
        });
        let q = stack.send_queue(&s).expect("send queue on Linux");
        assert!(q > 0 && q <= total, "queue {q}, sent {total}");
        // Not connected: no answer.
        let fresh = stack.socket().unwrap();
        assert_eq!(stack.send_queue(&fresh), None);
        drop(peer);
    }

    #[test]
    fn link_state_is_settable() {
        let mut stack = StdStack::loopback();
        assert_eq!(stack.link_state(), LinkState::Unknown);
        stack.set_link(LinkState::Down);
        assert_eq!(stack.link_state(), LinkState::Down);
    }

    #[test]
    fn error_wrapping() {
        let e = StdError::from(io::Error::from(ErrorKind::BrokenPipe));
        assert_eq!(TcpError::kind(&e), TcpErrorKind::PipeClosed);
        assert_eq!(e.class(), ErrorClass::Closed);
        let e = StdError::from(io::Error::from(ErrorKind::ConnectionReset));
        assert_eq!(TcpError::kind(&e), TcpErrorKind::Other);
        assert_eq!(e.class(), ErrorClass::Reset);
        assert!(!std::format!("{e}").is_empty());
        assert_eq!(io::Error::from(e).kind(), ErrorKind::ConnectionReset);
    }

    #[test]
    fn an_errors_source_is_the_wrapped_errors_own_source() {
        use std::error::Error;
        /// An error with a cause (`io::Error::source` is its custom error's source).
        #[derive(Debug)]
        struct Caused(io::Error);
        impl fmt::Display for Caused {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("caused")
            }
        }
        impl Error for Caused {
            fn source(&self) -> Option<&(dyn Error + 'static)> {
                Some(&self.0)
            }
        }
        let caused = Caused(io::Error::from(ErrorKind::TimedOut));
        let e = StdError::from(io::Error::other(caused));
        let source = e.source().expect("the wrapped error's source");
        assert_eq!(
            std::format!("{source}"),
            std::format!("{}", io::Error::from(ErrorKind::TimedOut))
        );
        assert!(StdError::from(io::Error::from(ErrorKind::BrokenPipe))
            .source()
            .is_none());
    }

    // ------------------------------------------------------------------------------
    // The adapter's own rules (issue 23, item 4), each with the hand-made bug it kills.
    // ------------------------------------------------------------------------------

    /// A listening `StdSocket` on 127.0.0.1 (ephemeral port) and its address.
    fn stack_listener(stack: &mut StdStack) -> (StdSocket, SocketAddr) {
        let mut l = stack.socket().unwrap();
        stack.bind(&mut l, 0).unwrap();
        stack.listen(&mut l).unwrap();
        let addr = stack.local_addr(&l).unwrap();
        (l, addr)
    }

    /// Accepted sockets get `TCP_NODELAY`, like connected ones, although the listener
    /// they come from does not have it (so it is not inherited).
    /// Kills: `accept` not applying the connected-socket options (`setup_connected`),
    /// or applying only non-blocking.
    #[test]
    fn an_accepted_socket_is_nodelay_like_a_connected_one() {
        let mut stack = StdStack::loopback();
        let (mut l, addr) = stack_listener(&mut stack);
        assert!(
            !l.os().unwrap().tcp_nodelay().unwrap(),
            "the listener has no NODELAY"
        );
        let _client = TcpStream::connect(addr).unwrap();
        let (s, _) = poll("accept", || match stack.accept(&mut l) {
            Ok(v) => Some(v),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("accept: {e}"),
        });
        assert!(
            s.os().unwrap().tcp_nodelay().unwrap(),
            "accepted without TCP_NODELAY"
        );
        // The connected side, for comparison.
        let (c, _) = connect(&mut stack, addr);
        assert!(c.os().unwrap().tcp_nodelay().unwrap());
    }

    /// Connects to `addr` one after the other, each given `within` to complete;
    /// returns the streams that completed (kept open) and how many did not.
    fn connects_completing(addr: SocketAddr, tries: usize, within: Duration) -> (Vec<TcpStream>, usize) {
        let mut done = Vec::new();
        let mut failed = 0;
        for _ in 0..tries {
            match TcpStream::connect_timeout(&addr, within) {
                Ok(s) => done.push(s),
                Err(_) => failed += 1,
            }
        }
        (done, failed)
    }

    /// The backlog set with `with_backlog` is the one the kernel's `listen` gets.
    /// Observed from outside: Linux completes handshakes until its accept queue holds
    /// backlog + 1 connections, then drops SYNs (the client retries after 1 s, past
    /// the 300 ms each connect is given here). With a backlog of 2, exactly 3 of 6
    /// connects complete without an accept; one accept makes room for one more.
    /// Kills: `listen` passing `DEFAULT_BACKLOG` (8) or any other number than the
    /// stack's backlog (6 of 6 would complete).
    #[cfg(target_os = "linux")]
    #[test]
    fn the_listen_backlog_is_the_one_set_with_with_backlog() {
        let mut stack = StdStack::loopback().with_backlog(2);
        let (mut l, addr) = stack_listener(&mut stack);
        let within = Duration::from_millis(300);
        let (queued, refused) = connects_completing(addr, 6, within);
        assert_eq!((queued.len(), refused), (3, 3), "backlog 2: the kernel queues 3");
        let (_s, _) = poll("accept", || match stack.accept(&mut l) {
            Ok(v) => Some(v),
            Err(nb::Error::WouldBlock) => None,
            Err(nb::Error::Other(e)) => panic!("accept: {e}"),
        });
        let (more, refused) = connects_completing(addr, 2, within);
        assert_eq!((more.len(), refused), (1, 1), "one accept, room for one more");
    }
}
