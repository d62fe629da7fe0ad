//! Test doubles, `no_std`: an in-memory TCP stack ([`MockStack`]) and the SAM's end
//! of the SPI link ([`MockBus`] with its [`MockSpi`] and pins).
//!
//! They let the bridge run without a network or a board: in unit and property tests,
//! in the fuzz targets, and in a self-test image on the target CPU. Everything is
//! single-threaded and deterministic; the bus is shared through a [`RefCell`].
//!
//! ```
//! use core::cell::RefCell;
//! use esp8266_bridge::mock::*;
//! use esp8266_bridge::protocol::*;
//! use esp8266_bridge::Bridge;
//! use netpool::{Config, Instant, Pool};
//!
//! let bus = RefCell::new(MockBus::new());
//! let pool: Pool<MockStack, 8, 4, 0> = Pool::new(MockStack::new(), Config::new());
//! let mut bridge: Bridge<_, _, _, _, _, 4, 0> = Bridge::new(
//!     pool, MockSpi(&bus), MockCs(&bus), MockReady(&bus), MockRequest(&bus));
//! // The SAM arms a transfer; the next pass serves it.
//! bus.borrow_mut().arm(&SamHeader::new(Command::ConnGetStatus, 0, 0, 0, 20, 0), &[]);
//! bridge.service(Instant::from_millis(0));
//! let bus = bus.borrow();
//! let (header, data) = bus.reply().unwrap();
//! assert_eq!(header.response, 20);
//! assert_eq!(ConnStatusResponse::decode(data).unwrap().state, ConnState::Free);
//! ```

use core::cell::RefCell;
use core::convert::Infallible;
use core::net::SocketAddr;

use embedded_hal::digital::{ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::spi::{ErrorType as SpiErrorType, Operation, SpiDevice};
use embedded_nal::{nb, TcpClientStack, TcpError, TcpErrorKind, TcpFullStack};
use netpool::stack::{
    LinkState, LinkStatus, PeerStatus, SendFlag, TcpAbort, TcpPeerStatus, TcpPush, TcpSendFlags, TcpSendQueue,
};
use netpool::{Classify, ErrorClass};

use crate::protocol::{padded_len, EspHeader, SamHeader, MAX_DATA_LENGTH};

// ------------------------------------------------------------------------ stack

/// Sockets in a [`MockStack`].
pub const MOCK_SOCKETS: usize = 12;
/// Bytes a mock connection can hold from its peer before the application reads.
pub const MOCK_RX: usize = 2048;
/// Bytes of what the application sent that a mock connection keeps for inspection.
pub const MOCK_SENT: usize = 4096;

/// An error of the [`MockStack`]: just its class.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MockError(pub ErrorClass);

impl TcpError for MockError {
    fn kind(&self) -> TcpErrorKind {
        match self.0 {
            ErrorClass::Closed | ErrorClass::Reset => TcpErrorKind::PipeClosed,
            _ => TcpErrorKind::Other,
        }
    }
}

impl Classify for MockError {
    fn class(&self) -> ErrorClass {
        self.0
    }
}

/// A socket handle of the [`MockStack`] (its index).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct MockSocket(pub u8);

/// What a mock socket is.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum MockKind {
    /// Not allocated.
    Unused,
    /// Allocated by `socket()`, not yet bound or connected.
    Fresh,
    /// Listening on a port.
    Listener(u16),
    /// An incoming connection waiting in the backlog of a port.
    Pending(u16),
    /// An outgoing connection being established.
    Connecting,
    /// Established.
    Connected,
    /// Given back by the application (`aborted`: with RST).
    Released {
        /// Released by `abort` (RST) rather than `close`.
        aborted: bool,
    },
}

/// How outgoing connects go.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ConnectMode {
    /// Established after this many further `connect` calls (0 = at once).
    After(u8),
    /// Refused by the remote host.
    Refuse,
    /// Never completes (for deadline tests).
    Never,
}

