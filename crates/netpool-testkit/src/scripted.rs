//! A scripted TCP stack: deterministic, in memory, no time, no network.
//!
//! [`ScriptedStack`] implements embedded-nal's [`TcpClientStack`] and [`TcpFullStack`]
//! plus every netpool extension trait *natively* ([`TcpAbort`], [`TcpSendFlags`],
//! [`TcpSendQueue`], [`TcpPeerStatus`], [`LinkStatus`]). The test plays every remote
//! host through the `peer_*` methods and scripts what the stack does (connect outcomes,
//! send windows, one-shot errors). Every stack call is recorded in a [`Call`] log.
//!
//! To exercise netpool's *fallback* paths, wrap it: [`PlainScripted`]
//! (`Plain<ScriptedStack>`) hides the extension traits, and classifies errors through
//! embedded-nal's [`TcpErrorKind`], which knows only `PipeClosed` and `Other`: through
//! `Plain`, a [`ScriptedError`] of class `Closed` arrives as `Closed` and **every other
//! class collapses to `Fatal`** (a scripted `Reset` is `Fatal` there). Reach the peer
//! side with [`Plain::inner_mut`].
//!
//! # Model
//!
//! - **Sockets** ([`SockId`], unique, never reused) are fresh (unbound or bound),
//!   listening (with a backlog of at most [`ScriptedConfig::backlog`] connections), or
//!   attached to a connection (connecting or connected). A closed or aborted socket is
//!   forgotten: any later call with its id fails with `InvalidInput`, as does any call
//!   with an unknown id. No stack operation panics.
//! - **Connections** ([`PeerId`]) are created by [`ScriptedStack::peer_connect`]
//!   (inbound, queued in the listener's backlog until accepted) or by the first
//!   `connect` on a fresh socket (outbound; see [`ConnectScript`]). A connection record
//!   lives as long as the stack, so the peer side can be inspected after the
//!   application closed it.
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
//!   [`ScriptedConfig::send_window`]): `send` takes `min(len, room)` bytes and returns
//!   `WouldBlock` when it takes none. Taken bytes go on the wire at once
//!   ([`peer_received`](ScriptedStack::peer_received)) and stay unacknowledged
//!   ([`TcpSendQueue`]) until [`peer_ack`](ScriptedStack::peer_ack), which also gives the
//!   room back.
//! - **Receiving**: `Ok(n)` with data; `WouldBlock` when nothing is buffered; `Ok(0)` when
//!   nothing is buffered and the peer sent FIN (embedded-nal's end-of-stream); after a
//!   reset (or a kill) the buffered data is discarded and the error is returned.
//! - **Closing**: `close` sends FIN ([`peer_saw_fin`](ScriptedStack::peer_saw_fin)),
//!   except that closing with unread received data sends RST instead, as lwIP and Linux
//!   do ([`ScriptedConfig::rst_on_unread`]); `abort` sends RST
//!   ([`peer_saw_reset`](ScriptedStack::peer_saw_reset)) and releases the PCB at once.
//!   Closing or aborting a listener resets every connection still in its backlog.
//! - **Injected failures** (`fail_next_*`) are one-shot and change no state: they only
//!   make the next matching call return `Err(ScriptedError(class))`, literally, even for
//!   `ErrorClass::WouldBlock` (to test a stack that reports would-block as an error code).
//!   For a real reset use [`peer_reset`](ScriptedStack::peer_reset).
//!
//! Peer-side methods panic on a [`PeerId`] this stack did not issue: that is a bug in
//! the test, not a behaviour of a stack.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddr;

use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use netpool::stack::{
    LinkState, LinkStatus, PeerStatus, Plain, SendFlag, TcpAbort, TcpPeerStatus, TcpPush, TcpSendFlags,
    TcpSendQueue,
};
use netpool::{Classify, ErrorClass};

/// [`ScriptedStack`] with every extension trait on its netpool fallback.
///
/// Errors reach netpool as `Closed` (for `ErrorClass::Closed`) or `Fatal` (everything
/// else), sends are recorded with flag `None`, and the link state is `Plain`'s own
/// ([`Plain::set_link`]), not the inner stack's.
pub type PlainScripted = Plain<ScriptedStack>;

