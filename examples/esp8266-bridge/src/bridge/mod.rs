//! The bridge: the WiFi module's service loop, on a netpool [`Pool`], an
//! [`SpiDevice`] and three GPIO lines.
//!
//! # The loop
//!
//! Call [`Bridge::service`] over and over (the firmware's `loop()`); between calls,
//! wait for the ready pin's rising edge or at most ~10 ms. One pass:
//!
//! 1. **Pool work**: [`Pool::poll`] (accept, connect, push, reap), then the pool's
//!    per-connection events ([`Pool::poll_event`]: a failed connect becomes an error
//!    message for the SAM). When a status change is waiting for the SAM, the request
//!    pin is pulled low just before the poll and raised just after it: the low→high
//!    pulse, repeated every 200 ms until the SAM fetches it with
//!    `networkGetLastError`.
//! 2. **Sockets**: each socket number `0..8` is the pool slot of the same number, and
//!    the state the SAM sees is the pool's. New connections are adopted, received bytes
//!    are read into the socket's receive buffer, held bytes the SAM wrote are handed to
//!    the pool.
//! 3. **One transfer** when the ready pin is high: chip select low; exchange header
//!    dwords 0–1; check them and decide the response (**no I/O**: the planner reads a
//!    snapshot of the sockets); send the response dword while `param32` comes in; move
//!    the data; chip select high. Only then does the command's network work happen
//!    (write, close, listen, connect...).
//!
//! The parts, one job each: `spi` (the bus operations of a transaction), `plan` (the
//! pure command planner), `sockets` (the mirror of the pool's slots: which
//! connection the SAM holds, receive buffers, the transmit hold) and `signal` (WiFi
//! mode, error message and the request pin's timing). This module runs the pass and
//! the command's work after chip select rises.
//!
//! # What the SAM is promised
//!
//! - `connRead` copies from the bridge's receive buffer, which was filled from the
//!   pool beforehand, so `bytesAvailable` is exact.
//! - `connWrite` replies with what fits in the socket's transmit hold, before any TCP
//!   write: every byte accepted is certainly kept, and `writeBufferSpace` is the
//!   hold's free space. (Why the pool's coalescing buffer cannot be that buffer: the
//!   reply precedes the bytes, and on a stack with a native MORE flag the pool hands
//!   bytes straight to the stack, which may take fewer than were promised; see the
//!   `sockets` module.) The push and close flags count only when every byte was
//!   accepted. Bytes go to the pool as the SAM flagged them: with MORE, or with push;
//!   a later push (a zero-length write with the push flag) is [`Pool::flush`], which
//!   makes the stack send what MORE left queued. If no push comes, the pool pushes
//!   MORE bytes itself after its coalescing delay.
//! - `aborted` stays until `connAbort` (or `connClose`), also for connections the pool
//!   reaped: the bridge sets [`Config::hold_ended`](netpool::Config::hold_ended), so a
//!   reaped connection keeps its slot, `Aborted` with its reason (its socket is
//!   released at once), until the SAM acknowledges it. A slot number is never reused
//!   behind the SAM's back.
//! - `connCreate` replies with a socket number before the connect happens (the SAM
//!   does not choose it): the bridge picks a number free for the SAM and in the pool,
//!   and connects into exactly that slot ([`Pool::connect_at`]).
//! - `otherEndClosed` is reported only once the receive buffer is drained.
//! - After `connClose` (or a write with close-after-write) the socket reads `free`
//!   at once; bytes already accepted still go to the pool, whose
//!   [`write_and_close`](Pool::write_and_close) closes once every byte is with the
//!   stack (the pool's stall reaper bounds this).
//!
//! # Counters
//!
//! [`BridgeStats`] counts only what the bridge alone sees (transfers, refused
//! requests, bytes across the SPI link, pin pulses). Connections — reaped, idle
//! closed, failed connects — are the pool's [`Counters`](netpool::Counters):
//! [`Pool::counters`] through [`Bridge::pool`].
//!
//! # Chip select
//!
//! A transaction is several SPI operations whose content depends on the header
//! received first, so it cannot be one [`SpiDevice::transaction`]. The bridge drives
//! chip select itself, as a GPIO (as the original firmware does): give it an
//! `SpiDevice` that does not toggle a chip select of its own (e.g. embedded-hal-bus's
//! `ExclusiveDevice` with a dummy pin).

