//! A scripted TCP stack: deterministic, in memory, no time, no network, `no_std`.
//!
//! [`ScriptedStackIn`] implements embedded-nal's [`TcpClientStack`] and
//! [`TcpFullStack`] plus every netpool extension trait *natively* ([`TcpAbort`],
//! [`TcpSendFlags`], [`TcpPush`], [`TcpSendQueue`], [`TcpPeerStatus`], [`LinkStatus`]).
//! The test plays every remote host through the `peer_*` methods and scripts what the
//! stack does (connect outcomes, send windows, one-shot errors). With the `std`
//! feature every stack call is also recorded in a [`Call`] log.
//!
//! To exercise netpool's *fallback* paths, wrap it: [`PlainScripted`]
//! (`Plain<ScriptedStack>`) hides the extension traits, and classifies errors through
//! embedded-nal's [`TcpErrorKind`], which knows only `PipeClosed` and `Other`: through
//! `Plain`, a [`ScriptedError`] of class `Closed` arrives as `Closed` and **every other
//! class collapses to `Fatal`** (a scripted `Reset` is `Fatal` there). Reach the peer
//! side with [`Plain::inner_mut`].
//!
//! # Capacities
//!
//! Everything lives in fixed arrays sized by the type's const parameters, so the stack
//! runs on a target without an allocator:
//! `ScriptedStackIn<SOCKETS, CONNS, RX, SENT>` has `SOCKETS` application socket records,
//! `CONNS` connection records, `RX` bytes of receive buffer per connection and keeps the
//! first `SENT` bytes each connection sent for inspection. [`ScriptedStack`] is the size
//! the workspace's tests use. A full container is never a panic:
//!
//! - `socket()` or `accept` with no socket record free: `OutOfResources` (the
//!   connection stays in the backlog);
//! - a peer connecting with no connection record free: [`PeerRefused::NoRecord`];
//!   a first `connect` with none free: `OutOfResources` (the socket stays fresh);
//! - [`peer_send`](ScriptedStackIn::peer_send) beyond `RX` unread bytes takes what fits
//!   and returns how much;
//! - sent data beyond `SENT` is counted ([`sent_total`](ScriptedStackIn::sent_total))
//!   but not kept ([`peer_sent`](ScriptedStackIn::peer_sent) is the first `SENT` bytes).
//!
//! With `std` the connection records are allocated on the heap, so moving a
//! stack (into a `Pool`, into a test fixture) copies a pointer, not the buffers; without
//! it they are inline.
//!
//! # Model
//!
//! - **Sockets** ([`SockId`], unique, never reused) are fresh (unbound or bound),
//!   listening (with a backlog of at most [`ScriptedConfig::backlog`] connections), or
//!   attached to a connection (connecting or connected). A closed or aborted socket is
//!   forgotten (its record is free again): any later call with its id fails with
//!   `InvalidInput`, as does any call with an unknown id. No stack operation panics.
//! - **Connections** ([`PeerId`]) are created by [`ScriptedStackIn::peer_connect`]
//!   (inbound, queued in the listener's backlog until accepted) or by the first
//!   `connect` on a fresh socket (outbound; see [`ConnectScript`]). A connection record
//!   outlives its socket, so the peer side can be inspected after the application
//!   closed it. A record is *finished* once the application closed or aborted the
//!   connection and it holds no PCB; a new connection takes a never-used record if
//!   there is one, else the oldest finished one. A [`PeerId`] names the record and its
//!   generation: an id whose record was reused is *stale*
//!   ([`is_current`](ScriptedStackIn::is_current) is false).
//! - **PCBs**: a budget of [`ScriptedConfig::pcbs`], like lwIP's `MEMP_NUM_TCP_PCB`.
//!   One is held by every fresh socket (taken by `socket()`, like lwIP's `tcp_new`), by
//!   every listening socket (unless [`ScriptedConfig::listen_holds_pcb`] is off), by
//!   every connecting or established connection (from the peer's SYN, i.e. already while
//!   it waits in the backlog, so `accept` never needs a new one), and by a gracefully
//!   closed connection whose sent data the peer has not acknowledged yet
//!   ([`ScriptedConfig::fin_holds_pcb`]) or that lingers in TIME-WAIT
//!   ([`ScriptedConfig::time_wait_pcb`]). A reset, killed or failed connection releases
//!   its PCB at once, although its socket stays open until the application closes it.
//! - **Exhaustion**: when a PCB is needed (`socket()`, or a peer connecting) and none is
//!   free, the oldest TIME-WAIT connection is reclaimed first (lwIP's
//!   `tcp_kill_timewait`, silent, whatever the policy); then [`Exhaustion`] decides.
//! - **Activity** (for [`Exhaustion::KillOldest`]): a logical clock advances on every
//!   stack call and every peer action. A connection's last activity is when it was
//!   created, or last moved data or state: a peer segment (`peer_send`, `peer_ack`,
//!   `peer_fin`), an application `send` that took bytes or `receive` that returned
//!   bytes, connect completion, a graceful close.
//! - **Sending**: each connection has a send room (initially
//!   [`ScriptedConfig::send_window`]; `usize::MAX` is unlimited): `send` takes
//!   `min(len, room)` bytes and returns `WouldBlock` when it takes none. Taken bytes
//!   are sent ([`peer_sent`](ScriptedStackIn::peer_sent)) and stay unacknowledged
//!   ([`TcpSendQueue`]) until [`peer_ack`](ScriptedStackIn::peer_ack), which also gives
//!   the room back. With [`ScriptedConfig::hold_more`], bytes sent with
//!   [`SendFlag::More`] are *held* by the stack, as lwIP's unsent queue holds them,
//!   until a push-flagged or plain send or a [`TcpPush::push`]; the peer can only
//!   acknowledge bytes on the wire ([`on_wire`](ScriptedStackIn::on_wire)).
//! - **Receiving**: `Ok(n)` with data; `WouldBlock` when nothing is buffered; `Ok(0)` when
//!   nothing is buffered and the peer sent FIN (embedded-nal's end-of-stream); after a
//!   reset (or a kill) the buffered data is discarded and the error is returned.
//! - **Closing**: `close` sends FIN ([`peer_saw_fin`](ScriptedStackIn::peer_saw_fin)),
//!   except that closing with unread received data sends RST instead, as lwIP and Linux
//!   do ([`ScriptedConfig::rst_on_unread`]); `abort` sends RST
//!   ([`peer_saw_reset`](ScriptedStackIn::peer_saw_reset)) and releases the PCB at once.
//!   Closing or aborting a listener resets every connection still in its backlog.
//! - **Send queue**: [`TcpSendQueue::send_queue`] reports the unacknowledged bytes,
//!   unless [`ScriptedConfig::report_send_queue`] is off: then it is netpool's fallback
//!   (`None`), and the pool judges a peer's progress by the bytes the stack takes.
//! - **Injected failures** (`fail_next_*`) are one-shot and change no state: they only
//!   make the next matching call return `Err(ScriptedError(class))`, literally, even for
//!   `ErrorClass::WouldBlock` (to test a stack that reports would-block as an error code).
//!   For a real reset use [`peer_reset`](ScriptedStackIn::peer_reset).
//!
//! Peer-side methods and inspectors panic on a [`PeerId`] that is not current (never
//! issued by this stack, or stale): that is a bug in the test, not a behaviour of a
//! stack. Harnesses fed arbitrary input (fuzzing) use the non-panicking ones:
//! [`peer_at`](ScriptedStackIn::peer_at) gives only current ids, and
//! [`try_peer_send`](ScriptedStackIn::try_peer_send) never panics.
//!
//! # Only with `std`
//!
//! The [`Call`] log ([`calls`](ScriptedStackIn::calls),
//! [`count`](ScriptedStackIn::count), [`clear_calls`](ScriptedStackIn::clear_calls)) and
//! the `Vec`-returning inspectors ([`peer_received`](ScriptedStackIn::peer_received),
//! [`peer_segments`](ScriptedStackIn::peer_segments),
//! [`peers`](ScriptedStackIn::peers)).

