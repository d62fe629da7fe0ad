//! [`LwipStack`]: embedded-nal's [`TcpFullStack`] and netpool's extension traits over
//! lwIP's raw TCP API.

use core::fmt;
use core::marker::PhantomData;
use core::net::{SocketAddr, SocketAddrV4};

use embedded_nal::{nb, TcpClientStack, TcpFullStack};
use netpool::stack::LinkStatus;
use netpool::stack::{
    PcbCounters, PcbDiagnostics, PeerStatus, SendFlag, TcpAbort, TcpBacklog, TcpPeerStatus, TcpPush,
    TcpSendFlags, TcpSendQueue,
};
use netpool::{Classify, Instant, LinkState};

use crate::diagnostics::{Events, LwipConfig, SendQueue};
use crate::error::{LwipErr, LwipError};
use crate::error::{ERR_ABRT, ERR_CLSD, ERR_MEM, ERR_OK, ERR_RST};
use crate::ffi::{self, Kind, Read};
use crate::lease::Lease;
use crate::socket::LwipSocket;

/// Connections lwIP holds in a listener's backlog unless
/// [`LwipStack::with_backlog`] says otherwise (the ESP8266 bridge's 8).
pub const DEFAULT_BACKLOG: u8 = 8;

/// lwIP's `enum tcp_state`.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
#[allow(missing_docs)]
pub enum TcpState {
    Closed,
    Listen,
    SynSent,
    SynRcvd,
    Established,
    FinWait1,
    FinWait2,
    CloseWait,
    Closing,
    LastAck,
    TimeWait,
}

impl TcpState {
    fn from_raw(v: i32) -> Option<Self> {
        use TcpState::*;
        Some(match v {
            0 => Closed,
            1 => Listen,
            2 => SynSent,
            3 => SynRcvd,
            4 => Established,
            5 => FinWait1,
            6 => FinWait2,
            7 => CloseWait,
            8 => Closing,
            9 => LastAck,
            10 => TimeWait,
            _ => return None,
        })
    }
}

/// What lwIP and the backend counted: PCB use, allocation failures and what lwIP
/// reclaimed or killed to serve them (from lwIP's own statistics and diagnostics),
/// and the callbacks' events.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct LwipStats {
    /// PCBs (`MEMP_TCP_PCB`) in use now / most in use at once / pool size.
    pub pcbs_used: u32,
    /// High-water mark of `pcbs_used` since the stack was created.
    pub pcbs_max: u32,
    /// `MEMP_NUM_TCP_PCB`.
    pub pcbs_total: u32,
    /// `tcp_alloc` found the PCB pool empty (it then reclaims TIME-WAIT, LAST-ACK,
    /// CLOSING PCBs, then kills a lower-priority connection).
    pub alloc_pool_empty: u32,
    /// `memp` allocation failures of the PCB pool that nothing could cure.
    pub alloc_failed: u32,
    /// TIME-WAIT PCBs reclaimed by `tcp_kill_timewait`.
    pub reclaimed_time_wait: u32,
    /// LAST-ACK / CLOSING PCBs reclaimed by `tcp_kill_state`.
    pub reclaimed_closing: u32,
    /// Live connections killed by `tcp_kill_prio`.
    pub killed_prio: u32,
    /// SYNs dropped because the listener's backlog was full.
    pub syn_dropped_backlog: u32,
    /// SYNs dropped because no PCB could be allocated.
    pub syn_dropped_no_pcb: u32,
    /// Connects lwIP gave up (SYN retransmissions exhausted).
    pub syn_retries_exhausted: u32,
    /// Connections lwIP gave up (data retransmissions exhausted).
    pub data_retries_exhausted: u32,
    /// PCBs lwIP removed from FIN-WAIT-2, SYN-RCVD or LAST-ACK after their timeout.
    pub stuck_removed: u32,
    /// lwIP's TCP counters: segments sent, received, dropped, out-of-memory.
    pub tcp_xmit: u32,
    /// ...
    pub tcp_recv: u32,
    /// ...
    pub tcp_drop: u32,
    /// ...
    pub tcp_memerr: u32,
    /// PCBs by list and state now: active, TIME-WAIT, listening.
    pub active: u32,
    /// ...
    pub time_wait: u32,
    /// ...
    pub listening: u32,
    /// Active PCBs in SYN-SENT/SYN-RCVD, ESTABLISHED, FIN-WAIT-1/2, CLOSE-WAIT,
    /// LAST-ACK, CLOSING.
    pub handshaking: u32,
    /// ...
    pub established: u32,
    /// ...
    pub fin_wait: u32,
    /// ...
    pub close_wait: u32,
    /// ...
    pub last_ack: u32,
    /// ...
    pub closing: u32,
    /// What the callbacks saw.
    pub events: Events,
}