/// One mock socket and its peer.
#[derive(Clone, Debug)]
pub struct MockConn {
    /// What it is.
    pub kind: MockKind,
    /// Local port.
    pub local_port: u16,
    /// The peer.
    pub remote: Option<SocketAddr>,
    rx: [u8; MOCK_RX],
    rx_len: usize,
    sent: [u8; MOCK_SENT],
    sent_len: usize,
    /// Every byte the application sent.
    pub sent_total: u64,
    /// Bytes `send` still takes before would-block (the peer's window).
    pub window: usize,
    /// The peer sent FIN.
    pub peer_fin: bool,
    /// The peer reset the connection.
    pub peer_reset: bool,
    /// Flag of the last send.
    pub last_flag: Option<SendFlag>,
    /// Sends with the push flag.
    pub pushes: u32,
    /// Bytes sent with MORE that the stack still holds back, as a native-MORE stack
    /// does (lwIP's unsent queue): they reach the wire with the next push-flagged
    /// send or [`TcpPush::push`].
    pub held: usize,
    /// [`TcpPush::push`] calls ("send what MORE left queued, now").
    pub stack_pushes: u32,
    connect_left: u8,
    order: u32,
}

impl MockConn {
    const fn new() -> Self {
        MockConn {
            kind: MockKind::Unused,
            local_port: 0,
            remote: None,
            rx: [0; MOCK_RX],
            rx_len: 0,
            sent: [0; MOCK_SENT],
            sent_len: 0,
            sent_total: 0,
            window: usize::MAX,
            peer_fin: false,
            peer_reset: false,
            last_flag: None,
            pushes: 0,
            held: 0,
            stack_pushes: 0,
            connect_left: 0,
            order: 0,
        }
    }

    /// The first [`MOCK_SENT`] bytes the application sent.
    pub fn sent(&self) -> &[u8] {
        &self.sent[..self.sent_len]
    }

    /// Bytes from the peer not yet received by the application.
    pub fn unread(&self) -> usize {
        self.rx_len
    }

    /// Bytes on the wire: everything sent except what the stack holds back (MORE).
    pub fn on_wire(&self) -> u64 {
        self.sent_total - self.held as u64
    }
}

/// An in-memory TCP stack with scripted peers. Native abort, MORE/PUSH flag (MORE
/// bytes are held until a push, as lwIP holds them), push-now and peer status; no
/// send-queue reading (the reaper judges progress by bytes taken).
#[derive(Clone, Debug)]
pub struct MockStack {
    conns: [MockConn; MOCK_SOCKETS],
    /// How outgoing connects go.
    pub connect_mode: ConnectMode,
    /// The link state the stack reports.
    pub link: LinkState,
    order: u32,
}

impl Default for MockStack {
    fn default() -> Self {
        Self::new()
    }
}

impl MockStack {
    /// No sockets; connects succeed at once; link unknown (treated as up).
    pub const fn new() -> Self {
        MockStack {
            conns: [const { MockConn::new() }; MOCK_SOCKETS],
            connect_mode: ConnectMode::After(0),
            link: LinkState::Unknown,
            order: 0,
        }
    }

    /// Socket `id`.
    pub fn conn(&self, id: usize) -> Option<&MockConn> {
        self.conns.get(id)
    }

    /// Socket `id`, mutably (e.g. to set its window).
    pub fn conn_mut(&mut self, id: usize) -> Option<&mut MockConn> {
        self.conns.get_mut(id)
    }

    /// The socket whose peer is `remote`, most recent first.
    pub fn find(&self, remote: SocketAddr) -> Option<usize> {
        (0..MOCK_SOCKETS)
            .filter(|&i| self.conns[i].remote == Some(remote))
            .max_by_key(|&i| self.conns[i].order)
    }

    fn alloc(&mut self) -> Option<usize> {
        let i = self
            .conns
            .iter()
            .position(|c| matches!(c.kind, MockKind::Unused | MockKind::Released { .. }))?;
        self.order = self.order.wrapping_add(1);
        self.conns[i] = MockConn::new();
        self.conns[i].order = self.order;
        Some(i)
    }

    /// A peer connects to `port`: queued in the port's backlog if a listener is
    /// there. Returns the socket id, or `None` (no listener, or no socket left).
    pub fn incoming(&mut self, port: u16, remote: SocketAddr) -> Option<usize> {
        if !self.conns.iter().any(|c| c.kind == MockKind::Listener(port)) {
            return None;
        }
        let i = self.alloc()?;
        let c = &mut self.conns[i];
        c.kind = MockKind::Pending(port);
        c.local_port = port;
        c.remote = Some(remote);
        Some(i)
    }