mod plan;
mod signal;
mod sockets;
mod spi;

use core::net::{IpAddr, SocketAddr, SocketAddrV4};

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::spi::SpiDevice;
use netpool::stack::Stack;
use netpool::{ConnState, Duration, EventKind, Instant, ListenMode, ListenParams, PollSummary, Pool, Report};

use crate::protocol::{
    c_str, set_c_str, Command, ConnStatusResponse, ListenOrConnectData, NetworkStatusResponse, Protocol,
    Response, SamHeader, WiFiState, HOST_NAME_LENGTH, MAX_CONNECTIONS, MAX_DATA_LENGTH,
};
use plan::{Action, DataPhase, Outgoing, Plan, SocketView, View};
pub use signal::ModeRequest;
use signal::Signal;
use sockets::Sockets;
use spi::{BusError, Link};

/// Socket slots: the protocol's 8.
pub const SOCKETS: usize = MAX_CONNECTIONS;

/// The pool's configuration every bridge image starts from: a 10 s stall grace and
/// a 3 s [pressure grace](netpool::Config::pressure_grace).
///
/// The pressure grace is shorter than netpool's default (4 s) because of the board:
/// RepRapFirmware serves 4 HTTP connections at once and holds the others waiting,
/// answering 503 to one that waited 5 s; the stack's accept queue resets a
/// connection that waited its 4 s deadline. When downloads vanish mid-response
/// (a phone leaves the WiFi) they hold the board's turns, and the first must yield
/// before the pollers queued behind it are turned away: 3 s without send progress,
/// plus at most two readings of 3/8 s, is 3.75 s. A live peer behind a lossy link
/// still makes progress within it (retransmissions after 1 s and 2 s), and only a
/// blocked connection whose end gives room is taken.
pub const fn pool_config() -> netpool::Config {
    netpool::Config::new()
        .with_stall_grace(Duration::from_secs(10))
        .with_pressure_grace(Duration::from_secs(3))
}

/// Settings of the bridge itself (the pool has its own [`netpool::Config`], see [`pool_config`]).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub struct BridgeConfig {
    /// Deadline of an outgoing connection (`connCreate`). Default 10 s.
    pub connect_timeout: Duration,
    /// Interval of repeated request-pin pulses while a status change is unfetched.
    /// Default 200 ms.
    pub request_repeat: Duration,
}

impl BridgeConfig {
    /// The defaults.
    pub const fn new() -> Self {
        BridgeConfig {
            connect_timeout: Duration::from_secs(10),
            request_repeat: Duration::from_millis(200),
        }
    }
}

impl Default for BridgeConfig {
    fn default() -> Self {
        Self::new()
    }
}

/// Event counters of the bridge: what only the bridge sees. Connections (reaped,
/// idle closed, failed connects) are counted by the pool: [`Pool::counters`].
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct BridgeStats {
    /// Transfers served.
    pub transactions: u32,
    /// Requests answered −2 (bad format version).
    pub bad_format_version: u32,
    /// Requests answered −5 (bad data length).
    pub bad_data_length: u32,
    /// Requests answered −1 (unknown or unsupported command).
    pub unknown_command: u32,
    /// Requests answered −11 (bad socket number or parameter).
    pub bad_parameter: u32,
    /// SPI or pin errors (the transfer was abandoned, chip select raised).
    pub bus_errors: u32,
    /// Request-pin pulses.
    pub request_pulses: u32,
    /// `networkListen` that failed (the pool refused the port; it counts no listens).
    pub listen_failed: u32,
    /// `diagnostics` requests served.
    pub diagnostics: u32,
    /// Bytes accepted from `connWrite`.
    pub bytes_from_sam: u64,
    /// Bytes delivered by `connRead`.
    pub bytes_to_sam: u64,
    /// Accepted bytes still in the bridge's transmit hold when their connection died
    /// (the pool's own losses are its `dropped_on_close`).
    pub bytes_dropped: u64,
}