/// netpool's view of lwIP: an embedded-nal [`TcpFullStack`] with every extension
/// trait native, over lwIP's raw TCP API. See the [crate docs](crate) for the model.
///
/// One per process (lwIP is global state): [`LwipStack::new`] fails with
/// [`LwipError::InUse`] while another one is alive. Dropping it aborts every
/// connection it holds and closes its listeners. It is `!Send`: lwIP's raw API is
/// used from one context.
pub struct LwipStack {
    /// lwIP's clock at this stack's `Instant::ZERO`.
    epoch: u32,
    backlog: u8,
    link: LinkState,
    config: LwipConfig,
    /// The stack's clock as of the last [`poll`](Self::poll).
    now: Instant,
    /// The handshake lease over lwIP's SYN-RCVD PCBs ([`crate::lease`]).
    lease: Lease,
    _one_context: PhantomData<*const ()>,
}

impl LwipStack {
    /// Take the process's lwIP (with feature `bundled`: initialise it on first use).
    /// Backlog [`DEFAULT_BACKLOG`], link state unknown.
    pub fn new() -> Result<Self, LwipError> {
        if !ffi::acquire() {
            return Err(LwipError::InUse);
        }
        Ok(LwipStack {
            epoch: ffi::clock(),
            backlog: DEFAULT_BACKLOG,
            link: LinkState::Unknown,
            config: ffi::config(),
            now: Instant::ZERO,
            lease: Lease::new(),
            _one_context: PhantomData,
        })
    }

    /// The listen backlog passed to `tcp_listen_with_backlog` by later
    /// [`listen`](TcpFullStack::listen) calls (at least 1): connections lwIP holds,
    /// each with its PCB, until [`accept`](TcpFullStack::accept) hands them out.
    #[must_use]
    pub fn with_backlog(mut self, backlog: u8) -> Self {
        self.backlog = backlog.max(1);
        self
    }

    /// Give connections accepted from now on lwIP priority `prio` (`tcp_setprio`;
    /// 0: keep the listener's, `TCP_PRIO_NORMAL`). lwIP 2.2's `tcp_kill_prio` kills,
    /// for a newcomer of priority *p*, only connections of priority lower than *p*:
    /// accepted connections below the listener's priority become killable under PCB
    /// exhaustion (the behaviour of older lwIP, see the README).
    #[must_use]
    pub fn with_accept_priority(self, prio: u8) -> Self {
        ffi::set_accept_prio(prio);
        self
    }

    /// Set the link state reported by [`LinkStatus::link_state`] (initially
    /// [`LinkState::Unknown`]), e.g. from the WiFi driver's events.
    pub fn set_link(&mut self, link: LinkState) {
        self.link = link;
    }

    /// lwIP's compile-time TCP options as the C side sees them.
    pub fn config(&self) -> LwipConfig {
        self.config
    }

    // ------------------------------------------------------------ driving