use core::fmt;
use core::net::{Ipv4Addr, SocketAddr, SocketAddrV4};

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use netpool::stack::{
    LinkStatus, PcbDiagnostics, PeerStatus, Plain, SendFlag, TcpAbort, TcpBacklog, TcpPeerStatus, TcpPush,
    TcpSendFlags, TcpSendQueue,
};
use netpool::LinkState;
use netpool::{Classify, ErrorClass};

#[cfg(feature = "std")]
use std::{boxed::Box, vec::Vec};

/// The scripted stack the workspace's tests use: 16 sockets, 32 connection records,
/// 1 KiB of receive buffer and 16 KiB of kept sent data per connection.
pub type ScriptedStack = ScriptedStackIn<16, 32, 1024, 16384>;

/// [`ScriptedStack`] with every extension trait on its netpool fallback.
///
/// Errors reach netpool as `Closed` (for `ErrorClass::Closed`) or `Fatal` (everything
/// else), sends are recorded with flag `None`, and the link state is `Plain`'s own
/// ([`Plain::set_link`]), not the inner stack's.
pub type PlainScripted = Plain<ScriptedStack>;

/// First local port of outbound connections.
const EPHEMERAL_PORTS: u16 = 49152;

/// Connect outcomes that can be queued with [`ScriptedStackIn::script_connect`].
pub const CONNECT_SCRIPTS: usize = 16;

// -------------------------------------------------------------------------------------
// Public types
// -------------------------------------------------------------------------------------

/// An application-side socket: unique within a stack, never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId(pub u32);

/// A connection as the remote host sees it (inbound or outbound): its record and the
/// record's generation. Ordered by creation, so `PeerId` order is age order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId {
    /// Creation number (unique per stack): the generation.
    serial: u32,
    /// Index of the connection record.
    slot: u16,
}

impl PeerId {
    /// The connection record it names (`0..CONNS`).
    pub fn record(self) -> usize {
        usize::from(self.slot)
    }
}

/// The scripted stack's error: just a class.
///
/// [`Classify`] returns the class unchanged; [`TcpError::kind`] is `PipeClosed` for
/// `Closed` and `Other` for everything else (which is all [`Plain`] gets to see).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub struct ScriptedError(pub ErrorClass);

impl TcpError for ScriptedError {
    fn kind(&self) -> TcpErrorKind {
        match self.0 {
            ErrorClass::Closed => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

impl Classify for ScriptedError {
    fn class(&self) -> ErrorClass {
        self.0
    }
}

impl fmt::Display for ScriptedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "scripted stack error: {}", self.0)
    }
}

impl core::error::Error for ScriptedError {}

/// What happens when a PCB is needed and the budget is spent (after TIME-WAIT
/// connections have been reclaimed).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, Default)]
pub enum Exhaustion {
    /// The new one fails: `socket()` returns `OutOfResources`, `peer_connect` returns
    /// [`PeerRefused::NoPcb`].
    Refuse,
    /// lwIP 1.4's `tcp_kill_prio`: kill the connection with the longest inactivity
    /// (ties: the oldest) among every PCB-holding connection that is not a listener or
    /// in TIME-WAIT: connecting, established (accepted or still in a backlog, whether or
    /// not the peer sent FIN) and closed-but-unacknowledged ones. The victim's peer sees
    /// a reset, its next operation fails with `Aborted`, and
    /// [`ScriptedStackIn::killed`] counts it. The new one then succeeds. With no victim
    /// (only sockets and listeners hold PCBs) it fails as under `Refuse`.
    #[default]
    KillOldest,
}

/// Construction parameters of a [`ScriptedStackIn`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScriptedConfig {
    /// PCB budget (lwIP `MEMP_NUM_TCP_PCB`). Default 10.
    pub pcbs: usize,
    /// Connections each listener queues before `accept` (lwIP `TCP_DEFAULT_LISTEN_BACKLOG`).
    /// Default 8.
    pub backlog: usize,
    /// Policy when the budget is spent. Default [`Exhaustion::KillOldest`] (lwIP).
    pub exhaustion: Exhaustion,
    /// Initial send room of every connection: bytes `send` takes before `WouldBlock`,
    /// given back by the peer's acks (lwIP `TCP_SND_BUF`). `usize::MAX`: unlimited.
    /// Default 4096.
    pub send_window: usize,
    /// A graceful close with unacknowledged data keeps its PCB until the peer acks it all
    /// (or resets, or it is killed) — lwIP's FIN-WAIT/LAST-ACK. When `false`, close always
    /// releases the PCB at once. Default `true`.
    pub fin_holds_pcb: bool,
    /// A gracefully closed connection keeps its PCB in TIME-WAIT even once acknowledged,
    /// until [`ScriptedStackIn::expire_time_wait`] or until a new PCB is needed
    /// (reclaimed silently, oldest first). Default `false`.
    pub time_wait_pcb: bool,
    /// A listening socket holds a PCB from the budget. Default `true`; lwIP takes
    /// listeners from a separate pool (`MEMP_NUM_TCP_PCB_LISTEN`): set `false` for that.
    pub listen_holds_pcb: bool,
    /// Closing with unread received data, or data arriving after the application closed,
    /// resets the connection instead of a graceful FIN (lwIP and Linux both do).
    /// Default `true`.
    pub rst_on_unread: bool,
    /// Bytes sent with [`SendFlag::More`] are held by the stack (not on the wire, not
    /// acknowledgeable) until a push-flagged or plain send or [`TcpPush::push`], as
    /// lwIP's unsent queue holds them. Default `false`: every byte taken is on the wire.
    pub hold_more: bool,
    /// [`TcpSendQueue::send_queue`] reports the unacknowledged bytes. When `false` it
    /// is netpool's fallback (`None`: the stack cannot tell), as on a stack without a
    /// send-queue reading. Default `true`.
    pub report_send_queue: bool,
    /// What [`LinkStatus::link_state`] reports until
    /// [`ScriptedStackIn::set_link`] changes it. Default `Up`.
    pub link: LinkState,
}

impl Default for ScriptedConfig {
    fn default() -> Self {
        ScriptedConfig {
            pcbs: 10,
            backlog: 8,
            exhaustion: Exhaustion::KillOldest,
            send_window: 4096,
            fin_holds_pcb: true,
            time_wait_pcb: false,
            listen_holds_pcb: true,
            rst_on_unread: true,
            hold_more: false,
            report_send_queue: true,
            link: LinkState::Up,
        }
    }
}

/// The outcome of an outbound connection, queued with
/// [`ScriptedStackIn::script_connect`] or set for every connect with
/// [`ScriptedStackIn::set_default_connect`]. Counted in `connect` calls on that socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectScript {
    /// `WouldBlock` for this many calls, then `Ok(())`. `SucceedAfter(0)` (the default
    /// when nothing is scripted) completes on the first call.
    SucceedAfter(u32),
    /// `WouldBlock` for this many calls, then `Err(class)`; the PCB is released and every
    /// later operation on the socket fails with `class` until it is closed.
    /// `FailAfter(0, ErrorClass::Refused)` is a remote host that refuses at once.
    FailAfter(u32, ErrorClass),
    /// `WouldBlock` forever (a SYN into the void).
    NeverComplete,
}