/// What one [`Bridge::service`] pass did.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Serviced {
    /// The pool's poll.
    pub poll: PollSummary,
    /// The command of the transfer served this pass, if any (`Err(byte)` for an
    /// invalid one).
    pub transfer: Option<Result<Command, u8>>,
    /// The response word sent.
    pub response: i32,
    /// The transfer was abandoned on an SPI error.
    pub bus_error: bool,
}

/// What a transfer leaves for after chip select rises.
struct Exchanged {
    action: Action,
    param32: u32,
    /// Bytes moved in the data phase.
    moved: usize,
}

/// The WiFi-to-SPI bridge. See the [module docs](self).
///
/// - `S`: the TCP stack under the pool;
/// - `SPI`: SPI master, mode 1, that leaves chip select alone; `CS`: chip select;
/// - `RDY`: `SamTfrReadyPin` (input); `REQ`: `EspReqTransferPin` (output, idle high);
/// - `L`, `TX`: the pool's listener slots and coalescing bytes per slot;
/// - `BUF`: receive buffer and transmit hold per socket (default 2048, one full
///   transfer).
pub struct Bridge<S, SPI, CS, RDY, REQ, const L: usize, const TX: usize, const BUF: usize = 2048>
where
    S: Stack,
{
    pool: Pool<S, SOCKETS, L, TX>,
    link: Link<SPI, CS, RDY>,
    request: REQ,
    config: BridgeConfig,
    sockets: Sockets<BUF>,
    xfer: [u8; MAX_DATA_LENGTH],
    signal: Signal,
    status: NetworkStatusResponse,
    tx_power: Option<u8>,
    clock_control: Option<u32>,
    diagnostics: Option<Report<SOCKETS, L>>,
    stats: BridgeStats,
    /// The time of the last pass (for reports read between passes).
    now: Instant,
}

impl<S, SPI, CS, RDY, REQ, const L: usize, const TX: usize, const BUF: usize>
    Bridge<S, SPI, CS, RDY, REQ, L, TX, BUF>