    /// The backend's periodic work at `now` (this stack's time base, like the pool's):
    /// advance lwIP's clock (`sys_now`, feature `bundled`) and keep the handshake lease
    /// of every listener's SYN-RCVD PCBs ([`set_handshake_lease`](Self::set_handshake_lease)).
    /// Call it from the main loop, before [`Pool::poll`](netpool::Pool::poll), in the
    /// context that runs lwIP.
    ///
    /// Data written with MORE that no push follows is not this backend's business:
    /// the pool pushes it ([`TcpPush`], `tcp_output`) when its
    /// [`coalesce_delay`](netpool::Config::coalesce_delay) expires.
    pub fn poll(&mut self, now: Instant) {
        ffi::set_clock(self.epoch.wrapping_add(now.as_millis() as u32));
        self.now = self.now.max(now);
        self.lease.pass(self.now, self.backlog, true);
    }

    /// Keep the handshake lease (`true`, the default) or leave SYN-RCVD PCBs to lwIP
    /// alone (`false`: each holds an entry of its listener's backlog and a PCB until
    /// the handshake completes or lwIP's own SYN-RCVD timeout, 20 s; for measuring
    /// lwIP's own behaviour).
    ///
    /// The lease (netpool's rule, `netpool::sansio::handshake`), at each
    /// [`poll`](Self::poll) and each room the pool tells ([`TcpBacklog::set_backlog`]):
    ///
    /// 1. half-open PCBs are kept apart from the room: the listen backlog is the
    ///    listener's own (or the room, if larger) plus its SYN-RCVD PCBs;
    /// 2. a SYN-RCVD PCB older than the pool's
    ///    [`handshake_deadline`](netpool::Config::handshake_deadline) is dropped
    ///    (counted `half_open_expired`);
    /// 3. while a listener cannot take as many connections as its room (free backlog
    ///    entries and PCBs a SYN could get, plus connections waiting for `accept`), the
    ///    oldest SYN-RCVD PCB older than [`ROUND_TRIP`](netpool::stack::handshake::ROUND_TRIP) is dropped
    ///    (counted `half_open_evicted`); a younger one is never dropped. So is it when
    ///    [`socket`](TcpClientStack::socket) finds no PCB.
    ///
    /// A PCB is dropped without RST (`tcp_abandon(pcb, 0)`): a real client whose
    /// SYN-ACK was lost retransmits its SYN and is served. A SYN-RCVD PCB is dated from
    /// the first pass that sees it. Turning the lease off leaves listen backlogs as
    /// they are.
    pub fn set_handshake_lease(&mut self, on: bool) {
        self.lease.on = on;
    }