/// Why [`ScriptedStackIn::peer_connect`] was refused (the peer would see RST or silence).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerRefused {
    /// Nothing listens on the port.
    NoListener,
    /// The listener's backlog is full.
    BacklogFull,
    /// No PCB, and none could be reclaimed under the policy.
    NoPcb,
    /// Every connection record is in use by a connection that is not finished (the
    /// stack's `CONNS` capacity).
    NoRecord,
}

/// One recorded stack call (see [`ScriptedStackIn::calls`]; feature `std`). Calls are
/// recorded whatever their outcome, including calls with unknown socket ids.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Call {
    /// `socket()`.
    Socket,
    /// `connect` on the socket.
    Connect(SockId),
    /// A `send` (`flag: None`) or `send_flagged` (`flag: Some(_)`) of `len` bytes, of
    /// which the stack took `taken` (0 on `WouldBlock` or error).
    Send {
        /// The socket.
        sock: SockId,
        /// Bytes offered.
        len: usize,
        /// Bytes the stack took.
        taken: usize,
        /// The MORE/push flag, for `send_flagged`.
        flag: Option<SendFlag>,
    },
    /// `receive` on the socket.
    Receive {
        /// The socket.
        sock: SockId,
    },
    /// `close` of the socket.
    Close(SockId),
    /// `abort` of the socket (`TcpAbort`).
    Abort(SockId),
    /// `bind` of the socket to the port.
    Bind(SockId, u16),
    /// `listen` on the socket.
    Listen(SockId),
    /// `accept` on the listening socket.
    Accept(SockId),
    /// `send_queue` of the socket (`TcpSendQueue`).
    SendQueue(SockId),
    /// `peer_status` of the socket (`TcpPeerStatus`).
    PeerStatus(SockId),
    /// A push of what MORE sends left queued (`TcpPush`).
    Push(SockId),
}

// -------------------------------------------------------------------------------------
// Internal state
// -------------------------------------------------------------------------------------

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum SockState {
    Fresh { port: Option<u16> },
    Listening { port: u16 },
    Conn(PeerId),
}

#[derive(Copy, Clone, Debug)]
struct Sock {
    id: SockId,
    state: SockState,
    /// Whether the socket itself holds a PCB (fresh and listening sockets; a connection's
    /// PCB is accounted on the connection).
    pcb: bool,
}

#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Outbound, SYN sent.
    Connecting(ConnectScript),
    /// Established (possibly half-closed by the peer).
    Open,
    /// The application closed or aborted it (socket forgotten).
    AppClosed,
}

#[derive(Debug)]
struct Conn<const RX: usize, const SENT: usize> {
    /// The record holds a connection (else it was never used).
    in_use: bool,
    /// Creation number of the connection in the record.
    serial: u32,
    remote: SocketAddr,
    local_port: u16,
    phase: Phase,
    /// Holds a PCB.
    pcb: bool,
    /// Set when the connection died under an open socket: what the application's next
    /// operation gets (`Reset`, `Aborted` when killed, `Refused`, a failed connect's class).
    gone: Option<ErrorClass>,
    /// The application socket, while it is open.
    sock: Option<SockId>,
    /// The listener whose backlog it waits in, until accepted.
    queued_on: Option<SockId>,
    /// Peer → application, not yet read.
    rx: heapless::Deque<u8, RX>,
    peer_fin: bool,
    /// Application → peer: the first `SENT` bytes taken by `send`.
    wire: heapless::Vec<u8, SENT>,
    /// Each send's share (bytes and flag).
    #[cfg(feature = "std")]
    segments: Vec<(Vec<u8>, Option<SendFlag>)>,
    sent_total: u64,
    held: usize,
    pushes: u32,
    stack_pushes: u32,
    last_flag: Option<SendFlag>,
    unacked: usize,
    room: usize,
    fin_sent: bool,
    rst_sent: bool,
    killed: bool,
    last_activity: u64,
    fail_send: Option<ErrorClass>,
    fail_receive: Option<ErrorClass>,
    fail_push: Option<ErrorClass>,
}

impl<const RX: usize, const SENT: usize> Conn<RX, SENT> {
    const EMPTY: Self = Conn {
        in_use: false,
        serial: 0,
        remote: SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 0)),
        local_port: 0,
        phase: Phase::AppClosed,
        pcb: false,
        gone: None,
        sock: None,
        queued_on: None,
        rx: heapless::Deque::new(),
        peer_fin: false,
        wire: heapless::Vec::new(),
        #[cfg(feature = "std")]
        segments: Vec::new(),
        sent_total: 0,
        held: 0,
        pushes: 0,
        stack_pushes: 0,
        last_flag: None,
        unacked: 0,
        room: 0,
        fin_sent: false,
        rst_sent: false,
        killed: false,
        last_activity: 0,
        fail_send: None,
        fail_receive: None,
        fail_push: None,
    };

    /// Closed by the application, fully acknowledged, PCB still held.
    fn in_time_wait(&self) -> bool {
        self.pcb && self.phase == Phase::AppClosed && self.unacked == 0
    }

    /// Its record can take a new connection.
    fn reusable(&self) -> bool {
        !self.in_use || (self.phase == Phase::AppClosed && !self.pcb)
    }

    fn id(&self, slot: usize) -> PeerId {
        PeerId {
            serial: self.serial,
            slot: slot as u16,
        }
    }
}

// -------------------------------------------------------------------------------------
// The stack
// -------------------------------------------------------------------------------------

/// The scripted stack with `SOCKETS` socket records, `CONNS` connection records, `RX`
/// bytes of receive buffer and `SENT` bytes of kept sent data per connection. See the
/// [module documentation](self) for the model; [`ScriptedStack`] is the usual size.
#[derive(Debug)]
pub struct ScriptedStackIn<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> {
    config: ScriptedConfig,
    /// Logical clock: one tick per stack call or peer action.
    tick: u64,
    next_sock: u32,
    next_port: u16,
    next_serial: u32,
    sockets: [Option<Sock>; SOCKETS],
    #[cfg(feature = "std")]
    conns: Box<[Conn<RX, SENT>]>,
    #[cfg(not(feature = "std"))]
    conns: [Conn<RX, SENT>; CONNS],
    pcbs_used: usize,
    connect_scripts: heapless::Deque<ConnectScript, CONNECT_SCRIPTS>,
    default_connect: ConnectScript,
    fail_socket: Option<ErrorClass>,
    fail_accept: Option<ErrorClass>,
    fail_bind: Option<ErrorClass>,
    fail_listen: Option<ErrorClass>,
    killed: usize,
    refused_no_record: usize,
    link: LinkState,
    #[cfg(feature = "std")]
    calls: Vec<Call>,
}

type NbResult<T> = nb::Result<T, ScriptedError>;

