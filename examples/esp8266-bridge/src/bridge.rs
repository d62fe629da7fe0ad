//! The bridge: the WiFi module's service loop, on a netpool [`Pool`], an
//! [`SpiDevice`] and three GPIO lines.
//!
//! # The loop
//!
//! Call [`Bridge::service`] over and over (the firmware's `loop()`); between calls,
//! wait for the ready pin's rising edge or at most ~10 ms. One pass:
//!
//! 1. **Pool work**: [`Pool::poll`] (accept, connect, push, reap), then the pool's
//!    per-connection events ([`Pool::poll_event`]: reaped, connect failed...). When a
//!    status change is waiting for the SAM, the request pin is pulled low just before
//!    the poll and raised just after it: the low→high pulse, repeated every 200 ms
//!    until the SAM fetches it with `networkGetLastError`.
//! 2. **Sockets**: each socket number `0..8` is the pool slot of the same number, and
//!    the state the SAM sees is the pool's. New connections are adopted, received bytes
//!    are read into the socket's receive buffer, buffered bytes the SAM wrote are
//!    handed to the pool.
//! 3. **One transfer** when the ready pin is high: chip select low; exchange header
//!    dwords 0–1; check them and decide the response (**no I/O**: only the socket
//!    buffers and the pool's bookkeeping are consulted); send the response dword
//!    while `param32` comes in; move the data; chip select high. Only then does the
//!    command's network work happen (write, close, listen, connect...).
//!
//! # What the SAM is promised
//!
//! - `connRead` copies from the bridge's receive buffer, which was filled from the
//!   pool beforehand, so `bytesAvailable` is exact.
//! - `connWrite` replies with what fits in the bridge's own transmit buffer, before any
//!   TCP write: every byte accepted is certainly buffered, and `writeBufferSpace` is
//!   that buffer's free space. The push and close flags count only when every byte
//!   was accepted. Bytes go to the pool as the SAM flagged them: with MORE, or with
//!   push; a later push (a zero-length write with the push flag) is
//!   [`Pool::flush`], which makes the stack send what MORE left queued. If no push
//!   comes, the pool pushes MORE bytes itself after its coalescing delay.
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
//!   at once; bytes already accepted are still handed to the stack, then the
//!   connection is closed (the pool's stall reaper bounds this).
//!
//! # Chip select
//!
//! A transaction is several SPI operations whose content depends on the header
//! received first, so it cannot be one [`SpiDevice::transaction`]. The bridge drives
//! chip select itself, as a GPIO (as the original firmware does): give it an
//! `SpiDevice` that does not toggle a chip select of its own (e.g. embedded-hal-bus's
//! `ExclusiveDevice` with a dummy pin).

use core::net::{IpAddr, SocketAddr, SocketAddrV4};

use embedded_hal::digital::{InputPin, OutputPin};
use embedded_hal::spi::SpiDevice;
use netpool::stack::Stack;
use netpool::{
    nb, ConnHandle, ConnState, Duration, EventKind, Instant, ListenMode, ListenParams, PollSummary, Pool,
    Report,
};

use crate::protocol::{
    c_str, ip_to_wire, padded_len, set_c_str, Command, ConnStatusResponse, DecodeError, EspHeader,
    ListenOrConnectData, NetworkStatusResponse, Protocol, Response, SamHeader, WiFiState, HOST_NAME_LENGTH,
    MAX_CONNECTIONS, MAX_DATA_LENGTH, SSID_LENGTH,
};

/// Socket slots: the protocol's 8.
pub const SOCKETS: usize = MAX_CONNECTIONS;

/// Settings of the bridge itself (the pool has its own [`netpool::Config`]).
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

/// A mode change the SAM asked for. The bridge replies at once; the platform does
/// the work (WiFi driver), then reports the new state with [`Bridge::set_wifi_state`],
/// which pulses the request pin.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
pub enum ModeRequest {
    /// `networkStartClient`: connect to this SSID (NUL-padded; empty = best known).
    StartClient {
        /// The SSID.
        ssid: [u8; SSID_LENGTH],
    },
    /// `networkStartAccessPoint`.
    StartAccessPoint,
    /// `networkStop` (the bridge has already closed every connection and listener).
    Stop,
}