    /// The SYN-RCVD PCBs of `listener` the lease knows, as of the last pass: remote
    /// end and when first seen (this stack's clock).
    pub fn half_open(&self, listener: &LwipSocket) -> impl Iterator<Item = (SocketAddrV4, Instant)> + '_ {
        self.lease.of(*listener)
    }

    /// Run lwIP's timers that are due (`sys_check_timeouts`): retransmissions, delayed
    /// ACKs, TIME-WAIT expiry. A `NO_SYS` firmware calls lwIP's own
    /// `sys_check_timeouts` instead.
    #[cfg(feature = "bundled")]
    pub fn check_timeouts(&mut self) {
        ffi::check_timeouts();
    }

    /// When (bundled) `check_timeouts` is next due, given that it is `now`: lwIP's
    /// next timer. `None`: only when a packet arrives (and always without `bundled`,
    /// where the firmware runs lwIP's timers). The pool's own deadlines, the
    /// coalescing delay among them, are [`Pool::poll_at`](netpool::Pool::poll_at).
    /// The handshake lease's next change (a half-open PCB passing its round trip or
    /// its deadline) is due too.
    pub fn poll_at(&self, now: Instant) -> Option<Instant> {
        #[cfg(feature = "bundled")]
        let timers = ffi::sleeptime().map(|ms| now + netpool::Duration::from_millis(u64::from(ms)));
        #[cfg(not(feature = "bundled"))]
        let timers: Option<Instant> = None;
        let lease = self.lease.next_change(self.now.max(now)).map(|t| t.max(now));
        match (timers, lease) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    // ------------------------------------------------------------ diagnostics

    /// lwIP's TCP state of a socket (`None`: stale, or lwIP freed the PCB).
    pub fn tcp_state(&self, socket: &LwipSocket) -> Option<TcpState> {
        ffi::tcp_state(*socket).and_then(|(s, _)| TcpState::from_raw(s))
    }

    /// lwIP's priority of a live socket.
    pub fn priority(&self, socket: &LwipSocket) -> Option<u8> {
        ffi::tcp_state(*socket).map(|(_, p)| p)
    }

    /// Set a connection's lwIP priority (`tcp_setprio`): a connection of priority
    /// above every newcomer's is never `tcp_kill_prio`'s victim.
    pub fn set_priority(&mut self, socket: &LwipSocket, prio: u8) -> Result<(), LwipError> {
        ffi::set_priority(*socket, prio)
    }

    /// The send queue in detail (bytes queued, pbufs, unsent and unacknowledged
    /// bytes); `None` when the socket is not a live connection.
    pub fn send_queue_detail(&self, socket: &LwipSocket) -> Option<SendQueue> {
        ffi::send_queue(*socket)
    }

    /// Bytes the peer has acknowledged on this connection (sent callbacks).
    pub fn acked(&self, socket: &LwipSocket) -> Option<u64> {
        ffi::view(*socket).ok().map(|v| v.acked)
    }

    /// Bytes received and not yet read.
    pub fn rx_queue(&self, socket: &LwipSocket) -> Option<usize> {
        ffi::view(*socket).ok().map(|v| v.rx_len)
    }

    /// The remote end of a connection.
    pub fn remote_addr(&self, socket: &LwipSocket) -> Option<SocketAddr> {
        ffi::view(*socket).ok()?.remote.map(SocketAddr::V4)
    }

    /// The port a socket is bound to or listens on, or an accepted connection's local
    /// port.
    pub fn local_port(&self, socket: &LwipSocket) -> Option<u16> {
        ffi::view(*socket).ok().map(|v| v.port).filter(|&p| p != 0)
    }

    /// What the callbacks counted since the stack was created.
    pub fn events(&self) -> Events {
        ffi::events()
    }

    /// Sockets in the backend's table: listeners, connecting, connected, waiting in a
    /// backlog, and those whose PCB lwIP freed but the application still holds.
    pub fn census(&self) -> [usize; 5] {
        ffi::census()
    }

    /// lwIP's statistics and diagnostics since the stack was created.
    #[cfg(feature = "bundled")]
    pub fn stats(&self) -> LwipStats {
        let (s, d) = ffi::raw_stats();
        LwipStats {
            pcbs_used: s.pcb_used,
            pcbs_max: s.pcb_max,
            pcbs_total: s.pcb_avail,
            alloc_pool_empty: d.alloc_failed,
            alloc_failed: s.pcb_err,
            reclaimed_time_wait: d.kill_timewait,
            reclaimed_closing: d.kill_state,
            killed_prio: d.kill_prio,
            syn_dropped_backlog: d.backlog_full,
            syn_dropped_no_pcb: d.listen_no_pcb,
            syn_retries_exhausted: d.syn_maxrtx,
            data_retries_exhausted: d.data_maxrtx,
            stuck_removed: d.stuck_removed,
            tcp_xmit: s.tcp_xmit,
            tcp_recv: s.tcp_recv,
            tcp_drop: s.tcp_drop,
            tcp_memerr: s.tcp_memerr,
            active: s.active,
            time_wait: s.time_wait,
            listening: s.listen,
            handshaking: s.syn,
            established: s.established,
            fin_wait: s.fin_wait,
            close_wait: s.close_wait,
            last_ack: s.last_ack,
            closing: s.closing,
            events: ffi::events(),
        }
    }

    /// lwIP's backlog count for the listener on `port` (`accepts_pending`:
    /// connections being set up or waiting to be accepted), `None` without one.
    #[cfg(feature = "bundled")]
    pub fn listen_backlog(&self, port: u16) -> Option<u8> {
        ffi::listen_pending(port)
    }

    fn connect_error(err: i8) -> LwipError {
        match err {
            ERR_RST => LwipError::Refused,
            ERR_ABRT => LwipError::ConnectTimedOut,
            ERR_OK => LwipError::Lwip(LwipErr(ERR_CLSD)),
            e => LwipError::Lwip(LwipErr(e)),
        }
    }

    /// The state a connection must be in for send/receive: `Ok(true)` connected,
    /// `Ok(false)` still connecting.
    fn ready(socket: &LwipSocket) -> Result<bool, LwipError> {
        let v = ffi::view(*socket)?;
        match v.kind {
            Kind::Connected => Ok(true),
            Kind::Connecting if v.alive => Ok(false),
            Kind::Connecting => Err(Self::connect_error(v.err)),
            _ => Err(LwipError::InvalidState),
        }
    }
}