    /// The peer of socket `id` sends `data`; returns the bytes that fit.
    pub fn peer_send(&mut self, id: usize, data: &[u8]) -> usize {
        let Some(c) = self.conns.get_mut(id) else {
            return 0;
        };
        let n = data.len().min(MOCK_RX - c.rx_len);
        c.rx[c.rx_len..c.rx_len + n].copy_from_slice(&data[..n]);
        c.rx_len += n;
        n
    }

    /// The peer of socket `id` sends FIN.
    pub fn peer_close(&mut self, id: usize) {
        if let Some(c) = self.conns.get_mut(id) {
            c.peer_fin = true;
        }
    }

    /// The peer of socket `id` resets the connection (unread data is lost).
    pub fn peer_reset(&mut self, id: usize) {
        if let Some(c) = self.conns.get_mut(id) {
            c.peer_reset = true;
            c.rx_len = 0;
        }
    }

    fn get(&mut self, s: &MockSocket) -> Result<&mut MockConn, MockError> {
        self.conns
            .get_mut(s.0 as usize)
            .ok_or(MockError(ErrorClass::InvalidInput))
    }
}

impl TcpClientStack for MockStack {
    type TcpSocket = MockSocket;
    type Error = MockError;

    fn socket(&mut self) -> Result<MockSocket, MockError> {
        let i = self.alloc().ok_or(MockError(ErrorClass::OutOfResources))?;
        self.conns[i].kind = MockKind::Fresh;
        Ok(MockSocket(i as u8))
    }

    fn connect(&mut self, s: &mut MockSocket, remote: SocketAddr) -> nb::Result<(), MockError> {
        let mode = self.connect_mode;
        let c = self.get(s)?;
        match c.kind {
            MockKind::Fresh => {
                if mode == ConnectMode::Refuse {
                    return Err(nb::Error::Other(MockError(ErrorClass::Refused)));
                }
                c.kind = MockKind::Connecting;
                c.remote = Some(remote);
                c.local_port = 49152;
                c.connect_left = match mode {
                    ConnectMode::After(n) => n,
                    _ => u8::MAX,
                };
                if c.connect_left == 0 {
                    c.kind = MockKind::Connected;
                    return Ok(());
                }
                Err(nb::Error::WouldBlock)
            }
            MockKind::Connecting => {
                if mode == ConnectMode::Never {
                    return Err(nb::Error::WouldBlock);
                }
                c.connect_left = c.connect_left.saturating_sub(1);
                if c.connect_left == 0 {
                    c.kind = MockKind::Connected;
                    Ok(())
                } else {
                    Err(nb::Error::WouldBlock)
                }
            }
            MockKind::Connected => Ok(()),
            _ => Err(nb::Error::Other(MockError(ErrorClass::InvalidInput))),
        }
    }

    fn send(&mut self, s: &mut MockSocket, buf: &[u8]) -> nb::Result<usize, MockError> {
        self.send_flagged(s, buf, SendFlag::Push)
    }

    fn receive(&mut self, s: &mut MockSocket, buf: &mut [u8]) -> nb::Result<usize, MockError> {
        let c = self.get(s)?;
        if c.kind != MockKind::Connected {
            return Err(nb::Error::Other(MockError(ErrorClass::ConnectionLost)));
        }
        if c.rx_len > 0 {
            let n = buf.len().min(c.rx_len);
            buf[..n].copy_from_slice(&c.rx[..n]);
            c.rx.copy_within(n..c.rx_len, 0);
            c.rx_len -= n;
            return Ok(n);
        }
        if c.peer_reset {
            Err(nb::Error::Other(MockError(ErrorClass::Reset)))
        } else if c.peer_fin {
            Ok(0)
        } else {
            Err(nb::Error::WouldBlock)
        }
    }

    fn close(&mut self, s: MockSocket) -> Result<(), MockError> {
        self.get(&s)?.kind = MockKind::Released { aborted: false };
        Ok(())
    }
}