/// First local port of outbound connections.
const EPHEMERAL_PORTS: u16 = 49152;

// -------------------------------------------------------------------------------------
// Public types
// -------------------------------------------------------------------------------------

/// An application-side socket: unique within a stack, never reused.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SockId(pub u32);

/// A connection as the remote host sees it (inbound or outbound). Issued in creation
/// order, so `PeerId` order is age order.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerId(u32);

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

impl std::error::Error for ScriptedError {}

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
    /// a reset, its next operation fails with `Aborted`, and [`ScriptedStack::killed`]
    /// counts it. The new one then succeeds. With no victim (only sockets and listeners
    /// hold PCBs) it fails as under `Refuse`.
    #[default]
    KillOldest,
}

/// Construction parameters of a [`ScriptedStack`].
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
    /// given back by the peer's acks (lwIP `TCP_SND_BUF`). Default 4096.
    pub send_window: usize,
    /// A graceful close with unacknowledged data keeps its PCB until the peer acks it all
    /// (or resets, or it is killed) — lwIP's FIN-WAIT/LAST-ACK. When `false`, close always
    /// releases the PCB at once. Default `true`.
    pub fin_holds_pcb: bool,
    /// A gracefully closed connection keeps its PCB in TIME-WAIT even once acknowledged,
    /// until [`ScriptedStack::expire_time_wait`] or until a new PCB is needed (reclaimed
    /// silently, oldest first). Default `false`.
    pub time_wait_pcb: bool,
    /// A listening socket holds a PCB from the budget. Default `true`; lwIP takes
    /// listeners from a separate pool (`MEMP_NUM_TCP_PCB_LISTEN`): set `false` for that.
    pub listen_holds_pcb: bool,
    /// Closing with unread received data, or data arriving after the application closed,
    /// resets the connection instead of a graceful FIN (lwIP and Linux both do).
    /// Default `true`.
    pub rst_on_unread: bool,
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
        }
    }
}

/// The outcome of the next outbound connection, set with
/// [`ScriptedStack::script_connect`]. Counted in `connect` calls on that socket.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum ConnectScript {
    /// `WouldBlock` for this many calls, then `Ok(())`. `SucceedAfter(0)` (the default
    /// when nothing is scripted) completes on the first call.
    SucceedAfter(u32),
    /// `WouldBlock` for this many calls, then `Err(class)`; the PCB is released and every
    /// later operation on the socket fails with `class` until it is closed.
    FailAfter(u32, ErrorClass),
    /// `WouldBlock` forever (a SYN into the void).
    NeverComplete,
}

/// Why [`ScriptedStack::peer_connect`] was refused (the peer would see RST or silence).
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash)]
pub enum PeerRefused {
    /// Nothing listens on the port.
    NoListener,
    /// The listener's backlog is full.
    BacklogFull,
    /// No PCB, and none could be reclaimed under the policy.
    NoPcb,
}

/// One recorded stack call (see [`ScriptedStack::calls`]). Calls are recorded whatever
/// their outcome, including calls with unknown socket ids.
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

#[derive(Debug)]
enum SockState {
    /// Created by `socket()`, possibly bound.
    Fresh {
        port: Option<u16>,
    },
    Listening {
        port: u16,
        backlog: VecDeque<PeerId>,
    },
    /// Connecting or connected (outbound), or accepted.
    Conn(PeerId),
}