fn fail<T>(class: ErrorClass) -> NbResult<T> {
    Err(nb::Error::Other(ScriptedError(class)))
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> Default
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    fn default() -> Self {
        Self::new(ScriptedConfig::default())
    }
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize>
    ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    /// [`PeerId`] keeps the record index in 16 bits: a larger `CONNS` does not build.
    const RECORDS_FIT: () = assert!(CONNS <= u16::MAX as usize, "at most 65535 connection records");

    /// A stack with nothing open, the link as configured, and (with `std`) an empty
    /// call log.
    ///
    /// Inlined, so that a caller building it in place (e.g. as an argument of
    /// `Pool::new`) does not need a second stack-sized copy on a small target.
    #[inline(always)]
    pub fn new(config: ScriptedConfig) -> Self {
        let () = Self::RECORDS_FIT;
        let link = config.link;
        ScriptedStackIn {
            config,
            tick: 0,
            next_sock: 0,
            next_port: EPHEMERAL_PORTS,
            next_serial: 0,
            sockets: [None; SOCKETS],
            #[cfg(feature = "std")]
            conns: (0..CONNS).map(|_| Conn::EMPTY).collect(),
            #[cfg(not(feature = "std"))]
            conns: [const { Conn::EMPTY }; CONNS],
            pcbs_used: 0,
            connect_scripts: heapless::Deque::new(),
            default_connect: ConnectScript::SucceedAfter(0),
            fail_socket: None,
            fail_accept: None,
            fail_bind: None,
            fail_listen: None,
            killed: 0,
            refused_no_record: 0,
            link,
            #[cfg(feature = "std")]
            calls: Vec::new(),
        }
    }

    /// The configuration it was built with.
    pub fn config(&self) -> &ScriptedConfig {
        &self.config
    }

    // ---------------------------------------------------------------------------------
    // Scripting the stack
    // ---------------------------------------------------------------------------------

    /// Queue the outcome of the next outbound connection (each first `connect` on a
    /// fresh socket consumes one; when none is queued, the
    /// [default](Self::set_default_connect) applies). At most [`CONNECT_SCRIPTS`] wait:
    /// returns `false` (and queues nothing) when the queue is full.
    pub fn script_connect(&mut self, script: ConnectScript) -> bool {
        self.connect_scripts.push_back(script).is_ok()
    }

    /// The outcome of every outbound connection nothing was queued for (initially
    /// `ConnectScript::SucceedAfter(0)`).
    pub fn set_default_connect(&mut self, script: ConnectScript) {
        self.default_connect = script;
    }

    /// The next `socket()` fails with `class`.
    pub fn fail_next_socket(&mut self, class: ErrorClass) {
        self.fail_socket = Some(class);
    }

    /// The next `accept` on a listening socket fails with `class`.
    pub fn fail_next_accept(&mut self, class: ErrorClass) {
        self.fail_accept = Some(class);
    }

    /// The next `bind` fails with `class`.
    pub fn fail_next_bind(&mut self, class: ErrorClass) {
        self.fail_bind = Some(class);
    }

    /// The next `listen` fails with `class`.
    pub fn fail_next_listen(&mut self, class: ErrorClass) {
        self.fail_listen = Some(class);
    }

    /// The next `send` on this connection fails with `class`.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn fail_next_send(&mut self, id: PeerId, class: ErrorClass) {
        self.conn_mut(id).fail_send = Some(class);
    }

    /// The next [`TcpPush::push`] on this connection fails with `class` (and pushes
    /// nothing).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn fail_next_push(&mut self, id: PeerId, class: ErrorClass) {
        self.conn_mut(id).fail_push = Some(class);
    }

    /// The next `receive` on this connection fails with `class`.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn fail_next_receive(&mut self, id: PeerId, class: ErrorClass) {
        self.conn_mut(id).fail_receive = Some(class);
    }

    /// How many more bytes `send` takes on this connection before `WouldBlock` (acks
    /// add to it again). 0 makes every send block; `usize::MAX` is unlimited.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn set_send_window(&mut self, id: PeerId, bytes: usize) {
        self.conn_mut(id).room = bytes;
    }

    /// What [`LinkStatus::link_state`] reports (initially [`ScriptedConfig::link`]).
    /// While it is `Down`, a first `connect` fails with `NoRoute` and leaves the socket
    /// fresh.
    pub fn set_link(&mut self, link: LinkState) {
        self.link = link;
    }

    /// Release every TIME-WAIT PCB (see [`ScriptedConfig::time_wait_pcb`]).
    pub fn expire_time_wait(&mut self) {
        for slot in 0..CONNS {
            if self.conns[slot].in_use && self.conns[slot].in_time_wait() {
                self.release(slot);
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // The remote peers
    // ---------------------------------------------------------------------------------

    /// A remote host at `from` connects to local `port`. The connection takes a PCB and
    /// a connection record and waits in the listener's backlog until accepted.
    pub fn peer_connect(&mut self, port: u16, from: SocketAddr) -> Result<PeerId, PeerRefused> {
        self.tick += 1;
        let listener = self.listener(port).ok_or(PeerRefused::NoListener)?;
        if self.backlog_of(listener) >= self.config.backlog {
            return Err(PeerRefused::BacklogFull);
        }
        if self.free_record().is_none() {
            self.refused_no_record += 1;
            return Err(PeerRefused::NoRecord);
        }
        if !self.alloc_pcb() {
            return Err(PeerRefused::NoPcb);
        }
        // A PCB reclaim never closes a listener, and only frees records.
        let id = self
            .new_conn(from, port, Phase::Open)
            .expect("a record was free before the PCB was allocated");
        self.conns[id.record()].queued_on = Some(listener);
        Ok(id)
    }

    /// The peer sends `data`; the application can `receive` it. Returns the bytes the
    /// stack took: at most the free room of the `RX`-byte receive buffer, 0 when the
    /// connection is dead, and 0 after the application closed it (the data is then
    /// answered with RST, see [`ScriptedConfig::rst_on_unread`]).
    ///
    /// # Panics
    /// If `id` is not current or the peer already sent FIN (bugs in the test). See
    /// [`try_peer_send`](Self::try_peer_send) for a variant that never panics.
    pub fn peer_send(&mut self, id: PeerId, data: &[u8]) -> usize {
        let slot = self.slot(id);
        assert!(!self.conns[slot].peer_fin, "{id:?}: peer_send after peer_fin");
        self.peer_data(slot, data)
    }

    /// [`peer_send`](Self::peer_send) that never panics: 0 for an id that is not
    /// current and after the peer's FIN.
    pub fn try_peer_send(&mut self, id: PeerId, data: &[u8]) -> usize {
        match self.slot_of(id) {
            Some(slot) if !self.conns[slot].peer_fin => self.peer_data(slot, data),
            _ => 0,
        }
    }

    /// Whether [`peer_fin`](Self::peer_fin) took effect on this connection.
    pub fn peer_fin_sent(&self, id: PeerId) -> bool {
        self.conn(id).peer_fin
    }

    /// The peer sends FIN: once the buffered data is read, `receive` returns `Ok(0)`
    /// and [`TcpPeerStatus`] reports `Closed`.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_fin(&mut self, id: PeerId) {
        self.tick += 1;
        let tick = self.tick;
        let conn = self.conn_mut(id);
        if conn.gone.is_none() && !conn.rst_sent {
            conn.peer_fin = true;
            conn.last_activity = tick;
        }
    }

    /// The peer resets the connection: buffered data is discarded, the PCB released,
    /// and the application's next operation fails with `Reset` (`Refused` while it was
    /// still connecting).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_reset(&mut self, id: PeerId) {
        self.tick += 1;
        let slot = self.slot(id);
        let conn = &mut self.conns[slot];
        if conn.gone.is_some() || conn.rst_sent {
            return;
        }
        if conn.phase != Phase::AppClosed {
            // Under an open socket or still in a backlog: the application finds out.
            conn.gone = Some(match conn.phase {
                Phase::Connecting(_) => ErrorClass::Refused,
                _ => ErrorClass::Reset,
            });
        }
        conn.rx.clear();
        conn.unacked = 0;
        conn.held = 0;
        self.release(slot);
    }

    /// The peer acknowledges `bytes` more of the data sent to it (at most what is
    /// unacknowledged and on the wire); they leave the send queue and give send room
    /// back. A closed connection releases its PCB when everything is acknowledged.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_ack(&mut self, id: PeerId, bytes: usize) {
        self.tick += 1;
        let tick = self.tick;
        let time_wait = self.config.time_wait_pcb;
        let slot = self.slot(id);
        let conn = &mut self.conns[slot];
        let n = bytes.min(conn.unacked - conn.held);
        conn.unacked -= n;
        conn.room = conn.room.saturating_add(n);
        conn.last_activity = tick;
        if conn.phase == Phase::AppClosed && conn.unacked == 0 && !time_wait {
            self.release(slot);
        }
    }

    /// The peer acknowledges everything on the wire so far.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_ack_all(&mut self, id: PeerId) {
        self.peer_ack(id, usize::MAX);
    }

    /// The first `SENT` bytes the application's sends took, in order (held ones
    /// included; see [`on_wire`](Self::on_wire)).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_sent(&self, id: PeerId) -> &[u8] {
        &self.conn(id).wire
    }

    /// Every byte the application's sends took on this connection (also beyond the
    /// `SENT` kept by [`peer_sent`](Self::peer_sent)).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn sent_total(&self, id: PeerId) -> u64 {
        self.conn(id).sent_total
    }

    /// Bytes the stack holds back from MORE sends ([`ScriptedConfig::hold_more`]); 0
    /// without that option.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn held(&self, id: PeerId) -> usize {
        self.conn(id).held
    }

    /// Bytes on the wire: [`sent_total`](Self::sent_total) less [`held`](Self::held).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn on_wire(&self, id: PeerId) -> u64 {
        let conn = self.conn(id);
        conn.sent_total - conn.held as u64
    }

    /// Sends with [`SendFlag::Push`] that took bytes.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn pushes(&self, id: PeerId) -> u32 {
        self.conn(id).pushes
    }

    /// [`TcpPush::push`] calls on this connection ("send what MORE left queued, now").
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn stack_pushes(&self, id: PeerId) -> u32 {
        self.conn(id).stack_pushes
    }

    /// The flag of the last send that took bytes (`None` for a plain `send`, or none
    /// yet).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn last_flag(&self, id: PeerId) -> Option<SendFlag> {
        self.conn(id).last_flag
    }

    /// Bytes from the peer the application has not received yet.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn unread(&self, id: PeerId) -> usize {
        self.conn(id).rx.len()
    }

    /// The peer received RST: the application aborted, closed with unread data, closed
    /// the listener it was queued on, or the stack killed the connection.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_saw_reset(&self, id: PeerId) -> bool {
        self.conn(id).rst_sent
    }

    /// The peer received FIN: the application closed gracefully.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_saw_fin(&self, id: PeerId) -> bool {
        self.conn(id).fin_sent
    }

    /// The application closed or aborted this connection (its socket is gone), or
    /// closed the listener it waited on.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn closed_by_app(&self, id: PeerId) -> bool {
        self.conn(id).phase == Phase::AppClosed
    }

    // ---------------------------------------------------------------------------------
    // Introspection
    // ---------------------------------------------------------------------------------

    /// PCBs held now (never more than [`ScriptedConfig::pcbs`]).
    pub fn pcbs_in_use(&self) -> usize {
        self.pcbs_used
    }

    /// Sockets the application has not closed or aborted (to assert nothing leaks).
    pub fn open_sockets(&self) -> usize {
        self.sockets.iter().flatten().count()
    }

    /// Connections waiting in the backlog of the listener on `port` (0 if none).
    pub fn backlog_len(&self, port: u16) -> usize {
        self.listener(port).map_or(0, |l| self.backlog_of(l))
    }

    /// Connections killed to reclaim a PCB ([`Exhaustion::KillOldest`]).
    pub fn killed(&self) -> usize {
        self.killed
    }

    /// Peer connections refused with [`PeerRefused::NoRecord`].
    pub fn refused_no_record(&self) -> usize {
        self.refused_no_record
    }

    /// Whether `id` names the connection its record holds now (it was issued by this
    /// stack and its record was not reused since).
    pub fn is_current(&self, id: PeerId) -> bool {
        self.slot_of(id).is_some()
    }

    /// The connection in record `record` (`0..CONNS`), if the record was ever used:
    /// always a current id. For harnesses that pick connections by number.
    pub fn peer_at(&self, record: usize) -> Option<PeerId> {
        let conn = self.conns.get(record)?;
        conn.in_use.then(|| conn.id(record))
    }

    /// Connection records holding a connection that is not finished (application
    /// socket open, waiting in a backlog, or holding a PCB).
    pub fn records_in_use(&self) -> usize {
        self.conns.iter().filter(|c| !c.reusable()).count()
    }

    /// The most recent connection with this remote address, if its record still holds
    /// it.
    pub fn find_peer(&self, remote: SocketAddr) -> Option<PeerId> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.in_use && c.remote == remote)
            .max_by_key(|(_, c)| c.serial)
            .map(|(i, c)| c.id(i))
    }

    /// Whether this connection was killed to reclaim its PCB.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn was_killed(&self, id: PeerId) -> bool {
        self.conn(id).killed
    }

    /// Whether this connection holds a PCB now.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn holds_pcb(&self, id: PeerId) -> bool {
        self.conn(id).pcb
    }

    /// Bytes sent on this connection and not yet acknowledged (held ones included).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn unacked(&self, id: PeerId) -> usize {
        self.conn(id).unacked
    }

    /// The remote address: the `from` of an inbound connection, the target of an
    /// outbound one.
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn remote(&self, id: PeerId) -> SocketAddr {
        self.conn(id).remote
    }

    /// The local port of the connection (the listener's, or an ephemeral one).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn local_port(&self, id: PeerId) -> u16 {
        self.conn(id).local_port
    }

    /// The most recent connection (inbound or outbound), if its record still holds it.
    pub fn last_peer(&self) -> Option<PeerId> {
        let last = self.next_serial.checked_sub(1)?;
        self.conns
            .iter()
            .position(|c| c.in_use && c.serial == last)
            .map(|i| self.conns[i].id(i))
    }

    /// The connection behind an open socket.
    pub fn peer_of(&self, sock: SockId) -> Option<PeerId> {
        match self.sock(sock)?.state {
            SockState::Conn(id) => Some(id),
            _ => None,
        }
    }

    /// The open application socket of a connection (`None` while it waits in a backlog
    /// and once the application closed it).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn sock_of(&self, id: PeerId) -> Option<SockId> {
        self.conn(id).sock
    }

    /// Check the books: the PCB count, the budget and the socket ↔ connection links.
    /// For property tests.
    ///
    /// # Panics
    /// If the stack's own bookkeeping is inconsistent (a bug in the double).
    pub fn assert_consistent(&self) {
        let sock_pcbs = self.sockets.iter().flatten().filter(|s| s.pcb).count();
        let conn_pcbs = self.conns.iter().filter(|c| c.in_use && c.pcb).count();
        assert!(
            self.conns.iter().all(|c| c.in_use || !c.pcb),
            "an unused record holds a PCB"
        );
        assert_eq!(sock_pcbs + conn_pcbs, self.pcbs_used, "PCB count out of sync");
        assert!(self.pcbs_used <= self.config.pcbs, "PCB budget exceeded");
        for sock in self.sockets.iter().flatten() {
            if let SockState::Conn(id) = sock.state {
                let conn = self.conn_opt(id).expect("a socket names a stale connection");
                assert_eq!(conn.sock, Some(sock.id), "socket/connection link");
            }
        }
        for (i, c) in self.conns.iter().enumerate().filter(|(_, c)| c.in_use) {
            if let Some(sid) = c.sock {
                assert!(
                    matches!(self.sock(sid), Some(Sock { state: SockState::Conn(id), .. }) if id.record() == i),
                    "connection {i} names a socket that is not its own"
                );
            }
            if let Some(l) = c.queued_on {
                assert!(
                    matches!(
                        self.sock(l),
                        Some(Sock {
                            state: SockState::Listening { .. },
                            ..
                        })
                    ),
                    "connection {i} queued on a socket that does not listen"
                );
                assert!(c.sock.is_none(), "connection {i} queued and accepted");
            }
            assert!(c.wire.len() as u64 <= c.sent_total && c.held <= c.unacked);
        }
    }

    // ---------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------

    fn record(&mut self, call: Call) {
        self.tick += 1;
        #[cfg(feature = "std")]
        self.calls.push(call);
        #[cfg(not(feature = "std"))]
        let _ = call;
    }

    /// The record of a current id.
    fn slot_of(&self, id: PeerId) -> Option<usize> {
        let slot = id.record();
        let conn = self.conns.get(slot)?;
        (conn.in_use && conn.serial == id.serial).then_some(slot)
    }

    fn slot(&self, id: PeerId) -> usize {
        self.slot_of(id)
            .unwrap_or_else(|| panic!("{id:?} is not a current connection of this stack"))
    }

    fn conn_opt(&self, id: PeerId) -> Option<&Conn<RX, SENT>> {
        self.slot_of(id).map(|s| &self.conns[s])
    }

    fn conn(&self, id: PeerId) -> &Conn<RX, SENT> {
        &self.conns[self.slot(id)]
    }

    fn conn_mut(&mut self, id: PeerId) -> &mut Conn<RX, SENT> {
        let slot = self.slot(id);
        &mut self.conns[slot]
    }

    fn sock(&self, id: SockId) -> Option<&Sock> {
        self.sockets.iter().flatten().find(|s| s.id == id)
    }

    fn sock_mut(&mut self, id: SockId) -> Option<&mut Sock> {
        self.sockets.iter_mut().flatten().find(|s| s.id == id)
    }

    fn has_free_sock(&self) -> bool {
        self.sockets.iter().any(Option::is_none)
    }

    /// A new socket in a free record (the caller checked there is one).
    fn new_sock(&mut self, state: SockState, pcb: bool) -> Option<SockId> {
        let free = self.sockets.iter_mut().find(|s| s.is_none())?;
        let id = SockId(self.next_sock);
        self.next_sock += 1;
        *free = Some(Sock { id, state, pcb });
        Some(id)
    }

    /// A never-used record, else the oldest finished one.
    fn free_record(&self) -> Option<usize> {
        self.conns.iter().position(|c| !c.in_use).or_else(|| {
            self.conns
                .iter()
                .enumerate()
                .filter(|(_, c)| c.reusable())
                .min_by_key(|(_, c)| c.serial)
                .map(|(i, _)| i)
        })
    }

    /// A new connection holding a PCB already taken (or transferred) by the caller.
    fn new_conn(&mut self, remote: SocketAddr, local_port: u16, phase: Phase) -> Option<PeerId> {
        let slot = self.free_record()?;
        let serial = self.next_serial;
        self.next_serial += 1;
        let (tick, room) = (self.tick, self.config.send_window);
        // Field by field, not `*conn = Conn { .. }`: a record literal would build the
        // `RX + SENT` byte buffers on the stack and copy them in (kilobytes on a
        // self-test target's stack), where `clear` only resets their lengths.
        let conn = &mut self.conns[slot];
        conn.in_use = true;
        conn.serial = serial;
        conn.remote = remote;
        conn.local_port = local_port;
        conn.phase = phase;
        conn.pcb = true;
        conn.gone = None;
        conn.sock = None;
        conn.queued_on = None;
        conn.rx.clear();
        conn.peer_fin = false;
        conn.wire.clear();
        #[cfg(feature = "std")]
        conn.segments.clear();
        conn.sent_total = 0;
        conn.held = 0;
        conn.pushes = 0;
        conn.stack_pushes = 0;
        conn.last_flag = None;
        conn.unacked = 0;
        conn.room = room;
        conn.fin_sent = false;
        conn.rst_sent = false;
        conn.killed = false;
        conn.last_activity = tick;
        conn.fail_send = None;
        conn.fail_receive = None;
        conn.fail_push = None;
        Some(conn.id(slot))
    }

    /// The listening socket on `port`.
    fn listener(&self, port: u16) -> Option<SockId> {
        self.sockets.iter().flatten().find_map(|s| match s.state {
            SockState::Listening { port: p } if p == port => Some(s.id),
            _ => None,
        })
    }

    fn backlog_of(&self, listener: SockId) -> usize {
        self.conns
            .iter()
            .filter(|c| c.in_use && c.queued_on == Some(listener))
            .count()
    }

    /// The next connection to accept from a listener's backlog (the oldest).
    fn backlog_front(&self, listener: SockId) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.in_use && c.queued_on == Some(listener))
            .min_by_key(|(_, c)| c.serial)
            .map(|(i, _)| i)
    }

    /// Count a new PCB, reclaiming one first if the budget is spent. `false`: none.
    fn alloc_pcb(&mut self) -> bool {
        if self.pcbs_used >= self.config.pcbs {
            if let Some(tw) = self.pick(|c| c.in_time_wait()) {
                self.release(tw);
            } else if self.config.exhaustion == Exhaustion::KillOldest {
                match self.pick(|c| !c.in_time_wait()) {
                    Some(victim) => self.kill(victim),
                    None => return false,
                }
            } else {
                return false;
            }
        }
        self.pcbs_used += 1;
        true
    }

    /// Among PCB-holding connections matching `pred`: the longest inactive, ties to the
    /// oldest.
    fn pick(&self, pred: impl Fn(&Conn<RX, SENT>) -> bool) -> Option<usize> {
        self.conns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.in_use && c.pcb && pred(c))
            .min_by_key(|(_, c)| (c.last_activity, c.serial))
            .map(|(i, _)| i)
    }

    /// lwIP reclaiming a PCB: RST to the peer, `Aborted` for the application.
    fn kill(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.phase != Phase::AppClosed {
            conn.gone = Some(ErrorClass::Aborted);
        }
        conn.rst_sent = true;
        conn.killed = true;
        conn.rx.clear();
        conn.unacked = 0;
        conn.held = 0;
        self.killed += 1;
        self.release(slot);
    }

    fn release(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        if conn.pcb {
            conn.pcb = false;
            self.pcbs_used -= 1;
        }
    }

    /// The connection behind `sock`, for send and receive.
    fn conn_of(&self, sock: SockId) -> Result<usize, ErrorClass> {
        match self.sock(sock).map(|s| s.state) {
            Some(SockState::Conn(id)) => self.slot_of(id).ok_or(ErrorClass::InvalidInput),
            _ => Err(ErrorClass::InvalidInput),
        }
    }

    fn peer_data(&mut self, slot: usize, data: &[u8]) -> usize {
        self.tick += 1;
        let tick = self.tick;
        let rst_on_unread = self.config.rst_on_unread;
        let conn = &mut self.conns[slot];
        if conn.gone.is_some() || conn.rst_sent || data.is_empty() {
            return 0;
        }
        if conn.phase == Phase::AppClosed {
            // Nobody reads any more: RST (always, once no PCB is left to take it).
            if rst_on_unread || !conn.pcb {
                conn.rst_sent = true;
                conn.unacked = 0;
                conn.held = 0;
                self.release(slot);
            }
            return 0;
        }
        let mut taken = 0;
        for &b in data {
            if conn.rx.push_back(b).is_err() {
                break;
            }
            taken += 1;
        }
        if taken > 0 {
            conn.last_activity = tick;
        }
        taken
    }

    /// RST from the application side (abort, unread data, listener closed).
    fn abort_conn(&mut self, slot: usize) {
        let conn = &mut self.conns[slot];
        conn.sock = None;
        conn.queued_on = None;
        if conn.gone.is_none() && conn.phase == Phase::Open {
            conn.rst_sent = true;
        }
        conn.phase = Phase::AppClosed;
        conn.rx.clear();
        conn.unacked = 0;
        conn.held = 0;
        self.release(slot);
    }

    fn close_conn(&mut self, slot: usize) {
        let tick = self.tick;
        let ScriptedConfig {
            fin_holds_pcb,
            time_wait_pcb,
            rst_on_unread,
            ..
        } = self.config;
        let conn = &mut self.conns[slot];
        if conn.gone.is_some() || conn.phase != Phase::Open {
            // Dead already, or still connecting (SYN-SENT closes silently).
            conn.sock = None;
            conn.phase = Phase::AppClosed;
            self.release(slot);
            return;
        }
        if rst_on_unread && !conn.rx.is_empty() {
            self.abort_conn(slot);
            return;
        }
        conn.sock = None;
        conn.phase = Phase::AppClosed;
        conn.fin_sent = true;
        // Closing pushes what MORE left held.
        conn.held = 0;
        conn.last_activity = tick;
        let hold = (fin_holds_pcb && conn.unacked > 0) || time_wait_pcb;
        if !hold {
            self.release(slot);
        }
    }

    fn close_sock(&mut self, sock: SockId, abort: bool) -> Result<(), ScriptedError> {
        let Some(rec) = self.sockets.iter_mut().find(|s| s.is_some_and(|s| s.id == sock)) else {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        };
        let Some(s) = rec.take() else {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        };
        if s.pcb {
            self.pcbs_used -= 1;
        }
        match s.state {
            SockState::Fresh { .. } => {}
            SockState::Listening { .. } => {
                for slot in 0..CONNS {
                    if self.conns[slot].in_use && self.conns[slot].queued_on == Some(sock) {
                        self.abort_conn(slot);
                    }
                }
            }
            SockState::Conn(id) => {
                if let Some(slot) = self.slot_of(id) {
                    if abort {
                        self.abort_conn(slot);
                    } else {
                        self.close_conn(slot);
                    }
                }
            }
        }
        Ok(())
    }

    fn send_inner(&mut self, sock: SockId, data: &[u8], flag: Option<SendFlag>) -> NbResult<usize> {
        let slot = self.conn_of(sock).or_else(fail)?;
        let tick = self.tick;
        let hold_more = self.config.hold_more;
        let conn = &mut self.conns[slot];
        if let Some(class) = conn.fail_send.take().or(conn.gone) {
            return fail(class);
        }
        if conn.phase != Phase::Open {
            return fail(ErrorClass::InvalidInput);
        }
        if data.is_empty() {
            return Ok(0);
        }
        let n = data.len().min(conn.room);
        if n == 0 {
            return Err(nb::Error::WouldBlock);
        }
        let keep = n.min(SENT - conn.wire.len());
        // Cannot fail: `keep` fits.
        let _ = conn.wire.extend_from_slice(&data[..keep]);
        #[cfg(feature = "std")]
        conn.segments.push((data[..n].to_vec(), flag));
        conn.sent_total += n as u64;
        conn.last_flag = flag;
        match flag {
            Some(SendFlag::More) if hold_more => conn.held += n,
            Some(SendFlag::More) => {}
            Some(SendFlag::Push) => {
                conn.pushes += 1;
                conn.held = 0;
            }
            None => conn.held = 0,
        }
        conn.unacked += n;
        if conn.room != usize::MAX {
            conn.room -= n;
        }
        conn.last_activity = tick;
        Ok(n)
    }

    fn send_logged(&mut self, sock: SockId, data: &[u8], flag: Option<SendFlag>) -> NbResult<usize> {
        self.tick += 1;
        let result = self.send_inner(sock, data, flag);
        #[cfg(feature = "std")]
        self.calls.push(Call::Send {
            sock,
            len: data.len(),
            taken: *result.as_ref().unwrap_or(&0),
            flag,
        });
        result
    }
}

