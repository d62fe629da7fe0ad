//! Test doubles, `no_std`: the SAM's end of the SPI link ([`MockBus`] with its
//! [`MockSpi`] and pins) and, with the `testkit` feature, the TCP stack the bridge
//! runs on in tests: netpool-testkit's scripted stack at the size of this bridge
//! ([`TestStack`], built by [`test_stack`]), and the dispatcher's harness
//! ([`exercise`]).
//!
//! They let the bridge run without a network or a board: in unit and property tests,
//! in the fuzz targets, and in a self-test image on the target CPU. Everything is
//! single-threaded, allocation-free and deterministic; the bus is shared through a
//! [`RefCell`].
//!
//! The test stack is configured like the WiFi module's lwIP: 12 PCBs shared by
//! sockets, listeners and connections, refused (not killed) when spent; a close
//! always sends FIN at once; MORE bytes are held until a push; no send-queue reading
//! (the pool's reaper judges progress by bytes taken); no send window limit until a
//! test sets one. The test plays the remote hosts with the stack's `peer_*` methods.

use core::cell::RefCell;
use core::convert::Infallible;

use embedded_hal::digital::{ErrorType as PinErrorType, InputPin, OutputPin};
use embedded_hal::spi::{ErrorType as SpiErrorType, Operation, SpiDevice};

use crate::protocol::{padded_len, EspHeader, SamHeader, MAX_DATA_LENGTH};

#[cfg(feature = "testkit")]
pub use netpool_testkit::scripted::{
    ConnectScript, Exhaustion, PeerId, PeerRefused, ScriptedConfig, ScriptedError, ScriptedStackIn, SockId,
};

// ------------------------------------------------------------------------ stack

/// Socket records of the [`TestStack`]: the pool's 8 connections and 4 listeners.
#[cfg(feature = "testkit")]
pub const TEST_SOCKETS: usize = 12;
/// Connection records of the [`TestStack`] (a finished one is reused).
#[cfg(feature = "testkit")]
pub const TEST_CONNS: usize = 12;
/// Bytes a test connection holds from its peer before the application reads.
#[cfg(feature = "testkit")]
pub const TEST_RX: usize = 2048;
/// Bytes of what the application sent that a test connection keeps for inspection
/// (everything is counted).
#[cfg(feature = "testkit")]
pub const TEST_SENT: usize = 4096;

/// The scripted stack at this bridge's size: [`TEST_SOCKETS`] sockets,
/// [`TEST_CONNS`] connection records, [`TEST_RX`] bytes of receive buffer and
/// [`TEST_SENT`] bytes of kept sent data per connection. Build it with
/// [`test_stack`].
#[cfg(feature = "testkit")]
pub type TestStack = ScriptedStackIn<TEST_SOCKETS, TEST_CONNS, TEST_RX, TEST_SENT>;

/// The [`TestStack`]'s configuration: lwIP as on the WiFi module — 12 PCBs, refused
/// when spent; a close sends FIN and releases the PCB at once, also with unread data;
/// MORE bytes held until a push; no send-queue reading; no send window limit; link
/// state unknown (treated as up).
#[cfg(feature = "testkit")]
pub fn test_config() -> ScriptedConfig {
    ScriptedConfig {
        pcbs: 12,
        exhaustion: Exhaustion::Refuse,
        send_window: usize::MAX,
        fin_holds_pcb: false,
        rst_on_unread: false,
        hold_more: true,
        report_send_queue: false,
        link: netpool::LinkState::Unknown,
        ..ScriptedConfig::default()
    }
}

/// A [`TestStack`] with [`test_config`], nothing open, and every connect succeeding
/// at once. Inlined: built in place, it needs no second stack-sized copy on a small
/// target.
///
/// ```
/// use core::cell::RefCell;
/// use esp8266_bridge::mock::*;
/// use esp8266_bridge::protocol::*;
/// use esp8266_bridge::Bridge;
/// use netpool::{Config, Instant, Pool};
///
/// let bus = RefCell::new(MockBus::new());
/// let pool: Pool<TestStack, 8, 4, 0> = Pool::new(test_stack(), Config::new());
/// let mut bridge: Bridge<_, _, _, _, _, 4, 0> = Bridge::new(
///     pool, MockSpi(&bus), MockCs(&bus), MockReady(&bus), MockRequest(&bus));
/// // The SAM arms a transfer; the next pass serves it.
/// bus.borrow_mut().arm(&SamHeader::new(Command::ConnGetStatus, 0, 0, 0, 20, 0), &[]);
/// bridge.service(Instant::from_millis(0));
/// let bus = bus.borrow();
/// let (header, data) = bus.reply().unwrap();
/// assert_eq!(header.response, 20);
/// assert_eq!(ConnStatusResponse::decode(data).unwrap().state, ConnState::Free);
/// ```
#[cfg(feature = "testkit")]
#[inline(always)]
pub fn test_stack() -> TestStack {
    TestStack::new(test_config())
}