#[derive(Debug)]
struct Sock {
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
struct Conn {
    remote: SocketAddr,
    local_port: u16,
    phase: Phase,
    /// Holds a PCB (then it is in `ScriptedStack::holders`).
    pcb: bool,
    /// Set when the connection died under an open socket: what the application's next
    /// operation gets (`Reset`, `Aborted` when killed, `Refused`, a failed connect's class).
    gone: Option<ErrorClass>,
    /// The application socket, while it is open.
    sock: Option<SockId>,
    /// Peer → application, not yet read.
    rx: VecDeque<u8>,
    peer_fin: bool,
    /// Application → peer: everything taken by `send`, and each call's share.
    wire: Vec<u8>,
    segments: Vec<(Vec<u8>, Option<SendFlag>)>,
    unacked: usize,
    room: usize,
    fin_sent: bool,
    rst_sent: bool,
    killed: bool,
    last_activity: u64,
    fail_send: Option<ErrorClass>,
    fail_receive: Option<ErrorClass>,
}

impl Conn {
    /// Closed by the application, fully acknowledged, PCB still held.
    fn in_time_wait(&self) -> bool {
        self.pcb && self.phase == Phase::AppClosed && self.unacked == 0
    }
}

// -------------------------------------------------------------------------------------
// The stack
// -------------------------------------------------------------------------------------

/// The scripted stack. See the [module documentation](self) for the model.
#[derive(Debug)]
pub struct ScriptedStack {
    config: ScriptedConfig,
    /// Logical clock: one tick per stack call or peer action.
    tick: u64,
    next_sock: u32,
    next_port: u16,
    sockets: HashMap<SockId, Sock>,
    /// Indexed by `PeerId`.
    conns: Vec<Conn>,
    /// Connections holding a PCB.
    holders: BTreeSet<PeerId>,
    pcbs_used: usize,
    connect_scripts: VecDeque<ConnectScript>,
    fail_socket: Option<ErrorClass>,
    fail_accept: Option<ErrorClass>,
    fail_bind: Option<ErrorClass>,
    fail_listen: Option<ErrorClass>,
    killed: usize,
    link: LinkState,
    calls: Vec<Call>,
}

type NbResult<T> = nb::Result<T, ScriptedError>;

fn fail<T>(class: ErrorClass) -> NbResult<T> {
    Err(nb::Error::Other(ScriptedError(class)))
}

impl Default for ScriptedStack {
    fn default() -> Self {
        Self::new(ScriptedConfig::default())
    }
}

impl ScriptedStack {
    /// A stack with nothing open, link `Up`, and an empty call log.
    pub fn new(config: ScriptedConfig) -> Self {
        ScriptedStack {
            config,
            tick: 0,
            next_sock: 0,
            next_port: EPHEMERAL_PORTS,
            sockets: HashMap::new(),
            conns: Vec::new(),
            holders: BTreeSet::new(),
            pcbs_used: 0,
            connect_scripts: VecDeque::new(),
            fail_socket: None,
            fail_accept: None,
            fail_bind: None,
            fail_listen: None,
            killed: 0,
            link: LinkState::Up,
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
    /// fresh socket consumes one; default `ConnectScript::SucceedAfter(0)`).
    pub fn script_connect(&mut self, script: ConnectScript) {
        self.connect_scripts.push_back(script);
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
    pub fn fail_next_send(&mut self, id: PeerId, class: ErrorClass) {
        self.conn_mut(id).fail_send = Some(class);
    }

    /// The next `receive` on this connection fails with `class`.
    pub fn fail_next_receive(&mut self, id: PeerId, class: ErrorClass) {
        self.conn_mut(id).fail_receive = Some(class);
    }

    /// How many more bytes `send` takes on this connection before `WouldBlock` (acks
    /// add to it again). 0 makes every send block.
    pub fn set_send_window(&mut self, id: PeerId, bytes: usize) {
        self.conn_mut(id).room = bytes;
    }

    /// What [`LinkStatus::link_state`] reports (initially `Up`). While it is `Down`, a
    /// first `connect` fails with `NoRoute` and leaves the socket fresh.
    pub fn set_link(&mut self, link: LinkState) {
        self.link = link;
    }

    /// Release every TIME-WAIT PCB (see [`ScriptedConfig::time_wait_pcb`]).
    pub fn expire_time_wait(&mut self) {
        let expired: Vec<PeerId> = self
            .holders
            .iter()
            .copied()
            .filter(|&id| self.conn(id).in_time_wait())
            .collect();
        for id in expired {
            self.release(id);
        }
    }

    // ---------------------------------------------------------------------------------
    // The remote peers
    // ---------------------------------------------------------------------------------

    /// A remote host at `from` connects to local `port`. The connection takes a PCB and
    /// waits in the listener's backlog until accepted.
    pub fn peer_connect(&mut self, port: u16, from: SocketAddr) -> Result<PeerId, PeerRefused> {
        self.tick += 1;
        let backlog_len = self
            .listener(port)
            .map(|(_, backlog)| backlog.len())
            .ok_or(PeerRefused::NoListener)?;
        if backlog_len >= self.config.backlog {
            return Err(PeerRefused::BacklogFull);
        }
        if !self.alloc_pcb() {
            return Err(PeerRefused::NoPcb);
        }
        let id = self.new_conn(from, port, Phase::Open);
        self.listener_backlog_mut(port)
            .expect("a PCB reclaim never closes a listener")
            .push_back(id);
        Ok(id)
    }

    /// The peer sends `data`; the application can `receive` it. Ignored when the
    /// connection is dead; after the application closed it, the data is answered with
    /// RST (see [`ScriptedConfig::rst_on_unread`]).
    ///
    /// # Panics
    /// If the peer already sent FIN (a bug in the test).
    pub fn peer_send(&mut self, id: PeerId, data: &[u8]) {
        self.tick += 1;
        let tick = self.tick;
        let rst_on_unread = self.config.rst_on_unread;
        let conn = self.conn_mut(id);
        assert!(!conn.peer_fin, "{id:?}: peer_send after peer_fin");
        if conn.gone.is_some() || conn.rst_sent || data.is_empty() {
            return;
        }
        if conn.phase == Phase::AppClosed {
            // Nobody reads any more: RST (always, once no PCB is left to take it).
            if rst_on_unread || !conn.pcb {
                conn.rst_sent = true;
                conn.unacked = 0;
                self.release(id);
            }
            return;
        }
        conn.rx.extend(data);
        conn.last_activity = tick;
    }

    /// Whether [`peer_fin`](Self::peer_fin) took effect on this connection.
    pub fn peer_fin_sent(&self, id: PeerId) -> bool {
        self.conn(id).peer_fin
    }

    /// The peer sends FIN: once the buffered data is read, `receive` returns `Ok(0)`
    /// and [`TcpPeerStatus`] reports `Closed`.
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
    pub fn peer_reset(&mut self, id: PeerId) {
        self.tick += 1;
        let conn = self.conn_mut(id);
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
        self.release(id);
    }

    /// The peer acknowledges `bytes` more of the data sent to it (at most what is
    /// unacknowledged); they leave the send queue and give send room back. A closed
    /// connection releases its PCB when everything is acknowledged.
    pub fn peer_ack(&mut self, id: PeerId, bytes: usize) {
        self.tick += 1;
        let tick = self.tick;
        let time_wait = self.config.time_wait_pcb;
        let conn = self.conn_mut(id);
        let n = bytes.min(conn.unacked);
        conn.unacked -= n;
        conn.room = conn.room.saturating_add(n);
        conn.last_activity = tick;
        if conn.phase == Phase::AppClosed && conn.unacked == 0 && !time_wait {
            self.release(id);
        }
    }

    /// The peer acknowledges everything sent so far.
    pub fn peer_ack_all(&mut self, id: PeerId) {
        self.peer_ack(id, usize::MAX);
    }

    /// Every byte the application's sends put on the wire, in order.
    pub fn peer_received(&self, id: PeerId) -> Vec<u8> {
        self.conn(id).wire.clone()
    }

    /// Each send that took bytes: the bytes taken and the flag (`None` for plain
    /// `send`, `Some` for `send_flagged`).
    pub fn peer_segments(&self, id: PeerId) -> Vec<(Vec<u8>, Option<SendFlag>)> {
        self.conn(id).segments.clone()
    }

    /// The peer received RST: the application aborted, closed with unread data, closed
    /// the listener it was queued on, or the stack killed the connection.
    pub fn peer_saw_reset(&self, id: PeerId) -> bool {
        self.conn(id).rst_sent
    }

    /// The peer received FIN: the application closed gracefully.
    pub fn peer_saw_fin(&self, id: PeerId) -> bool {
        self.conn(id).fin_sent
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
        self.sockets.len()
    }

    /// Connections waiting in the backlog of the listener on `port` (0 if none).
    pub fn backlog_len(&self, port: u16) -> usize {
        self.listener(port).map_or(0, |(_, backlog)| backlog.len())
    }

    /// Connections killed to reclaim a PCB ([`Exhaustion::KillOldest`]).
    pub fn killed(&self) -> usize {
        self.killed
    }

    /// Whether this connection was killed to reclaim its PCB.
    pub fn was_killed(&self, id: PeerId) -> bool {
        self.conn(id).killed
    }

    /// Whether this connection holds a PCB now.
    pub fn holds_pcb(&self, id: PeerId) -> bool {
        self.conn(id).pcb
    }

    /// Bytes sent on this connection and not yet acknowledged.
    pub fn unacked(&self, id: PeerId) -> usize {
        self.conn(id).unacked
    }

    /// The remote address: the `from` of an inbound connection, the target of an
    /// outbound one.
    pub fn remote(&self, id: PeerId) -> SocketAddr {
        self.conn(id).remote
    }

    /// The local port of the connection (the listener's, or an ephemeral one).
    pub fn local_port(&self, id: PeerId) -> u16 {
        self.conn(id).local_port
    }

    /// Every connection ever made, oldest first.
    pub fn peers(&self) -> Vec<PeerId> {
        (0..self.conns.len() as u32).map(PeerId).collect()
    }

    /// The most recent connection (inbound or outbound).
    pub fn last_peer(&self) -> Option<PeerId> {
        self.conns.len().checked_sub(1).map(|i| PeerId(i as u32))
    }

    /// The connection behind an open socket.
    pub fn peer_of(&self, sock: SockId) -> Option<PeerId> {
        match self.sockets.get(&sock)?.state {
            SockState::Conn(id) => Some(id),
            _ => None,
        }
    }

    /// The open application socket of a connection (`None` while it waits in a backlog
    /// and once the application closed it).
    pub fn sock_of(&self, id: PeerId) -> Option<SockId> {
        self.conn(id).sock
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

    /// Recount every PCB holder and check the books, the budget and the socket ↔
    /// connection links. For property tests.
    ///
    /// # Panics
    /// If the stack's own bookkeeping is inconsistent (a bug in the double).
    pub fn assert_consistent(&self) {
        let sock_pcbs = self.sockets.values().filter(|s| s.pcb).count();
        let conn_pcbs = self.conns.iter().filter(|c| c.pcb).count();
        assert_eq!(conn_pcbs, self.holders.len(), "holder set out of sync");
        assert_eq!(sock_pcbs + conn_pcbs, self.pcbs_used, "PCB count out of sync");
        assert!(self.pcbs_used <= self.config.pcbs, "PCB budget exceeded");
        for (&sid, sock) in &self.sockets {
            if let SockState::Conn(id) = sock.state {
                assert_eq!(self.conn(id).sock, Some(sid), "socket/connection link");
            }
        }
        for (i, c) in self.conns.iter().enumerate() {
            if let Some(sid) = c.sock {
                assert!(
                    matches!(self.sockets.get(&sid), Some(Sock { state: SockState::Conn(id), .. }) if id.0 as usize == i),
                    "connection {i} names a socket that is not its own"
                );
            }
        }
    }

    // ---------------------------------------------------------------------------------
    // Internals
    // ---------------------------------------------------------------------------------

    fn record(&mut self, call: Call) {
        self.tick += 1;
        self.calls.push(call);
    }

    fn conn(&self, id: PeerId) -> &Conn {
        self.conns
            .get(id.0 as usize)
            .unwrap_or_else(|| panic!("{id:?} was not issued by this stack"))
    }

    fn conn_mut(&mut self, id: PeerId) -> &mut Conn {
        self.conns
            .get_mut(id.0 as usize)
            .unwrap_or_else(|| panic!("{id:?} was not issued by this stack"))
    }

    fn new_sock(&mut self, state: SockState, pcb: bool) -> SockId {
        let id = SockId(self.next_sock);
        self.next_sock += 1;
        self.sockets.insert(id, Sock { state, pcb });
        id
    }

    /// A new connection holding a PCB already taken (or transferred) by the caller.
    fn new_conn(&mut self, remote: SocketAddr, local_port: u16, phase: Phase) -> PeerId {
        let id = PeerId(self.conns.len() as u32);
        self.conns.push(Conn {
            remote,
            local_port,
            phase,
            pcb: true,
            gone: None,
            sock: None,
            rx: VecDeque::new(),
            peer_fin: false,
            wire: Vec::new(),
            segments: Vec::new(),
            unacked: 0,
            room: self.config.send_window,
            fin_sent: false,
            rst_sent: false,
            killed: false,
            last_activity: self.tick,
            fail_send: None,
            fail_receive: None,
        });
        self.holders.insert(id);
        id
    }

    fn listener(&self, port: u16) -> Option<(SockId, &VecDeque<PeerId>)> {
        self.sockets.iter().find_map(|(&sid, s)| match &s.state {
            SockState::Listening { port: p, backlog } if *p == port => Some((sid, backlog)),
            _ => None,
        })
    }

    fn listener_backlog_mut(&mut self, port: u16) -> Option<&mut VecDeque<PeerId>> {
        self.sockets.values_mut().find_map(|s| match &mut s.state {
            SockState::Listening { port: p, backlog } if *p == port => Some(backlog),
            _ => None,
        })
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
    fn pick(&self, pred: impl Fn(&Conn) -> bool) -> Option<PeerId> {
        self.holders
            .iter()
            .copied()
            .filter(|&id| pred(self.conn(id)))
            .min_by_key(|&id| (self.conn(id).last_activity, id))
    }

    /// lwIP reclaiming a PCB: RST to the peer, `Aborted` for the application.
    fn kill(&mut self, id: PeerId) {
        let conn = self.conn_mut(id);
        if conn.phase != Phase::AppClosed {
            conn.gone = Some(ErrorClass::Aborted);
        }
        conn.rst_sent = true;
        conn.killed = true;
        conn.rx.clear();
        conn.unacked = 0;
        self.killed += 1;
        self.release(id);
    }

    fn release(&mut self, id: PeerId) {
        let conn = self.conn_mut(id);
        if conn.pcb {
            conn.pcb = false;
            self.holders.remove(&id);
            self.pcbs_used -= 1;
        }
    }

    fn release_sock_pcb(&mut self, sock: &mut Sock) {
        if sock.pcb {
            sock.pcb = false;
            self.pcbs_used -= 1;
        }
    }

    /// The connection behind `sock`, for send and receive.
    fn conn_of(&self, sock: SockId) -> Result<PeerId, ErrorClass> {
        match self.sockets.get(&sock).map(|s| &s.state) {
            Some(SockState::Conn(id)) => Ok(*id),
            _ => Err(ErrorClass::InvalidInput),
        }
    }

    /// RST from the application side (abort, unread data, listener closed).
    fn abort_conn(&mut self, id: PeerId) {
        let conn = self.conn_mut(id);
        conn.sock = None;
        if conn.gone.is_none() && conn.phase == Phase::Open {
            conn.rst_sent = true;
        }
        conn.phase = Phase::AppClosed;
        conn.rx.clear();
        conn.unacked = 0;
        self.release(id);
    }

    fn close_conn(&mut self, id: PeerId) {
        let tick = self.tick;
        let ScriptedConfig {
            fin_holds_pcb,
            time_wait_pcb,
            rst_on_unread,
            ..
        } = self.config;
        let conn = self.conn_mut(id);
        if conn.gone.is_some() || conn.phase != Phase::Open {
            // Dead already, or still connecting (SYN-SENT closes silently).
            conn.sock = None;
            conn.phase = Phase::AppClosed;
            self.release(id);
            return;
        }
        if rst_on_unread && !conn.rx.is_empty() {
            self.abort_conn(id);
            return;
        }
        conn.sock = None;
        conn.phase = Phase::AppClosed;
        conn.fin_sent = true;
        conn.last_activity = tick;
        let hold = (fin_holds_pcb && conn.unacked > 0) || time_wait_pcb;
        if !hold {
            self.release(id);
        }
    }

    fn close_sock(&mut self, sock: SockId, abort: bool) -> Result<(), ScriptedError> {
        let Some(mut s) = self.sockets.remove(&sock) else {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        };
        self.release_sock_pcb(&mut s);
        match s.state {
            SockState::Fresh { .. } => {}
            SockState::Listening { backlog, .. } => {
                for id in backlog {
                    self.abort_conn(id);
                }
            }
            SockState::Conn(id) if abort => self.abort_conn(id),
            SockState::Conn(id) => self.close_conn(id),
        }
        Ok(())
    }

    fn send_inner(&mut self, sock: SockId, data: &[u8], flag: Option<SendFlag>) -> NbResult<usize> {
        let id = self.conn_of(sock).or_else(fail)?;
        let tick = self.tick;
        let conn = self.conn_mut(id);
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
        conn.wire.extend_from_slice(&data[..n]);
        conn.segments.push((data[..n].to_vec(), flag));
        conn.unacked += n;
        conn.room -= n;
        conn.last_activity = tick;
        Ok(n)
    }

    fn send_logged(&mut self, sock: SockId, data: &[u8], flag: Option<SendFlag>) -> NbResult<usize> {
        self.tick += 1;
        let result = self.send_inner(sock, data, flag);
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
// embedded-nal
// -------------------------------------------------------------------------------------

impl TcpClientStack for ScriptedStack {
    type TcpSocket = SockId;
    type Error = ScriptedError;

    fn socket(&mut self) -> Result<SockId, ScriptedError> {
        self.record(Call::Socket);
        if let Some(class) = self.fail_socket.take() {
            return Err(ScriptedError(class));
        }
        if !self.alloc_pcb() {
            return Err(ScriptedError(ErrorClass::OutOfResources));
        }
        Ok(self.new_sock(SockState::Fresh { port: None }, true))
    }

    fn connect(&mut self, sock: &mut SockId, remote: SocketAddr) -> NbResult<()> {
        self.record(Call::Connect(*sock));
        let id = match self.sockets.get(sock).map(|s| &s.state) {
            Some(SockState::Conn(id)) => *id,
            Some(&SockState::Fresh { port }) => {
                if self.link == LinkState::Down {
                    return fail(ErrorClass::NoRoute);
                }
                let local_port = port.unwrap_or_else(|| {
                    let p = self.next_port;
                    self.next_port = self.next_port.checked_add(1).unwrap_or(EPHEMERAL_PORTS);
                    p
                });
                let script = self
                    .connect_scripts
                    .pop_front()
                    .unwrap_or(ConnectScript::SucceedAfter(0));
                // The socket's PCB becomes the connection's.
                let s = self.sockets.get_mut(sock).expect("looked up above");
                s.pcb = false;
                let id = self.new_conn(remote, local_port, Phase::Connecting(script));
                self.conn_mut(id).sock = Some(*sock);
                self.sockets.get_mut(sock).expect("looked up above").state = SockState::Conn(id);
                id
            }
            _ => return fail(ErrorClass::InvalidInput),
        };
        let tick = self.tick;
        let conn = self.conn_mut(id);
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
                    self.release(id);
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
        let id = self.conn_of(*sock).or_else(fail)?;
        let tick = self.tick;
        let conn = self.conn_mut(id);
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
        for (dst, src) in buf.iter_mut().zip(conn.rx.drain(..n)) {
            *dst = src;
        }
        conn.last_activity = tick;
        Ok(n)
    }

    fn close(&mut self, sock: SockId) -> Result<(), ScriptedError> {
        self.record(Call::Close(sock));
        self.close_sock(sock, false)
    }
}

impl TcpFullStack for ScriptedStack {
    fn bind(&mut self, sock: &mut SockId, port: u16) -> Result<(), ScriptedError> {
        self.record(Call::Bind(*sock, port));
        if let Some(class) = self.fail_bind.take() {
            return Err(ScriptedError(class));
        }
        if !matches!(
            self.sockets.get(sock).map(|s| &s.state),
            Some(SockState::Fresh { port: None })
        ) {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        }
        let in_use = self.sockets.values().any(|s| match s.state {
            SockState::Fresh { port: Some(p) } | SockState::Listening { port: p, .. } => p == port,
            _ => false,
        });
        if in_use {
            return Err(ScriptedError(ErrorClass::AddressInUse));
        }
        self.sockets.get_mut(sock).expect("checked above").state = SockState::Fresh { port: Some(port) };
        Ok(())
    }

    fn listen(&mut self, sock: &mut SockId) -> Result<(), ScriptedError> {
        self.record(Call::Listen(*sock));
        if let Some(class) = self.fail_listen.take() {
            return Err(ScriptedError(class));
        }
        let Some(mut s) = self.sockets.remove(sock) else {
            return Err(ScriptedError(ErrorClass::InvalidInput));
        };
        let result = match s.state {
            SockState::Fresh { port: Some(port) } => {
                s.state = SockState::Listening {
                    port,
                    backlog: VecDeque::new(),
                };
                if !self.config.listen_holds_pcb {
                    self.release_sock_pcb(&mut s);
                }
                Ok(())
            }
            _ => Err(ScriptedError(ErrorClass::InvalidInput)),
        };
        self.sockets.insert(*sock, s);
        result
    }

    fn accept(&mut self, sock: &mut SockId) -> NbResult<(SockId, SocketAddr)> {
        self.record(Call::Accept(*sock));
        let Some(SockState::Listening { backlog, .. }) = self.sockets.get_mut(sock).map(|s| &mut s.state)
        else {
            return fail(ErrorClass::InvalidInput);
        };
        if let Some(class) = self.fail_accept.take() {
            return fail(class);
        }
        let Some(id) = backlog.pop_front() else {
            return Err(nb::Error::WouldBlock);
        };
        let new = self.new_sock(SockState::Conn(id), false);
        let conn = self.conn_mut(id);
        conn.sock = Some(new);
        Ok((new, conn.remote))
    }
}

// -------------------------------------------------------------------------------------
// netpool extension traits, all native
// -------------------------------------------------------------------------------------

impl TcpAbort for ScriptedStack {
    const NATIVE_ABORT: bool = true;

    fn abort(&mut self, sock: SockId) -> Result<(), ScriptedError> {
        self.record(Call::Abort(sock));
        self.close_sock(sock, true)
    }
}

impl TcpSendFlags for ScriptedStack {
    const NATIVE_FLAGS: bool = true;

    fn send_flagged(&mut self, sock: &mut SockId, data: &[u8], flag: SendFlag) -> NbResult<usize> {
        self.send_logged(*sock, data, Some(flag))
    }
}

/// Records the push; the scripted peer receives MORE bytes at once anyway.
impl TcpPush for ScriptedStack {
    fn push(&mut self, sock: &mut SockId) -> NbResult<()> {
        self.record(Call::Push(*sock));
        Ok(())
    }
}

impl TcpSendQueue for ScriptedStack {
    /// Unacknowledged bytes of a connection; `Some(0)` for a socket without one; `None`
    /// for an unknown socket.
    fn send_queue(&mut self, sock: &SockId) -> Option<usize> {
        self.record(Call::SendQueue(*sock));
        match self.sockets.get(sock)?.state {
            SockState::Conn(id) => Some(self.conn(id).unacked),
            _ => Some(0),
        }
    }
}

impl TcpPeerStatus for ScriptedStack {
    /// `Gone(class)` after a reset, kill or failed connect (`Gone(InvalidInput)` for an
    /// unknown socket); `Closed` once the peer's FIN and all data before it were read;
    /// `Open` otherwise (also for fresh, listening and connecting sockets).
    fn peer_status(&mut self, sock: &SockId) -> PeerStatus {
        self.record(Call::PeerStatus(*sock));
        let Some(s) = self.sockets.get(sock) else {
            return PeerStatus::Gone(ErrorClass::InvalidInput);
        };
        let SockState::Conn(id) = s.state else {
            return PeerStatus::Open;
        };
        let conn = self.conn(id);
        match conn.gone {
            Some(class) => PeerStatus::Gone(class),
            None if conn.peer_fin && conn.rx.is_empty() => PeerStatus::Closed,
            None => PeerStatus::Open,
        }
    }
}

impl LinkStatus for ScriptedStack {
    fn link_state(&self) -> LinkState {
        self.link
    }
}