// -------------------------------------------------------------------------------------
// Only with std: the call log and Vec-returning inspectors
// -------------------------------------------------------------------------------------

#[cfg(feature = "std")]
impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize>
    ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    /// The first `SENT` bytes the application's sends took, in order (a copy of
    /// [`peer_sent`](Self::peer_sent)).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_received(&self, id: PeerId) -> Vec<u8> {
        self.peer_sent(id).to_vec()
    }

    /// Each send that took bytes: the bytes taken and the flag (`None` for plain
    /// `send`, `Some` for `send_flagged`).
    ///
    /// # Panics
    /// If `id` is not current.
    pub fn peer_segments(&self, id: PeerId) -> Vec<(Vec<u8>, Option<SendFlag>)> {
        self.conn(id).segments.clone()
    }

    /// Every connection whose record still holds it, oldest first.
    pub fn peers(&self) -> Vec<PeerId> {
        let mut ids: Vec<PeerId> = (0..CONNS).filter_map(|i| self.peer_at(i)).collect();
        ids.sort();
        ids
    }

    /// Every stack call so far, in order.
    pub fn calls(&self) -> &[Call] {
        &self.calls
    }

    /// How many recorded calls match, e.g. `count(|c| matches!(c, Call::Abort(_)))`.
    pub fn count(&self, pred: impl Fn(&Call) -> bool) -> usize {
        self.calls.iter().filter(|c| pred(c)).count()
    }

    /// Forget the recorded calls.
    pub fn clear_calls(&mut self) {
        self.calls.clear();
    }
}