/// Event counters of the bridge.
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
    /// Connections the pool reaped (send stall, idle timeout) while the SAM held them:
    /// shown `aborted` until the SAM acknowledged them.
    pub lost: u32,
    /// `connCreate` that failed (reported as aborted plus an error message).
    pub connect_failed: u32,
    /// `networkListen` that failed.
    pub listen_failed: u32,
    /// `diagnostics` requests served.
    pub diagnostics: u32,
    /// Bytes accepted from `connWrite`.
    pub bytes_from_sam: u64,
    /// Bytes delivered by `connRead`.
    pub bytes_to_sam: u64,
    /// Accepted bytes that could not be delivered because the connection died.
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

/// A byte buffer kept compact at the front.
struct Buf<const B: usize> {
    data: [u8; B],
    len: usize,
}

impl<const B: usize> Buf<B> {
    const fn new() -> Self {
        Buf { data: [0; B], len: 0 }
    }
    fn space(&self) -> usize {
        B - self.len
    }
    fn append(&mut self, bytes: &[u8]) -> usize {
        let n = bytes.len().min(self.space());
        self.data[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
        n
    }
    fn consume(&mut self, n: usize) {
        let n = n.min(self.len);
        self.data.copy_within(n..self.len, 0);
        self.len -= n;
    }
    fn clear(&mut self) {
        self.len = 0;
    }
}

/// What a socket number is to the bridge. The state the SAM sees is the pool's
/// (see `Bridge::wire_state`).
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Phase {
    /// Nothing (a pool connection in this slot is adopted at the next pass).
    Free,
    /// A pool connection, shown to the SAM with the pool's state.
    Open(ConnHandle),
    /// The SAM let go; bytes it wrote are still being handed over, then close.
    Draining(ConnHandle),
    /// `connCreate` replied with this number, then the stack refused the connect
    /// before the pool took the slot: there is no pool connection to mirror, so the
    /// number shows `aborted` until `connAbort` or `connClose`. (A connection the
    /// pool accepts into this slot meanwhile is adopted once the SAM has let go.)
    Refused,
}

struct Socket<const B: usize> {
    phase: Phase,
    rx: Buf<B>,
    tx: Buf<B>,
    /// The pool said the peer is gone and every byte has been read.
    eof: bool,
    /// A push is owed: the SAM pushed (every byte of its write was accepted) and the
    /// push has not yet reached the pool with the last of those bytes, or as a flush.
    push: bool,
    protocol: u8,
    local_port: u16,
    remote: Option<SocketAddrV4>,
}

impl<const B: usize> Socket<B> {
    const fn new() -> Self {
        Socket {
            phase: Phase::Free,
            rx: Buf::new(),
            tx: Buf::new(),
            eof: false,
            push: false,
            protocol: 0,
            local_port: 0,
            remote: None,
        }
    }

    fn reset(&mut self, phase: Phase) {
        self.phase = phase;
        self.rx.clear();
        self.tx.clear();
        self.eof = false;
        self.push = false;
    }
}

/// The network work a command leaves for after chip select rises.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum Action {
    None,
    Abort(usize),
    Close(usize),
    Write {
        socket: usize,
        len: usize,
        push: bool,
        close: bool,
    },
    Read {
        socket: usize,
        len: usize,
    },
    Connect(usize),
    Listen,
    SetHostName,
    Mode(Command, usize),
    Acknowledge,
    Diagnostics,
    TxPower(u8),
    ClockControl,
}

/// Which way the data phase goes.
#[derive(Copy, Clone, Debug, PartialEq, Eq)]
enum DataPhase {
    None,
    /// The bridge sends this many bytes (already in the transfer buffer).
    ToSam(usize),
    /// The SAM sends this many bytes into the transfer buffer.
    FromSam(usize),
}

struct Plan {
    response: i32,
    data: DataPhase,
    action: Action,
}

impl Plan {
    const fn reply(response: i32) -> Self {
        Plan {
            response,
            data: DataPhase::None,
            action: Action::None,
        }
    }
}