impl TcpFullStack for MockStack {
    fn bind(&mut self, s: &mut MockSocket, port: u16) -> Result<(), MockError> {
        if self.conns.iter().any(|c| c.kind == MockKind::Listener(port)) {
            return Err(MockError(ErrorClass::AddressInUse));
        }
        self.get(s)?.local_port = port;
        Ok(())
    }

    fn listen(&mut self, s: &mut MockSocket) -> Result<(), MockError> {
        let c = self.get(s)?;
        c.kind = MockKind::Listener(c.local_port);
        Ok(())
    }

    fn accept(&mut self, s: &mut MockSocket) -> nb::Result<(MockSocket, SocketAddr), MockError> {
        let MockKind::Listener(port) = self.get(s)?.kind else {
            return Err(nb::Error::Other(MockError(ErrorClass::InvalidInput)));
        };
        let next = (0..MOCK_SOCKETS)
            .filter(|&i| self.conns[i].kind == MockKind::Pending(port))
            .min_by_key(|&i| self.conns[i].order);
        let Some(i) = next else {
            return Err(nb::Error::WouldBlock);
        };
        let c = &mut self.conns[i];
        c.kind = MockKind::Connected;
        let remote = c.remote.ok_or(nb::Error::Other(MockError(ErrorClass::Fatal)))?;
        Ok((MockSocket(i as u8), remote))
    }
}

impl TcpAbort for MockStack {
    const NATIVE_ABORT: bool = true;
    fn abort(&mut self, s: MockSocket) -> Result<(), MockError> {
        self.get(&s)?.kind = MockKind::Released { aborted: true };
        Ok(())
    }
}

impl TcpSendFlags for MockStack {
    const NATIVE_FLAGS: bool = true;
    fn send_flagged(
        &mut self,
        s: &mut MockSocket,
        data: &[u8],
        flag: SendFlag,
    ) -> nb::Result<usize, MockError> {
        let c = self.get(s)?;
        if c.peer_reset {
            return Err(nb::Error::Other(MockError(ErrorClass::Reset)));
        }
        if c.kind != MockKind::Connected {
            return Err(nb::Error::Other(MockError(ErrorClass::ConnectionLost)));
        }
        let n = data.len().min(c.window);
        if n == 0 && !data.is_empty() {
            return Err(nb::Error::WouldBlock);
        }
        if c.window != usize::MAX {
            c.window -= n;
        }
        let keep = n.min(MOCK_SENT - c.sent_len);
        c.sent[c.sent_len..c.sent_len + keep].copy_from_slice(&data[..keep]);
        c.sent_len += keep;
        c.sent_total += n as u64;
        c.last_flag = Some(flag);
        match flag {
            SendFlag::Push => {
                c.pushes += 1;
                c.held = 0;
            }
            SendFlag::More => c.held += n,
        }
        Ok(n)
    }
}

impl TcpSendQueue for MockStack {}

/// Native: what MORE sends left held goes to the wire now (counted).
impl TcpPush for MockStack {
    fn push(&mut self, s: &mut MockSocket) -> nb::Result<(), MockError> {
        let c = self.get(s)?;
        if c.peer_reset {
            return Err(nb::Error::Other(MockError(ErrorClass::Reset)));
        }
        if c.kind != MockKind::Connected {
            return Err(nb::Error::Other(MockError(ErrorClass::ConnectionLost)));
        }
        c.stack_pushes += 1;
        c.held = 0;
        Ok(())
    }
}

impl TcpPeerStatus for MockStack {
    fn peer_status(&mut self, s: &MockSocket) -> PeerStatus {
        let Ok(c) = self.get(s) else {
            return PeerStatus::Unknown;
        };
        if c.kind != MockKind::Connected {
            PeerStatus::Unknown
        } else if c.peer_reset {
            PeerStatus::Gone(ErrorClass::Reset)
        } else if c.peer_fin && c.rx_len == 0 {
            PeerStatus::Closed
        } else {
            PeerStatus::Open
        }
    }
}

impl LinkStatus for MockStack {
    fn link_state(&self) -> LinkState {
        self.link
    }
}

// ------------------------------------------------------------------------ SPI link

/// Largest message one direction of a transaction carries: header plus data.
pub const MAX_MESSAGE: usize = SamHeader::SIZE + MAX_DATA_LENGTH;