// -------------------------------------------------------------------------------------
// embedded-nal
// -------------------------------------------------------------------------------------

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpClientStack
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    type TcpSocket = SockId;
    type Error = ScriptedError;

    fn socket(&mut self) -> Result<SockId, ScriptedError> {
        self.record(Call::Socket);
        if let Some(class) = self.fail_socket.take() {
            return Err(ScriptedError(class));
        }
        if !self.has_free_sock() || !self.alloc_pcb() {
            return Err(ScriptedError(ErrorClass::OutOfResources));
        }
        // A PCB reclaim frees no socket record and takes none.
        self.new_sock(SockState::Fresh { port: None }, true)
            .ok_or(ScriptedError(ErrorClass::OutOfResources))
    }

    fn connect(&mut self, sock: &mut SockId, remote: SocketAddr) -> NbResult<()> {
        self.record(Call::Connect(*sock));
        let slot = match self.sock(*sock).map(|s| s.state) {
            Some(SockState::Conn(id)) => match self.slot_of(id) {
                Some(slot) => slot,
                None => return fail(ErrorClass::InvalidInput),
            },
            Some(SockState::Fresh { port }) => {
                if self.link == LinkState::Down {
                    return fail(ErrorClass::NoRoute);
                }
                if self.free_record().is_none() {
                    return fail(ErrorClass::OutOfResources);
                }
                let local_port = port.unwrap_or_else(|| {
                    let p = self.next_port;
                    self.next_port = self.next_port.checked_add(1).unwrap_or(EPHEMERAL_PORTS);
                    p
                });
                let script = self.connect_scripts.pop_front().unwrap_or(self.default_connect);
                let Some(id) = self.new_conn(remote, local_port, Phase::Connecting(script)) else {
                    return fail(ErrorClass::OutOfResources);
                };
                // The socket's PCB becomes the connection's.
                let s = self.sock_mut(*sock).expect("looked up above");
                s.pcb = false;
                s.state = SockState::Conn(id);
                self.conns[id.record()].sock = Some(*sock);
                id.record()
            }
            _ => return fail(ErrorClass::InvalidInput),
        };
        let tick = self.tick;
        let conn = &mut self.conns[slot];
        if let Some(class) = conn.gone {
            return fail(class);
        }
        match &mut conn.phase {
            Phase::Open => Ok(()),
            Phase::AppClosed => fail(ErrorClass::InvalidInput),
            Phase::Connecting(script) => match script {
                ConnectScript::SucceedAfter(0) => {
                    conn.phase = Phase::Open;
                    conn.last_activity = tick;
                    Ok(())
                }
                ConnectScript::FailAfter(0, class) => {
                    let class = *class;
                    conn.gone = Some(class);
                    self.release(slot);
                    fail(class)
                }
                ConnectScript::SucceedAfter(n) | ConnectScript::FailAfter(n, _) => {
                    *n -= 1;
                    Err(nb::Error::WouldBlock)
                }
                ConnectScript::NeverComplete => Err(nb::Error::WouldBlock),
            },
        }
    }

    fn send(&mut self, sock: &mut SockId, data: &[u8]) -> NbResult<usize> {
        self.send_logged(*sock, data, None)
    }

    fn receive(&mut self, sock: &mut SockId, buf: &mut [u8]) -> NbResult<usize> {
        self.record(Call::Receive { sock: *sock });
        let slot = self.conn_of(*sock).or_else(fail)?;
        let tick = self.tick;
        let conn = &mut self.conns[slot];
        if let Some(class) = conn.fail_receive.take().or(conn.gone) {
            return fail(class);
        }
        if conn.phase != Phase::Open {
            return fail(ErrorClass::InvalidInput);
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if conn.rx.is_empty() {
            return if conn.peer_fin {
                Ok(0)
            } else {
                Err(nb::Error::WouldBlock)
            };
        }
        let n = buf.len().min(conn.rx.len());
        for dst in &mut buf[..n] {
            *dst = conn.rx.pop_front().unwrap_or_default();
        }
        conn.last_activity = tick;
        Ok(n)
    }

    fn close(&mut self, sock: SockId) -> Result<(), ScriptedError> {
        self.record(Call::Close(sock));
        self.close_sock(sock, false)
    }
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpFullStack
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    fn bind(&mut self, sock: &mut SockId, port: u16) -> Result<(), ScriptedError> {
        self.record(Call::Bind(*sock, port));
        if let Some(class) = self.fail_bind.take() {
            return Err(ScriptedError(class));
        }
        if !matches!(
            self.sock(*sock).map(|s| s.state),
            Some(SockState::Fresh { port: None })
        ) {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        }
        let in_use = self.sockets.iter().flatten().any(|s| match s.state {
            SockState::Fresh { port: Some(p) } | SockState::Listening { port: p } => p == port,
            _ => false,
        });
        if in_use {
            return Err(ScriptedError(ErrorClass::AddressInUse));
        }
        if let Some(s) = self.sock_mut(*sock) {
            s.state = SockState::Fresh { port: Some(port) };
        }
        Ok(())
    }

    fn listen(&mut self, sock: &mut SockId) -> Result<(), ScriptedError> {
        self.record(Call::Listen(*sock));
        if let Some(class) = self.fail_listen.take() {
            return Err(ScriptedError(class));
        }
        let listen_holds_pcb = self.config.listen_holds_pcb;
        let Some(s) = self.sock_mut(*sock) else {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        };
        let SockState::Fresh { port: Some(port) } = s.state else {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        };
        s.state = SockState::Listening { port };
        if !listen_holds_pcb && s.pcb {
            s.pcb = false;
            self.pcbs_used -= 1;
        }
        Ok(())
    }

    fn accept(&mut self, sock: &mut SockId) -> NbResult<(SockId, SocketAddr)> {
        self.record(Call::Accept(*sock));
        if !matches!(
            self.sock(*sock).map(|s| s.state),
            Some(SockState::Listening { .. })
        ) {
            return fail(ErrorClass::InvalidInput);
        }
        if let Some(class) = self.fail_accept.take() {
            return fail(class);
        }
        let Some(slot) = self.backlog_front(*sock) else {
            return Err(nb::Error::WouldBlock);
        };
        if !self.has_free_sock() {
            return fail(ErrorClass::OutOfResources);
        }
        let id = self.conns[slot].id(slot);
        let Some(new) = self.new_sock(SockState::Conn(id), false) else {
            return fail(ErrorClass::OutOfResources);
        };
        let conn = &mut self.conns[slot];
        conn.queued_on = None;
        conn.sock = Some(new);
        Ok((new, conn.remote))
    }
}