/// A remote host that refuses the connection.
#[cfg(feature = "testkit")]
pub const REFUSE: ConnectScript = ConnectScript::FailAfter(0, netpool::ErrorClass::Refused);

/// The application closed the connection with FIN (no RST).
#[cfg(feature = "testkit")]
pub fn closed_gracefully(stack: &TestStack, id: PeerId) -> bool {
    stack.closed_by_app(id) && stack.peer_saw_fin(id) && !stack.peer_saw_reset(id)
}

/// The application aborted the connection: the peer saw RST.
#[cfg(feature = "testkit")]
pub fn aborted(stack: &TestStack, id: PeerId) -> bool {
    stack.closed_by_app(id) && stack.peer_saw_reset(id) && !stack.peer_saw_fin(id)
}

/// Accepted, and open on both sides.
#[cfg(feature = "testkit")]
pub fn established(stack: &TestStack, id: PeerId) -> bool {
    stack.sock_of(id).is_some() && !stack.peer_saw_reset(id) && !stack.peer_saw_fin(id)
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

/// Drive a bridge on the [`TestStack`] and the mock bus from arbitrary bytes — the
/// command dispatcher's fuzz and property-test harness. Each step takes an opcode
/// byte and its operands from `script` (missing bytes read as zero):
///
/// - transfers with any header (format version, command, socket, flags, lengths) and
///   data, including malformed ones;
/// - peers connecting, sending, closing, resetting, refusing to read (picked by
///   connection record, so only current connections are touched); time passing, the
///   outcome of later connects changing.
///
/// It uses only the stack's non-panicking peer calls: whatever the bytes, a panic is
/// a broken invariant, never the harness.
/// Panics if an invariant breaks: every served transfer gets a reply header with the
/// format version and a defined response code, chip select is released, no reply
/// announces more data than the SAM has room for; a socket number `connCreate`
/// replied with shows that connection (or `aborted`), and the pool connected into
/// that very slot; a socket the SAM sees in use never reads `free` unless the SAM let
/// go of it (`connAbort`, `connClose`, a write with close-after-write,
/// `networkStop`) — a connection the pool reaped stays `aborted` until then; after
/// `networkStop` every slot is free.
#[cfg(feature = "testkit")]
pub fn exercise(script: &[u8]) -> Exercised {
    use crate::bridge::Bridge;
    use crate::protocol::{Command, Reply, FORMAT_VERSION};
    use core::net::SocketAddr;
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
    let pool: netpool::Pool<TestStack, 8, 4, 16> = Pool::new(test_stack(), config);
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
                if bridge.pool_mut().stack_mut().peer_connect(port, remote).is_ok() {
                    out.incoming += 1;
                }
            }
            6 => {
                // Peers are picked by connection record; `peer_at` gives only current
                // ids, and `try_peer_send` takes what fits (nothing after the peer's FIN).
                let record = (s.u8() as usize) % TEST_CONNS;
                let n = (s.u8() as usize) * 8;
                let fill = s.u8();
                let chunk = [fill; 2048];
                let stack = bridge.pool_mut().stack_mut();
                if let Some(peer) = stack.peer_at(record) {
                    stack.try_peer_send(peer, &chunk[..n]);
                }
            }
            7 => {
                let record = (s.u8() as usize) % TEST_CONNS;
                let what = s.u8() % 3;
                let window = if what == 2 { usize::from(s.u8()) * 16 } else { 0 };
                let stack = bridge.pool_mut().stack_mut();
                if let Some(peer) = stack.peer_at(record) {
                    match what {
                        0 => stack.peer_fin(peer),
                        1 => stack.peer_reset(peer),
                        _ => stack.set_send_window(peer, window),
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
                stack.set_default_connect(match s.u8() % 4 {
                    0 => ConnectScript::SucceedAfter(0),
                    1 => ConnectScript::SucceedAfter(3),
                    2 => ConnectScript::FailAfter(0, netpool::ErrorClass::Refused),
                    _ => ConnectScript::NeverComplete,
                });
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