/// The WiFi-to-SPI bridge. See the [module docs](self).
///
/// - `S`: the TCP stack under the pool;
/// - `SPI`: SPI master, mode 1, that leaves chip select alone; `CS`: chip select;
/// - `RDY`: `SamTfrReadyPin` (input); `REQ`: `EspReqTransferPin` (output, idle high);
/// - `L`, `TX`: the pool's listener slots and coalescing bytes per slot;
/// - `BUF`: receive and transmit buffer per socket (default 2048, one full transfer).
pub struct Bridge<S, SPI, CS, RDY, REQ, const L: usize, const TX: usize, const BUF: usize = 2048>
where
    S: Stack,
{
    pool: Pool<S, SOCKETS, L, TX>,
    spi: SPI,
    cs: CS,
    ready: RDY,
    request: REQ,
    config: BridgeConfig,
    sockets: [Socket<BUF>; SOCKETS],
    xfer: [u8; MAX_DATA_LENGTH],
    wifi_state: WiFiState,
    last_reported_state: WiFiState,
    last_error: Option<&'static str>,
    last_pulse: Option<Instant>,
    status: NetworkStatusResponse,
    mode_request: Option<ModeRequest>,
    tx_power: Option<u8>,
    clock_control: Option<u32>,
    diagnostics: Option<Report<SOCKETS, L>>,
    stats: BridgeStats,
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
            spi,
            cs,
            ready,
            request,
            config: BridgeConfig::new(),
            sockets: [const { Socket::new() }; SOCKETS],
            xfer: [0; MAX_DATA_LENGTH],
            wifi_state: WiFiState::Idle,
            last_reported_state: WiFiState::Disabled,
            last_error: None,
            last_pulse: None,
            status,
            mode_request: None,
            tx_power: None,
            clock_control: None,
            diagnostics: None,
            stats: BridgeStats::default(),
        };
        if bridge.cs.set_high().is_err() {
            bridge.stats.bus_errors += 1;
        }
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
        self.last_pulse = Some(now);
    }

    // ------------------------------------------------------------------ accessors

    /// Give the pool back (e.g. to shut it down with [`Pool::into_stack`]).
    pub fn into_pool(self) -> Pool<S, SOCKETS, L, TX> {
        self.pool
    }

    /// The pool.
    pub fn pool(&self) -> &Pool<S, SOCKETS, L, TX> {
        &self.pool
    }

    /// The pool, mutably (e.g. its stack, to drive an interface or set the link).
    pub fn pool_mut(&mut self) -> &mut Pool<S, SOCKETS, L, TX> {
        &mut self.pool
    }

    /// The WiFi state sent in every header.
    pub fn wifi_state(&self) -> WiFiState {
        self.wifi_state
    }

    /// Report a new WiFi state (from the WiFi driver). A change is a status change
    /// for the SAM: the request pin pulses until it is fetched.
    pub fn set_wifi_state(&mut self, state: WiFiState) {
        if state != self.wifi_state {
            self.wifi_state = state;
            self.last_pulse = None;
        }
    }

    /// Report an error message for the SAM (fetched with `networkGetLastError`).
    pub fn set_error(&mut self, message: &'static str) {
        self.last_error = Some(message);
        self.last_pulse = None;
    }

    /// The error message waiting for the SAM, if any.
    pub fn last_error(&self) -> Option<&'static str> {
        self.last_error
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
        self.mode_request.take()
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

    /// The counters.
    pub fn stats(&self) -> BridgeStats {
        self.stats
    }

    /// The state the SAM sees for `socket` now (`None` if out of range).
    pub fn socket_state(&self, socket: usize) -> Option<ConnState> {
        (socket < SOCKETS).then(|| self.wire_state(socket))
    }

    /// Bytes waiting in `socket`'s receive and transmit buffers.
    pub fn buffered(&self, socket: usize) -> Option<(usize, usize)> {
        self.sockets.get(socket).map(|s| (s.rx.len, s.tx.len))
    }

    /// The SAM's status snapshot of one socket, as `connGetStatus` would send it.
    pub fn conn_status(&self, socket: usize) -> Option<ConnStatusResponse> {
        (socket < SOCKETS).then(|| self.build_conn_status(socket))
    }

    // ------------------------------------------------------------------ the pass

    /// One pass of the service loop at time `now`; see the [module docs](self).
    pub fn service(&mut self, now: Instant) -> Serviced {
        let mut out = Serviced::default();
        let pulse = self.pulse_due(now);
        if pulse {
            self.pin_request(false);
        }
        out.poll = self.pool.poll(now);
        if pulse {
            self.pin_request(true);
            self.last_pulse = Some(now);
            self.stats.request_pulses += 1;
        }
        self.take_events();
        self.sync_sockets(now);
        let ready = match self.ready.is_high() {
            Ok(r) => r,
            Err(_) => {
                self.stats.bus_errors += 1;
                false
            }
        };
        if ready {
            self.transfer(now, &mut out);
        }
        out
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

    fn status_changed(&self) -> bool {
        self.last_error.is_some() || self.wifi_state != self.last_reported_state
    }

    fn pulse_due(&self, now: Instant) -> bool {
        self.status_changed()
            && self
                .last_pulse
                .is_none_or(|t| now.saturating_since(t) >= self.config.request_repeat)
    }

    // ------------------------------------------------------------------ sockets

    /// Drain the pool's per-connection events: what the SAM must be told beyond the
    /// state it reads (an error message for a failed connect) and the counters.
    fn take_events(&mut self) {
        while let Some(event) = self.pool.poll_event() {
            let i = event.handle.slot();
            let shown = self.sockets.get(i).map(|s| s.phase) == Some(Phase::Open(event.handle));
            match event.kind {
                EventKind::Reaped if shown => self.stats.lost += 1,
                EventKind::ConnectFailed if shown => {
                    self.stats.connect_failed += 1;
                    self.set_error("Connection creation failed");
                }
                _ => {}
            }
        }
    }

    fn sync_sockets(&mut self, now: Instant) {
        for i in 0..SOCKETS {
            self.sync_socket(i, now);
        }
    }

    fn sync_socket(&mut self, i: usize, now: Instant) {
        match self.sockets[i].phase {
            Phase::Free => {
                if let Some(h) = self.pool.handle_at(i) {
                    self.adopt(i, h, now);
                }
            }
            Phase::Open(h) => {
                if !self.is_live(h) {
                    // Only if the pool was reconfigured to free slots it ends itself.
                    self.stats.bytes_dropped += self.sockets[i].tx.len as u64;
                    self.sockets[i].reset(Phase::Free);
                    return;
                }
                self.fill(i, h, now);
                self.drain(i, h, now);
            }
            Phase::Draining(h) => {
                if !self.is_live(h) {
                    self.stats.bytes_dropped += self.sockets[i].tx.len as u64;
                    self.sockets[i].reset(Phase::Free);
                    return;
                }
                // Nobody reads any more: discard what arrives (unread data would make
                // the close a reset).
                let mut scratch = [0u8; 64];
                let _ = self.pool.read(h, &mut scratch, now);
                self.drain(i, h, now);
            }
            Phase::Refused => {}
        }
    }

    fn is_live(&self, h: ConnHandle) -> bool {
        matches!(self.pool.state(h), Ok(s) if s.is_in_use())
    }

    fn adopt(&mut self, i: usize, h: ConnHandle, now: Instant) {
        let sock = &mut self.sockets[i];
        sock.reset(Phase::Open(h));
        if let Some(r) = self.pool.slot_report(i, now) {
            sock.protocol = r.protocol;
            sock.local_port = r.local_port;
            sock.remote = match r.remote {
                Some(SocketAddr::V4(a)) => Some(a),
                _ => None,
            };
        }
    }

    /// Read what the pool has into the receive buffer.
    fn fill(&mut self, i: usize, h: ConnHandle, now: Instant) {
        let sock = &mut self.sockets[i];
        if sock.eof || sock.rx.space() == 0 {
            return;
        }
        let len = sock.rx.len;
        match self.pool.read(h, &mut sock.rx.data[len..], now) {
            Ok(n) => sock.rx.len += n,
            Err(nb::Error::WouldBlock) => {}
            Err(nb::Error::Other(_)) => sock.eof = true,
        }
    }

    /// Hand buffered bytes to the pool, with MORE unless a push is owed (or the SAM
    /// let go); then a push owed with nothing left to carry it is a flush. Close a
    /// draining connection once every byte is taken.
    fn drain(&mut self, i: usize, h: ConnHandle, now: Instant) {
        let draining = matches!(self.sockets[i].phase, Phase::Draining(_));
        let sock = &mut self.sockets[i];
        let push = sock.push || draining;
        if sock.tx.len > 0 {
            match self.pool.write(h, &sock.tx.data[..sock.tx.len], push, now) {
                Ok(taken) => {
                    sock.tx.consume(taken);
                    if sock.tx.len == 0 {
                        // The push went with the last byte.
                        sock.push = false;
                    }
                }
                Err(nb::Error::WouldBlock) => {}
                Err(nb::Error::Other(_)) => {
                    // The connection is gone: nobody will take these bytes.
                    self.stats.bytes_dropped += sock.tx.len as u64;
                    sock.tx.clear();
                    sock.push = false;
                }
            }
        }
        if sock.tx.len > 0 {
            return;
        }
        if sock.push {
            // A late push (bytes already handed over with MORE): the stack sends what
            // it holds now. Kept owed while the pool still holds bytes the stack
            // refuses; dropped once the connection has ended.
            match self.pool.flush(h, now) {
                Ok(()) | Err(nb::Error::Other(_)) => sock.push = false,
                Err(nb::Error::WouldBlock) => {}
            }
        }
        if draining {
            let _ = self.pool.close(h, now);
            sock.reset(Phase::Free);
        }
    }

    /// The state the SAM sees: the pool's, except that `otherEndClosed` waits until
    /// the receive buffer is drained.
    fn wire_state(&self, i: usize) -> ConnState {
        let sock = &self.sockets[i];
        match sock.phase {
            Phase::Free | Phase::Draining(_) => ConnState::Free,
            Phase::Refused => ConnState::Aborted,
            Phase::Open(h) => match self.pool.state(h) {
                Ok(ConnState::OtherEndClosed) if sock.rx.len > 0 || !sock.eof => ConnState::Connected,
                Ok(s) => s,
                Err(_) => ConnState::Free,
            },
        }
    }

    fn writable(&self, i: usize) -> bool {
        matches!(self.sockets[i].phase, Phase::Open(_))
            && matches!(
                self.wire_state(i),
                ConnState::Connecting | ConnState::Connected | ConnState::OtherEndClosed
            )
    }

    fn build_conn_status(&self, i: usize) -> ConnStatusResponse {
        let sock = &self.sockets[i];
        let state = self.wire_state(i);
        let (mut connected, mut closed) = (0u16, 0u16);
        for j in 0..SOCKETS {
            match self.wire_state(j) {
                ConnState::Connected => connected |= 1 << j,
                ConnState::OtherEndClosed | ConnState::Aborted => closed |= 1 << j,
                _ => {}
            }
        }
        let shown = !matches!(sock.phase, Phase::Free | Phase::Draining(_));
        let remote = sock.remote.filter(|_| shown);
        ConnStatusResponse {
            state,
            socket_number: i as u8,
            protocol: if shown { sock.protocol } else { 0 },
            rssi: self.status.rssi,
            local_port: if shown { sock.local_port } else { 0 },
            remote_port: remote.map_or(0, |a| a.port()),
            remote_ip: remote.map_or(0, |a| ip_to_wire(*a.ip())),
            bytes_available: if shown { sock.rx.len as u16 } else { 0 },
            write_buffer_space: if self.writable(i) {
                sock.tx.space() as u16
            } else {
                0
            },
            connected_sockets: connected,
            other_end_closed_sockets: closed,
        }
    }

    // ------------------------------------------------------------------ the transfer

    fn transfer(&mut self, now: Instant, out: &mut Serviced) {
        self.stats.transactions += 1;
        if self.cs.set_low().is_err() {
            self.stats.bus_errors += 1;
            out.bus_error = true;
            return;
        }
        let exchanged = self.exchange(out);
        if self.cs.set_high().is_err() {
            self.stats.bus_errors += 1;
        }
        match exchanged {
            Some(action) => self.act(action, now),
            None => {
                self.stats.bus_errors += 1;
                out.bus_error = true;
            }
        }
    }

    /// Everything that happens while chip select is low: SPI and bookkeeping, no I/O.
    fn exchange(&mut self, out: &mut Serviced) -> Option<(Action, u32, usize)> {
        let header_out = EspHeader::new(self.wifi_state, 0).encode();
        let mut prefix = [0u8; 8];
        self.spi.transfer(&mut prefix, &header_out[..8]).ok()?;
        let header = SamHeader::decode_prefix(&prefix).ok()?;
        out.transfer = Some(Command::try_from(header.command).map_err(|_| header.command));
        let plan = self.plan(&header);
        out.response = plan.response;
        let mut param = [0u8; 4];
        self.spi.transfer(&mut param, &plan.response.to_le_bytes()).ok()?;
        let mut moved = 0;
        match plan.data {
            DataPhase::None => {}
            DataPhase::ToSam(n) => {
                self.spi.write(&self.xfer[..padded_len(n)]).ok()?;
                moved = n;
            }
            DataPhase::FromSam(n) => {
                self.spi.read(&mut self.xfer[..padded_len(n)]).ok()?;
                moved = n;
            }
        }
        Some((plan.action, u32::from_le_bytes(param), moved))
    }

    fn refuse(&mut self, e: DecodeError) -> Plan {
        let r = e.response();
        match r {
            Response::BadRequestFormatVersion => self.stats.bad_format_version += 1,
            Response::BadDataLength => self.stats.bad_data_length += 1,
            Response::UnknownCommand => self.stats.unknown_command += 1,
            _ => self.stats.bad_parameter += 1,
        }
        Plan::reply(r.code())
    }

    /// Decide the response to a header. No I/O: socket buffers and pool bookkeeping only.
    fn plan(&mut self, h: &SamHeader) -> Plan {
        let command = match h.validate() {
            Ok(c) => c,
            Err(e) => return self.refuse(e),
        };
        let socket = if command.takes_socket() {
            match h.socket() {
                Ok(s) => s,
                Err(e) => return self.refuse(e),
            }
        } else {
            0
        };
        let len = h.data_length as usize;
        let capacity = h.receive_capacity();
        match command {
            Command::NullCommand => Plan::reply(0),
            Command::ConnAbort => Plan {
                action: Action::Abort(socket),
                ..Plan::reply(0)
            },
            Command::ConnClose => Plan {
                action: Action::Close(socket),
                ..Plan::reply(0)
            },
            Command::ConnRead => {
                let sock = &self.sockets[socket];
                let n = if matches!(sock.phase, Phase::Open(_)) {
                    sock.rx.len.min(capacity)
                } else {
                    0
                };
                self.xfer[..n].copy_from_slice(&sock.rx.data[..n]);
                Plan {
                    response: n as i32,
                    data: DataPhase::ToSam(n),
                    action: Action::Read { socket, len: n },
                }
            }
            Command::ConnWrite => {
                if !self.writable(socket) {
                    return Plan::reply(Response::WrongState.code());
                }
                let accepted = len.min(self.sockets[socket].tx.space());
                let all = accepted == len;
                Plan {
                    response: accepted as i32,
                    data: DataPhase::FromSam(accepted),
                    action: Action::Write {
                        socket,
                        len: accepted,
                        push: all && h.push(),
                        close: all && h.close_after_write(),
                    },
                }
            }
            Command::ConnGetStatus => {
                self.send(&self.build_conn_status(socket).encode(), capacity, Action::None)
            }
            Command::ConnCreate => {
                if len != ListenOrConnectData::SIZE {
                    return self.refuse(DecodeError::BadDataLength(h.data_length));
                }
                if !self.wifi_state.link_up() {
                    return Plan::reply(Response::WrongState.code());
                }
                // The reply names the socket before the connect happens: a number free
                // for the SAM and in the pool; the connect goes into that very slot.
                match (0..SOCKETS)
                    .find(|&i| self.sockets[i].phase == Phase::Free && self.pool.handle_at(i).is_none())
                {
                    Some(i) => Plan {
                        response: i as i32,
                        data: DataPhase::FromSam(len),
                        action: Action::Connect(i),
                    },
                    None => Plan::reply(Response::Busy.code()),
                }
            }
            Command::NetworkListen => {
                if len != ListenOrConnectData::SIZE {
                    return self.refuse(DecodeError::BadDataLength(h.data_length));
                }
                Plan {
                    response: 0,
                    data: DataPhase::FromSam(len),
                    action: Action::Listen,
                }
            }
            Command::NetworkGetStatus => {
                if capacity < NetworkStatusResponse::MIN_LEN {
                    return Plan::reply(Response::BufferTooSmall.code());
                }
                let bytes = self.status.encode();
                let n = bytes.len().min(capacity);
                self.send(&bytes[..n], capacity, Action::None)
            }
            Command::NetworkSetHostName => {
                if len != HOST_NAME_LENGTH {
                    return self.refuse(DecodeError::BadDataLength(h.data_length));
                }
                Plan {
                    response: 0,
                    data: DataPhase::FromSam(len),
                    action: Action::SetHostName,
                }
            }
            Command::NetworkGetLastError => match self.last_error {
                None => Plan {
                    action: Action::Acknowledge,
                    ..Plan::reply(0)
                },
                Some(message) => {
                    let text = &message.as_bytes()[..message.len().min(MAX_DATA_LENGTH - 1)];
                    let n = text.len() + 1;
                    if capacity < n {
                        return Plan {
                            action: Action::Acknowledge,
                            ..Plan::reply(Response::BufferTooSmall.code())
                        };
                    }
                    self.xfer[..text.len()].copy_from_slice(text);
                    self.xfer[text.len()] = 0;
                    Plan {
                        response: n as i32,
                        data: DataPhase::ToSam(n),
                        action: Action::Acknowledge,
                    }
                }
            },
            Command::Diagnostics => Plan {
                action: Action::Diagnostics,
                ..Plan::reply(0)
            },
            Command::NetworkStartClient | Command::NetworkStartAccessPoint => {
                if self.wifi_state != WiFiState::Idle {
                    return Plan::reply(Response::WrongState.code());
                }
                Plan {
                    response: 0,
                    data: DataPhase::FromSam(len),
                    action: Action::Mode(command, len),
                }
            }
            Command::NetworkStop => Plan {
                action: Action::Mode(command, 0),
                ..Plan::reply(0)
            },
            Command::NetworkSetTxPower => {
                if h.flags > 82 {
                    self.stats.bad_parameter += 1;
                    return Plan::reply(Response::BadParameter.code());
                }
                Plan {
                    action: Action::TxPower(h.flags),
                    ..Plan::reply(0)
                }
            }
            Command::NetworkSetClockControl => Plan {
                action: Action::ClockControl,
                ..Plan::reply(0)
            },
            // SSID storage and scans belong to the platform's WiFi manager, which this
            // example does not have; the deprecated and unused commands are unknown.
            Command::UnusedStopListening
            | Command::NetworkAddSsid
            | Command::NetworkDeleteSsid
            | Command::NetworkListSsids
            | Command::NetworkConfigureAccessPoint
            | Command::NetworkFactoryReset
            | Command::NetworkRetrieveSsidData
            | Command::NetworkStartScan
            | Command::NetworkGetScanResult
            | Command::NetworkAddEnterpriseSsid => self.refuse(DecodeError::UnknownCommand(h.command)),
        }
    }

    /// A reply with data: `bytes` if the SAM can take them, else −9.
    fn send(&mut self, bytes: &[u8], capacity: usize, action: Action) -> Plan {
        if bytes.len() > capacity {
            return Plan::reply(Response::BufferTooSmall.code());
        }
        self.xfer[..bytes.len()].copy_from_slice(bytes);
        Plan {
            response: bytes.len() as i32,
            data: DataPhase::ToSam(bytes.len()),
            action,
        }
    }

    // ------------------------------------------------------------------ after the transfer

    /// The command's network work, after chip select has risen.
    fn act(&mut self, (action, param32, moved): (Action, u32, usize), now: Instant) {
        match action {
            Action::None => {}
            Action::Abort(i) => {
                match self.sockets[i].phase {
                    Phase::Open(h) | Phase::Draining(h) => {
                        let _ = self.pool.abort(h, now);
                    }
                    Phase::Free | Phase::Refused => {}
                }
                self.sockets[i].reset(Phase::Free);
            }
            Action::Close(i) => match self.sockets[i].phase {
                Phase::Open(h) => {
                    self.sockets[i].rx.clear();
                    self.sockets[i].phase = Phase::Draining(h);
                    self.drain(i, h, now);
                }
                Phase::Refused => self.sockets[i].reset(Phase::Free),
                Phase::Free | Phase::Draining(_) => {}
            },
            Action::Write {
                socket,
                len,
                push,
                close,
            } => {
                let Phase::Open(h) = self.sockets[socket].phase else {
                    return;
                };
                let sock = &mut self.sockets[socket];
                let n = sock.tx.append(&self.xfer[..len.min(moved)]);
                self.stats.bytes_from_sam += n as u64;
                sock.push |= push;
                if close {
                    sock.rx.clear();
                    sock.phase = Phase::Draining(h);
                }
                self.drain(socket, h, now);
            }
            Action::Read { socket, len } => {
                self.sockets[socket].rx.consume(len);
                self.stats.bytes_to_sam += len as u64;
                if let Phase::Open(h) = self.sockets[socket].phase {
                    self.fill(socket, h, now);
                }
            }
            Action::Connect(i) => self.connect(i, now),
            Action::Listen => self.listen(),
            Action::SetHostName => {
                let mut name = [0u8; HOST_NAME_LENGTH];
                name.copy_from_slice(&self.xfer[..HOST_NAME_LENGTH]);
                let text = c_str(&name);
                let mut field = [0u8; HOST_NAME_LENGTH];
                set_c_str(&mut field, text);
                self.status.host_name = field;
            }
            Action::Mode(command, len) => self.mode(command, len, now),
            Action::Acknowledge => {
                self.last_error = None;
                self.last_reported_state = self.wifi_state;
                self.last_pulse = None;
            }
            Action::Diagnostics => {
                // A snapshot: O(N + L), no I/O, nothing printed here.
                self.diagnostics = Some(self.pool.report(now));
                self.stats.diagnostics += 1;
            }
            Action::TxPower(p) => self.tx_power = Some(p),
            Action::ClockControl => self.clock_control = Some(param32),
        }
    }

    fn connect(&mut self, i: usize, now: Instant) {
        let Ok(lcd) = ListenOrConnectData::decode(&self.xfer) else {
            return;
        };
        let remote = SocketAddr::new(IpAddr::V4(lcd.ip()), lcd.port);
        let timeout = self.config.connect_timeout;
        match self.pool.connect_at(i, remote, lcd.protocol, timeout, now) {
            Ok(h) => self.adopt(i, h, now),
            Err(_) => {
                // Refused before the pool took the slot (no socket, link down, bad
                // address): the SAM was told number `i`, so it shows `aborted`.
                self.stats.connect_failed += 1;
                let sock = &mut self.sockets[i];
                sock.reset(Phase::Refused);
                sock.protocol = lcd.protocol;
                sock.local_port = 0;
                sock.remote = Some(SocketAddrV4::new(lcd.ip(), lcd.port));
                self.set_error("Connection creation failed");
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
            self.set_error("Listen failed");
        }
    }

    fn mode(&mut self, command: Command, len: usize, now: Instant) {
        let request = match command {
            Command::NetworkStartClient => {
                let mut ssid = [0u8; SSID_LENGTH];
                let n = len.min(SSID_LENGTH);
                ssid[..n].copy_from_slice(&self.xfer[..n]);
                let mut field = [0u8; SSID_LENGTH];
                let text = c_str(&ssid);
                field[..text.len()].copy_from_slice(text);
                ModeRequest::StartClient { ssid: field }
            }
            Command::NetworkStartAccessPoint => ModeRequest::StartAccessPoint,
            _ => {
                // Stop: every connection and listener goes first: every pool
                // connection, including one accepted into the slot of a refused
                // connect and not yet shown.
                for i in 0..SOCKETS {
                    if let Some(h) = self.pool.handle_at(i) {
                        let _ = self.pool.abort(h, now);
                    }
                    self.sockets[i].reset(Phase::Free);
                }
                let ports = self.pool.report(now).listeners;
                for l in ports.iter().flatten() {
                    self.pool.stop_listening(l.port);
                }
                ModeRequest::Stop
            }
        };
        self.mode_request = Some(request);
    }
}

impl<S: Stack, SPI, CS, RDY, REQ, const L: usize, const TX: usize, const BUF: usize> core::fmt::Debug
    for Bridge<S, SPI, CS, RDY, REQ, L, TX, BUF>
{
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Bridge")
            .field("wifi_state", &self.wifi_state)
            .field("pool", &self.pool)
            .field("stats", &self.stats)
            .finish()
    }
}