impl Drop for LwipStack {
    /// Abort every connection (RST), close every listener, free every received pbuf;
    /// with feature `bundled`, lwIP is left without a single PCB.
    fn drop(&mut self) {
        ffi::shutdown();
    }
}

impl fmt::Debug for LwipStack {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LwipStack")
            .field("backlog", &self.backlog)
            .field("link", &self.link)
            .field("census", &ffi::census())
            .finish_non_exhaustive()
    }
}

fn v4(remote: SocketAddr) -> Result<SocketAddrV4, LwipError> {
    match remote {
        SocketAddr::V4(a) if !a.ip().is_unspecified() && a.port() != 0 => Ok(a),
        _ => Err(LwipError::Unaddressable),
    }
}

impl TcpClientStack for LwipStack {
    type TcpSocket = LwipSocket;
    type Error = LwipError;

    /// `tcp_new()`: may reclaim a TIME-WAIT PCB or kill a lower-priority connection;
    /// `ERR_MEM` ([`OutOfResources`](netpool::ErrorClass::OutOfResources)) when lwIP
    /// has no PCB.
    ///
    /// When lwIP has no PCB left, the oldest half-open PCB past its round trip gives
    /// way (the handshake lease, counted `half_open_evicted`) and `tcp_new` is tried
    /// once more.
    fn socket(&mut self) -> Result<LwipSocket, LwipError> {
        match ffi::new_socket() {
            Err(LwipError::Lwip(LwipErr(ERR_MEM))) if self.lease.evict_for_socket(self.now, self.backlog) => {
                ffi::new_socket()
            }
            r => r,
        }
    }

    /// The first call sends the SYN (`tcp_connect`); every call returns `WouldBlock`
    /// until the connected callback, then `Ok`. A RST answer is
    /// [`Refused`](LwipError::Refused), lwIP giving up is
    /// [`ConnectTimedOut`](LwipError::ConnectTimedOut), reported until the socket is
    /// closed. IPv4 only.
    fn connect(&mut self, socket: &mut LwipSocket, remote: SocketAddr) -> nb::Result<(), LwipError> {
        let remote = v4(remote)?;
        let v = ffi::view(*socket)?;
        match v.kind {
            Kind::Fresh | Kind::Bound => {
                ffi::connect(*socket, remote)?;
                Err(nb::Error::WouldBlock)
            }
            Kind::Connecting | Kind::Connected if v.remote != Some(remote) => {
                Err(nb::Error::Other(LwipError::InvalidState))
            }
            Kind::Connected => Ok(()),
            Kind::Connecting if v.alive => Err(nb::Error::WouldBlock),
            Kind::Connecting => Err(nb::Error::Other(Self::connect_error(v.err))),
            _ => Err(nb::Error::Other(LwipError::InvalidState)),
        }
    }

    /// A push: [`send_flagged`](TcpSendFlags::send_flagged) with [`SendFlag::Push`].
    fn send(&mut self, socket: &mut LwipSocket, buffer: &[u8]) -> nb::Result<usize, LwipError> {
        self.send_flagged(socket, buffer, SendFlag::Push)
    }