/// The SAM's end of the SPI link: the message its DMA sends, the buffer its DMA
/// fills, and the three handshake lines, modelled byte by byte.
///
/// The SAM arms a transfer ([`arm`](Self::arm)), which raises the ready line; the
/// bridge lowers chip select (the ready line drops), clocks bytes (each one moves a
/// byte both ways), and raises chip select, which completes the transfer. Bytes
/// clocked beyond the armed message read as zero; bytes beyond the receive buffer are
/// counted as an overrun.
#[derive(Clone, Debug)]
pub struct MockBus {
    out: [u8; MAX_MESSAGE],
    out_len: usize,
    input: [u8; MAX_MESSAGE],
    in_cap: usize,
    pos: usize,
    /// The ready line (`SamTfrReadyPin`).
    pub ready: bool,
    /// Chip select is low.
    pub selected: bool,
    /// The request line (`EspReqTransferPin`).
    pub request: bool,
    /// Rising edges of the request line.
    pub request_rises: u32,
    /// Transfers completed (chip select rising after a fall).
    pub completed: u32,
    /// Bytes the bridge clocked beyond the SAM's receive buffer.
    pub overrun: usize,
    /// Bytes clocked in the last transfer.
    pub clocked: usize,
}

impl Default for MockBus {
    fn default() -> Self {
        Self::new()
    }
}

impl MockBus {
    /// Idle: nothing armed, all lines low.
    pub const fn new() -> Self {
        MockBus {
            out: [0; MAX_MESSAGE],
            out_len: 0,
            input: [0; MAX_MESSAGE],
            in_cap: 0,
            pos: 0,
            ready: false,
            selected: false,
            request: false,
            request_rises: 0,
            completed: 0,
            overrun: 0,
            clocked: 0,
        }
    }

    /// Arm a transfer of `header` and `data` (truncated to `header.data_length`;
    /// the receive buffer is `header.data_buffer_available` bytes).
    pub fn arm(&mut self, header: &SamHeader, data: &[u8]) {
        let mut msg = [0u8; MAX_MESSAGE];
        msg[..SamHeader::SIZE].copy_from_slice(&header.encode());
        let n = data.len().min(header.data_length as usize).min(MAX_DATA_LENGTH);
        msg[SamHeader::SIZE..SamHeader::SIZE + n].copy_from_slice(&data[..n]);
        let len = SamHeader::SIZE + padded_len(header.data_length as usize).min(MAX_DATA_LENGTH);
        self.arm_raw(&msg[..len], header.data_buffer_available as usize);
    }

    /// Arm arbitrary bytes (at most [`MAX_MESSAGE`] are used) and a receive buffer
    /// of `data_in` bytes after the header.
    pub fn arm_raw(&mut self, message: &[u8], data_in: usize) {
        let n = message.len().min(MAX_MESSAGE);
        self.out[..n].copy_from_slice(&message[..n]);
        self.out_len = n;
        self.in_cap = (SamHeader::SIZE + padded_len(data_in.min(MAX_DATA_LENGTH))).min(MAX_MESSAGE);
        self.input = [0; MAX_MESSAGE];
        self.pos = 0;
        self.clocked = 0;
        self.ready = true;
    }

    /// The bridge's reply to the last completed transfer: its header and the data
    /// its response announced (as far as the receive buffer held it).
    pub fn reply(&self) -> Option<(EspHeader, &[u8])> {
        let header = EspHeader::decode(&self.input[..SamHeader::SIZE]).ok()?;
        let n = if header.response > 0 {
            (header.response as usize).min(self.in_cap.saturating_sub(SamHeader::SIZE))
        } else {
            0
        };
        Some((header, &self.input[SamHeader::SIZE..SamHeader::SIZE + n]))
    }

    fn clock(&mut self, mosi: u8) -> u8 {
        let miso = if self.pos < self.out_len {
            self.out[self.pos]
        } else {
            0
        };
        if self.pos < self.in_cap {
            self.input[self.pos] = mosi;
        } else {
            self.overrun += 1;
        }
        self.pos += 1;
        self.clocked += 1;
        miso
    }
}