// -------------------------------------------------------------------------------------
// netpool extension traits, all native
// -------------------------------------------------------------------------------------

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpAbort
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    const NATIVE_ABORT: bool = true;

    fn abort(&mut self, sock: SockId) -> Result<(), ScriptedError> {
        self.record(Call::Abort(sock));
        self.close_sock(sock, true)
    }
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpSendFlags
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    const NATIVE_FLAGS: bool = true;

    fn send_flagged(&mut self, sock: &mut SockId, data: &[u8], flag: SendFlag) -> NbResult<usize> {
        self.send_logged(*sock, data, Some(flag))
    }
}

/// Counts the push ([`stack_pushes`](ScriptedStackIn::stack_pushes)) and puts what MORE
/// sends left held on the wire; `Ok(())` unless a failure was scripted
/// ([`fail_next_push`](ScriptedStackIn::fail_next_push)).
impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpPush
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    fn push(&mut self, sock: &mut SockId) -> NbResult<()> {
        self.record(Call::Push(*sock));
        if let Ok(slot) = self.conn_of(*sock) {
            let conn = &mut self.conns[slot];
            if let Some(class) = conn.fail_push.take() {
                return fail(class);
            }
            conn.stack_pushes += 1;
            conn.held = 0;
        }
        Ok(())
    }
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpSendQueue
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    /// Unacknowledged bytes of a connection; `Some(0)` for a socket without one; `None`
    /// for an unknown socket, and for every socket when
    /// [`ScriptedConfig::report_send_queue`] is off.
    fn send_queue(&mut self, sock: &SockId) -> Option<usize> {
        self.record(Call::SendQueue(*sock));
        if !self.config.report_send_queue {
            return None;
        }
        match self.sock(*sock)?.state {
            SockState::Conn(id) => Some(self.conn_opt(id).map_or(0, |c| c.unacked)),
            _ => Some(0),
        }
    }
}