    /// Copy out of the received pbufs and `tcp_recved` as much. `WouldBlock` when
    /// nothing is queued (or the connect is under way); `Ok(0)` for a non-empty
    /// `buffer` means the peer sent FIN and everything was read. Data received before
    /// lwIP freed the connection (reset, abort) is returned first, then the error.
    fn receive(&mut self, socket: &mut LwipSocket, buffer: &mut [u8]) -> nb::Result<usize, LwipError> {
        if !Self::ready(socket)? {
            return Err(nb::Error::WouldBlock);
        }
        if buffer.is_empty() {
            return Ok(0);
        }
        match ffi::read(*socket, buffer)? {
            Read::Data(n) => Ok(n),
            Read::Empty => Err(nb::Error::WouldBlock),
            Read::End => Ok(0),
            Read::Gone(err) => Err(nb::Error::Other(LwipError::Lwip(LwipErr(err)))),
        }
    }

    /// Close now: `tcp_close` (FIN after the queued data; lwIP answers with RST if
    /// received data was left unread, and falls back to `tcp_abort` if it has no
    /// memory for the FIN). The socket is the stack's at once: lwIP finishes FIN-WAIT
    /// and TIME-WAIT on its own. A listener is closed after aborting the connections
    /// waiting in its backlog. [`Stale`](LwipError::Stale) for a stale handle.
    fn close(&mut self, socket: LwipSocket) -> Result<(), LwipError> {
        ffi::release(socket, false)
    }
}

impl TcpFullStack for LwipStack {
    /// `tcp_bind` to `local_port` (0: an ephemeral port, see
    /// [`LwipStack::local_port`]). lwIP refuses a port any of its PCBs uses (`ERR_USE`,
    /// [`AddressInUse`](netpool::ErrorClass::AddressInUse)), TIME-WAIT included.
    fn bind(&mut self, socket: &mut LwipSocket, local_port: u16) -> Result<(), LwipError> {
        ffi::bind(*socket, local_port).map(|_| ())
    }

    /// `tcp_listen_with_backlog` with the stack's backlog; the handle now names the
    /// listener. `Ok` again on a listener.
    fn listen(&mut self, socket: &mut LwipSocket) -> Result<(), LwipError> {
        match ffi::view(*socket)?.kind {
            Kind::Listener => Ok(()),
            _ => {
                ffi::listen(*socket, self.backlog)?;
                self.lease.set_base(*socket, self.backlog);
                Ok(())
            }
        }
    }

    /// The oldest connection lwIP accepted on this listener, leaving lwIP's backlog
    /// (`tcp_backlog_accepted`). Connections reset while waiting are dropped on the
    /// way. `WouldBlock` when none waits.
    fn accept(&mut self, socket: &mut LwipSocket) -> nb::Result<(LwipSocket, SocketAddr), LwipError> {
        match ffi::accept(*socket)? {
            Some((s, remote)) => Ok((s, SocketAddr::V4(remote))),
            None => Err(nb::Error::WouldBlock),
        }
    }
}

/// Native: `tcp_abort` sends RST and frees the PCB at once (no TIME-WAIT). A
/// listener is closed as by `close`.
impl TcpAbort for LwipStack {
    const NATIVE_ABORT: bool = true;

    fn abort(&mut self, socket: LwipSocket) -> Result<(), LwipError> {
        ffi::release(socket, true)
    }
}

/// Native: `tcp_write` with `TCP_WRITE_FLAG_COPY`, plus `TCP_WRITE_FLAG_MORE` exactly
/// for [`SendFlag::More`] (lwIP then sets no PSH and the data may wait in the unsent
/// queue to be coalesced with the next write); [`SendFlag::Push`] writes without MORE
/// (PSH on the last segment) and calls `tcp_output`. Takes at most `tcp_sndbuf` bytes
/// and returns exactly what lwIP took; `WouldBlock` when nothing fits (including
/// lwIP's `ERR_MEM` for a full segment queue, which is not an error). An empty push
/// sends what MORE writes left queued.
impl TcpSendFlags for LwipStack {
    const NATIVE_FLAGS: bool = true;