/// The bridge's SPI master on a [`MockBus`]. It does not touch chip select.
#[derive(Copy, Clone, Debug)]
pub struct MockSpi<'a>(pub &'a RefCell<MockBus>);
/// Chip select (bridge output) on a [`MockBus`].
#[derive(Copy, Clone, Debug)]
pub struct MockCs<'a>(pub &'a RefCell<MockBus>);
/// The ready line (bridge input) on a [`MockBus`].
#[derive(Copy, Clone, Debug)]
pub struct MockReady<'a>(pub &'a RefCell<MockBus>);
/// The request line (bridge output) on a [`MockBus`].
#[derive(Copy, Clone, Debug)]
pub struct MockRequest<'a>(pub &'a RefCell<MockBus>);

impl SpiErrorType for MockSpi<'_> {
    type Error = Infallible;
}

impl SpiDevice for MockSpi<'_> {
    fn transaction(&mut self, operations: &mut [Operation<'_, u8>]) -> Result<(), Infallible> {
        let mut bus = self.0.borrow_mut();
        for op in operations {
            match op {
                Operation::Read(buf) => buf.iter_mut().for_each(|b| *b = bus.clock(0)),
                Operation::Write(buf) => buf.iter().for_each(|&b| {
                    bus.clock(b);
                }),
                Operation::Transfer(read, write) => {
                    for i in 0..read.len().max(write.len()) {
                        let miso = bus.clock(write.get(i).copied().unwrap_or(0));
                        if let Some(r) = read.get_mut(i) {
                            *r = miso;
                        }
                    }
                }
                Operation::TransferInPlace(buf) => buf.iter_mut().for_each(|b| *b = bus.clock(*b)),
                Operation::DelayNs(_) => {}
            }
        }
        Ok(())
    }
}

impl PinErrorType for MockCs<'_> {
    type Error = Infallible;
}
impl OutputPin for MockCs<'_> {
    fn set_low(&mut self) -> Result<(), Infallible> {
        let mut bus = self.0.borrow_mut();
        if !bus.selected {
            bus.selected = true;
            bus.ready = false;
            bus.pos = 0;
        }
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut bus = self.0.borrow_mut();
        if bus.selected {
            bus.selected = false;
            bus.completed += 1;
        }
        Ok(())
    }
}

impl PinErrorType for MockReady<'_> {
    type Error = Infallible;
}
impl InputPin for MockReady<'_> {
    fn is_high(&mut self) -> Result<bool, Infallible> {
        Ok(self.0.borrow().ready)
    }
    fn is_low(&mut self) -> Result<bool, Infallible> {
        Ok(!self.0.borrow().ready)
    }
}

impl PinErrorType for MockRequest<'_> {
    type Error = Infallible;
}
impl OutputPin for MockRequest<'_> {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.0.borrow_mut().request = false;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        let mut bus = self.0.borrow_mut();
        if !bus.request {
            bus.request_rises += 1;
        }
        bus.request = true;
        Ok(())
    }
}

// ------------------------------------------------------------------------ script runner

/// What [`exercise`] did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Exercised {
    /// Transfers the bridge served.
    pub transfers: u32,
    /// Replies with a negative response code.
    pub errors: u32,
    /// Incoming connections offered.
    pub incoming: u32,
}