/// Fallback: the scripted listener queues connections itself, like lwIP.
impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpBacklog
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
}

/// Fallback: zeros (its kills are counted by [`ScriptedStackIn::killed`]).
impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> PcbDiagnostics
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> TcpPeerStatus
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    /// `Gone(class)` after a reset, kill or failed connect (`Gone(InvalidInput)` for an
    /// unknown socket); `Closed` once the peer's FIN and all data before it were read;
    /// `Open` otherwise (also for fresh, listening and connecting sockets).
    fn peer_status(&mut self, sock: &SockId) -> PeerStatus {
        self.record(Call::PeerStatus(*sock));
        let Some(s) = self.sock(*sock) else {
            return PeerStatus::Gone(ErrorClass::InvalidInput);
        };
        let SockState::Conn(id) = s.state else {
            return PeerStatus::Open;
        };
        let Some(conn) = self.conn_opt(id) else {
            return PeerStatus::Gone(ErrorClass::InvalidInput);
        };
        match conn.gone {
            Some(class) => PeerStatus::Gone(class),
            None if conn.peer_fin && conn.rx.is_empty() => PeerStatus::Closed,
            None => PeerStatus::Open,
        }
    }
}

impl<const SOCKETS: usize, const CONNS: usize, const RX: usize, const SENT: usize> LinkStatus
    for ScriptedStackIn<SOCKETS, CONNS, RX, SENT>
{
    fn link_state(&self) -> LinkState {
        self.link
    }
}