where
    S: Stack,
    SPI: SpiDevice,
    CS: OutputPin,
    RDY: InputPin,
    REQ: OutputPin,
{
    const BUF_FITS: () = assert!(
        BUF >= 2 && BUF <= u16::MAX as usize,
        "socket buffers hold 2..=65535 bytes"
    );

    /// A bridge over `pool`. Its configuration is adjusted so that the SAM decides
    /// when a slot is freed: [`hold_ended`](netpool::Config::hold_ended) on (a reaped
    /// connection keeps its slot, `Aborted`, until the SAM acknowledges it) and
    /// [`abandoned_after`](netpool::Config::abandoned_after) off. Keep them so if you
    /// change the pool's configuration later.
    ///
    /// Chip select and the request pin are driven high (idle). The WiFi state starts
    /// `idle`. Call [`start`](Self::start) when the platform is initialised.
    pub fn new(mut pool: Pool<S, SOCKETS, L, TX>, spi: SPI, cs: CS, ready: RDY, request: REQ) -> Self {
        #[allow(clippy::let_unit_value)]
        let () = Self::BUF_FITS;
        let config = pool.config().with_abandoned_after(None).with_hold_ended(true);
        pool.set_config(config);
        let mut status = NetworkStatusResponse::default();
        set_c_str(&mut status.version_text, b"netpool-0.1");
        set_c_str(&mut status.host_name, b"Duet-WiFi");
        let mut bridge = Bridge {
            pool,
            link: Link::new(spi, cs, ready),
            request,
            config: BridgeConfig::new(),
            sockets: Sockets::new(),
            xfer: [0; MAX_DATA_LENGTH],
            signal: Signal::new(),
            status,
            tx_power: None,
            clock_control: None,
            diagnostics: None,
            stats: BridgeStats::default(),
            now: Instant::ZERO,
        };
        bridge.bus(|b| b.link.deselect());
        bridge
    }

    /// Set the bridge's own settings.
    #[must_use]
    pub fn with_config(mut self, config: BridgeConfig) -> Self {
        self.config = config;
        self
    }

    /// Tell the SAM the module is up: the request pin goes low then high (the rising
    /// edge the SAM counts at startup). The first status change (idle) is then
    /// waiting to be fetched.
    pub fn start(&mut self, now: Instant) {
        self.pin_request(false);
        self.pin_request(true);
        self.signal.pulsed(now);
    }

    // ------------------------------------------------------------------ accessors

    /// Give the pool back (e.g. to shut it down with [`Pool::into_stack`]).
    pub fn into_pool(self) -> Pool<S, SOCKETS, L, TX> {
        self.pool
    }

    /// The pool (its [`counters`](Pool::counters) count the connections).
    pub fn pool(&self) -> &Pool<S, SOCKETS, L, TX> {
        &self.pool
    }

    /// The pool, mutably (e.g. its stack, to drive an interface or set the link).
    pub fn pool_mut(&mut self) -> &mut Pool<S, SOCKETS, L, TX> {
        &mut self.pool
    }

    /// The WiFi state sent in every header.
    pub fn wifi_state(&self) -> WiFiState {
        self.signal.wifi_state()
    }

    /// Report a new WiFi state (from the WiFi driver). A change is a status change
    /// for the SAM: the request pin pulses until it is fetched.
    pub fn set_wifi_state(&mut self, state: WiFiState) {
        self.signal.set_wifi_state(state);
    }

    /// Report an error message for the SAM (fetched with `networkGetLastError`).
    pub fn set_error(&mut self, message: &'static str) {
        self.signal.set_error(message);
    }

    /// The error message waiting for the SAM, if any.
    pub fn last_error(&self) -> Option<&'static str> {
        self.signal.error()
    }

    /// The network status template sent for `networkGetStatus` (address, MAC, SSID,
    /// signal...). The host name in it is the SAM's.
    pub fn network_status_mut(&mut self) -> &mut NetworkStatusResponse {
        &mut self.status
    }

    /// The host name the SAM set.
    pub fn host_name(&self) -> &[u8] {
        c_str(&self.status.host_name)
    }

    /// The mode change the SAM asked for, if any (taken once).
    pub fn take_mode_request(&mut self) -> Option<ModeRequest> {
        self.signal.take_mode_request()
    }

    /// The last `networkSetTxPower` value (0.25 dB units).
    pub fn tx_power(&self) -> Option<u8> {
        self.tx_power
    }

    /// The last `networkSetClockControl` word.
    pub fn clock_control(&self) -> Option<u32> {
        self.clock_control
    }

    /// The pool report made for the last `diagnostics` request (taken once). The
    /// platform prints it at leisure (the original sends it over the UART).
    pub fn take_diagnostics(&mut self) -> Option<Report<SOCKETS, L>> {
        self.diagnostics.take()
    }

    /// The bridge's own counters (the connections' are the pool's).
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// The state the SAM sees for `socket` now (`None` if out of range).
    pub fn socket_state(&self, socket: usize) -> Option<ConnState> {
        (socket < SOCKETS).then(|| self.sockets.wire_state(&self.pool, socket))
    }

    /// Bytes waiting in `socket`'s receive buffer and transmit hold.
    pub fn buffered(&self, socket: usize) -> Option<(usize, usize)> {
        self.sockets.buffered(socket)
    }

    /// The SAM's status snapshot of one socket, as `connGetStatus` would send it.
    pub fn conn_status(&self, socket: usize) -> Option<ConnStatusResponse> {
        (socket < SOCKETS).then(|| {
            self.sockets
                .conn_status(&self.pool, socket, self.status.rssi, self.now)
        })
    }

    // ------------------------------------------------------------------ the pass

    /// One pass of the service loop at time `now`; see the [module docs](self).
    pub fn service(&mut self, now: Instant) -> Serviced {
        self.now = now;
        let mut out = Serviced::default();
        let pulse = self.signal.pulse_due(now, self.config.request_repeat);
        if pulse {
            self.pin_request(false);
        }
        out.poll = self.pool.poll(now);
        if pulse {
            self.pin_request(true);
            self.signal.pulsed(now);
            self.stats.request_pulses += 1;
        }
        self.take_events();
        self.stats.bytes_dropped += self.sockets.sync(&mut self.pool, now);
        let ready = self.link.ready().unwrap_or_else(|BusError| {
            self.stats.bus_errors += 1;
            false
        });
        if ready {
            self.transfer(now, &mut out);
        }
        out
    }

    /// Count a failed pin or bus operation.
    fn bus(&mut self, op: impl FnOnce(&mut Self) -> Result<(), BusError>) {
        if op(self).is_err() {
            self.stats.bus_errors += 1;
        }
    }

    fn pin_request(&mut self, high: bool) {
        let r = if high {
            self.request.set_high()
        } else {
            self.request.set_low()
        };
        if r.is_err() {
            self.stats.bus_errors += 1;
        }
    }

    /// Drain the pool's per-connection events: a failed connect of a connection the
    /// SAM holds is an error message for it (the pool counts it).
    fn take_events(&mut self) {
        while let Some(event) = self.pool.poll_event() {
            if event.kind == EventKind::ConnectFailed && self.sockets.holds(event.handle) {
                self.signal.set_error("Connection creation failed");
            }
        }
    }

    // ------------------------------------------------------------------ the transfer

    fn transfer(&mut self, now: Instant, out: &mut Serviced) {
        self.stats.transactions += 1;
        if self.link.select().is_err() {
            self.stats.bus_errors += 1;
            out.bus_error = true;
            return;
        }
        let exchanged = self.exchange(out);
        self.bus(|b| b.link.deselect());
        match exchanged {
            Ok(x) => self.act(x, now),
            Err(BusError) => {
                self.stats.bus_errors += 1;
                out.bus_error = true;
            }
        }
    }

    /// Everything that happens while chip select is low: SPI and the plan, no I/O.
    fn exchange(&mut self, out: &mut Serviced) -> Result<Exchanged, BusError> {
        let header = self.link.header(self.signal.wifi_state())?;
        out.transfer = Some(Command::try_from(header.command).map_err(|_| header.command));
        let plan = self.plan(&header);
        out.response = plan.response;
        let param32 = self.link.respond(plan.response)?;
        let moved = match plan.data {
            DataPhase::None => 0,
            DataPhase::ToSam(o) => {
                self.link.send(&self.xfer, o.len())?;
                o.len()
            }
            DataPhase::FromSam(n) => {
                self.link.receive(&mut self.xfer, n)?;
                n
            }
        };
        Ok(Exchanged {
            action: plan.action,
            param32,
            moved,
        })
    }

    /// The planner's answer, counted, with the outgoing bytes in the transfer buffer.
    fn plan(&mut self, header: &SamHeader) -> Plan {
        let socket = usize::from(header.socket_number);
        let view = View {
            wifi_state: self.signal.wifi_state(),
            error_len: self.signal.error().map(str::len),
            socket: if socket < SOCKETS {
                self.sockets.view(&self.pool, socket)
            } else {
                SocketView::default()
            },
            vacant: self.sockets.vacant(&self.pool),
        };
        let plan = plan::plan(header, &view);
        match plan.refusal {
            None => {}
            Some(Response::BadRequestFormatVersion) => self.stats.bad_format_version += 1,
            Some(Response::BadDataLength) => self.stats.bad_data_length += 1,
            Some(Response::UnknownCommand) => self.stats.unknown_command += 1,
            Some(_) => self.stats.bad_parameter += 1,
        }
        if let DataPhase::ToSam(o) = plan.data {
            self.stage(o);
        }
        plan
    }

    /// Copy what the data phase sends into the transfer buffer (no I/O).
    fn stage(&mut self, o: Outgoing) {
        let n = o.len();
        match o {
            Outgoing::Received { socket, .. } => {
                copy_prefix(&mut self.xfer, self.sockets.received(socket), n)
            }
            Outgoing::ConnStatus { socket } => {
                let status = self
                    .sockets
                    .conn_status(&self.pool, socket, self.status.rssi, self.now);
                copy_prefix(&mut self.xfer, &status.encode(), n);
            }
            Outgoing::NetworkStatus { .. } => copy_prefix(&mut self.xfer, &self.status.encode(), n),
            Outgoing::LastError { .. } => {
                // The text, cut to leave room for its NUL, then the NUL.
                let text = self.signal.error().unwrap_or("").as_bytes();
                let end = n.saturating_sub(1);
                copy_prefix(&mut self.xfer, text, end);
                if let Some(nul) = self.xfer.get_mut(end) {
                    *nul = 0;
                }
            }
        }
    }

    // ------------------------------------------------------------------ after the transfer

    /// The command's network work, after chip select has risen.
    fn act(&mut self, x: Exchanged, now: Instant) {
        let data = self.xfer.get(..x.moved).unwrap_or(&[]);
        match x.action {
            Action::None => {}
            Action::Abort(i) => self.sockets.abort(&mut self.pool, i, now),
            Action::Close(i) => self.stats.bytes_dropped += self.sockets.close(&mut self.pool, i, now),
            Action::Write {
                socket,
                len,
                push,
                close,
            } => {
                let data = data.get(..len).unwrap_or(data);
                let (held, dropped) = self
                    .sockets
                    .write(&mut self.pool, socket, data, (push, close), now);
                self.stats.bytes_from_sam += held as u64;
                self.stats.bytes_dropped += dropped;
            }
            Action::Read { socket, len } => {
                self.sockets.consume(&mut self.pool, socket, len, now);
                self.stats.bytes_to_sam += len as u64;
            }
            Action::Connect(i) => self.connect(i, now),
            Action::Listen => self.listen(),
            Action::SetHostName => {
                let text = c_str(data.get(..HOST_NAME_LENGTH).unwrap_or(data));
                let mut field = [0u8; HOST_NAME_LENGTH];
                set_c_str(&mut field, text);
                self.status.host_name = field;
            }
            Action::Mode(command, len) => {
                if command == Command::NetworkStop {
                    // Every connection and listener goes first.
                    self.sockets.abort_all(&mut self.pool, now);
                    let ports = self.pool.report(now).listeners;
                    for l in ports.iter().flatten() {
                        self.pool.stop_listening(l.port);
                    }
                }
                let data = self.xfer.get(..len.min(x.moved)).unwrap_or(&[]);
                if let Some(request) = ModeRequest::from_command(command, data) {
                    self.signal.request_mode(request);
                }
            }
            Action::Acknowledge => self.signal.acknowledge(),
            Action::Diagnostics => {
                // A snapshot: O(N + L), no I/O, nothing printed here.
                self.diagnostics = Some(self.pool.report(now));
                self.stats.diagnostics += 1;
            }
            Action::TxPower(p) => self.tx_power = Some(p),
            Action::ClockControl => self.clock_control = Some(x.param32),
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let Ok(lcd) = ListenOrConnectData::decode(&self.xfer) else {
            return;
        };
        let remote = SocketAddr::new(IpAddr::V4(lcd.ip()), lcd.port);
        let timeout = self.config.connect_timeout;
        match self.pool.connect_at(i, remote, lcd.protocol, timeout, now) {
            Ok(h) => self.sockets.connected(h),
            Err(_) => {
                // Refused before the pool took the slot (no socket, link down, bad
                // address): the SAM was told number `i`, so it shows `aborted`. The
                // pool counted the failed connect.
                self.sockets
                    .refused(i, lcd.protocol, SocketAddrV4::new(lcd.ip(), lcd.port));
                self.signal.set_error("Connection creation failed");
            }
        }
    }

    fn listen(&mut self) {
        let Ok(lcd) = ListenOrConnectData::decode(&self.xfer) else {
            return;
        };
        let cap = lcd.max_connections.min(SOCKETS as u16) as u8;
        let mut params = ListenParams::new(cap).with_protocol(lcd.protocol);
        if lcd.protocol == Protocol::FtpData.value() {
            params = params.with_mode(ListenMode::OneShot);
        }
        if self.pool.listen(lcd.port, params).is_err() {
            self.stats.listen_failed += 1;
            self.signal.set_error("Listen failed");
        }
    }
}

impl<S: Stack, SPI, CS, RDY, REQ, const L: usize, const TX: usize, const BUF: usize> core::fmt::Debug
    for Bridge<S, SPI, CS, RDY, REQ, L, TX, BUF>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bridge")
            .field("wifi_state", &self.signal.wifi_state())
            .field("pool", &self.pool)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Copy the first `n` bytes of `src` to the front of `dst` (as many as both have).
fn copy_prefix(dst: &mut [u8], src: &[u8], n: usize) {
    let n = n.min(dst.len()).min(src.len());
    dst[..n].copy_from_slice(&src[..n]);
}