/// Drive a bridge on the mock stack and bus from arbitrary bytes — the command
/// dispatcher's fuzz and property-test harness. Each step takes an opcode byte and
/// its operands from `script` (missing bytes read as zero):
///
/// - transfers with any header (format version, command, socket, flags, lengths) and
///   data, including malformed ones;
/// - peers connecting, sending, closing, resetting, refusing to read; time passing.
///
/// Panics if an invariant breaks: every served transfer gets a reply header with the
/// format version and a defined response code, chip select is released, no reply
/// announces more data than the SAM has room for; a socket number `connCreate`
/// replied with shows that connection (or `aborted`), and the pool connected into
/// that very slot; a socket the SAM sees in use never reads `free` unless the SAM let
/// go of it (`connAbort`, `connClose`, a write with close-after-write,
/// `networkStop`) — a connection the pool reaped stays `aborted` until then; after
/// `networkStop` every slot is free.
pub fn exercise(script: &[u8]) -> Exercised {
    use crate::bridge::Bridge;
    use crate::protocol::{Command, Reply, FORMAT_VERSION};
    use netpool::{Config, Duration, Instant, Pool};

    struct Bytes<'a>(&'a [u8]);
    impl Bytes<'_> {
        fn u8(&mut self) -> u8 {
            match self.0.split_first() {
                Some((&b, rest)) => {
                    self.0 = rest;
                    b
                }
                None => 0,
            }
        }
        fn u16(&mut self) -> u16 {
            u16::from_le_bytes([self.u8(), self.u8()])
        }
    }

    let bus = RefCell::new(MockBus::new());
    let config = Config::new().with_stall_grace(Duration::from_millis(500));
    let pool: netpool::Pool<MockStack, 8, 4, 16> = Pool::new(MockStack::new(), config);
    let mut bridge: Bridge<_, _, _, _, _, 4, 16, 256> = Bridge::new(
        pool,
        MockSpi(&bus),
        MockCs(&bus),
        MockReady(&bus),
        MockRequest(&bus),
    );
    bridge.start(Instant::ZERO);
    let mut now = 0u64;
    let mut out = Exercised::default();
    let mut s = Bytes(script);
    let mut data = [0u8; MAX_DATA_LENGTH];

    let check = |bus: &RefCell<MockBus>, room: usize, command: u8, written: usize, out: &mut Exercised| {
        let bus = bus.borrow();
        assert!(!bus.selected, "chip select left low");
        let (h, _) = bus.reply().expect("reply header");
        assert_eq!(h.format_version, FORMAT_VERSION, "reply format version");
        match Reply::from_code(h.response) {
            // A positive reply is a data length only for commands whose data goes to
            // the SAM; connWrite's is the bytes accepted, connCreate's a socket number.
            Reply::Length(n) if command == Command::ConnCreate.value() => assert!(n < 8, "socket {n}"),
            Reply::Length(n) if command == Command::ConnWrite.value() => {
                assert!(n as usize <= written, "accepted {n} of {written}")
            }
            Reply::Length(n) => assert!(
                n as usize <= room.min(MAX_DATA_LENGTH),
                "reply {n} longer than the room {room} (command {command})"
            ),
            Reply::Error(_) => out.errors += 1,
            Reply::Unknown(c) => panic!("undefined response code {c}"),
        }
        out.transfers += 1;
    };

    let mut steps = 0;
    while !s.0.is_empty() && steps < 4096 {
        steps += 1;
        let shown: [Option<netpool::ConnState>; 8] = core::array::from_fn(|i| bridge.socket_state(i));
        // Sockets the SAM lets go of in this step (a bit per socket number).
        let mut let_go = 0u16;
        let op = s.u8();
        match op % 10 {
            0..=4 => {
                let v = s.u8();
                let header = crate::protocol::SamHeader {
                    format_version: if v & 0x80 == 0 { FORMAT_VERSION } else { v },
                    command: s.u8() % 32,
                    socket_number: s.u8() % 10,
                    flags: s.u8(),
                    data_length: s.u16() % 2100,
                    data_buffer_available: s.u16() % 2100,
                    param32: 0,
                };
                let n = (header.data_length as usize).min(MAX_DATA_LENGTH);
                for b in data.iter_mut().take(n) {
                    *b = s.u8();
                }
                let room = header.data_buffer_available as usize;
                let before = bus.borrow().completed;
                bus.borrow_mut().arm(&header, &data[..n]);
                let sock = u16::from(header.socket_number);
                let_go = match Command::try_from(header.command) {
                    Ok(Command::ConnAbort | Command::ConnClose) => 1 << sock,
                    Ok(Command::ConnWrite) if header.close_after_write() => 1 << sock,
                    Ok(Command::NetworkStop) => u16::MAX,
                    _ => 0,
                };
                bridge.service(Instant::from_millis(now));
                if bus.borrow().completed > before {
                    check(&bus, room, header.command, n, &mut out);
                    let reply = bus.borrow().reply().map(|(h, _)| h.response);
                    if let (Some(socket @ 0..=7), true) =
                        (reply, header.command == Command::ConnCreate.value())
                    {
                        let socket = socket as usize;
                        let state = bridge.socket_state(socket);
                        assert!(
                            matches!(
                                state,
                                Some(
                                    netpool::ConnState::Connecting
                                        | netpool::ConnState::Connected
                                        | netpool::ConnState::Aborted
                                )
                            ),
                            "connCreate replied socket {socket}, which reads {state:?}"
                        );
                        let wanted = crate::protocol::ListenOrConnectData::decode(&data[..n])
                            .map(|l| SocketAddr::new(l.ip().into(), l.port));
                        // Aborted: refused before the pool took a slot, or failed at once.
                        match bridge.pool().handle_at(socket) {
                            Some(h) => {
                                let report = bridge.pool().slot_report(h.slot(), Instant::from_millis(now));
                                assert_eq!(
                                    report.and_then(|r| r.remote),
                                    wanted.ok(),
                                    "pool slot {socket} holds another connection than the one announced"
                                );
                            }
                            None => assert_eq!(
                                state,
                                Some(netpool::ConnState::Aborted),
                                "socket {socket} shows a connection pool slot {socket} does not hold"
                            ),
                        }
                    }
                }
            }
            5 => {
                let port = [80u16, 21, 23, 1024][(s.u8() % 4) as usize];
                let remote = SocketAddr::new([10, 0, 0, s.u8()].into(), 40_000 + u16::from(s.u8()));
                if bridge.pool_mut().stack_mut().incoming(port, remote).is_some() {
                    out.incoming += 1;
                }
            }
            6 => {
                let id = (s.u8() as usize) % MOCK_SOCKETS;
                let n = (s.u8() as usize) * 8;
                let fill = s.u8();
                let chunk = [fill; 2048];
                bridge.pool_mut().stack_mut().peer_send(id, &chunk[..n]);
            }
            7 => {
                let id = (s.u8() as usize) % MOCK_SOCKETS;
                let stack = bridge.pool_mut().stack_mut();
                match s.u8() % 3 {
                    0 => stack.peer_close(id),
                    1 => stack.peer_reset(id),
                    _ => {
                        let w = s.u8() as usize * 16;
                        if let Some(c) = stack.conn_mut(id) {
                            c.window = w;
                        }
                    }
                }
            }
            8 => {
                let listen = crate::protocol::ListenOrConnectData {
                    remote_ip: 0,
                    protocol: s.u8() % 5,
                    port: [80u16, 21, 23, 1024][(s.u8() % 4) as usize],
                    max_connections: u16::from(s.u8() % 10),
                };
                let header = crate::protocol::SamHeader::new(Command::NetworkListen, 0, 0, 12, 0, 0);
                bus.borrow_mut().arm(&header, &listen.encode());
                bridge.service(Instant::from_millis(now));
                check(&bus, 0, header.command, 12, &mut out);
            }
            _ => {
                now += u64::from(s.u8()) * 10;
                let stack = bridge.pool_mut().stack_mut();
                stack.connect_mode = match s.u8() % 4 {
                    0 => ConnectMode::After(0),
                    1 => ConnectMode::After(3),
                    2 => ConnectMode::Refuse,
                    _ => ConnectMode::Never,
                };
                bridge.set_wifi_state(if now % 3 == 0 {
                    crate::protocol::WiFiState::Idle
                } else {
                    crate::protocol::WiFiState::Connected
                });
                bridge.service(Instant::from_millis(now));
            }
        }
        for (i, before) in shown.iter().enumerate() {
            let after = bridge.socket_state(i);
            if before.is_some_and(netpool::ConnState::is_in_use) && let_go & (1 << i) == 0 {
                assert!(
                    after.is_some_and(netpool::ConnState::is_in_use),
                    "socket {i} went from {before:?} to {after:?} without the SAM letting go"
                );
            }
        }
    }
    // networkStop: every connection and listener goes; nothing is left behind.
    let header = crate::protocol::SamHeader::new(Command::NetworkStop, 0, 0, 0, 0, 0);
    bus.borrow_mut().arm(&header, &[]);
    bridge.service(Instant::from_millis(now));
    check(&bus, 0, header.command, 12, &mut out);
    bridge.service(Instant::from_millis(now + 1));
    assert_eq!(bridge.pool().free_slots(), 8, "a slot survived networkStop");
    for i in 0..8 {
        assert_eq!(bridge.socket_state(i), Some(netpool::ConnState::Free));
    }
    out
}