    fn send_flagged(
        &mut self,
        socket: &mut LwipSocket,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, LwipError> {
        if !Self::ready(socket)? {
            return Err(nb::Error::WouldBlock);
        }
        let more = flag == SendFlag::More;
        if data.is_empty() && more {
            return Ok(0);
        }
        match ffi::write(*socket, data, more)? {
            0 if !data.is_empty() => Err(nb::Error::WouldBlock),
            n => Ok(n),
        }
    }
}

/// Native: `tcp_output` — what MORE writes left queued goes out now (an empty push).
impl TcpPush for LwipStack {
    fn push(&mut self, socket: &mut LwipSocket) -> nb::Result<(), LwipError> {
        self.send_flagged(socket, &[], SendFlag::Push).map(|_| ())
    }
}

/// Native: `TCP_SND_BUF - tcp_sndbuf(pcb)`, the bytes lwIP took and the peer has not
/// acknowledged (unsent plus unacknowledged). `None` for sockets that are not live
/// connections.
impl TcpSendQueue for LwipStack {
    fn send_queue(&mut self, socket: &LwipSocket) -> Option<usize> {
        ffi::send_queue(*socket).map(|q| q.queued)
    }
}

/// Native, for the handshake lease ([`LwipStack::set_handshake_lease`]). lwIP's
/// listening PCB spawns a PCB per SYN itself (`tcp_alloc`) within its listen backlog;
/// the room the pool tells is what the lease defends: the listen backlog is kept at
/// the listener's own ([`LwipStack::with_backlog`]), or the room if larger, plus its
/// half-open PCBs, and while the listener cannot take its room (backlog entries and
/// PCBs), the oldest half-open PCB past its round trip gives way. The deadline is the
/// pool's [`handshake_deadline`](netpool::Config::handshake_deadline). A stale or
/// non-listener handle is ignored.
impl TcpBacklog for LwipStack {
    const NATIVE_BACKLOG: bool = true;

    fn set_backlog(&mut self, listener: &mut LwipSocket, connections: usize) {
        if ffi::view(*listener).is_ok_and(|v| v.kind == Kind::Listener) {
            self.lease.set_room(*listener, connections, self.backlog);
            self.lease.pass_listener(*listener, self.now, self.backlog, false);
        }
    }

    fn set_handshake_deadline(&mut self, deadline: netpool::Duration) {
        self.lease.deadline = deadline;
    }
}

/// Native for the handshake lease (`half_open_expired`, `half_open_evicted`, and
/// `unarmed_passes`: polls that left a listener short of its room with no backlog
/// entry or PCB for a single SYN). What `tcp_alloc` reclaimed is in
/// `LwipStack::stats` (lwIP's diagnostics, feature `bundled`), not here.
impl PcbDiagnostics for LwipStack {
    fn pcb_counters(&self) -> PcbCounters {
        self.lease.counters
    }
}

/// Native, from the callbacks without reading: `Gone` once lwIP freed the connection
/// (err callback: `ERR_RST` → reset, `ERR_ABRT` → aborted...), `Closed` once the peer's
/// FIN arrived and every byte was read, `Open` otherwise; a failed connect is `Gone`
/// with its class. `Unknown` for listeners, fresh sockets and stale handles.
impl TcpPeerStatus for LwipStack {
    fn peer_status(&mut self, socket: &LwipSocket) -> PeerStatus {
        let Ok(v) = ffi::view(*socket) else {
            return PeerStatus::Unknown;
        };
        match v.kind {
            Kind::Connecting if v.alive => PeerStatus::Open,
            Kind::Connecting => PeerStatus::Gone(Self::connect_error(v.err).class()),
            Kind::Connected if !v.alive => PeerStatus::Gone(LwipErr(v.err).class()),
            Kind::Connected if v.fin && v.rx_len == 0 => PeerStatus::Closed,
            Kind::Connected => PeerStatus::Open,
            _ => PeerStatus::Unknown,
        }
    }
}

/// The state last set with [`LwipStack::set_link`] (initially `Unknown`).
impl LinkStatus for LwipStack {
    fn link_state(&self) -> LinkState {
        self.link
    }
}
